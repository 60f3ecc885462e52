/*
 * moontorch.h — the C core of moontorch: tensors, their ops and (later) autograd, checkpoint
 * files and the traced-model runtime. Knows nothing of Lua.
 *
 * Conventions
 *  - Dims and indices are 0-based here, as in C; a negative dim counts from the end (-1 is the
 *    last). The Lua binding maps Lua's 1-based dims and indices onto these.
 *  - Every function that can fail returns mt_status. On failure it leaves a message in
 *    mt_last_error() (thread-local) and touches none of its outputs; it never exits, aborts or
 *    longjmps on bad input.
 *  - Functions that hand out a tensor through `mt_tensor **out` give the caller one reference;
 *    drop it with mt_tensor_release(). Views share the storage of their base.
 */
#ifndef MOONTORCH_H
#define MOONTORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MT_API __attribute__((visibility("default")))
#else
#define MT_API
#endif

#define MT_MAX_DIMS 8

/* ------------------------------------------------------------------------------------------ */
/* Status and errors                                                                          */

typedef enum mt_status {
  MT_OK = 0,
  MT_EARG,    /* bad argument value */
  MT_ESHAPE,  /* shapes do not fit */
  MT_EDTYPE,  /* dtype not allowed here */
  MT_EINDEX,  /* dim or index out of range */
  MT_ENOMEM,  /* allocation failed or size overflows */
  MT_EIO,     /* operating-system I/O error */
  MT_EFORMAT, /* malformed or hostile file */
  MT_ESTATE   /* operation not valid in the current state */
} mt_status;

MT_API const char *mt_last_error(void);
MT_API const char *mt_status_name(mt_status s);
/* Dims and indices named in error messages are shown counted from `base`: 0 (the default) for
 * C callers, 1 for hosts with 1-based conventions (the Lua binding sets it). Process-wide. */
MT_API void mt_set_index_base(int base);

/* ------------------------------------------------------------------------------------------ */
/* Dtypes: one traits table (dtype.c) describes them all                                      */

typedef enum mt_dtype {
  MT_FLOAT32,
  MT_FLOAT64,
  MT_FLOAT16,
  MT_BFLOAT16,
  MT_INT64,
  MT_INT32,
  MT_INT16,
  MT_INT8,
  MT_UINT8,
  MT_BOOL,
  MT_NUM_DTYPES
} mt_dtype;

typedef struct mt_dtype_traits {
  const char *name;     /* "float32", as Lua spells it */
  size_t size;          /* bytes per element */
  bool is_float;
  bool is_signed;
  mt_dtype compute;     /* dtype that arithmetic kernels run in (float16 -> float32, int8 -> int64) */
  double (*to_f64)(const void *p);
  /* float -> integer: NaN gives 0, values beyond int64 saturate, and the int64 then narrows
   * (wraps) as a C integer cast does. Nothing here is undefined behaviour. */
  void (*from_f64)(void *p, double v);
  int64_t (*to_i64)(const void *p);
  void (*from_i64)(void *p, int64_t v);
} mt_dtype_traits;

MT_API const mt_dtype_traits *mt_dtype_info(mt_dtype dt);
/* Looks up "float32", "float", "double", "long", "int", ...; false when unknown. */
MT_API bool mt_dtype_from_name(const char *name, mt_dtype *out);

MT_API uint16_t mt_f32_to_f16(float f);  /* round to nearest even */
MT_API float mt_f16_to_f32(uint16_t h);
MT_API uint16_t mt_f32_to_bf16(float f); /* round to nearest even */
MT_API float mt_bf16_to_f32(uint16_t h);

/* Type promotion as PyTorch does it: bool < integers < floats; within a kind the wider wins;
 * uint8 with a signed integer gives int16 or wider; float16 with bfloat16 gives float32. */
MT_API mt_dtype mt_promote_types(mt_dtype a, mt_dtype b);

/* A number that is not (yet) a tensor: fill values, clamp bounds, Lua numbers in `t + 1`. */
typedef enum mt_scalar_kind { MT_SCALAR_BOOL, MT_SCALAR_INT, MT_SCALAR_FLOAT } mt_scalar_kind;
typedef struct mt_scalar {
  mt_scalar_kind kind;
  int64_t i; /* BOOL and INT */
  double f;  /* FLOAT */
} mt_scalar;

static inline mt_scalar mt_scalar_int(int64_t i) { mt_scalar s = {MT_SCALAR_INT, i, (double)i}; return s; }
static inline mt_scalar mt_scalar_float(double f) { mt_scalar s = {MT_SCALAR_FLOAT, 0, f}; return s; }
static inline mt_scalar mt_scalar_bool(bool b) { mt_scalar s = {MT_SCALAR_BOOL, b ? 1 : 0, b ? 1.0 : 0.0}; return s; }
static inline double mt_scalar_to_f64(mt_scalar s) { return s.kind == MT_SCALAR_FLOAT ? s.f : (double)s.i; }

/* ------------------------------------------------------------------------------------------ */
/* Storages: refcounted, 64-byte aligned buffers, owned or wrapped                            */

