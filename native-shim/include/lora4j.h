/*
 * lora4j native shim: a thin C ABI over LibTorch.
 *
 * Conventions (see DESIGN.md):
 *  - Every native object is an opaque handle. Each constructor has exactly one free
 *    function (lt_tensor_free for tensors). Handles are owned by the caller.
 *  - Every function that can fail returns an lt_status and writes its result through
 *    an out pointer. LT_OK (0) means success; on failure the out pointer is untouched
 *    and lt_last_error() returns LibTorch's message for the calling thread.
 *  - No C++ exception ever crosses this boundary.
 *  - Optional tensor arguments (bias, weight, gradient) are NULL when absent.
 *  - Arrays are (pointer, length) pairs; lengths are int64_t.
 *
 * Thread-safety: functions are as thread-safe as the LibTorch operations they wrap.
 * Reading tensors from several threads is safe; mutating one from two threads is not.
 * The error message and the grad mode are per thread.
 */
#ifndef LORA4J_H
#define LORA4J_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ status */

typedef int32_t lt_status;

enum {
    LT_OK = 0,
    LT_ERR_GENERIC = 1,        /* c10::Error or std::exception */
    LT_ERR_INDEX = 2,          /* c10::IndexError, std::out_of_range */
    LT_ERR_VALUE = 3,          /* c10::ValueError, std::invalid_argument */
    LT_ERR_TYPE = 4,           /* c10::TypeError */
    LT_ERR_NOT_IMPLEMENTED = 5,/* c10::NotImplementedError */
    LT_ERR_OUT_OF_MEMORY = 6,  /* std::bad_alloc, allocator failures */
    LT_ERR_NULL_ARGUMENT = 7   /* a required handle or pointer was NULL */
};

/* Message of the last failed call on this thread ("" when none). Valid until the next
 * failing call on the same thread. Never NULL. */
const char* lt_last_error(void);

/* ------------------------------------------------------------------ enums */

enum {
    LT_FLOAT32 = 0,
    LT_FLOAT64 = 1,
    LT_FLOAT16 = 2,
    LT_BFLOAT16 = 3,
    LT_INT64 = 4,
    LT_INT32 = 5,
    LT_UINT8 = 6,
    LT_BOOL = 7,
    LT_INT16 = 8,
    LT_INT8 = 9
};

enum {
    LT_DEVICE_CPU = 0,
    LT_DEVICE_CUDA = 1
};

enum {
    LT_REDUCTION_NONE = 0,
    LT_REDUCTION_MEAN = 1,
    LT_REDUCTION_SUM = 2
};

/* ------------------------------------------------------------------ library */

typedef struct lt_tensor lt_tensor;

/* LibTorch version, e.g. "1.13.1". Static storage. */
const char* lt_version(void);
/* Sets LibTorch's intra-op threads. OpenBLAS keeps the single thread the shim pinned it to at
 * load (LORA4J_BLAS_THREADS=n pins n instead); the shim splits large matrix products over the
 * intra-op threads itself. */
lt_status lt_set_num_threads(int32_t n);
/* The thread count OpenBLAS was pinned to when the shim loaded (1 unless LORA4J_BLAS_THREADS
 * says otherwise), or 0 when LibTorch's BLAS is not OpenBLAS. Cannot fail. */
int32_t lt_blas_threads(void);
int32_t lt_get_num_threads(void);
lt_status lt_manual_seed(uint64_t seed);
/* Number of usable devices of a type (always 1 for CPU, 0 for CUDA on a CPU build). */
int32_t lt_device_count(int32_t device_type);
/* Process-wide glibc malloc tuning (mallopt): the size from which blocks are mmap'ed
 * (M_MMAP_THRESHOLD, at most 32 MiB on 64-bit glibc), how much free memory at the top of the
 * heap is kept rather than given back (M_TRIM_THRESHOLD), and the extra room the heap grows by
 * (M_TOP_PAD). A value < 0 leaves that setting alone. Setting the mmap threshold also stops
 * glibc's dynamic adjustment of both thresholds. Fails with LT_ERR_NOT_IMPLEMENTED when the C
 * library is not glibc, LT_ERR_VALUE when glibc refuses a value. */
lt_status lt_malloc_tune(int64_t mmap_threshold, int64_t trim_threshold, int64_t top_pad);

/* ------------------------------------------------------------------ tensor life */

