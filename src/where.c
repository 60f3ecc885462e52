/*
 * where.c — selection by a bool mask: where(cond, a, b) and masked_fill. Both only move
 * elements, so their loops (and their backward's) are generated per element size rather than
 * per dtype.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar. */
#pragma GCC optimize("vect-cost-model=dynamic")
#endif
#include "mt_internal.h"

#include <math.h>

/* ---- loops ------------------------------------------------------------------------------- */

/* where: operands (out, cond, a, b). Masks are read as bytes: a bool holding 2 (from a file)
 * still counts as true and is no trap value. */
#define WHERE_LOOP(NAME, T)                                                                     \
  static void NAME(char **data, const int64_t *s, int64_t n, void *ctx) {                       \
    (void)ctx;                                                                                  \
    if (s[0] == sizeof(T) && s[1] == 1 && s[2] == sizeof(T) && s[3] == sizeof(T)) {             \
      T *o = (T *)data[0];                                                                      \
      const uint8_t *c = (const uint8_t *)data[1];                                              \
      const T *x = (const T *)data[2], *y = (const T *)data[3];                                 \
      for (int64_t i = 0; i < n; i++) o[i] = c[i] ? x[i] : y[i];                                \
    } else {                                                                                    \
      char *po = data[0];                                                                       \
      const char *pc = data[1], *px = data[2], *py = data[3];                                   \
      for (int64_t i = 0; i < n; i++, po += s[0], pc += s[1], px += s[2], py += s[3])           \
        *(T *)po = *(const uint8_t *)pc ? *(const T *)px : *(const T *)py;                      \
    }                                                                                           \
  }

/* masked_fill: operands (t, mask), the fill value's bytes in ctx. */
#define FILL_LOOP(NAME, T)                                                                      \
  static void NAME(char **data, const int64_t *s, int64_t n, void *ctx) {                       \
    T v;                                                                                        \
    memcpy(&v, ctx, sizeof v);                                                                  \
    if (s[0] == sizeof(T) && s[1] == 1) {                                                       \
      T *o = (T *)data[0];                                                                      \
      const uint8_t *m = (const uint8_t *)data[1];                                              \
      for (int64_t i = 0; i < n; i++) o[i] = m[i] ? v : o[i];                                   \
    } else {                                                                                    \
      char *po = data[0];                                                                       \
      const char *pm = data[1];                                                                 \
      for (int64_t i = 0; i < n; i++, po += s[0], pm += s[1])                                   \
        if (*(const uint8_t *)pm) *(T *)po = v;                                                 \
    }                                                                                           \
  }

WHERE_LOOP(where_1, uint8_t)
WHERE_LOOP(where_2, uint16_t)
WHERE_LOOP(where_4, uint32_t)
WHERE_LOOP(where_8, uint64_t)
FILL_LOOP(fill_1, uint8_t)
FILL_LOOP(fill_2, uint16_t)
FILL_LOOP(fill_4, uint32_t)
FILL_LOOP(fill_8, uint64_t)

static mt_loop_fn where_loop(size_t size) {
  return size == 1 ? where_1 : size == 2 ? where_2 : size == 4 ? where_4 : where_8;
}
static mt_loop_fn fill_loop(size_t size) { return size == 1 ? fill_1 : size == 2 ? fill_2 : size == 4 ? fill_4 : fill_8; }

/* Gradient routing: operands (grad_in, mask, g); g where the mask equals KEEP, else zero. The
 * gradient is a float of 2, 4 or 8 bytes, and +0.0 is all zero bits in each, so the loops
 * move bits and need no per-dtype version. */
#define ROUTE_LOOP(NAME, T, KEEP)                                                               \
  static void NAME(char **data, const int64_t *s, int64_t n, void *ctx) {                       \
    (void)ctx;                                                                                  \
    if (s[0] == sizeof(T) && s[1] == 1 && s[2] == sizeof(T)) {                                  \
      T *o = (T *)data[0];                                                                      \
      const uint8_t *c = (const uint8_t *)data[1];                                              \
      const T *g = (const T *)data[2];                                                          \
      for (int64_t i = 0; i < n; i++) o[i] = (c[i] != 0) == KEEP ? g[i] : 0;                    \
    } else {                                                                                    \
      char *po = data[0];                                                                       \
      const char *pc = data[1], *pg = data[2];                                                  \
      for (int64_t i = 0; i < n; i++, po += s[0], pc += s[1], pg += s[2])                       \
        *(T *)po = (*(const uint8_t *)pc != 0) == KEEP ? *(const T *)pg : 0;                    \
    }                                                                                           \
  }
