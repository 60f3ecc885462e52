/*
 * nn_misc.c — embedding, dropout and the activations leaky_relu, gelu (erf and tanh forms)
 * and silu, forward and backward.
 *
 * embedding gathers rows of the weight (any dtype, one memcpy per row); its backward adds the
 * gradient's rows into a zeroed [num_embeddings, dim] gradient, skipping padding_idx.
 * dropout is PyTorch's CPU composite: a mask drawn with bernoulli_(1 - p) from the given
 * generator (so a seed gives PyTorch's mask), divided by 1 - p, and input * mask through the
 * ordinary multiply, whose node (MulBackward0, as in PyTorch) multiplies the gradient by the
 * saved mask. For a contiguous float32/float64 input (element-wise) the same bits come in one
 * pass: the mask drawn straight as its two divided values, the product formed while each run
 * of it is in cache, and a MulBackward0 node of its own that keeps only the mask.
 * The activations run on contiguous data in float32 or float64 (float16 and bfloat16 through
 * float32), with PyTorch's formulas for value and derivative.
 */
#if defined(__GNUC__) && !defined(__clang__)
/* -O2's "very cheap" vectorizer cost model leaves loops with a runtime trip count scalar, and
 * with trapping math GCC will not turn a float compare-and-select (leaky_relu, the clamps)
 * into vector code. Nothing here reads the floating-point exception flags. */
#pragma GCC optimize("vect-cost-model=dynamic", "no-trapping-math")
#endif
#include "mt_internal.h"

#include <math.h>
#include <stdlib.h>

static mt_dtype compute_dtype(mt_dtype dt) { return dt == MT_FLOAT64 ? MT_FLOAT64 : MT_FLOAT32; }

/* t converted to dt and made contiguous (t itself, retained, when it already is). Callers
 * turn grad mode off: these copies are internal. */
static mt_status dense(mt_tensor **out, const mt_tensor *t, mt_dtype dt) {
  mt_tensor *c;
  mt_status st = mt_to_dtype(&c, t, dt);
  if (st) return st;
  st = mt_contiguous(out, c);
  mt_tensor_release(c);
  return st;
}

/* ============================================================================================ */
/* embedding                                                                                    */

typedef struct emb_node {
  mt_node base;
  mt_saved indices;
  int64_t num, dim, padding_idx;
} emb_node;

static void emb_release(mt_node *n) { mt_saved_release(&((emb_node *)n)->indices); }

#define DEFINE_EMB_BACKWARD(S, T)                                                                  \
  static void emb_backward_##S(const int64_t *idx, int64_t n, const T *g, T *gw, int64_t dim, int64_t pad) { \
    for (int64_t i = 0; i < n; i++) {                                                             \
      if (idx[i] == pad) continue;                                                                \
      T *restrict row = gw + idx[i] * dim;                                                        \
      const T *restrict src = g + i * dim;                                                        \
      for (int64_t j = 0; j < dim; j++) row[j] += src[j];                                         \
    }                                                                                             \
  }
DEFINE_EMB_BACKWARD(f32, float)
DEFINE_EMB_BACKWARD(f64, double)

static mt_status emb_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  emb_node *en = (emb_node *)n;
  const mt_tensor *g = gout[0];
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  mt_tensor *indices, *idx = NULL, *gy = NULL, *gw = NULL;
  mt_status st = mt_saved_get(&en->indices, n, &indices);
  if (st) return st;
  const mt_dtype cdt = compute_dtype(g->dtype);
  const int64_t sizes[2] = {en->num, en->dim};
  if (!(st = dense(&idx, indices, MT_INT64)) && !(st = dense(&gy, g, cdt)) && !(st = mt_zeros(&gw, cdt, 2, sizes))) {
    const int64_t pad = en->padding_idx < 0 ? -1 : en->padding_idx;
    if (cdt == MT_FLOAT64) emb_backward_f64(mt_data(idx), mt_numel(idx), mt_data(gy), mt_data(gw), en->dim, pad);
    else emb_backward_f32(mt_data(idx), mt_numel(idx), mt_data(gy), mt_data(gw), en->dim, pad);
    gin[0] = gw;
  }
  mt_tensor_release(idx);
  mt_tensor_release(gy);
  return st;
}