typedef struct mt_storage mt_storage;
typedef void (*mt_release_fn)(void *ctx, void *data, size_t nbytes);

MT_API mt_status mt_storage_new(mt_storage **out, size_t nbytes);  /* zero-filled */
/* Wraps memory moontorch does not own (a mapped file). `release` (may be NULL) runs when the
 * last reference goes. On failure `release` is NOT called: the caller still owns `data`. */
MT_API mt_status mt_storage_wrap(mt_storage **out, void *data, size_t nbytes, mt_release_fn release,
                                 void *ctx);
MT_API void mt_storage_retain(mt_storage *s);
MT_API void mt_storage_release(mt_storage *s);
MT_API void *mt_storage_data(const mt_storage *s);
MT_API size_t mt_storage_nbytes(const mt_storage *s);
MT_API int mt_storage_refcount(const mt_storage *s);
/* Bytes ever allocated by mt_storage_new (monotonic): lets a host's GC pace itself. */
MT_API uint64_t mt_storage_bytes_allocated(void);
/* Bytes held by live owned storages right now. */
MT_API uint64_t mt_storage_bytes_live(void);

/* ------------------------------------------------------------------------------------------ */
/* Tensors: storage + offset + sizes + strides (all in elements)                              */

typedef struct mt_tensor {
  mt_storage *storage;
  int64_t offset;
  int64_t sizes[MT_MAX_DIMS];
  int64_t strides[MT_MAX_DIMS];
  int ndim;
  mt_dtype dtype;
  bool wrapped_number; /* a 0-dim tensor made from a host number: weakest in promotion */
  int refcount;        /* managed by retain/release; read-only for users */
  /* autograd (autograd.c); read-only for users, set through the functions below */
  bool requires_grad;       /* leaves: set by the user; results of recorded ops: true */
  struct mt_tensor *grad;   /* a leaf's accumulated gradient, NULL until the first backward */
  struct mt_node *grad_fn;  /* the op that made this tensor; NULL for leaves */
  int output_nr;            /* which output of grad_fn this tensor is */
} mt_tensor;

MT_API void mt_tensor_retain(mt_tensor *t);
MT_API void mt_tensor_release(mt_tensor *t); /* NULL is fine */

MT_API int64_t mt_numel(const mt_tensor *t);
MT_API bool mt_is_contiguous(const mt_tensor *t);
MT_API void *mt_data(const mt_tensor *t); /* address of element 0 (storage data + offset) */
/* Normalises a possibly negative dim against ndim; MT_EINDEX when out of range. */
MT_API mt_status mt_wrap_dim(int64_t dim, int ndim, int *out);

/* Creation. `sizes` has `ndim` entries, each >= 0. */
MT_API mt_status mt_empty(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes);
MT_API mt_status mt_zeros(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes);
MT_API mt_status mt_full(mt_tensor **out, mt_dtype dt, int ndim, const int64_t *sizes, mt_scalar v);
MT_API mt_status mt_scalar_tensor(mt_tensor **out, mt_dtype dt, mt_scalar v); /* 0-dim */
/* A 0-dim tensor for a host number (int64 / float64 / bool), flagged wrapped_number. */
MT_API mt_status mt_wrap_number(mt_tensor **out, mt_scalar v);
/* A tensor over an existing storage; checks that every element lies inside the storage. */
MT_API mt_status mt_from_storage(mt_tensor **out, mt_storage *s, mt_dtype dt, int64_t offset, int ndim,
                                 const int64_t *sizes, const int64_t *strides);
/* Half-open [start, end) by step, as torch.arange; length is ceil((end - start) / step). */
MT_API mt_status mt_arange(mt_tensor **out, mt_dtype dt, double start, double end, double step);
MT_API mt_status mt_linspace(mt_tensor **out, mt_dtype dt, double start, double end, int64_t steps);
MT_API mt_status mt_eye(mt_tensor **out, mt_dtype dt, int64_t n, int64_t m);

/* Element access by flat index into the logical (row-major) order of t. */
MT_API mt_status mt_get_flat(const mt_tensor *t, int64_t i, mt_scalar *out);
MT_API mt_status mt_set_flat(mt_tensor *t, int64_t i, mt_scalar v);
MT_API mt_status mt_item(const mt_tensor *t, mt_scalar *out); /* exactly one element */

/* Views: share storage with `t`. */
MT_API mt_status mt_view(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes); /* one -1 allowed */
MT_API mt_status mt_reshape(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes); /* view if possible, else copy */
MT_API mt_status mt_flatten(mt_tensor **out, const mt_tensor *t, int64_t start_dim, int64_t end_dim);
MT_API mt_status mt_transpose(mt_tensor **out, const mt_tensor *t, int64_t d0, int64_t d1);
MT_API mt_status mt_t(mt_tensor **out, const mt_tensor *t); /* at most 2-D; 0-D and 1-D views as they are */
MT_API mt_status mt_permute(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *dims);
MT_API mt_status mt_squeeze(mt_tensor **out, const mt_tensor *t, int64_t dim); /* no-op if size != 1 */
MT_API mt_status mt_squeeze_all(mt_tensor **out, const mt_tensor *t);
MT_API mt_status mt_unsqueeze(mt_tensor **out, const mt_tensor *t, int64_t dim); /* dim in [-ndim-1, ndim] */
MT_API mt_status mt_narrow(mt_tensor **out, const mt_tensor *t, int64_t dim, int64_t start, int64_t length);
MT_API mt_status mt_select(mt_tensor **out, const mt_tensor *t, int64_t dim, int64_t index); /* negative index from end */
MT_API mt_status mt_expand(mt_tensor **out, const mt_tensor *t, int ndim, const int64_t *sizes); /* -1 keeps */
MT_API mt_status mt_alias(mt_tensor **out, const mt_tensor *t); /* a new tensor header, same view */