ROUTE_LOOP(route_true_2, uint16_t, 1)
ROUTE_LOOP(route_true_4, uint32_t, 1)
ROUTE_LOOP(route_true_8, uint64_t, 1)
ROUTE_LOOP(route_false_2, uint16_t, 0)
ROUTE_LOOP(route_false_4, uint32_t, 0)
ROUTE_LOOP(route_false_8, uint64_t, 0)

static mt_loop_fn route_loop(size_t size, bool keep) {
  if (keep) return size == 2 ? route_true_2 : size == 4 ? route_true_4 : route_true_8;
  return size == 2 ? route_false_2 : size == 4 ? route_false_4 : route_false_8;
}

/* ---- host numbers ------------------------------------------------------------------------ */


/* Stores v as one element of dtype dt, checked. */
static mt_status scalar_to(void *dst, mt_scalar v, mt_dtype dt) {
  mt_status st = mt_check_scalar_fits(v, dt);
  if (st) return st;
  const mt_dtype_traits *tr = mt_dtype_info(dt);
  if (v.kind == MT_SCALAR_FLOAT) tr->from_f64(dst, v.f);
  else tr->from_i64(dst, v.i);
  return MT_OK;
}

/* An operand of where in dtype r: a host number is converted checked (as PyTorch's Scalar
 * overloads), a tensor as a tensor cast. */
static mt_status where_operand(mt_tensor **out, const mt_tensor *t, mt_dtype r) {
  if (!t->wrapped_number || t->dtype == r) return mt_to_dtype(out, t, r);
  const mt_dtype_traits *tr = mt_dtype_info(t->dtype);
  mt_scalar v = t->dtype == MT_FLOAT64 ? mt_scalar_float(tr->to_f64(mt_data(t)))
                : t->dtype == MT_BOOL  ? mt_scalar_bool(tr->to_i64(mt_data(t)) != 0)
                                       : mt_scalar_int(tr->to_i64(mt_data(t)));
  mt_status st = mt_check_scalar_fits(v, r);
  return st ? st : mt_scalar_tensor(out, r, v);
}

/* ---- where ------------------------------------------------------------------------------- */

static mt_status record_where(mt_tensor *out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b);