MT_API mt_status mt_embedding(mt_tensor **out, const mt_tensor *weight, const mt_tensor *indices, int64_t padding_idx) {
  if (!out || !weight || !indices) return mt_fail(MT_EARG, "missing tensor argument");
  char a[MT_SHAPE_STRLEN];
  if (weight->ndim != 2)
    return mt_fail(MT_ESHAPE, "weight must be 2-D [num_embeddings, embedding_dim], got %s",
                   mt_shape_str(a, sizeof a, weight->ndim, weight->sizes));
  if (indices->dtype != MT_INT64 && indices->dtype != MT_INT32)
    return mt_fail(MT_EDTYPE, "indices must be int64 or int32, got %s", mt_dtype_name(indices->dtype));
  if (indices->ndim + 1 > MT_MAX_DIMS)
    return mt_fail(MT_ESHAPE, "indices of %d dims give a result of more than %d dims", indices->ndim, MT_MAX_DIMS);
  const int64_t num = weight->sizes[0], dim = weight->sizes[1];
  if (padding_idx >= num)
    return mt_fail(MT_EINDEX, "padding_idx %lld is out of range for %lld embeddings", MT_SHOW(padding_idx),
                   (long long)num);
  mt_tensor *idx = NULL, *w = NULL, *res = NULL;
  bool grad_on = mt_is_grad_enabled();
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the op records itself) */
  mt_status st = dense(&idx, indices, MT_INT64);
  if (st) goto done;
  const int64_t n = mt_numel(idx), *ix = mt_data(idx);
  for (int64_t i = 0; i < n; i++)
    if (ix[i] < 0 || ix[i] >= num) {
      st = mt_fail(MT_EINDEX, "index %lld is out of range for %lld embeddings", MT_SHOW(ix[i]), (long long)num);
      goto done;
    }
  int64_t sizes[MT_MAX_DIMS];
  memcpy(sizes, indices->sizes, (size_t)indices->ndim * sizeof *sizes);
  sizes[indices->ndim] = dim;
  if ((st = mt_contiguous(&w, weight)) || (st = mt_empty(&res, weight->dtype, indices->ndim + 1, sizes))) goto done;
  const size_t row = (size_t)dim * mt_dtype_size(weight->dtype);
  const char *src = mt_data(w);
  char *dst = mt_data(res);
  for (int64_t i = 0; i < n; i++) memcpy(dst + (size_t)i * row, src + (size_t)ix[i] * row, row);
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;

  const mt_tensor *ins[1] = {weight};
  if (mt_grad_needed(1, ins)) {
    emb_node *en = (emb_node *)mt_node_new(sizeof *en, "EmbeddingBackward0", emb_backward, emb_release, 1, ins, 1);
    if (!en) {
      st = MT_ENOMEM;
      goto done;
    }
    en->num = num, en->dim = dim, en->padding_idx = padding_idx;
    if (!(st = mt_save_tensor(&en->indices, indices))) mt_node_set_output(&en->base, res, 0);
    mt_node_release(&en->base);
  }
  if (!st && tr) {
    const mt_tensor *tins[2] = {weight, indices};
    mt_trace_record("embedding", 2, tins, 1, &res, "padding_idx=i", padding_idx);
  }
done:
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;
  mt_tensor_release(idx);
  mt_tensor_release(w);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* ============================================================================================ */
/* dropout                                                                                      */

typedef struct drop_node {
  mt_node base;
  mt_saved mask;
} drop_node;

static void drop_release(mt_node *n) { mt_saved_release(&((drop_node *)n)->mask); }

/* What the composite's MulBackward0 computes for the input: grad * mask. */
static mt_status drop_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const mt_tensor *g = gout[0];
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  mt_tensor *mask;
  mt_status st = mt_saved_get(&((drop_node *)n)->mask, n, &mask);
  if (st) return st;
  const bool grad_on = mt_is_grad_enabled();
  mt_set_grad_enabled(false);
  st = mt_binary(&gin[0], MT_MUL, g, mask);
  mt_set_grad_enabled(grad_on);
  return st;
}

typedef struct drop_ctx {
  const void *x;
  void *y;
  const void *mask; /* may be y itself */
  bool f64;
} drop_ctx;

/* y = x * mask over one run, in the dtype, as the multiply kernel rounds it. */
static void drop_mul(void *ctx, int64_t i0, int64_t m) {
  const drop_ctx *c = ctx;
  if (c->f64) {
    const double *x = (const double *)c->x + i0, *k = (const double *)c->mask + i0;
    double *y = (double *)c->y + i0;
    for (int64_t i = 0; i < m; i++) y[i] = x[i] * k[i];
  } else {
    const float *x = (const float *)c->x + i0, *k = (const float *)c->mask + i0;
    float *y = (float *)c->y + i0;
    for (int64_t i = 0; i < m; i++) y[i] = x[i] * k[i];
  }
}

