/*
 * copy.c — copies with dtype conversion (one loop per (dst, src) pair, generated), and the
 * copy-shaped operations built on them: contiguous, clone, to, copy_, fill_.
 *
 * Autograd: clone, contiguous (when it copies) and to (when it converts) pass the gradient
 * through unchanged; the engine casts it back to the input's dtype. Conversions to an integer
 * dtype carry no gradient.
 */
#include "mt_internal.h"

#include <stdlib.h>

/* Loads give each dtype's natural value (float for the 16-bit floats, int64 for integers);
 * stores take any arithmetic value. Float -> integer goes through the saturating helper so
 * that no conversion is undefined behaviour. */
static inline int64_t i64_identity(int64_t v) { return v; }
#define TO_I64(v) _Generic((v), float: mt_f64_to_i64_sat, double: mt_f64_to_i64_sat, default: i64_identity)(v)

#define LOAD_f32(p) (*(const float *)(p))
#define LOAD_f64(p) (*(const double *)(p))
#define LOAD_f16(p) mt_f16_to_f32(*(const uint16_t *)(p))
#define LOAD_bf16(p) mt_bf16_to_f32(*(const uint16_t *)(p))
#define LOAD_i64(p) (*(const int64_t *)(p))
#define LOAD_i32(p) ((int64_t) * (const int32_t *)(p))
#define LOAD_i16(p) ((int64_t) * (const int16_t *)(p))
#define LOAD_i8(p) ((int64_t) * (const int8_t *)(p))
#define LOAD_u8(p) ((int64_t) * (const uint8_t *)(p))
#define LOAD_b8(p) ((int64_t)(*(const uint8_t *)(p) != 0))

#define STORE_f32(p, v) (*(float *)(p) = (float)(v))
#define STORE_f64(p, v) (*(double *)(p) = (double)(v))
#define STORE_f16(p, v) (*(uint16_t *)(p) = mt_f32_to_f16((float)(v)))
#define STORE_bf16(p, v) (*(uint16_t *)(p) = mt_f32_to_bf16((float)(v)))
#define STORE_i64(p, v) (*(int64_t *)(p) = TO_I64(v))
#define STORE_i32(p, v) (*(int32_t *)(p) = (int32_t)TO_I64(v))
#define STORE_i16(p, v) (*(int16_t *)(p) = (int16_t)TO_I64(v))
#define STORE_i8(p, v) (*(int8_t *)(p) = (int8_t)TO_I64(v))
#define STORE_u8(p, v) (*(uint8_t *)(p) = (uint8_t)TO_I64(v))
#define STORE_b8(p, v) (*(uint8_t *)(p) = (v) != 0)

#define SIZE_f32 4
#define SIZE_f64 8
#define SIZE_f16 2
#define SIZE_bf16 2
#define SIZE_i64 8
#define SIZE_i32 4
#define SIZE_i16 2
#define SIZE_i8 1
#define SIZE_u8 1
#define SIZE_b8 1

#define DEF_CONV(dst, src)                                                                       \
  static void conv_##src##_to_##dst(char **data, const int64_t *s, int64_t n, void *ctx) {       \
    (void)ctx;                                                                                   \
    char *d = data[0];                                                                           \
    const char *a = data[1];                                                                     \
    if (s[0] == SIZE_##dst && s[1] == SIZE_##src) {                                              \
      for (int64_t i = 0; i < n; i++) STORE_##dst(d + i * SIZE_##dst, LOAD_##src(a + i * SIZE_##src)); \
    } else {                                                                                     \
      for (int64_t i = 0; i < n; i++, d += s[0], a += s[1]) STORE_##dst(d, LOAD_##src(a));      \
    }                                                                                            \
  }

#define DEF_CONV_ROW(E, T, src)                                                                  \
  DEF_CONV(f32, src) DEF_CONV(f64, src) DEF_CONV(f16, src) DEF_CONV(bf16, src) DEF_CONV(i64, src) \
  DEF_CONV(i32, src) DEF_CONV(i16, src) DEF_CONV(i8, src) DEF_CONV(u8, src) DEF_CONV(b8, src)
MT_FOREACH_DTYPE(DEF_CONV_ROW)

/* Same-dtype copies move bytes; the strided case is specialised by element size. */
#define DEF_MOVE(bytes, T)                                                                       \
  static void move_##bytes(char **data, const int64_t *s, int64_t n, void *ctx) {                \
    (void)ctx;                                                                                   \
    char *d = data[0];                                                                           \
    const char *a = data[1];                                                                     \
    if (s[0] == bytes && s[1] == bytes) memmove(d, a, (size_t)(n * bytes));                     \
    else                                                                                         \
      for (int64_t i = 0; i < n; i++, d += s[0], a += s[1]) memcpy(d, a, bytes);                 \
  }