/* Copies and conversion. */
MT_API mt_status mt_contiguous(mt_tensor **out, const mt_tensor *t); /* t itself (retained) if already so */
MT_API mt_status mt_clone(mt_tensor **out, const mt_tensor *t);      /* always a fresh contiguous copy */
MT_API mt_status mt_to_dtype(mt_tensor **out, const mt_tensor *t, mt_dtype dt); /* t itself if same dtype */
MT_API mt_status mt_copy_(mt_tensor *dst, const mt_tensor *src); /* broadcasts src, converts dtype */
MT_API mt_status mt_fill_(mt_tensor *t, mt_scalar v);

/* ------------------------------------------------------------------------------------------ */
/* Elementwise math with NumPy/PyTorch broadcasting and type promotion                        */

typedef enum mt_binop {
  MT_ADD,
  MT_SUB,
  MT_MUL,
  MT_DIV,      /* true division: integers give float32 */
  MT_POW,
  MT_MAXIMUM,
  MT_MINIMUM,
  MT_FMOD,     /* C fmod: sign of the dividend */
  MT_REMAINDER,/* Python %: sign of the divisor */
  MT_EQ,       /* comparisons give bool */
  MT_NE,
  MT_LT,
  MT_LE,
  MT_GT,
  MT_GE,
  MT_LOGICAL_AND,
  MT_LOGICAL_OR,
  MT_LOGICAL_XOR,
  MT_NUM_BINOPS
} mt_binop;

typedef enum mt_unop {
  MT_NEG,
  MT_ABS,
  MT_SIGN,
  MT_RELU,
  MT_FLOOR,
  MT_CEIL,
  MT_ROUND, /* half to even, as torch.round */
  MT_TRUNC,
  MT_SQUARE,
  /* below: integer inputs give float32 */
  MT_EXP,
  MT_LOG,
  MT_LOG2,
  MT_LOG1P,
  MT_EXPM1,
  MT_SQRT,
  MT_RSQRT,
  MT_RECIPROCAL,
  MT_SIN,
  MT_COS,
  MT_TAN,
  MT_TANH,
  MT_SIGMOID,
  MT_ERF,
  MT_LOGICAL_NOT, /* gives bool */
  MT_NUM_UNOPS
} mt_unop;

MT_API const char *mt_binop_name(mt_binop op);
MT_API const char *mt_unop_name(mt_unop op);
/* The dtype mt_binary would give (PyTorch's result_type, then the op's own rule). */
MT_API mt_dtype mt_binary_result_dtype(mt_binop op, const mt_tensor *a, const mt_tensor *b);
MT_API mt_status mt_broadcast_shapes(int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                                     int64_t *out);

MT_API mt_status mt_binary(mt_tensor **out, mt_binop op, const mt_tensor *a, const mt_tensor *b);
/* In place into a: b broadcasts to a's shape, and the result dtype must cast to a's dtype. */
MT_API mt_status mt_binary_(mt_binop op, mt_tensor *a, const mt_tensor *b);
MT_API mt_status mt_unary(mt_tensor **out, mt_unop op, const mt_tensor *a);
MT_API mt_status mt_unary_(mt_unop op, mt_tensor *a);
/* min or max may be NULL (no bound). */
MT_API mt_status mt_clamp(mt_tensor **out, const mt_tensor *a, const mt_scalar *min, const mt_scalar *max);
MT_API mt_status mt_clamp_(mt_tensor *a, const mt_scalar *min, const mt_scalar *max);
/* cond is bool; a and b broadcast with cond; result dtype promote(a, b). */
MT_API mt_status mt_where(mt_tensor **out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b);
MT_API mt_status mt_masked_fill(mt_tensor **out, const mt_tensor *t, const mt_tensor *mask, mt_scalar v);
MT_API mt_status mt_masked_fill_(mt_tensor *t, const mt_tensor *mask, mt_scalar v);

/* ------------------------------------------------------------------------------------------ */
/* Reductions. `dims` lists `ndims` dims to reduce; ndims == 0 reduces over all of them.       */