lt_status lt_tensor_free(lt_tensor* t);

lt_status lt_empty(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out);
lt_status lt_zeros(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out);
lt_status lt_ones(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out);
lt_status lt_full(const int64_t* shape, int64_t ndim, double value, int32_t dtype, lt_tensor** out);
lt_status lt_arange(double start, double end, double step, int32_t dtype, lt_tensor** out);
lt_status lt_rand(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out);
lt_status lt_randn(const int64_t* shape, int64_t ndim, int32_t dtype, lt_tensor** out);
/* A new tensor holding a copy of nbytes at data (nbytes must equal numel * element size). */
lt_status lt_from_data(const void* data, int64_t nbytes, const int64_t* shape, int64_t ndim,
                       int32_t dtype, lt_tensor** out);
/* A 0-dimensional tensor holding value converted to dtype. */
lt_status lt_scalar_tensor(double value, int32_t dtype, lt_tensor** out);

/* ------------------------------------------------------------------ queries */

/* Number of dimensions; -1 when t is NULL. */
int64_t lt_tensor_dim(const lt_tensor* t);
/* Copies min(capacity, dim) sizes (or strides) into out. */
lt_status lt_tensor_sizes(const lt_tensor* t, int64_t* out, int64_t capacity);
lt_status lt_tensor_strides(const lt_tensor* t, int64_t* out, int64_t capacity);
int64_t lt_tensor_numel(const lt_tensor* t);
/* numel times the element size: the bytes of the tensor's own elements; -1 when t is NULL. */
int64_t lt_tensor_nbytes(const lt_tensor* t);
int32_t lt_tensor_dtype(const lt_tensor* t);
int32_t lt_tensor_device_type(const lt_tensor* t);
int32_t lt_tensor_device_index(const lt_tensor* t);
int32_t lt_tensor_is_contiguous(const lt_tensor* t);
/* The version counter, bumped by every in-place change of the data (PyTorch's t._version); -1 when t is NULL. */
int64_t lt_tensor_version(const lt_tensor* t);
/* Element size in bytes of a dtype code, 0 for an unknown code. */
int64_t lt_dtype_size(int32_t dtype);
/* Address of the first element of a contiguous CPU tensor (fails otherwise). */
lt_status lt_tensor_data_ptr(const lt_tensor* t, void** out);
/* Copies the tensor's elements (converted to nothing: same dtype) into dst as a
 * contiguous buffer; nbytes must equal numel * element size. */
lt_status lt_tensor_copy_to(const lt_tensor* t, void* dst, int64_t nbytes);
/* The value of a one-element tensor as double. */
lt_status lt_tensor_item_double(const lt_tensor* t, double* out);
lt_status lt_tensor_item_int64(const lt_tensor* t, int64_t* out);
/* Whether every element is finite (true for integral tensors). */
lt_status lt_tensor_all_finite(const lt_tensor* t, int32_t* out);
/* Whether two tensors share the same storage and offset (are the same data). */
lt_status lt_tensor_equal(const lt_tensor* a, const lt_tensor* b, int32_t* out);
lt_status lt_tensor_allclose(const lt_tensor* a, const lt_tensor* b, double rtol, double atol,
                             int32_t* out);

/* ------------------------------------------------------------------ conversions */

lt_status lt_to_dtype(const lt_tensor* t, int32_t dtype, lt_tensor** out);
lt_status lt_to_device(const lt_tensor* t, int32_t device_type, int32_t device_index,
                       lt_tensor** out);
lt_status lt_clone(const lt_tensor* t, lt_tensor** out);
lt_status lt_detach(const lt_tensor* t, lt_tensor** out);
lt_status lt_contiguous(const lt_tensor* t, lt_tensor** out);
/* Another handle to the same tensor (shares storage and autograd identity). */
lt_status lt_shallow_copy(const lt_tensor* t, lt_tensor** out);

/* ------------------------------------------------------------------ autograd */