static mt_status where_forward(mt_tensor **out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b) {
  if (cond->dtype != MT_BOOL)
    return mt_fail(MT_EDTYPE, "condition must be a bool tensor, got %s", mt_dtype_name(cond->dtype));
  int nd;
  int64_t shape[MT_MAX_DIMS];
  mt_status st = mt_broadcast_shapes(cond->ndim, cond->sizes, a->ndim, a->sizes, &nd, shape);
  if (st || (st = mt_broadcast_shapes(nd, shape, b->ndim, b->sizes, &nd, shape))) return st;
  /* maximum has no dtype rule of its own: this is plain result_type(a, b) */
  mt_dtype r = mt_binary_result_dtype(MT_MAXIMUM, a, b);

  mt_tensor *x = NULL, *y = NULL, *res = NULL;
  if ((st = where_operand(&x, a, r)) || (st = where_operand(&y, b, r)) || (st = mt_empty(&res, r, nd, shape))) goto done;
  int64_t n = mt_numel(res);
  mt_loop_fn loop = where_loop(mt_dtype_size(r));
  if (n > 0) {
    if (mt_is_contiguous(cond) && mt_is_contiguous(x) && mt_is_contiguous(y) && mt_numel(cond) == n &&
        mt_numel(x) == n && mt_numel(y) == n) {
      int64_t es = (int64_t)mt_dtype_size(r);
      char *data[4] = {mt_data(res), mt_data(cond), mt_data(x), mt_data(y)};
      int64_t strides[4] = {es, 1, es, es};
      loop(data, strides, n, NULL);
    } else {
      mt_iter it;
      const mt_tensor *ops[4] = {res, cond, x, y};
      if ((st = mt_iter_init(&it, 4, ops))) goto done;
      mt_iter_run(&it, loop, NULL);
    }
  }
done:
  mt_tensor_release(x);
  mt_tensor_release(y);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

MT_API mt_status mt_where(mt_tensor **out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b) {
  if (!out || !cond || !a || !b) return mt_fail(MT_EARG, "missing tensor argument");
  /* The operands' conversions are internal: they must not record nodes. */
  bool grad_on = mt_is_grad_enabled();
  mt_set_grad_enabled(false);
  mt_tensor *res;
  mt_status st = where_forward(&res, cond, a, b);
  mt_set_grad_enabled(grad_on);
  if (st) return st;
  if ((st = record_where(res, cond, a, b))) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  if (mt_tracing()) {
    const mt_tensor *ins[3] = {cond, a, b};
    mt_trace_record("where", 3, ins, 1, out, "");
  }
  return MT_OK;
}

/* ---- masked_fill ------------------------------------------------------------------------- */

/* Checks a masked_fill and stores v, converted to t's dtype, in value. */
static mt_status fill_check(const mt_tensor *t, const mt_tensor *mask, mt_scalar v, char *value) {
  if (!t || !mask) return mt_fail(MT_EARG, "missing tensor argument");
  if (mask->dtype != MT_BOOL) return mt_fail(MT_EDTYPE, "mask must be a bool tensor, got %s", mt_dtype_name(mask->dtype));
  int nd;
  int64_t shape[MT_MAX_DIMS];
  if (mt_broadcast_shapes(t->ndim, t->sizes, mask->ndim, mask->sizes, &nd, shape) != MT_OK || nd != t->ndim ||
      memcmp(shape, t->sizes, (size_t)nd * sizeof shape[0]) != 0) {
    char s1[MT_SHAPE_STRLEN], s2[MT_SHAPE_STRLEN];
    return mt_fail(MT_ESHAPE, "mask of shape %s cannot be broadcast to the tensor's shape %s",
                   mt_shape_str(s1, sizeof s1, mask->ndim, mask->sizes), mt_shape_str(s2, sizeof s2, t->ndim, t->sizes));
  }
  return scalar_to(value, v, t->dtype);
}

/* The fill itself, once fill_check has passed. */
static mt_status fill(mt_tensor *t, const mt_tensor *mask, char *value) {
  int64_t n = mt_numel(t);
  if (n == 0) return MT_OK;
  mt_loop_fn loop = fill_loop(mt_dtype_size(t->dtype));
  if (mt_is_contiguous(t) && mt_is_contiguous(mask) && mt_numel(mask) == n) {
    char *data[2] = {mt_data(t), mt_data(mask)};
    int64_t strides[2] = {(int64_t)mt_dtype_size(t->dtype), 1};
    loop(data, strides, n, value);
    return MT_OK;
  }
  mt_iter it;
  const mt_tensor *ops[2] = {t, mask};
  mt_status st = mt_iter_init(&it, 2, ops);
  if (st) return st;
  mt_iter_run(&it, loop, value);
  return MT_OK;
}

MT_API mt_status mt_masked_fill_(mt_tensor *t, const mt_tensor *mask, mt_scalar v) {
  char value[8];
  mt_status st = fill_check(t, mask, v, value);
  const mt_tensor *others[1] = {mask};
  if (st || (st = mt_inplace_begin(t, 1, others))) return st;
  return fill(t, mask, value);
}

static mt_status record_masked_fill(mt_tensor *out, const mt_tensor *t, const mt_tensor *mask);

MT_API mt_status mt_masked_fill(mt_tensor **out, const mt_tensor *t, const mt_tensor *mask, mt_scalar v) {
  char value[8];
  mt_status st = out ? fill_check(t, mask, v, value) : mt_fail(MT_EARG, "missing tensor argument");
  if (st) return st;
  mt_tensor *res;
  bool grad_on = mt_is_grad_enabled();
  mt_set_grad_enabled(false); /* the clone is internal */
  st = mt_clone(&res, t);
  mt_set_grad_enabled(grad_on);
  if (st) return st;
  if ((st = fill(res, mask, value)) || (st = record_masked_fill(res, t, mask))) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  if (mt_tracing()) {
    const mt_tensor *ins[2] = {t, mask};
    mt_trace_record("masked_fill", 2, ins, 1, out, "value=S", v);
  }
  return MT_OK;
}

/* ---- backward -------------------------------------------------------------------------------
 * where: g to a where cond holds, to b elsewhere; masked_fill: g to t where the mask is false
 * (the fill value is a host number, not differentiable). Gradients come back in the output's
 * shape; the engine sums them down to each input's shape. */

typedef struct route_node {
  mt_node base;
  mt_saved mask; /* where's cond, or masked_fill's mask */
} route_node;

static void route_release(mt_node *n) { mt_saved_release(&((route_node *)n)->mask); }

/* g where (mask == keep), else 0, in g's shape and dtype. */
static mt_status route(mt_tensor **out, const mt_tensor *g, const mt_tensor *mask, bool keep) {
  mt_tensor *res;
  mt_status st = mt_empty(&res, g->dtype, g->ndim, g->sizes);
  if (st) return st;
  const int64_t n = mt_numel(res);
  const mt_loop_fn loop = route_loop(mt_dtype_size(g->dtype), keep);
  if (n > 0 && mt_is_contiguous(g) && mt_is_contiguous(mask) && mt_numel(mask) == n) {
    const int64_t es = (int64_t)mt_dtype_size(g->dtype);
    char *data[3] = {mt_data(res), mt_data(mask), mt_data(g)};
    int64_t strides[3] = {es, 1, es};
    loop(data, strides, n, NULL);
  } else if (n > 0) {
    mt_iter it;
    const mt_tensor *ops[3] = {res, mask, g};
    if (!(st = mt_iter_init(&it, 3, ops))) mt_iter_run(&it, loop, NULL);
  }
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* Edges as PyTorch's: where's are (a, b), masked_fill's (t); masks are not inputs. */
static mt_status where_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const mt_tensor *g = gout[0];
  mt_tensor *cond;
  if (!g) return MT_OK;
  mt_status st = mt_saved_get(&((route_node *)n)->mask, n, &cond);
  if (st) return st;
  if (mt_edge_live(&n->next[0]) && (st = route(&gin[0], g, cond, true))) return st;
  if (mt_edge_live(&n->next[1]) && (st = route(&gin[1], g, cond, false))) return st;
  return MT_OK;
}

static mt_status masked_fill_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const mt_tensor *g = gout[0];
  mt_tensor *mask;
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  mt_status st = mt_saved_get(&((route_node *)n)->mask, n, &mask);
  return st ? st : route(&gin[0], g, mask, false);
}

static mt_status record_route(mt_tensor *out, const char *name, mt_backward_fn backward, int ninputs,
                              const mt_tensor *const *ins, const mt_tensor *mask) {
  if (!mt_grad_needed(ninputs, ins) || !mt_dtype_is_float(out->dtype)) return MT_OK;
  route_node *n = (route_node *)mt_node_new(sizeof *n, name, backward, route_release, ninputs, ins, 1);
  if (!n) return MT_ENOMEM;
  mt_status st = mt_save_tensor(&n->mask, mask);
  if (!st) mt_node_set_output(&n->base, out, 0);
  mt_node_release(&n->base);
  return st;
}

static mt_status record_where(mt_tensor *out, const mt_tensor *cond, const mt_tensor *a, const mt_tensor *b) {
  const mt_tensor *ins[2] = {a, b};
  return record_route(out, "WhereBackward0", where_backward, 2, ins, cond);
}

static mt_status record_masked_fill(mt_tensor *out, const mt_tensor *t, const mt_tensor *mask) {
  const mt_tensor *ins[1] = {t};
  return record_route(out, "MaskedFillBackward0", masked_fill_backward, 1, ins, mask);
}
