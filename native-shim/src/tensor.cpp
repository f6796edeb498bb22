// Tensor creation, queries and conversions.
#include <cstring>

#include "internal.h"

using lt::T;

namespace {

at::TensorOptions options(int32_t dtype) { return at::TensorOptions().dtype(lt::scalar_type(dtype)); }

at::Device device(int32_t type, int32_t index) {
    switch (type) {
        case LT_DEVICE_CPU: return at::Device(at::kCPU);
        case LT_DEVICE_CUDA:
            if (!at::hasCUDA())
                throw std::invalid_argument(
                    "CUDA is not available: this LibTorch build has no CUDA support or no GPU is present");
            return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
        default: throw std::invalid_argument("unknown device type " + std::to_string(type));
    }
}

const at::Tensor& cpu_contiguous(const at::Tensor& t) {
    if (!t.device().is_cpu()) throw std::invalid_argument("tensor is not on the CPU");
    if (!t.is_contiguous()) throw std::invalid_argument("tensor is not contiguous");
    return t;
}

}  // namespace

extern "C" {

lt_status lt_tensor_free(lt_tensor* t) {
    if (t != nullptr) lt::TensorPtr::reclaim(lt::impl(t));  // drops the handle's reference
    return LT_OK;
}

lt_status lt_empty(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::empty(lt::dims(shape, ndim, "shape"), options(dtype))));
}

lt_status lt_zeros(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::zeros(lt::dims(shape, ndim, "shape"), options(dtype))));
}

lt_status lt_ones(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::ones(lt::dims(shape, ndim, "shape"), options(dtype))));
}

lt_status lt_full(const int64_t* shape, int64_t ndim, double value, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"),
                    at::full(lt::dims(shape, ndim, "shape"), lt::stored_value(lt::scalar_type(dtype), value), options(dtype))));
}

lt_status lt_arange(double start, double end, double step, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::arange(start, end, step, options(dtype))));
}

lt_status lt_rand(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::rand(lt::dims(shape, ndim, "shape"), options(dtype))));
}

lt_status lt_randn(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::randn(lt::dims(shape, ndim, "shape"), options(dtype))));
}

lt_status lt_from_data(const void* data, int64_t nbytes, const int64_t* shape, int64_t ndim,
                       int32_t dtype, lt_tensor** out) {
    LT_BODY(
        lt::need(out, "out");
        at::Tensor t = at::empty(lt::dims(shape, ndim, "shape"), options(dtype));
        const int64_t expected = t.numel() * static_cast<int64_t>(t.element_size());
        if (nbytes != expected)
            throw std::invalid_argument("data has " + std::to_string(nbytes) +
                                        " bytes but the shape needs " + std::to_string(expected));
        if (expected > 0) std::memcpy(t.data_ptr(), lt::need(data, "data"), static_cast<size_t>(expected));
        lt::put(out, std::move(t));
    );
}

lt_status lt_scalar_tensor(double value, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), at::scalar_tensor(value, options(dtype))));
}

int64_t lt_tensor_dim(const lt_tensor* t) { return t == nullptr ? -1 : lt::impl(t)->dim(); }

lt_status lt_tensor_sizes(const lt_tensor* t, int64_t* out, int64_t capacity) {
    LT_BODY(
        auto s = T(t, "t")->sizes();
        const int64_t n = std::min<int64_t>(capacity, static_cast<int64_t>(s.size()));
        if (n > 0) std::memcpy(lt::need(out, "out"), s.data(), static_cast<size_t>(n) * sizeof(int64_t));
    );
}

lt_status lt_tensor_strides(const lt_tensor* t, int64_t* out, int64_t capacity) {
    LT_BODY(
        auto s = T(t, "t")->strides();
        const int64_t n = std::min<int64_t>(capacity, static_cast<int64_t>(s.size()));
        if (n > 0) std::memcpy(lt::need(out, "out"), s.data(), static_cast<size_t>(n) * sizeof(int64_t));
    );
}

int64_t lt_tensor_numel(const lt_tensor* t) { return t == nullptr ? -1 : lt::impl(t)->numel(); }