/* The composite's result for a contiguous float32/float64 input and 0 < p < 1. */
static mt_status dropout_fused(mt_tensor **out, const mt_tensor *input, double p, mt_generator *g) {
  const mt_dtype dt = input->dtype;
  const size_t es = mt_dtype_size(dt);
  /* The mask's two values, 0 / (1 - p) and 1 / (1 - p), from the very division the
   * composite applies to it. */
  mt_tensor *vals, *scale = NULL, *mask = NULL, *res = NULL;
  const int64_t two = 2;
  mt_status st = mt_empty(&vals, dt, 1, &two);
  if (st) return st;
  if (dt == MT_FLOAT64) ((double *)mt_data(vals))[0] = 0, ((double *)mt_data(vals))[1] = 1;
  else ((float *)mt_data(vals))[0] = 0, ((float *)mt_data(vals))[1] = 1;
  if ((st = mt_wrap_number(&scale, mt_scalar_float(1 - p))) || (st = mt_binary_(MT_DIV, vals, scale))) goto done;
  /* the composite's MulBackward0 has two edges, the input's and the mask's (which needs no
   * gradient): kept as PyTorch's next_functions show them, (input's node, None) */
  const mt_tensor *ins[2] = {input, NULL};
  const bool grad = mt_grad_needed(1, ins);
  if ((st = mt_empty(&res, dt, input->ndim, input->sizes))) goto done;
  if (grad && (st = mt_empty(&mask, dt, input->ndim, input->sizes))) goto done;
  void *m = mt_data(mask ? mask : res); /* without a backward, the mask is drawn into the result */
  drop_ctx c = {mt_data(input), mt_data(res), m, dt == MT_FLOAT64};
  const char *v = mt_data(vals);
  mt_bernoulli_runs(m, es, mt_numel(input), 1 - p, v + es, v, g, drop_mul, &c);
  if (grad) {
    drop_node *n = (drop_node *)mt_node_new(sizeof *n, "MulBackward0", drop_backward, drop_release, 2, ins, 1);
    if (!n) {
      st = MT_ENOMEM;
      goto done;
    }
    if (!(st = mt_save_tensor(&n->mask, mask))) mt_node_set_output(&n->base, res, 0);
    mt_node_release(&n->base);
  }
done:
  mt_tensor_release(vals), mt_tensor_release(scale), mt_tensor_release(mask);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

MT_API mt_status mt_dropout(mt_tensor **out, const mt_tensor *input, double p, bool training, bool channelwise,
                            mt_generator *g) {
  if (!out || !input) return mt_fail(MT_EARG, "missing tensor argument");
  if (!(p >= 0 && p <= 1)) return mt_fail(MT_EARG, "dropout probability has to be between 0 and 1, but got %g", p);
  if (!mt_dtype_is_float(input->dtype))
    return mt_fail(MT_EDTYPE, "expected a floating-point input, got %s", mt_dtype_name(input->dtype));
  if (channelwise && input->ndim < 2) {
    char a[MT_SHAPE_STRLEN];
    return mt_fail(MT_ESHAPE, "channel-wise dropout needs an input of at least 2 dims [N, C, ...], got %s",
                   mt_shape_str(a, sizeof a, input->ndim, input->sizes));
  }
  if (!training || p == 0 || mt_numel(input) == 0) { /* the input itself, as PyTorch returns it */
    mt_tensor_retain((mt_tensor *)input); /* nothing to trace: the graph passes the input on */
    *out = (mt_tensor *)input;
    return MT_OK;
  }
  /* a graph replaying one mask (or drawing new ones) would not be the model that was traced */
  if (mt_tracing()) mt_trace_refuse("dropout in training mode (random number generation)");
  if (p < 1 && !channelwise && (input->dtype == MT_FLOAT32 || input->dtype == MT_FLOAT64) && mt_is_contiguous(input))
    return dropout_fused(out, input, p, g);
  mt_tensor *noise, *scale = NULL;
  mt_status st;
  if (p == 1) { /* no draw: input * 0 (NaN stays NaN, as in PyTorch) */
    if ((st = mt_zeros(&noise, input->dtype, 0, NULL))) return st;
  } else {
    int64_t sizes[MT_MAX_DIMS];
    for (int d = 0; d < input->ndim; d++) sizes[d] = channelwise && d >= 2 ? 1 : input->sizes[d];
    if ((st = mt_empty(&noise, input->dtype, input->ndim, sizes))) return st;
    if ((st = mt_bernoulli_(noise, 1 - p, g)) || (st = mt_wrap_number(&scale, mt_scalar_float(1 - p))) ||
        (st = mt_binary_(MT_DIV, noise, scale))) {
      mt_tensor_release(noise), mt_tensor_release(scale);
      return st;
    }
    mt_tensor_release(scale);
  }
  st = mt_binary(out, MT_MUL, input, noise);
  mt_tensor_release(noise);
  return st;
}

/* ============================================================================================ */
/* activations                                                                                  */

typedef enum act_kind { ACT_LEAKY_RELU, ACT_GELU, ACT_GELU_TANH, ACT_SILU } act_kind;

#define GELU_SQRT1_2 0.70710678118654752440                             /* 1/sqrt(2) */
#define GELU_ALPHA (1.12837916709551257390 * GELU_SQRT1_2 * 0.5)       /* 1/sqrt(2 pi) */
#define GELU_BETA (1.41421356237309504880 * 1.12837916709551257390 * 0.5) /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715

/* Forward and derivative, as PyTorch's CPU kernels compute them (in T). */
#define DEFINE_ACT(S, T, EXP, ERF, TANH)                                                           \
  static void act_forward_##S(act_kind k, T slope, const T *restrict x, T *restrict y, int64_t n) { \
    switch (k) {                                                                                  \
    case ACT_LEAKY_RELU:                                                                          \
      for (int64_t i = 0; i < n; i++) { /* a select, not a branch: vectorises */                 \
        const T v = x[i], s = v * slope;                                                          \
        y[i] = v > 0 ? v : s;                                                                     \
      }                                                                                           \
      break;                                                                                      \
    case ACT_GELU:                                                                                \
      for (int64_t i = 0; i < n; i++) y[i] = x[i] * (T)0.5 * ((T)1 + ERF(x[i] * (T)GELU_SQRT1_2)); \
      break;                                                                                      \
    case ACT_GELU_TANH:                                                                           \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T v = x[i], inner = (T)GELU_BETA * (v + (T)GELU_KAPPA * v * v * v);                 \
        y[i] = (T)0.5 * v * ((T)1 + TANH(inner));                                                 \
      }                                                                                           \
      break;                                                                                      \
    case ACT_SILU:                                                                                \
      for (int64_t i = 0; i < n; i++) y[i] = x[i] / ((T)1 + EXP(-x[i]));                          \
      break;                                                                                      \
    }                                                                                             \
  }                                                                                               \
  static void act_backward_##S(act_kind k, T slope, const T *restrict x, const T *restrict g,     \
                               T *restrict gx, int64_t n) {                                       \
    switch (k) {                                                                                  \
    case ACT_LEAKY_RELU:                                                                          \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T v = g[i], s = v * slope;                                                          \
        gx[i] = x[i] > 0 ? v : s;                                                                 \
      }                                                                                           \
      break;                                                                                      \
    case ACT_GELU:                                                                                \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T v = x[i], cdf = (T)0.5 * ((T)1 + ERF(v * (T)GELU_SQRT1_2)),                       \
                pdf = (T)GELU_ALPHA * EXP(v * v * (T)-0.5);                                       \
        gx[i] = g[i] * (cdf + v * pdf);                                                           \
      }                                                                                           \
      break;                                                                                      \
    case ACT_GELU_TANH:                                                                           \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T v = x[i], v2 = v * v, inner = (T)GELU_BETA * (v + (T)GELU_KAPPA * v2 * v),        \
                t = TANH(inner), left = (T)0.5 * v, right = (T)1 + t,                             \
                dleft = (T)0.5 * right,                                                           \
                dright = left * ((T)1 - t * t) * (T)GELU_BETA * ((T)1 + (T)(3 * GELU_KAPPA) * v2); \
        gx[i] = g[i] * (dleft + dright);                                                          \
      }                                                                                           \
      break;                                                                                      \
    case ACT_SILU:                                                                                \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T s = (T)1 / ((T)1 + EXP(-x[i]));                                                   \
        gx[i] = g[i] * s * ((T)1 + x[i] * ((T)1 - s));                                            \
      }                                                                                           \
      break;                                                                                      \
    }                                                                                             \
  }