int32_t lt_requires_grad(const lt_tensor* t);
lt_status lt_set_requires_grad(lt_tensor* t, int32_t requires_grad);
int32_t lt_is_leaf(const lt_tensor* t);
/* gradient may be NULL for a one-element t. */
lt_status lt_backward(const lt_tensor* t, const lt_tensor* gradient, int32_t retain_graph);
/* *out is NULL when t has no gradient. */
lt_status lt_grad(const lt_tensor* t, lt_tensor** out);
/* Fills an existing gradient with zeros (no-op when there is none). */
lt_status lt_zero_grad(lt_tensor* t);
/* Drops the gradient (PyTorch's set_to_none). */
lt_status lt_clear_grad(lt_tensor* t);
/* Thread-local grad mode: sets it and returns the previous value through previous. */
lt_status lt_grad_set_enabled(int32_t enabled, int32_t* previous);
int32_t lt_grad_is_enabled(void);

/* ------------------------------------------------------------------ elementwise */

lt_status lt_add(const lt_tensor* a, const lt_tensor* b, double alpha, lt_tensor** out);
lt_status lt_sub(const lt_tensor* a, const lt_tensor* b, double alpha, lt_tensor** out);
lt_status lt_mul(const lt_tensor* a, const lt_tensor* b, lt_tensor** out);
lt_status lt_div(const lt_tensor* a, const lt_tensor* b, lt_tensor** out);
lt_status lt_add_scalar(const lt_tensor* a, double s, lt_tensor** out);
lt_status lt_sub_scalar(const lt_tensor* a, double s, lt_tensor** out);
lt_status lt_mul_scalar(const lt_tensor* a, double s, lt_tensor** out);
lt_status lt_div_scalar(const lt_tensor* a, double s, lt_tensor** out);
lt_status lt_pow_scalar(const lt_tensor* a, double exponent, lt_tensor** out);
lt_status lt_pow(const lt_tensor* a, const lt_tensor* exponent, lt_tensor** out);

enum {
    LT_UNARY_NEG = 0,
    LT_UNARY_EXP = 1,
    LT_UNARY_LOG = 2,
    LT_UNARY_SQRT = 3,
    LT_UNARY_ABS = 4,
    LT_UNARY_RELU = 5,
    LT_UNARY_SIGMOID = 6,
    LT_UNARY_TANH = 7,
    LT_UNARY_GELU = 8,
    LT_UNARY_GELU_TANH = 9
};
lt_status lt_unary(const lt_tensor* a, int32_t op, lt_tensor** out);

/* In place on a (fails on a leaf that requires grad while grad mode is on). */
lt_status lt_add_(lt_tensor* a, const lt_tensor* b, double alpha);
lt_status lt_mul_(lt_tensor* a, const lt_tensor* b);
lt_status lt_add_scalar_(lt_tensor* a, double s);
lt_status lt_mul_scalar_(lt_tensor* a, double s);
lt_status lt_copy_(lt_tensor* dst, const lt_tensor* src);
lt_status lt_zero_(lt_tensor* a);
lt_status lt_fill_(lt_tensor* a, double value);

/* ------------------------------------------------------------------ reductions */

lt_status lt_sum(const lt_tensor* a, lt_tensor** out);
lt_status lt_mean(const lt_tensor* a, lt_tensor** out);
lt_status lt_sum_dims(const lt_tensor* a, const int64_t* dims, int64_t ndims, int32_t keepdim,
                      lt_tensor** out);
lt_status lt_mean_dims(const lt_tensor* a, const int64_t* dims, int64_t ndims, int32_t keepdim,
                       lt_tensor** out);
/* Maximum over one dimension: values and indices. */
lt_status lt_max_dim(const lt_tensor* a, int64_t dim, int32_t keepdim, lt_tensor** values,
                     lt_tensor** indices);
lt_status lt_max(const lt_tensor* a, lt_tensor** out);
lt_status lt_argmax(const lt_tensor* a, int64_t dim, int32_t keepdim, lt_tensor** out);

/* ------------------------------------------------------------------ shape */

lt_status lt_matmul(const lt_tensor* a, const lt_tensor* b, lt_tensor** out);
lt_status lt_mm(const lt_tensor* a, const lt_tensor* b, lt_tensor** out);
lt_status lt_t(const lt_tensor* a, lt_tensor** out);
lt_status lt_transpose(const lt_tensor* a, int64_t dim0, int64_t dim1, lt_tensor** out);
lt_status lt_permute(const lt_tensor* a, const int64_t* dims, int64_t ndims, lt_tensor** out);
lt_status lt_reshape(const lt_tensor* a, const int64_t* shape, int64_t ndim, lt_tensor** out);
lt_status lt_view(const lt_tensor* a, const int64_t* shape, int64_t ndim, lt_tensor** out);
lt_status lt_narrow(const lt_tensor* a, int64_t dim, int64_t start, int64_t length,
                    lt_tensor** out);
