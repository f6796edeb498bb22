// Internal helpers of the shim: the handle type, exception translation, conversions.
// Only the shim's .cpp files include this; it never appears in the public header.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "lora4j.h"

struct lt_tensor {
    at::Tensor t;
};

namespace lt {

// Thrown by the shim itself for a NULL required argument.
struct NullArgument : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

void set_error(const char* message);
lt_status translate_current_exception() noexcept;

// Runs body, turning every exception into a status and a thread-local message.
template <class Body>
inline lt_status guarded(Body&& body) noexcept {
    try {
        body();
        return LT_OK;
    } catch (...) {
        return translate_current_exception();
    }
}

inline const at::Tensor& T(const lt_tensor* h, const char* name) {
    if (h == nullptr) throw NullArgument(std::string("argument '") + name + "' is NULL");
    return h->t;
}

// The optional form: NULL means an undefined (absent) tensor.
inline at::Tensor opt(const lt_tensor* h) { return h == nullptr ? at::Tensor() : h->t; }

template <class P>
inline P* need(P* p, const char* name) {
    if (p == nullptr) throw NullArgument(std::string("argument '") + name + "' is NULL");
    return p;
}

inline void put(lt_tensor** out, at::Tensor t) {
    *out = new lt_tensor{std::move(t)};
}

at::ScalarType scalar_type(int32_t dtype);
int32_t dtype_code(at::ScalarType type);
at::IntArrayRef dims(const int64_t* p, int64_t n, const char* name);
// A Scalar that keeps integral tensors integral when the value is a whole number.
at::Scalar scalar_for(const at::Tensor& t, double v);

}  // namespace lt

// Every exported function checks its out pointer first, then runs its body guarded.
#define LT_BODY(...) return lt::guarded([&] { __VA_ARGS__; })