MT_API mt_status mt_sum(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
MT_API mt_status mt_prod(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
MT_API mt_status mt_mean(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
/* correction: 1 for the unbiased (Bessel) estimate, 0 for the population one. */
MT_API mt_status mt_var(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, int64_t correction,
                        bool keepdim);
MT_API mt_status mt_std(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, int64_t correction,
                        bool keepdim);
MT_API mt_status mt_amax(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
MT_API mt_status mt_amin(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
MT_API mt_status mt_all(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
MT_API mt_status mt_any(mt_tensor **out, const mt_tensor *t, int ndims, const int64_t *dims, bool keepdim);
/* Values and 0-based int64 indices along one dim (first occurrence on ties; NaN wins). */
MT_API mt_status mt_max_dim(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool keepdim);
MT_API mt_status mt_min_dim(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool keepdim);
/* 0-based int64 indices; all_dims = true gives the flat index over the whole tensor (0-dim). */
MT_API mt_status mt_argmax(mt_tensor **out, const mt_tensor *t, bool all_dims, int64_t dim, bool keepdim);
MT_API mt_status mt_argmin(mt_tensor **out, const mt_tensor *t, bool all_dims, int64_t dim, bool keepdim);
MT_API mt_status mt_softmax(mt_tensor **out, const mt_tensor *t, int64_t dim);
MT_API mt_status mt_log_softmax(mt_tensor **out, const mt_tensor *t, int64_t dim);
MT_API mt_status mt_cumsum(mt_tensor **out, const mt_tensor *t, int64_t dim);
/* Stable sort along dim; indices 0-based int64. */
MT_API mt_status mt_sort(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t dim, bool descending);
MT_API mt_status mt_topk(mt_tensor **values, mt_tensor **indices, const mt_tensor *t, int64_t k, int64_t dim,
                         bool largest);

/* ------------------------------------------------------------------------------------------ */
/* Indexing and joining. Index tensors are int64 or int32 holding 0-based indices; negative    */
/* indices are errors here (the binding has already shifted Lua's 1-based ones).              */

MT_API mt_status mt_index_select(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index);
MT_API mt_status mt_gather(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index);
/* out = t with out[index[i][j]][j] = src[i][j] (dim 0 case), as torch.scatter. */
MT_API mt_status mt_scatter(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index,
                            const mt_tensor *src);
MT_API mt_status mt_scatter_add(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index,
                                const mt_tensor *src);
MT_API mt_status mt_index_add_(mt_tensor *t, int64_t dim, const mt_tensor *index, const mt_tensor *src);
/* Dtype of the result is the promotion of all inputs. */
MT_API mt_status mt_cat(mt_tensor **out, int n, const mt_tensor *const *ts, int64_t dim);
MT_API mt_status mt_stack(mt_tensor **out, int n, const mt_tensor *const *ts, int64_t dim);

/* ------------------------------------------------------------------------------------------ */
/* Linear algebra on OpenBLAS                                                                 */

/* torch.matmul: 1-D x 1-D dot, 2-D mm, batched with broadcast batch dims. float32/float64
 * (and integer dtypes through a plain loop). Transposed operands go to BLAS without copies. */
MT_API mt_status mt_matmul(mt_tensor **out, const mt_tensor *a, const mt_tensor *b);
MT_API mt_status mt_mm(mt_tensor **out, const mt_tensor *a, const mt_tensor *b);  /* 2-D only */
MT_API mt_status mt_bmm(mt_tensor **out, const mt_tensor *a, const mt_tensor *b); /* 3-D only, same batch */

/* ------------------------------------------------------------------------------------------ */
/* Random numbers (random.c documents the algorithm). g == NULL means the default generator.  */

typedef struct mt_generator mt_generator;

MT_API mt_generator *mt_default_generator(void);
MT_API mt_status mt_generator_new(mt_generator **out, uint64_t seed);
MT_API void mt_generator_free(mt_generator *g);
MT_API void mt_manual_seed(mt_generator *g, uint64_t seed);
MT_API uint64_t mt_initial_seed(const mt_generator *g);
MT_API size_t mt_generator_state_size(void);
MT_API void mt_generator_get_state(const mt_generator *g, uint8_t *buf); /* state_size bytes */
MT_API mt_status mt_generator_set_state(mt_generator *g, const uint8_t *buf, size_t n);

/* Fill t in place (any layout; floats for uniform/normal; values drawn in logical order). */
MT_API mt_status mt_uniform_(mt_tensor *t, double lo, double hi, mt_generator *g);
MT_API mt_status mt_normal_(mt_tensor *t, double mean, double std, mt_generator *g);
MT_API mt_status mt_randint_(mt_tensor *t, int64_t low, int64_t high, mt_generator *g); /* [low, high) */
MT_API mt_status mt_bernoulli_(mt_tensor *t, double p, mt_generator *g);               /* 1 with prob. p */
MT_API mt_status mt_randperm(mt_tensor **out, int64_t n, mt_dtype dt, mt_generator *g);


/* ------------------------------------------------------------------------------------------ */
/* Autograd (autograd.c): reverse mode over the ops above. While grad mode is on (the default, */
/* per thread), an op whose inputs require grad records a node; mt_backward walks the nodes   */
/* from a result back to the leaves, accumulating into each leaf's `grad`. Each op's backward */
/* lives beside its forward. In-place ops on tensors that take part in a graph are refused.   */

typedef struct mt_node mt_node;

MT_API bool mt_is_grad_enabled(void);
MT_API void mt_set_grad_enabled(bool enabled);
/* Leaves only (a result already has its history); float dtypes only. */
MT_API mt_status mt_requires_grad_(mt_tensor *t, bool requires_grad);
/* Replaces a tensor's gradient (NULL clears it); g must match t's shape, and is retained. */
MT_API mt_status mt_set_grad(mt_tensor *t, mt_tensor *g);
/* A new tensor sharing t's storage, with no history and requires_grad false. */
MT_API mt_status mt_detach(mt_tensor **out, const mt_tensor *t);
/* Back-propagates from root. grad may be NULL when root has one element (a gradient of 1);
 * otherwise it must have root's shape. Without retain_graph the saved tensors of every node
 * walked are freed, and a second backward through them is an error. */
MT_API mt_status mt_backward(mt_tensor *root, const mt_tensor *grad, bool retain_graph);
/* PyTorch's class name of the node ("MulBackward0"), and its inputs' nodes for inspection. */
MT_API const char *mt_node_name(const mt_node *n);
MT_API int mt_node_num_next(const mt_node *n);
MT_API mt_node *mt_node_next(const mt_node *n, int i); /* NULL for inputs without grad or leaves */
/* Storage version counter: every in-place write bumps it, so that backward can refuse data a
 * node saved and someone then overwrote. */
MT_API uint32_t mt_tensor_version(const mt_tensor *t);
/* Hooks (what a data-parallel reducer needs). A post-accumulate hook on a leaf that requires
 * grad runs once per mt_backward that reaches the leaf, after the LAST contribution of that
 * backward to its .grad (a weight used at several places gets one call, after all of them;
 * leaf->grad may still be NULL when every contribution was zero). The hook holds a reference
 * to the leaf until it is removed. A backward-end hook runs at the end of every mt_backward
 * with the status so far; what it returns becomes mt_backward's status (return `st` to pass it
 * on). Both run with grad mode off, on the thread that called mt_backward. Hooks are
 * process-wide and must not be added or removed while a backward runs on another thread.
 * Adding the same (leaf, fn, ud) or (fn, ud) twice registers it twice; remove drops one. */
typedef void (*mt_leaf_hook_fn)(void *ud, mt_tensor *leaf);
typedef mt_status (*mt_backward_end_fn)(void *ud, mt_status st);
MT_API mt_status mt_add_post_accumulate_hook(mt_tensor *leaf, mt_leaf_hook_fn fn, void *ud);
MT_API bool mt_remove_post_accumulate_hook(mt_tensor *leaf, mt_leaf_hook_fn fn, void *ud); /* false: none */
MT_API mt_status mt_add_backward_end_hook(mt_backward_end_fn fn, void *ud);
MT_API bool mt_remove_backward_end_hook(mt_backward_end_fn fn, void *ud); /* false: none */

/* ------------------------------------------------------------------------------------------ */
/* Neural-network ops (nn_*.c): forward and backward in C, recorded for autograd like every   */
/* other op. Layouts as PyTorch's: input [N, C, H, W] (2-d) or [N, C, L] (1-d), and the       */
/* unbatched forms without N; weights [C_out, C_in / groups, kH, kW]. bias may be NULL.       */

MT_API mt_status mt_linear(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias);
MT_API mt_status mt_conv2d(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias,
                           const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2], int64_t groups);
MT_API mt_status mt_conv1d(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias,
                           int64_t stride, int64_t padding, int64_t dilation, int64_t groups);
/* indices (may be NULL): flat 0-based positions within each input plane, int64, as PyTorch's. */
MT_API mt_status mt_max_pool2d(mt_tensor **out, mt_tensor **indices, const mt_tensor *input, const int64_t kernel[2],
                               const int64_t stride[2], const int64_t padding[2], const int64_t dilation[2],
                               bool ceil_mode);
MT_API mt_status mt_avg_pool2d(mt_tensor **out, const mt_tensor *input, const int64_t kernel[2], const int64_t stride[2],
                               const int64_t padding[2], bool ceil_mode, bool count_include_pad);
MT_API mt_status mt_adaptive_avg_pool2d(mt_tensor **out, const mt_tensor *input, const int64_t output_size[2]);
/* Normalises over every dim but 1 (channels). In training, batch statistics are used and the
 * running ones (when given) are updated in place with `momentum` (running_var with the
 * unbiased batch variance); in evaluation the running ones are used. */
MT_API mt_status mt_batch_norm(mt_tensor **out, const mt_tensor *input, const mt_tensor *weight, const mt_tensor *bias,
                               mt_tensor *running_mean, mt_tensor *running_var, bool training, double momentum,
                               double eps);
MT_API mt_status mt_layer_norm(mt_tensor **out, const mt_tensor *input, int nshape, const int64_t *normalized_shape,
                               const mt_tensor *weight, const mt_tensor *bias, double eps);
/* indices: int64 or int32, 0-based; padding_idx < 0 for none (its row gets no gradient). */
MT_API mt_status mt_embedding(mt_tensor **out, const mt_tensor *weight, const mt_tensor *indices, int64_t padding_idx);
/* Zeroes elements (or whole channels, when channelwise: Dropout2d) with probability p and
 * scales the rest by 1 / (1 - p); the identity when !training or p == 0. */
MT_API mt_status mt_dropout(mt_tensor **out, const mt_tensor *input, double p, bool training, bool channelwise,
                            mt_generator *g);
MT_API mt_status mt_leaky_relu(mt_tensor **out, const mt_tensor *input, double negative_slope);
MT_API mt_status mt_gelu(mt_tensor **out, const mt_tensor *input, bool tanh_approximation);
MT_API mt_status mt_silu(mt_tensor **out, const mt_tensor *input);

typedef enum mt_reduction { MT_REDUCTION_NONE, MT_REDUCTION_MEAN, MT_REDUCTION_SUM } mt_reduction;

/* Class targets are 0-based int64 in [0, C) (or ignore_index); input [N, C] or [N, C, d1, ...]
 * (and [C] with a 0-dim target); weight [C] or NULL. Means are weighted as PyTorch's. */
MT_API mt_status mt_nll_loss(mt_tensor **out, const mt_tensor *log_probs, const mt_tensor *target,
                             const mt_tensor *weight, int64_t ignore_index, mt_reduction reduction);
MT_API mt_status mt_cross_entropy(mt_tensor **out, const mt_tensor *logits, const mt_tensor *target,
                                  const mt_tensor *weight, int64_t ignore_index, double label_smoothing,
                                  mt_reduction reduction);
MT_API mt_status mt_mse_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target, mt_reduction reduction);
MT_API mt_status mt_l1_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target, mt_reduction reduction);
MT_API mt_status mt_smooth_l1_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target,
                                   mt_reduction reduction, double beta);
MT_API mt_status mt_bce_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target, const mt_tensor *weight,
                             mt_reduction reduction);
MT_API mt_status mt_bce_with_logits(mt_tensor **out, const mt_tensor *input, const mt_tensor *target,
                                    const mt_tensor *weight, const mt_tensor *pos_weight, mt_reduction reduction);

/* ------------------------------------------------------------------------------------------ */
/* Values: the object trees that checkpoint files hold (value.c)                              */
/* A value tree owns its children; a tensor value holds one reference to its tensor. Strings  */
/* are byte strings with a length (NUL-terminated as well, for convenience). Constructors     */
/* return NULL only when memory runs out (mt_last_error() says so).                           */

typedef enum mt_value_kind {
  MT_VAL_NONE,
  MT_VAL_BOOL,
  MT_VAL_INT,
  MT_VAL_FLOAT,
  MT_VAL_STR,   /* text (Python str); the writer checks that it is UTF-8 */
  MT_VAL_BYTES, /* raw bytes (Python bytes) */
  MT_VAL_LIST,
  MT_VAL_TUPLE,
  MT_VAL_DICT,  /* insertion-ordered; `ordered` marks a collections.OrderedDict */
  MT_VAL_TENSOR
} mt_value_kind;

/* The deepest nesting a value tree may have in a file, written or read: as deep as Python's
 * own pickling goes by default, and shallow enough for small thread stacks. */
#define MT_MAX_NESTING 1000

typedef struct mt_value mt_value;
struct mt_value {
  mt_value_kind kind;
  union {
    bool b;
    int64_t i;
    double f;
    struct { char *ptr; size_t len; } str;                     /* STR, BYTES */
    struct { mt_value **items; size_t len, cap; } seq;         /* LIST, TUPLE */
    struct { mt_value **keys, **vals; size_t len, cap; bool ordered; } dict; /* DICT */
    mt_tensor *tensor;                                         /* TENSOR */
  } u;
};

MT_API mt_value *mt_value_none(void);
MT_API mt_value *mt_value_bool(bool b);
MT_API mt_value *mt_value_int(int64_t i);
MT_API mt_value *mt_value_float(double f);
MT_API mt_value *mt_value_str(const char *s, size_t len);   /* copies */
MT_API mt_value *mt_value_bytes(const void *p, size_t len); /* copies */
MT_API mt_value *mt_value_list(void);
MT_API mt_value *mt_value_tuple(void);
MT_API mt_value *mt_value_dict(bool ordered);
MT_API mt_value *mt_value_tensor(mt_tensor *t); /* retains t */
/* Take ownership of item / key and val, even on failure (they are freed then). */
MT_API mt_status mt_value_append(mt_value *seq, mt_value *item);
MT_API mt_status mt_value_dict_set(mt_value *dict, mt_value *key, mt_value *val); /* replaces an equal key */
/* The value under a string key, or NULL. */
MT_API mt_value *mt_value_dict_get(const mt_value *dict, const char *key);
MT_API void mt_value_free(mt_value *v); /* NULL is fine */

/* ------------------------------------------------------------------------------------------ */
/* Checkpoint files: PyTorch's zip format (checkpoint.c, pickle_*.c, zip_*.c) and             */
/* safetensors (safetensors.c). Saves are atomic: a temporary file beside the target is       */
/* written, flushed and renamed over it. Loads execute nothing from the file.                 */

typedef struct mt_load_opts {
  bool mmap; /* map tensor data from the file (copy-on-write) instead of reading it */
} mt_load_opts;

MT_API mt_status mt_save(const mt_value *v, const char *path);
MT_API mt_status mt_load(mt_value **out, const char *path, const mt_load_opts *opts); /* opts may be NULL */
/* The same format in memory: *data is malloc'ed, free() it. */
MT_API mt_status mt_serialize(const mt_value *v, void **data, size_t *len);
MT_API mt_status mt_deserialize(mt_value **out, const void *data, size_t len);

/* safetensors: `tensors` is a dict of str -> tensor; `metadata` a dict of str -> str, or NULL. */
MT_API mt_status mt_safetensors_save(const mt_value *tensors, const mt_value *metadata, const char *path);
MT_API mt_status mt_safetensors_load(mt_value **tensors, mt_value **metadata, const char *path,
                                     const mt_load_opts *opts);

/* ------------------------------------------------------------------------------------------ */
/* Optimizer kernels (optim.c): one step of torch.optim's update rules for one parameter, as  */
/* one fused pass over the parameter, its gradient and its state, in PyTorch 1.13's order of  */
/* operations and roundings (its single-tensor path; its AVX2 kernels' fused multiply-adds),  */
/* so results equal PyTorch's. float32 and float64; the gradient and state have the           */
/* parameter's dtype and shape; any layout. The parameter and state are updated in place      */
/* without autograd recording. `step` tensors hold one number (PyTorch's 0-dim float32 step); */
/* a step increments it first and uses its new value for the bias corrections.                */

typedef struct mt_sgd_opts {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize;
} mt_sgd_opts;
/* With momentum != 0, *momentum_buffer is the buffer; NULL on the first step, when a new one
 * (the step's update direction, as PyTorch clones it) is made and stored there. */
MT_API mt_status mt_sgd_step(mt_tensor *param, const mt_tensor *grad, mt_tensor **momentum_buffer,
                             const mt_sgd_opts *opts);

typedef struct mt_adam_opts {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize;
  bool decoupled_weight_decay; /* AdamW: param *= 1 - lr * weight_decay instead of an L2 term */
} mt_adam_opts;
/* max_exp_avg_sq is used (and needed) only with amsgrad. */
MT_API mt_status mt_adam_step(mt_tensor *param, const mt_tensor *grad, mt_tensor *step, mt_tensor *exp_avg,
                              mt_tensor *exp_avg_sq, mt_tensor *max_exp_avg_sq, const mt_adam_opts *opts);

typedef struct mt_rmsprop_opts {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
} mt_rmsprop_opts;
/* momentum_buffer is needed when momentum > 0, grad_avg when centered; else they may be NULL.
 * (RMSprop's step count does not enter the update; the caller keeps it.) */
MT_API mt_status mt_rmsprop_step(mt_tensor *param, const mt_tensor *grad, mt_tensor *square_avg,
                                 mt_tensor *momentum_buffer, mt_tensor *grad_avg, const mt_rmsprop_opts *opts);

typedef struct mt_adagrad_opts {
  double lr, lr_decay, eps, weight_decay;
  bool maximize;
} mt_adagrad_opts;
MT_API mt_status mt_adagrad_step(mt_tensor *param, const mt_tensor *grad, mt_tensor *step, mt_tensor *sum,
                                 const mt_adagrad_opts *opts);


/* ------------------------------------------------------------------------------------------ */
/* Threads (parallel.c): one thread count for the library's kernels and OpenBLAS. The default */
/* is the number of CPUs the process may run on; MOONTORCH_NUM_THREADS overrides it at load.  */

/* 1 .. 64; also sets OpenBLAS's thread count. MT_EARG otherwise. */
MT_API mt_status mt_set_num_threads(int n);
MT_API int mt_get_num_threads(void);

/* ------------------------------------------------------------------------------------------ */
/* Traced models (jit.c, jit_ops.c): the deployment format. While a trace is active on a      */
/* thread, every core op that thread runs is recorded as a node (op name, input and output    */
/* value ids, attributes); tensors that no recorded op made and that are not inputs become    */
/* constants (the weights). The graph saves to a checkpoint file (plain data PyTorch opens)   */
/* and runs from C with no Lua: each node calls the same core function the trace saw.         */

typedef struct mt_trace mt_trace;
typedef struct mt_graph mt_graph;

MT_API mt_status mt_trace_begin(mt_trace **out); /* one trace per thread at a time */
MT_API mt_status mt_trace_input(mt_trace *tr, const mt_tensor *t);
/* Ends the trace (freeing tr, also on failure) and builds the graph computing `outputs`.
 * Fails when the traced code used an op that cannot be traced (naming it), made a tensor
 * during the trace outside recorded ops, or ran an in-place or random op. */
MT_API mt_status mt_trace_end(mt_trace *tr, int nout, mt_tensor *const *outputs, mt_graph **out);
MT_API void mt_trace_abort(mt_trace *tr); /* NULL is fine */
MT_API bool mt_trace_active(void);
/* A host's creation functions (zeros, tensor, arange, ...) mark what they make during a trace
 * as a constant of the graph; any other tensor that appears during the trace without a
 * recorded op is an error at mt_trace_end (an op the tracer does not know). */
MT_API void mt_trace_constant(const mt_tensor *t);

MT_API int mt_graph_num_inputs(const mt_graph *g);
MT_API int mt_graph_num_outputs(const mt_graph *g);
/* inputs: num_inputs tensors (shapes may differ from the traced ones where the ops allow);
 * outputs: an array of num_outputs slots that receive new references. */
MT_API mt_status mt_graph_run(const mt_graph *g, mt_tensor *const *inputs, mt_tensor **outputs);
MT_API mt_status mt_graph_save(const mt_graph *g, const char *path);
MT_API mt_status mt_graph_load(mt_graph **out, const char *path);
/* The graph as a value tree (what the file holds) and back, validated like a file. */
MT_API mt_status mt_graph_to_value(const mt_graph *g, mt_value **out);
MT_API mt_status mt_graph_from_value(mt_graph **out, const mt_value *v);
MT_API void mt_graph_free(mt_graph *g); /* NULL is fine */

/* ------------------------------------------------------------------------------------------ */
/* Data files (idx.c)                                                                         */

/* Reads an IDX file (MNIST's format), plain or gzip-compressed, into a fresh contiguous tensor
 * of its element type (uint8, int8, int16, int32, float32 or float64) and dimensions. Every
 * byte is checked: magic, declared sizes against the data actually present, no trailing data,
 * gzip integrity. Errors are MT_EIO (cannot open or read; "<path>: no such file") or
 * MT_EFORMAT ("<path>: <problem>"). */
MT_API mt_status mt_read_idx(mt_tensor **out, const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Distributed (built with MPI): dist.c, dist_reducer.c. These live outside libmoontorch (which */
/* never depends on MPI): only the Lua module and programs linked with the dist objects have  */
/* them. Without MPI at build time they exist but fail with "this build has no MPI support".  */
/* Ranks are 0-based, as MPI numbers them. Every function fails with MT_ESTATE before         */
/* mt_dist_init ("not initialized; call init_process_group first").                            */

typedef enum mt_reduce_op { MT_REDUCE_SUM, MT_REDUCE_AVG, MT_REDUCE_MAX, MT_REDUCE_MIN } mt_reduce_op;

MT_API bool mt_dist_available(void); /* built with MPI */
/* Joins the MPI job (MPI_Init_thread, MPI_THREAD_SERIALIZED wanted). Refuses, without calling
 * MPI, when the process was not started by mpirun/mpiexec. Idempotent; MPI_Finalize is
 * registered with atexit. Errors from MPI are returned (MPI_ERRORS_RETURN), never aborts. */
MT_API mt_status mt_dist_init(void);
MT_API bool mt_dist_is_initialized(void); /* initialized and not finalized */
MT_API mt_status mt_dist_rank(int *rank);
MT_API mt_status mt_dist_world_size(int *size);
/* In place on every rank. float32/64, float16/bfloat16 (reduced in float32), int8/16/32/64,
 * uint8; bool is refused. Any layout (non-contiguous goes through a contiguous temporary). AVG
 * is for floating dtypes only (as PyTorch's, which refuses integer averages). */
MT_API mt_status mt_dist_all_reduce(mt_tensor *t, mt_reduce_op op);
/* In place: t on every rank becomes src's t (same shape and dtype everywhere). */
MT_API mt_status mt_dist_broadcast(mt_tensor *t, int src);
MT_API mt_status mt_dist_barrier(void);
/* MPI_Finalize (unless the host had initialised MPI before mt_dist_init: then it finalizes);
 * afterwards the process cannot join again (MPI allows one init). No-op when not initialized
 * or already finalized. */
MT_API mt_status mt_dist_finalize(void);

/* PyTorch's DDP reducer. Parameters (leaves that require grad, in registration order) are
 * grouped, in reverse order and per dtype, into buckets of about bucket_cap_bytes (0: 25 MiB,
 * PyTorch's default). During mt_backward, a bucket whose parameters all have their final
 * gradient is copied into a flat buffer and all-reduced (sum) by a communication thread while
 * backward goes on; buckets are launched in the same order on every rank. At the end of the
 * backward the reducer waits for all buckets (launching those whose parameters got no
 * gradient, with zeros), divides by the world size and writes each gradient back (creating
 * .grad where missing). A backward that reaches none of the parameters is left alone. */
typedef struct mt_ddp mt_ddp;
MT_API mt_status mt_ddp_new(mt_tensor *const *params, size_t n, size_t bucket_cap_bytes, mt_ddp **out);
/* Disabled (no_sync): backward leaves gradients local, they accumulate as without DDP. */
MT_API void mt_ddp_set_enabled(mt_ddp *d, bool enabled);
/* Seconds the communication thread spent in MPI, bytes reduced, buckets reduced, since new. */
MT_API void mt_ddp_stats(const mt_ddp *d, double *comm_seconds, uint64_t *bytes, uint64_t *buckets);
MT_API size_t mt_ddp_num_buckets(const mt_ddp *d);
MT_API void mt_ddp_free(mt_ddp *d); /* joins the thread, removes the hooks; NULL is fine */

#ifdef __cplusplus
}
#endif
#endif /* MOONTORCH_H */