lt_status lt_index_select(const lt_tensor* a, int64_t dim, const lt_tensor* index,
                          lt_tensor** out);
lt_status lt_cat(const lt_tensor* const* tensors, int64_t count, int64_t dim, lt_tensor** out);
lt_status lt_stack(const lt_tensor* const* tensors, int64_t count, int64_t dim, lt_tensor** out);
lt_status lt_squeeze(const lt_tensor* a, int64_t dim, lt_tensor** out);
lt_status lt_squeeze_all(const lt_tensor* a, lt_tensor** out);
lt_status lt_unsqueeze(const lt_tensor* a, int64_t dim, lt_tensor** out);

/* ------------------------------------------------------------------ nn functional */

/* y = x·weightᵀ + bias; bias may be NULL. */
lt_status lt_linear(const lt_tensor* input, const lt_tensor* weight, const lt_tensor* bias,
                    lt_tensor** out);
/* Convolution over spatial_dims (1, 2 or 3) dimensions; stride, padding and dilation
 * each hold spatial_dims values; bias may be NULL. */
lt_status lt_conv(const lt_tensor* input, const lt_tensor* weight, const lt_tensor* bias,
                  int32_t spatial_dims, const int64_t* stride, const int64_t* padding,
                  const int64_t* dilation, int64_t groups, lt_tensor** out);
/* Rows of weight selected by indices; padding_idx < 0 means none. */
lt_status lt_embedding(const lt_tensor* weight, const lt_tensor* indices, int64_t padding_idx,
                       lt_tensor** out);
lt_status lt_dropout(const lt_tensor* input, double p, int32_t train, lt_tensor** out);
lt_status lt_softmax(const lt_tensor* input, int64_t dim, lt_tensor** out);
lt_status lt_log_softmax(const lt_tensor* input, int64_t dim, lt_tensor** out);
/* weight may be NULL. */
lt_status lt_cross_entropy(const lt_tensor* input, const lt_tensor* target,
                           const lt_tensor* weight, int32_t reduction, int64_t ignore_index,
                           double label_smoothing, lt_tensor** out);
lt_status lt_nll_loss(const lt_tensor* input, const lt_tensor* target, const lt_tensor* weight,
                      int32_t reduction, int64_t ignore_index, lt_tensor** out);
lt_status lt_mse_loss(const lt_tensor* input, const lt_tensor* target, int32_t reduction,
                      lt_tensor** out);

/* ------------------------------------------------------------------ init (in place, no grad) */

/* PyTorch's kaiming_uniform_ with mode fan_in and nonlinearity leaky_relu. */
lt_status lt_kaiming_uniform_(lt_tensor* t, double a);
lt_status lt_normal_(lt_tensor* t, double mean, double std);
lt_status lt_uniform_(lt_tensor* t, double from, double to);
lt_status lt_zeros_(lt_tensor* t);

/* ------------------------------------------------------------------ linear algebra */

/* Reduced SVD of a matrix: a = u·diag(s)·vh (torch.linalg.svd with full_matrices=false). */
lt_status lt_svd(const lt_tensor* a, lt_tensor** u, lt_tensor** s, lt_tensor** vh);

/* Reduced QR of a matrix: a = q·r (torch.linalg.qr with mode="reduced"). */
lt_status lt_qr(const lt_tensor* a, lt_tensor** q, lt_tensor** r);

/* ------------------------------------------------------------------ fused LoRA kernels */

/* Mixed-batch LoRA update for inference (no autograd): x (N, ..., in) holds N batch rows, each
 * of any number of token rows ([batch, seq, in] for a transformer); every token row t of batch
 * row i gets out[t] = scale[k] · B[k] · (A[k] · x[t]) with k = index[i], or zeros when
 * index[i] < 0. out has x's shape with the last dimension out. a (n, R, in), bt (n, R, out) =
 * B transposed, scale (n), all float32 or all float64 like x; adapters of smaller rank are
 * zero-padded to R. One native call: batch rows grouped by adapter (stably, wherever they are
 * in the batch), each group's token rows computed in blocks by register-blocked kernels
 * (float32 on CPUs with AVX2 and FMA), parallel over blocks with LibTorch's intra-op threads;
 * float64 and other CPUs: two BLAS products per run of consecutive rows with one adapter when
 * the runs hold 16 token rows or more on average, a per-row kernel otherwise. */
