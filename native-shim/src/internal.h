// Internal helpers of the shim: the handle type, exception translation, conversions.
// Only the shim's .cpp files include this; it never appears in the public header.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>

#include "lora4j.h"

// An lt_tensor* is an at::TensorImpl* that owns one reference: no allocation of its own,
// so creating and freeing a handle costs what an at::Tensor's construction and destruction
// cost. lt_tensor is never defined.

namespace lt {

using TensorPtr = c10::intrusive_ptr<at::TensorImpl, at::UndefinedTensorImpl>;

inline at::TensorImpl* impl(const lt_tensor* h) {
    return reinterpret_cast<at::TensorImpl*>(const_cast<lt_tensor*>(h));
}

// An at::Tensor view of a handle that leaves its reference count alone.
class Borrowed {
public:
    explicit Borrowed(const lt_tensor* h) : t_(TensorPtr::reclaim(impl(h))) {}
    Borrowed(const Borrowed&) = delete;
    Borrowed& operator=(const Borrowed&) = delete;
    ~Borrowed() { t_.unsafeReleaseTensorImpl(); }
    const at::Tensor& operator*() const { return t_; }
    const at::Tensor* operator->() const { return &t_; }

private:
    at::Tensor t_;
};

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

// A required tensor argument.
inline Borrowed T(const lt_tensor* h, const char* name) {
    if (h == nullptr) throw NullArgument(std::string("argument '") + name + "' is NULL");
    return Borrowed(h);
}

// The optional form: NULL means an undefined (absent) tensor (one reference-count bump).
inline at::Tensor opt(const lt_tensor* h) { return h == nullptr ? at::Tensor() : *Borrowed(h); }

template <class P>
inline P* need(P* p, const char* name) {
    if (p == nullptr) throw NullArgument(std::string("argument '") + name + "' is NULL");
    return p;
}

// Hands the tensor's reference to the caller as a handle (NULL for an undefined tensor).
inline lt_tensor* release(at::Tensor t) {
    if (!t.defined()) return nullptr;
    return reinterpret_cast<lt_tensor*>(t.unsafeReleaseTensorImpl());
}

inline void put(lt_tensor** out, at::Tensor t) { *out = release(std::move(t)); }

at::ScalarType scalar_type(int32_t dtype);
int32_t dtype_code(at::ScalarType type);
at::IntArrayRef dims(const int64_t* p, int64_t n, const char* name);
// A Scalar operand for an op on t that keeps integral tensors integral when the value is a
// whole number in int64's range (else a double: the result is promoted, as in PyTorch).
at::Scalar scalar_for(const at::Tensor& t, double v);
// A value to store in a tensor of dtype type (fill_, full): for an integer dtype a value outside
// its range, or NaN, throws std::invalid_argument instead of wrapping.
at::Scalar stored_value(at::ScalarType type, double v);

}  // namespace lt

// Every exported function checks its out pointer first, then runs its body guarded.
#define LT_BODY(...) return lt::guarded([&] { __VA_ARGS__; })