DEF_MOVE(1, uint8_t)
DEF_MOVE(2, uint16_t)
DEF_MOVE(4, uint32_t)
DEF_MOVE(8, uint64_t)

#define CONV_ENTRY(dst, src) [MT_##dst##_ID] = conv_##src##_to_##dst
enum { MT_f32_ID = MT_FLOAT32, MT_f64_ID = MT_FLOAT64, MT_f16_ID = MT_FLOAT16, MT_bf16_ID = MT_BFLOAT16,
       MT_i64_ID = MT_INT64, MT_i32_ID = MT_INT32, MT_i16_ID = MT_INT16, MT_i8_ID = MT_INT8, MT_u8_ID = MT_UINT8,
       MT_b8_ID = MT_BOOL };
#define CONV_ROW_TABLE(E, T, src)                                                                \
  [E] = {CONV_ENTRY(f32, src), CONV_ENTRY(f64, src), CONV_ENTRY(f16, src), CONV_ENTRY(bf16, src),    \
         CONV_ENTRY(i64, src), CONV_ENTRY(i32, src), CONV_ENTRY(i16, src), CONV_ENTRY(i8, src),      \
         CONV_ENTRY(u8, src),  CONV_ENTRY(b8, src)},
static const mt_loop_fn conv_table[MT_NUM_DTYPES][MT_NUM_DTYPES] = {MT_FOREACH_DTYPE(CONV_ROW_TABLE)};

mt_loop_fn mt_convert_loop(mt_dtype dst, mt_dtype src) {
  if (dst == src) {
    switch (mt_dtype_size(dst)) {
    case 1: return move_1;
    case 2: return move_2;
    case 4: return move_4;
    default: return move_8;
    }
  }
  return conv_table[src][dst];
}

/* ---- whole-tensor copies --------------------------------------------------------------- */

static bool ranges_overlap(const mt_tensor *a, const mt_tensor *b) {
  if (a->storage != b->storage) return false;
  int64_t lo[2], hi[2];
  const mt_tensor *ts[2] = {a, b};
  for (int i = 0; i < 2; i++) {
    int64_t esize = (int64_t)mt_dtype_size(ts[i]->dtype), first = ts[i]->offset, last = ts[i]->offset;
    for (int d = 0; d < ts[i]->ndim; d++) {
      if (ts[i]->sizes[d] == 0) return false;
      last += (ts[i]->sizes[d] - 1) * ts[i]->strides[d];
    }
    lo[i] = first * esize;
    hi[i] = (last + 1) * esize;
  }
  return lo[0] < hi[1] && lo[1] < hi[0];
}

static mt_status clone_plain(mt_tensor **out, const mt_tensor *t);

mt_status mt_copy_into(mt_tensor *dst, const mt_tensor *src) {
  /* A source that shares memory with the destination in a different layout is copied aside
   * first, so that no element is overwritten before it is read. */
  bool same_view = dst->storage == src->storage && dst->offset == src->offset && dst->dtype == src->dtype &&
                   dst->ndim == src->ndim && !memcmp(dst->strides, src->strides, (size_t)dst->ndim * sizeof(int64_t));
  mt_tensor *tmp = NULL;
  mt_status st;
  if (!same_view && ranges_overlap(dst, src)) {
    if ((st = clone_plain(&tmp, src))) return st;
    src = tmp;
  }
  mt_iter it;
  const mt_tensor *ops[2] = {dst, src};
  if (!(st = mt_iter_init(&it, 2, ops))) mt_iter_run(&it, mt_convert_loop(dst->dtype, src->dtype), NULL);
  mt_tensor_release(tmp);
  return st;
}

MT_API mt_status mt_copy_(mt_tensor *dst, const mt_tensor *src) {
  const mt_tensor *others[1] = {src};
  mt_status st = mt_inplace_begin(dst, 1, others);
  return st ? st : mt_copy_into(dst, src);
}

/* ---- autograd: the gradient goes through as it is ------------------------------------------ */

static mt_status pass_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  (void)n;
  if (gout[0]) {
    mt_tensor_retain(gout[0]);
    gin[0] = gout[0];
  }
  return MT_OK;
}

/* Gives the fresh copy `*res` of t its node when t takes part in autograd; on failure
 * releases *res. Integer copies of float tensors stay without history. */