lt_status lt_lora_mixed(const lt_tensor* x, const lt_tensor* a, const lt_tensor* bt, const lt_tensor* scale,
                        const int64_t* index, int64_t count, lt_tensor** out);
/* The LoRA linear forward in one call, autograd-aware (the result carries a graph for
 * backward like the separate operations would): out = x·wᵀ + bias + scale·(x·aᵀ)·bmᵀ with
 * w (out, in), bias (out) or NULL, a (r, in), bm (out, r), x (..., in). The update is one addmm
 * on the base result (no separate scale and add). */
lt_status lt_lora_linear(const lt_tensor* x, const lt_tensor* w, const lt_tensor* bias, const lt_tensor* a,
                         const lt_tensor* bm, double scale, lt_tensor** out);
/* A LoRA update added to an existing result, autograd-aware: out = y + scale·(x·aᵀ)·bmᵀ with
 * y (..., out), x (..., in) of the same leading shape, a (r, in), bm (out, r). */
lt_status lt_lora_add_delta(const lt_tensor* y, const lt_tensor* x, const lt_tensor* a, const lt_tensor* bm,
                            double scale, lt_tensor** out);

/* ------------------------------------------------------------------ optimizers */

/* An optimizer from torch::optim over a list of parameters. It holds its own references
 * to the parameters (freeing their handles does not free them) and its state (momentum,
 * Adam moments). Free it with lt_optimizer_free. Not thread-safe. */
typedef struct lt_optimizer lt_optimizer;

lt_status lt_sgd_new(const lt_tensor* const* params, int64_t count, double lr, double momentum,
                     double dampening, double weight_decay, int32_t nesterov, lt_optimizer** out);
/* Adam, or AdamW when decoupled_weight_decay is non-zero. */
lt_status lt_adam_new(const lt_tensor* const* params, int64_t count, double lr, double beta1,
                      double beta2, double eps, double weight_decay, int32_t amsgrad,
                      int32_t decoupled_weight_decay, lt_optimizer** out);
lt_status lt_optimizer_step(lt_optimizer* opt);
/* Zeroes the parameters' gradients, or drops them when set_to_none is non-zero. */
lt_status lt_optimizer_zero_grad(lt_optimizer* opt, int32_t set_to_none);
lt_status lt_optimizer_set_lr(lt_optimizer* opt, double lr);
lt_status lt_optimizer_get_lr(const lt_optimizer* opt, double* out);
lt_status lt_optimizer_free(lt_optimizer* opt);

/* ================================================================== distributed (c10d)
 * Data-parallel training over LibTorch's c10d engine (what PyTorch's DistributedDataParallel
 * uses): a TCPStore rendezvous and a Gloo process group over TCP. Collectives must be called
 * in the same order with the same tensor shapes on every rank; a process group is used by one
 * thread at a time. Every call is bounded by a timeout (timeout_ms; 0 = the group's own). Gloo
 * enforces the group's timeout inside a collective; a shorter timeout_ms bounds only the wait,
 * and the collective stays in Gloo until the group's timeout (freeing the group waits for it).
 * A failed collective leaves the ranks out of step: the group closes its connections (so the
 * peers fail at once too) and fails every further collective with LT_ERR_COMMUNICATION; free
 * it. Tensors are dense CPU tensors. */

enum {
    LT_ERR_TIMEOUT = 16,       /* a rendezvous or collective did not complete within its timeout */
    LT_ERR_COMMUNICATION = 17  /* a peer failed or closed its connection, or the network failed */
};

enum {
    LT_REDUCE_SUM = 0,
    LT_REDUCE_AVG = 1          /* the sum divided by the world size (floating-point tensors) */
};

typedef struct lt_process_group lt_process_group;

/* Joins the group of world_size ranks that meet at master_addr:master_port. Rank 0 hosts the
 * TCPStore there (listening on every interface) and waits for the others; all ranks then
 * connect to each other with Gloo over TCP, bound to interface_name when it is non-empty (as
 * PyTorch's GLOO_SOCKET_IFNAME), else to local_addr when non-empty, else to the address this
 * host's name resolves to. Fails with LT_ERR_TIMEOUT when a rank is missing after timeout_ms. */