DEFINE_ACT(f32, float, expf, erff, tanhf)
DEFINE_ACT(f64, double, exp, erf, tanh)

typedef struct act_node {
  mt_node base;
  act_kind kind;
  double slope;
  mt_saved input;
} act_node;

static void act_release(mt_node *n) { mt_saved_release(&((act_node *)n)->input); }

static mt_status act_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  act_node *an = (act_node *)n;
  const mt_tensor *g = gout[0];
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  mt_tensor *input, *x = NULL, *gy = NULL, *gx = NULL;
  mt_status st = mt_saved_get(&an->input, n, &input);
  if (st) return st;
  const mt_dtype cdt = compute_dtype(input->dtype);
  if (!(st = dense(&x, input, cdt)) && !(st = dense(&gy, g, cdt)) &&
      !(st = mt_empty(&gx, cdt, input->ndim, input->sizes))) {
    if (cdt == MT_FLOAT64) act_backward_f64(an->kind, an->slope, mt_data(x), mt_data(gy), mt_data(gx), mt_numel(gx));
    else act_backward_f32(an->kind, (float)an->slope, mt_data(x), mt_data(gy), mt_data(gx), mt_numel(gx));
    gin[0] = gx;
  }
  mt_tensor_release(x);
  mt_tensor_release(gy);
  return st;
}