static mt_status record_copy(mt_tensor **res, const mt_tensor *t, const char *name) {
  if (!mt_grad_needed(1, &t) || !mt_dtype_is_float((*res)->dtype)) return MT_OK;
  const mt_tensor *ins[1] = {t};
  mt_node *n = mt_node_new(sizeof *n, name, pass_backward, NULL, 1, ins, 1);
  if (!n) {
    mt_tensor_release(*res);
    *res = NULL;
    return MT_ENOMEM;
  }
  mt_node_set_output(n, *res, 0);
  mt_node_release(n);
  return MT_OK;
}

/* ---- clone, contiguous, to ----------------------------------------------------------------- */

static mt_status clone_plain(mt_tensor **out, const mt_tensor *t) {
  mt_tensor *c;
  mt_status st = mt_empty_like(&c, t, t->dtype);
  if (st) return st;
  if (mt_is_contiguous(t)) {
    memcpy(mt_data(c), mt_data(t), (size_t)mt_numel(t) * mt_dtype_size(t->dtype));
  } else {
    mt_iter it;
    const mt_tensor *ops[2] = {c, t};
    mt_iter_init(&it, 2, ops); /* same shape: cannot fail */
    mt_iter_run(&it, mt_convert_loop(t->dtype, t->dtype), NULL);
  }
  *out = c;
  return MT_OK;
}

MT_API mt_status mt_clone(mt_tensor **out, const mt_tensor *t) {
  mt_tensor *c;
  mt_status st = clone_plain(&c, t);
  if (st || (st = record_copy(&c, t, "CloneBackward0"))) return st;
  *out = c;
  if (mt_tracing()) mt_trace_record("clone", 1, &t, 1, out, "");
  return MT_OK;
}

MT_API mt_status mt_contiguous(mt_tensor **out, const mt_tensor *t) {
  if (mt_is_contiguous(t)) {
    mt_tensor_retain((mt_tensor *)t);
    *out = (mt_tensor *)t;
  } else {
    mt_status st = mt_clone(out, t);
    if (st) return st;
  }
  if (mt_tracing()) mt_trace_record("contiguous", 1, &t, 1, out, "");
  return MT_OK;
}

MT_API mt_status mt_to_dtype(mt_tensor **out, const mt_tensor *t, mt_dtype dt) {
  if ((unsigned)dt >= MT_NUM_DTYPES) return mt_fail(MT_EDTYPE, "unknown dtype %d", (int)dt);
  if (dt == t->dtype) {
    mt_tensor_retain((mt_tensor *)t);
    *out = (mt_tensor *)t;
  } else {
    mt_tensor *c;
    mt_status st = mt_empty_like(&c, t, dt);
    if (st) return st;
    mt_iter it;
    const mt_tensor *ops[2] = {c, t};
    mt_iter_init(&it, 2, ops);
    mt_iter_run(&it, mt_convert_loop(dt, t->dtype), NULL);
    if ((st = record_copy(&c, t, "ToCopyBackward0"))) return st;
    *out = c;
  }
  if (mt_tracing()) mt_trace_record("to_dtype", 1, &t, 1, out, "dtype=s", mt_dtype_name(dt));
  return MT_OK;
}

typedef struct {
  uint8_t bytes[8];
  size_t size;
} fill_ctx;

static void fill_loop(char **data, const int64_t *s, int64_t n, void *vctx) {
  const fill_ctx *c = vctx;
  char *d = data[0];
  switch (c->size) { /* typed stores so that the contiguous case vectorises */
#define FILL_CASE(NB, T)                                                                      \
  case NB: {                                                                                  \
    T v;                                                                                         \
    memcpy(&v, c->bytes, NB);                                                                 \
    if (s[0] == NB)                                                                           \
      for (int64_t i = 0; i < n; i++) ((T *)(void *)d)[i] = v;                                   \
    else                                                                                         \
      for (int64_t i = 0; i < n; i++, d += s[0]) memcpy(d, &v, NB);                           \
    break;                                                                                       \
  }
    FILL_CASE(1, uint8_t)
    FILL_CASE(2, uint16_t)
    FILL_CASE(4, uint32_t)
    FILL_CASE(8, uint64_t)
#undef FILL_CASE
  }
}

MT_API mt_status mt_fill_(mt_tensor *t, mt_scalar v) {
  mt_status st = mt_inplace_begin(t, 0, NULL);
  if (st) return st;
  mt_fill_into(t, v);
  return MT_OK;
}

void mt_fill_into(mt_tensor *t, mt_scalar v) {
  fill_ctx c = {{0}, mt_dtype_size(t->dtype)};
  mt_write_scalar(t->dtype, c.bytes, v);
  mt_iter it;
  const mt_tensor *ops[1] = {t};
  mt_iter_init(&it, 1, ops);
  mt_iter_run(&it, fill_loop, &c);
}