lt_status lt_process_group_new(const char* master_addr, int32_t master_port, int32_t world_size,
                               int32_t rank, int64_t timeout_ms, const char* local_addr,
                               const char* interface_name, lt_process_group** out);
/* Frees the group, its connections and its threads; waits for a collective still running in
 * Gloo after a wait shorter than the group's timeout (at most that timeout). */
lt_status lt_process_group_free(lt_process_group* pg);
/* This process's rank and the world size; -1 when pg is NULL. */
int32_t lt_process_group_rank(const lt_process_group* pg);
int32_t lt_process_group_size(const lt_process_group* pg);
/* Reduces every tensor in place across the group (op: LT_REDUCE_*). The tensors are flattened
 * into one buffer per dtype (up to 64 MiB each) and reduced with one Gloo all-reduce per buffer. */
lt_status lt_process_group_all_reduce(lt_process_group* pg, const lt_tensor* const* tensors,
                                      int64_t count, int32_t op, int64_t timeout_ms);
/* As lt_process_group_all_reduce over the gradients of params (leaves that require grad); a
 * parameter without a gradient gets a zero one first, so every rank reduces the same buffer. */
lt_status lt_process_group_all_reduce_grads(lt_process_group* pg, const lt_tensor* const* params,
                                            int64_t count, int32_t op, int64_t timeout_ms);
/* Copies root's tensors into every other rank's tensors in place (no autograd record),
 * flattened into buckets as the all-reduce. */
lt_status lt_process_group_broadcast(lt_process_group* pg, const lt_tensor* const* tensors,
                                     int64_t count, int32_t root, int64_t timeout_ms);
/* Returns once every rank has called it. */
lt_status lt_process_group_barrier(lt_process_group* pg, int64_t timeout_ms);
/* ================================================================== end distributed */

/* ------------------------------------------------------------------ build information
 * What the shim was built against, for Torch.buildInfo() and the Java side's refusal of a shim
 * built for another LibTorch. Each returns 0 or 1 and cannot fail. (lt_version gives the
 * LibTorch version.) */

/* 1 when the shim was compiled with the C++11 std::string ABI (_GLIBCXX_USE_CXX11_ABI=1). */
int32_t lt_build_cxx11_abi(void);
/* 1 when the LibTorch the shim runs on has CUDA compiled in (a GPU need not be present). */
int32_t lt_build_has_cuda(void);
/* 1 when the LibTorch the shim was compiled against ships distributed (c10d) support. */
int32_t lt_build_has_distributed(void);
/* 1 when the shim uses LibTorch's fused scaled-dot-product attention (LibTorch 2.x). */
int32_t lt_build_has_fused_attention(void);
/* 1 when the shim's own parallel loops run on LibTorch's intra-op threads (an OpenMP LibTorch
 * needs the shim compiled with OpenMP too; without it they run on the calling thread alone). */
int32_t lt_build_intra_op_parallel(void);
/* ------------------------------------------------------------------ end of build information */

/* ------------------------------------------------------------------ transformer blocks */

/* As F.layer_norm: normalises over the last ndim dimensions, whose sizes normalized_shape gives;
 * weight and bias (of that shape) may be NULL. */
lt_status lt_layer_norm(const lt_tensor* input, const int64_t* normalized_shape, int64_t ndim,
                        const lt_tensor* weight, const lt_tensor* bias, double eps, lt_tensor** out);
/* As F.scaled_dot_product_attention: softmax(q·kᵀ/√d + mask)·v over the last two dimensions of
 * query (..., L, d), key (..., S, d), value (..., S, dv). attn_mask may be NULL, boolean (true =
 * take part) or floating (added to the scores), broadcastable to (..., L, S). dropout_p applies to
 * the attention weights (pass 0 in inference); is_causal adds a lower-triangular mask. LibTorch 2.x:
 * its fused kernel; LibTorch 1.13 (no fused CPU kernel): a loop of BLAS products over the
 * (batch · head) slices, autograd-aware, or LibTorch's composite op when dropout_p > 0. */
lt_status lt_scaled_dot_product_attention(const lt_tensor* query, const lt_tensor* key, const lt_tensor* value,
                                          const lt_tensor* attn_mask, double dropout_p, int32_t is_causal,
                                          lt_tensor** out);

#ifdef __cplusplus
}
#endif

#endif /* LORA4J_H */
