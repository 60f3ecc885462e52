/*
 * mt_internal.h — what the core's files share and nobody else sees. Everything here is hidden
 * (the library is built with -fvisibility=hidden; only MT_API symbols are exported).
 */
#ifndef MT_INTERNAL_H
#define MT_INTERNAL_H

#include "moontorch.h"

#include <stdarg.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MT_LIKELY(x) __builtin_expect(!!(x), 1)
#define MT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define MT_PRINTF(f, a)
#define MT_LIKELY(x) (x)
#define MT_UNLIKELY(x) (x)
#endif

/* ---- errors (error.c) -------------------------------------------------------------------- */

/* Records a message for mt_last_error() and returns `code`, so `return mt_fail(...)` reads well. */
mt_status mt_fail(mt_status code, const char *fmt, ...) MT_PRINTF(2, 3);
/* A dim or index as the host counts it, for messages: non-negative ones shift by the base
 * (mt_set_index_base), negative ones count from the end in every convention. */
extern int mt_index_base;
#define MT_SHOW(i) ((long long)((i) >= 0 ? (int64_t)(i) + mt_index_base : (int64_t)(i)))
/* Writes "[2, 3]" into buf (always NUL-terminated); returns buf. */
char *mt_shape_str(char *buf, size_t n, int ndim, const int64_t *sizes);
#define MT_SHAPE_STRLEN (MT_MAX_DIMS * 22 + 4)

/* Checked arithmetic for sizes coming from users or files. */
static inline bool mt_mul_overflow(int64_t a, int64_t b, int64_t *out) { return __builtin_mul_overflow(a, b, out); }
static inline bool mt_add_overflow(int64_t a, int64_t b, int64_t *out) { return __builtin_add_overflow(a, b, out); }

/* ---- dtypes (dtype.c) -------------------------------------------------------------------- */

/* The C type of each dtype, for kernels generated per dtype. X(ENUM, ctype, suffix) */
typedef uint16_t mt_half;
typedef uint16_t mt_bf16;
#define MT_FOREACH_DTYPE(X)                                                                    \
  X(MT_FLOAT32, float, f32)                                                                     \
  X(MT_FLOAT64, double, f64)                                                                    \
  X(MT_FLOAT16, mt_half, f16)                                                                   \
  X(MT_BFLOAT16, mt_bf16, bf16)                                                                 \
  X(MT_INT64, int64_t, i64)                                                                     \
  X(MT_INT32, int32_t, i32)                                                                     \
  X(MT_INT16, int16_t, i16)                                                                     \
  X(MT_INT8, int8_t, i8)                                                                        \
  X(MT_UINT8, uint8_t, u8)                                                                      \
  X(MT_BOOL, bool, b8)

/* Dtypes that have their own arithmetic kernels; the others run in their traits' `compute`. */
#define MT_FOREACH_COMPUTE_DTYPE(X)                                                            \
  X(MT_FLOAT32, float, f32)                                                                     \
  X(MT_FLOAT64, double, f64)                                                                    \
  X(MT_INT64, int64_t, i64)

static inline size_t mt_dtype_size(mt_dtype dt) { return mt_dtype_info(dt)->size; }
static inline bool mt_dtype_is_float(mt_dtype dt) { return mt_dtype_info(dt)->is_float; }
static inline const char *mt_dtype_name(mt_dtype dt) { return mt_dtype_info(dt)->name; }

/* PyTorch's canCast: no float into an integer tensor, nothing but bool into a bool tensor. */
bool mt_can_cast(mt_dtype from, mt_dtype to);
/* PyTorch's checked conversion of a host number to dt: MT_EARG when it would overflow. */
mt_status mt_check_scalar_fits(mt_scalar v, mt_dtype dt);

/* Float -> integer without undefined behaviour: NaN -> 0, out of range saturates. */
static inline int64_t mt_f64_to_i64_sat(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

/* ---- storages (storage.c) --------------------------------------------------------------- */

/* mt_storage_new without the zero fill, for outputs that are written in full anyway. */
mt_status mt_storage_alloc(mt_storage **out, size_t nbytes, bool zero);

/* ---- tensors (tensor.c) ------------------------------------------------------------------ */

/* A new tensor header over t's storage (retained) with t's dtype and the given geometry.
 * No bounds check: callers derive the geometry from a valid view. */
mt_status mt_make_view(mt_tensor **out, const mt_tensor *t, int64_t offset, int ndim, const int64_t *sizes,
                       const int64_t *strides);
/* Contiguous strides for sizes; returns numel (checked by the caller beforehand). */
int64_t mt_contiguous_strides(int ndim, const int64_t *sizes, int64_t *strides);
/* numel with overflow check, MT_ENOMEM on overflow and MT_EARG on a negative size. */
mt_status mt_checked_numel(int ndim, const int64_t *sizes, int64_t *numel);
/* An empty tensor shaped like t, with dtype dt. */
mt_status mt_empty_like(mt_tensor **out, const mt_tensor *t, mt_dtype dt);
/* MT_EARG when t has a stride-0 dim (an expanded view): writes would collide. */
mt_status mt_check_writable(const mt_tensor *t);
/* Stores v into one element of dtype dt, converting as a tensor conversion would. */
void mt_write_scalar(mt_dtype dt, void *p, mt_scalar v);
/* Address of the element at flat logical index i (row-major over t's sizes). */
char *mt_elem_ptr(const mt_tensor *t, int64_t i);

/* ---- iteration (iter.c) ------------------------------------------------------------------ */

/* Walks operands of one shape (operand 0, usually the output, defines it; the others
 * broadcast to it) and calls `loop` on 1-D runs. Dims are reordered and merged so that the
 * innermost run is as long as possible; strides are in bytes. */
#define MT_ITER_MAX_OPS 4

typedef void (*mt_loop_fn)(char **data, const int64_t *strides, int64_t n, void *ctx);

typedef struct mt_iter {
  int nops;
  int ndim;
  int64_t numel;
  int64_t sizes[MT_MAX_DIMS];
  int64_t strides[MT_ITER_MAX_OPS][MT_MAX_DIMS]; /* bytes; dim 0 is the innermost */
  char *data[MT_ITER_MAX_OPS];
} mt_iter;

/* Fails with MT_ESHAPE (message names both shapes) if an input cannot broadcast to ops[0]. */
mt_status mt_iter_init(mt_iter *it, int nops, const mt_tensor *const *ops);
void mt_iter_run(const mt_iter *it, mt_loop_fn loop, void *ctx);

/* ---- copies (copy.c) --------------------------------------------------------------------- */

/* The conversion loop from src dtype to dst dtype (2 operands: dst, src). */
mt_loop_fn mt_convert_loop(mt_dtype dst, mt_dtype src);

#endif /* MT_INTERNAL_H */