int64_t lt_tensor_nbytes(const lt_tensor* t) {
    if (t == nullptr) return -1;
    const auto* i = lt::impl(t);
    return i->numel() * static_cast<int64_t>(i->itemsize());
}

int64_t lt_tensor_version(const lt_tensor* t) {
    return t == nullptr ? -1 : static_cast<int64_t>(lt::impl(t)->version_counter().current_version());
}

int32_t lt_tensor_dtype(const lt_tensor* t) {
    return t == nullptr ? -1 : lt::dtype_code(c10::typeMetaToScalarType(lt::impl(t)->dtype()));
}

int32_t lt_tensor_device_type(const lt_tensor* t) {
    if (t == nullptr) return -1;
    return lt::impl(t)->device().is_cuda() ? LT_DEVICE_CUDA : LT_DEVICE_CPU;
}

int32_t lt_tensor_device_index(const lt_tensor* t) { return t == nullptr ? -1 : lt::impl(t)->device().index(); }

int32_t lt_tensor_is_contiguous(const lt_tensor* t) { return t != nullptr && lt::impl(t)->is_contiguous(); }

int64_t lt_dtype_size(int32_t dtype) {
    try {
        return static_cast<int64_t>(c10::elementSize(lt::scalar_type(dtype)));
    } catch (...) {
        return 0;
    }
}

lt_status lt_tensor_data_ptr(const lt_tensor* t, void** out) {
    LT_BODY(*lt::need(out, "out") = cpu_contiguous(*T(t, "t")).data_ptr());
}

lt_status lt_tensor_copy_to(const lt_tensor* t, void* dst, int64_t nbytes) {
    LT_BODY(
        at::Tensor c = T(t, "t")->to(at::kCPU).contiguous();
        const int64_t expected = c.numel() * static_cast<int64_t>(c.element_size());
        if (nbytes != expected)
            throw std::invalid_argument("destination has " + std::to_string(nbytes) +
                                        " bytes but the tensor has " + std::to_string(expected));
        if (expected > 0) std::memcpy(lt::need(dst, "dst"), c.data_ptr(), static_cast<size_t>(expected));
    );
}

lt_status lt_tensor_item_double(const lt_tensor* t, double* out) {
    LT_BODY(*lt::need(out, "out") = T(t, "t")->item<double>());
}

lt_status lt_tensor_item_int64(const lt_tensor* t, int64_t* out) {
    LT_BODY(*lt::need(out, "out") = T(t, "t")->item<int64_t>());
}

lt_status lt_tensor_all_finite(const lt_tensor* t, int32_t* out) {
    LT_BODY(*lt::need(out, "out") = at::isfinite(*T(t, "t")).all().item<bool>() ? 1 : 0);
}

lt_status lt_tensor_equal(const lt_tensor* a, const lt_tensor* b, int32_t* out) {
    LT_BODY(*lt::need(out, "out") = at::equal(*T(a, "a"), *T(b, "b")) ? 1 : 0);
}

lt_status lt_tensor_allclose(const lt_tensor* a, const lt_tensor* b, double rtol, double atol,
                             int32_t* out) {
    LT_BODY(*lt::need(out, "out") = at::allclose(*T(a, "a"), *T(b, "b"), rtol, atol) ? 1 : 0);
}

lt_status lt_to_dtype(const lt_tensor* t, int32_t dtype, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(t, "t")->to(lt::scalar_type(dtype))));
}

lt_status lt_to_device(const lt_tensor* t, int32_t device_type, int32_t device_index,
                       lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(t, "t")->to(device(device_type, device_index))));
}

lt_status lt_clone(const lt_tensor* t, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(t, "t")->clone()));
}

lt_status lt_detach(const lt_tensor* t, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(t, "t")->detach()));
}

lt_status lt_contiguous(const lt_tensor* t, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), T(t, "t")->contiguous()));
}

lt_status lt_shallow_copy(const lt_tensor* t, lt_tensor** out) {
    LT_BODY(lt::put(lt::need(out, "out"), *T(t, "t")));
}

}  // extern "C"