static const char *const act_names[] = {
    [ACT_LEAKY_RELU] = "LeakyReluBackward0", [ACT_GELU] = "GeluBackward0",
    [ACT_GELU_TANH] = "GeluBackward0",       [ACT_SILU] = "SiluBackward0",
};

static mt_status activation(mt_tensor **out, const mt_tensor *input, act_kind kind, double slope) {
  if (!out || !input) return mt_fail(MT_EARG, "missing tensor argument");
  if (!mt_dtype_is_float(input->dtype))
    return mt_fail(MT_EDTYPE, "expected a floating-point input, got %s", mt_dtype_name(input->dtype));
  const mt_dtype cdt = compute_dtype(input->dtype);
  mt_tensor *x = NULL, *res = NULL;
  bool grad_on = mt_is_grad_enabled();
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the op records itself) */
  mt_status st = dense(&x, input, cdt);
  if (!st && !(st = mt_empty(&res, cdt, input->ndim, input->sizes))) {
    if (cdt == MT_FLOAT64) act_forward_f64(kind, slope, mt_data(x), mt_data(res), mt_numel(res));
    else act_forward_f32(kind, (float)slope, mt_data(x), mt_data(res), mt_numel(res));
    if (input->dtype != cdt) {
      mt_tensor *conv;
      if (!(st = mt_to_dtype(&conv, res, input->dtype))) {
        mt_tensor_release(res);
        res = conv;
      }
    }
  }
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;
  mt_tensor_release(x);
  const mt_tensor *ins[1] = {input};
  if (!st && mt_grad_needed(1, ins)) {
    act_node *n = (act_node *)mt_node_new(sizeof *n, act_names[kind], act_backward, act_release, 1, ins, 1);
    if (!n) st = MT_ENOMEM;
    else {
      n->kind = kind, n->slope = slope;
      if (!(st = mt_save_tensor(&n->input, input))) mt_node_set_output(&n->base, res, 0);
      mt_node_release(&n->base);
    }
  }
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

MT_API mt_status mt_leaky_relu(mt_tensor **out, const mt_tensor *input, double negative_slope) {
  mt_status st = activation(out, input, ACT_LEAKY_RELU, negative_slope);
  if (!st && mt_tracing()) mt_trace_record("leaky_relu", 1, &input, 1, out, "negative_slope=f", negative_slope);
  return st;
}

MT_API mt_status mt_gelu(mt_tensor **out, const mt_tensor *input, bool tanh_approximation) {
  mt_status st = activation(out, input, tanh_approximation ? ACT_GELU_TANH : ACT_GELU, 0);
  if (!st && mt_tracing()) mt_trace_record("gelu", 1, &input, 1, out, "tanh_approximation=b", (int)tanh_approximation);
  return st;
}

MT_API mt_status mt_silu(mt_tensor **out, const mt_tensor *input) {
  mt_status st = activation(out, input, ACT_SILU, 0);
  if (!st && mt_tracing()) mt_trace_record("silu", 1, &input, 1, out, "");
  return st;
}
