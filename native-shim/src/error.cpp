// Exception translation and the thread-local error message.
#include <cmath>
#include <new>
#include <stdexcept>
#include <string>

#include <c10/util/Exception.h>

#include "internal.h"

namespace {
thread_local std::string last_error;
}

namespace lt {

void set_error(const char* message) { last_error.assign(message); }

lt_status translate_current_exception() noexcept {
    try {
        throw;
    } catch (const c10::IndexError& e) {
        set_error(e.what_without_backtrace());
        return LT_ERR_INDEX;
    } catch (const c10::ValueError& e) {
        set_error(e.what_without_backtrace());
        return LT_ERR_VALUE;
    } catch (const c10::TypeError& e) {
        set_error(e.what_without_backtrace());
        return LT_ERR_TYPE;
    } catch (const c10::NotImplementedError& e) {
        set_error(e.what_without_backtrace());
        return LT_ERR_NOT_IMPLEMENTED;
    } catch (const c10::OutOfMemoryError& e) {
        set_error(e.what_without_backtrace());
        return LT_ERR_OUT_OF_MEMORY;
    } catch (const c10::Error& e) {
        const char* msg = e.what_without_backtrace();
        set_error(msg);
        // The CPU allocator reports exhaustion as a plain c10::Error.
        const std::string m(msg);
        if (m.find("not enough memory") != std::string::npos ||
            m.find("can't allocate memory") != std::string::npos)
            return LT_ERR_OUT_OF_MEMORY;
        return LT_ERR_GENERIC;
    } catch (const NullArgument& e) {
        set_error(e.what());
        return LT_ERR_NULL_ARGUMENT;
    } catch (const std::bad_alloc&) {
        set_error("out of memory (std::bad_alloc)");
        return LT_ERR_OUT_OF_MEMORY;
    } catch (const std::out_of_range& e) {
        set_error(e.what());
        return LT_ERR_INDEX;
    } catch (const std::invalid_argument& e) {
        set_error(e.what());
        return LT_ERR_VALUE;
    } catch (const std::exception& e) {
        set_error(e.what());
        return LT_ERR_GENERIC;
    } catch (...) {
        set_error("unknown native exception");
        return LT_ERR_GENERIC;
    }
}

at::ScalarType scalar_type(int32_t dtype) {
    switch (dtype) {
        case LT_FLOAT32: return at::kFloat;
        case LT_FLOAT64: return at::kDouble;
        case LT_FLOAT16: return at::kHalf;
        case LT_BFLOAT16: return at::kBFloat16;
        case LT_INT64: return at::kLong;
        case LT_INT32: return at::kInt;
        case LT_UINT8: return at::kByte;
        case LT_BOOL: return at::kBool;
        case LT_INT16: return at::kShort;
        case LT_INT8: return at::kChar;
        default: throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
    }
}

int32_t dtype_code(at::ScalarType type) {
    switch (type) {
        case at::kFloat: return LT_FLOAT32;
        case at::kDouble: return LT_FLOAT64;
        case at::kHalf: return LT_FLOAT16;
        case at::kBFloat16: return LT_BFLOAT16;
        case at::kLong: return LT_INT64;
        case at::kInt: return LT_INT32;
        case at::kByte: return LT_UINT8;
        case at::kBool: return LT_BOOL;
        case at::kShort: return LT_INT16;
        case at::kChar: return LT_INT8;
        default: return -1;
    }
}

at::IntArrayRef dims(const int64_t* p, int64_t n, const char* name) {
    if (n < 0) throw std::invalid_argument(std::string("negative length for '") + name + "'");
    if (n > 0 && p == nullptr) throw NullArgument(std::string("argument '") + name + "' is NULL");
    return at::IntArrayRef(p, static_cast<size_t>(n));
}

at::Scalar scalar_for(const at::Tensor& t, double v) {
    // A whole number in int64's range stays an integer (no rounding through double); anything
    // else is a double operand (type promotion makes the result floating-point, as in PyTorch).
    if (at::isIntegralType(t.scalar_type(), /*includeBool=*/false) && v >= -0x1p63 && v < 0x1p63 && v == std::trunc(v))
        return at::Scalar(static_cast<int64_t>(v));
    return at::Scalar(v);
}

at::Scalar stored_value(at::ScalarType type, double v) {
    if (!at::isIntegralType(type, /*includeBool=*/false)) return at::Scalar(v);
    // The dtype's range as [lo, hi), exact powers of two. LibTorch's own check compares with
    // (double)INT64_MAX, which rounds up to 2^63, and lets 2^63 through into a conversion that
    // wraps to -2^63: a value outside is refused here for every integer dtype alike.
    double lo = -255, hi = 0x1p8;  // kByte: as c10's overflows<uint8_t>, -255..-1 wrap (-1 is 255)
    switch (type) {
        case at::kLong: lo = -0x1p63; hi = 0x1p63; break;
        case at::kInt: lo = -0x1p31; hi = 0x1p31; break;
        case at::kShort: lo = -0x1p15; hi = 0x1p15; break;
        case at::kChar: lo = -0x1p7; hi = 0x1p7; break;
        default: break;
    }
    if (!(v >= lo && v < hi))  // NaN included
        throw std::invalid_argument("value " + std::to_string(v) + " cannot be converted to " +
                                    std::string(c10::toString(type)) + " without overflow");
    return v == std::trunc(v) ? at::Scalar(static_cast<int64_t>(v)) : at::Scalar(v);
}

}  // namespace lt

extern "C" const char* lt_last_error(void) { return last_error.c_str(); }
