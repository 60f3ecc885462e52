/*
 * nn_loss.c — the losses: mse, l1, smooth_l1, bce, bce_with_logits (pointwise, one fused
 * kernel each way), nll_loss (a gather of -w[t] * x[t], with PyTorch's weighted mean) and
 * cross_entropy (log_softmax, then nll_loss; label smoothing and probability targets are
 * composed from the core's ops exactly as PyTorch 1.13 composes them, so autograd comes from
 * those ops and the node names match PyTorch's).
 *
 * Pointwise losses broadcast input, target (and weight, pos_weight) to one shape, compute the
 * elementwise loss in float32 or float64 (float16/bfloat16 through float32), then reduce in
 * double. Their backward recomputes the derivative from the saved inputs: d/dinput and
 * d/dtarget (PyTorch differentiates both; never weight or pos_weight, which therefore may not
 * require grad).
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

/* t converted to dt, broadcast to `sizes` and made contiguous. Grad mode must be off. */
static mt_status dense_as(mt_tensor **out, const mt_tensor *t, mt_dtype dt, int ndim, const int64_t *sizes) {
  mt_tensor *c, *e;
  mt_status st = mt_to_dtype(&c, t, dt);
  if (st) return st;
  st = mt_expand(&e, c, ndim, sizes);
  mt_tensor_release(c);
  if (st) return st;
  st = mt_contiguous(out, e);
  mt_tensor_release(e);
  return st;
}

/* The data of an optional operand. */
#define PW_DATA(t) ((t) ? mt_data(t) : NULL)

static mt_status check_reduction(mt_reduction r) {
  if (r != MT_REDUCTION_NONE && r != MT_REDUCTION_MEAN && r != MT_REDUCTION_SUM)
    return mt_fail(MT_EARG, "unknown reduction %d (expected none, mean or sum)", (int)r);
  return MT_OK;
}

/* PyTorch refuses inputs that a loss is not differentiable for once they require grad. */
static mt_status check_no_grad(const mt_tensor *t, const char *what) {
  if (t && t->requires_grad && mt_is_grad_enabled())
    return mt_fail(MT_EARG, "%s cannot require grad: the loss is not differentiable with respect to it", what);
  return MT_OK;
}

/* Sum in double with eight independent accumulators. */
#define DEFINE_SUM(S, T)                                                                           \
  static double sum_##S(const T *p, int64_t n) {                                                  \
    double a[8] = {0};                                                                            \
    int64_t i = 0;                                                                                \
    for (; i + 8 <= n; i += 8)                                                                    \
      for (int k = 0; k < 8; k++) a[k] += p[i + k];                                               \
    for (; i < n; i++) a[0] += p[i];                                                              \
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));                     \
  }
DEFINE_SUM(f32, float)
DEFINE_SUM(f64, double)

/* ============================================================================================ */
/* pointwise losses                                                                             */

typedef enum pw_kind { PW_MSE, PW_L1, PW_SMOOTH_L1, PW_BCE, PW_BCE_LOGITS } pw_kind;

#define BCE_EPS 1e-12 /* PyTorch's floor on x (1 - x) in bce's gradient */

/* Elementwise loss into y; false when bce meets an input outside [0, 1]. */
#define DEFINE_PW_FORWARD(S, T, LOG, EXP, FABS)                                                    \
  static bool pw_forward_##S(pw_kind k, T beta, const T *restrict x, const T *restrict t, const T *w, \
                             const T *pw, T *restrict y, int64_t n) {                             \
    switch (k) {                                                                                  \
    case PW_MSE:                                                                                  \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T d = x[i] - t[i];                                                                  \
        y[i] = d * d;                                                                             \
      }                                                                                           \
      break;                                                                                      \
    case PW_L1:                                                                                   \
      for (int64_t i = 0; i < n; i++) y[i] = FABS(x[i] - t[i]);                                   \
      break;                                                                                      \
    case PW_SMOOTH_L1:                                                                            \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T z = FABS(x[i] - t[i]);                                                            \
        y[i] = z < beta ? (T)0.5 * z * z / beta : z - (T)0.5 * beta;                              \
      }                                                                                           \
      break;                                                                                      \
    case PW_BCE:                                                                                  \
      for (int64_t i = 0; i < n; i++)                                                             \
        if (!(x[i] >= 0 && x[i] <= 1)) return false;                                              \
      for (int64_t i = 0; i < n; i++) { /* logs clamped at -100, as PyTorch */                    \
        T lx = LOG(x[i]), l1x = LOG((T)1 - x[i]);                                                 \
        lx = lx > (T)-100 ? lx : (T)-100;                                                         \
        l1x = l1x > (T)-100 ? l1x : (T)-100;                                                      \
        y[i] = (t[i] - (T)1) * l1x - t[i] * lx;                                                   \
      }                                                                                           \
      break;                                                                                      \
    case PW_BCE_LOGITS: /* (1 - t) x + lw (log(e^-m + e^(-x-m)) + m), m = max(-x, 0) */           \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T v = x[i], m = -v > 0 ? -v : (T)0, lw = pw ? (pw[i] - (T)1) * t[i] + (T)1 : (T)1;  \
        y[i] = ((T)1 - t[i]) * v + lw * (LOG(EXP(-m) + EXP(-v - m)) + m);                         \
      }                                                                                           \
      break;                                                                                      \
    }                                                                                             \
    if (w)                                                                                        \
      for (int64_t i = 0; i < n; i++) y[i] *= w[i];                                               \
    return true;                                                                                  \
  }

/* d loss / d input into gx and d loss / d target into gt (either may be NULL), each times
 * `scale` (the reduction's factor) and w, and times g elementwise when g is given. */
#define DEFINE_PW_BACKWARD(S, T, LOG, LOG1P, EXP, FABS)                                            \
  static inline T log_sigmoid_##S(T v) { return (v < 0 ? v : (T)0) - LOG1P(EXP(-FABS(v))); }     \
  static void pw_backward_##S(pw_kind k, T beta, const T *restrict x, const T *restrict t, const T *w, \
                              const T *pw, const T *g, T scale, T *restrict gx, T *restrict gt, int64_t n) { \
    switch (k) {                                                                                  \
    case PW_MSE:                                                                                  \
    case PW_L1:                                                                                   \
    case PW_SMOOTH_L1: { /* symmetric in x and t: gt = -gx */                                     \
      T *o = gx ? gx : gt;                                                                        \
      for (int64_t i = 0; i < n; i++) {                                                           \
        const T d = x[i] - t[i];                                                                  \
        T v;                                                                                      \
        if (k == PW_MSE) v = (T)2 * d;                                                            \
        else if (k == PW_L1) v = (T)((d > 0) - (d < 0));                                          \
        else v = d <= -beta ? (T)-1 : d >= beta ? (T)1 : d / beta;                                \
        o[i] = v * scale;                                                                         \
      }                                                                                           \
      if (gx && gt)                                                                               \
        for (int64_t i = 0; i < n; i++) gt[i] = -gx[i];                                           \
      else if (gt)                                                                                \
        for (int64_t i = 0; i < n; i++) gt[i] = -gt[i];                                           \
      break;                                                                                      \
    }                                                                                             \
    case PW_BCE:                                                                                  \
      if (gx)                                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                         \
          const T den = ((T)1 - x[i]) * x[i];                                                     \
          gx[i] = scale * (x[i] - t[i]) / (den > (T)BCE_EPS ? den : (T)BCE_EPS);                  \
        }                                                                                         \
      if (gt) /* -logit(x), unclamped as PyTorch's */                                             \
        for (int64_t i = 0; i < n; i++) gt[i] = -scale * LOG(x[i] / ((T)1 - x[i]));               \
      break;                                                                                      \
    case PW_BCE_LOGITS:                                                                           \
      if (gx)                                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                         \
          const T s = (T)1 / ((T)1 + EXP(-x[i]));                                                 \
          if (pw) {                                                                               \
            const T tp = pw[i] * t[i];                                                            \
            gx[i] = ((tp + (T)1 - t[i]) * s - tp) * scale;                                        \
          } else {                                                                                \
            gx[i] = (s - t[i]) * scale;                                                           \
          }                                                                                       \
        }                                                                                         \
      if (gt)                                                                                     \
        for (int64_t i = 0; i < n; i++)                                                           \
          gt[i] = (pw ? log_sigmoid_##S(-x[i]) - pw[i] * log_sigmoid_##S(x[i]) : -x[i]) * scale;  \
      break;                                                                                      \
    }                                                                                             \
    T *outs[2] = {gx, gt};                                                                        \
    for (int o = 0; o < 2; o++) {                                                                 \
      T *r = outs[o];                                                                             \
      if (!r) continue;                                                                           \
      if (w)                                                                                      \
        for (int64_t i = 0; i < n; i++) r[i] *= w[i];                                             \
      if (g)                                                                                      \
        for (int64_t i = 0; i < n; i++) r[i] *= g[i];                                             \
    }                                                                                             \
  }
DEFINE_PW_FORWARD(f32, float, logf, expf, fabsf)
DEFINE_PW_FORWARD(f64, double, log, exp, fabs)
DEFINE_PW_BACKWARD(f32, float, logf, log1pf, expf, fabsf)
DEFINE_PW_BACKWARD(f64, double, log, log1p, exp, fabs)

typedef struct pw_node {
  mt_node base;
  pw_kind kind;
  mt_reduction reduction;
  double beta;
  mt_dtype cdt;
  int ndim;
  int64_t sizes[MT_MAX_DIMS]; /* the broadcast shape */
  mt_saved x, t, w, pw;
} pw_node;

static void pw_release(mt_node *n) {
  pw_node *p = (pw_node *)n;
  mt_saved_release(&p->x), mt_saved_release(&p->t), mt_saved_release(&p->w), mt_saved_release(&p->pw);
}

/* The saved tensors (x, t, w, pw; the last two may be absent) dense in the broadcast shape. */
static mt_status pw_operands(pw_node *p, mt_tensor *ops[4]) {
  mt_saved *saved[4] = {&p->x, &p->t, &p->w, &p->pw};
  mt_status st = MT_OK;
  for (int i = 0; i < 4 && !st; i++) {
    mt_tensor *v;
    if (!saved[i]->t) continue;
    if (!(st = mt_saved_get(saved[i], &p->base, &v))) st = dense_as(&ops[i], v, p->cdt, p->ndim, p->sizes);
  }
  return st;
}

static mt_status pw_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  pw_node *p = (pw_node *)n;
  const mt_tensor *g = gout[0];
  const bool need_x = mt_edge_live(&n->next[0]), need_t = mt_edge_live(&n->next[1]);
  if (!g || (!need_x && !need_t)) return MT_OK;
  mt_tensor *ops[4] = {0}, *gd = NULL, *gx = NULL, *gt = NULL;
  mt_status st = pw_operands(p, ops);
  const int64_t count = mt_numel(ops[0] ? ops[0] : g);
  double scale = 1;
  if (!st && p->reduction != MT_REDUCTION_NONE) {
    mt_scalar s;
    if (!(st = mt_item(g, &s))) scale = mt_scalar_to_f64(s) / (p->reduction == MT_REDUCTION_MEAN ? (double)count : 1.0);
  } else if (!st) {
    st = dense_as(&gd, g, p->cdt, p->ndim, p->sizes);
  }
  if (!st && need_x) st = mt_empty(&gx, p->cdt, p->ndim, p->sizes);
  if (!st && need_t) st = mt_empty(&gt, p->cdt, p->ndim, p->sizes);
  if (!st) {
    if (p->cdt == MT_FLOAT64)
      pw_backward_f64(p->kind, p->beta, mt_data(ops[0]), mt_data(ops[1]), PW_DATA(ops[2]), PW_DATA(ops[3]), PW_DATA(gd),
                      scale, PW_DATA(gx), PW_DATA(gt), count);
    else
      pw_backward_f32(p->kind, (float)p->beta, mt_data(ops[0]), mt_data(ops[1]), PW_DATA(ops[2]), PW_DATA(ops[3]),
                      PW_DATA(gd), (float)scale, PW_DATA(gx), PW_DATA(gt), count);
  }
  for (int i = 0; i < 4; i++) mt_tensor_release(ops[i]);
  mt_tensor_release(gd);
  if (st) {
    mt_tensor_release(gx), mt_tensor_release(gt);
    return st;
  }
  gin[0] = gx, gin[1] = gt;
  return MT_OK;
}

static const char *pw_name(pw_kind k, mt_reduction r) {
  switch (k) {
  case PW_MSE: return "MseLossBackward0";
  case PW_L1: /* PyTorch 1.13 composes l1_loss from abs and the reduction */
    return r == MT_REDUCTION_MEAN ? "MeanBackward0" : r == MT_REDUCTION_SUM ? "SumBackward0" : "AbsBackward0";
  case PW_SMOOTH_L1: return "SmoothL1LossBackward0";
  case PW_BCE: return "BinaryCrossEntropyBackward0";
  case PW_BCE_LOGITS: return "BinaryCrossEntropyWithLogitsBackward0";
  }
  return "LossBackward0";
}

/* `extra` (weight, pos_weight) must broadcast to the loss's shape. */
static mt_status check_extra(const mt_tensor *e, const char *what, int ndim, const int64_t *sizes) {
  if (!e) return MT_OK;
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  int nd;
  int64_t bs[MT_MAX_DIMS];
  if (!mt_dtype_is_float(e->dtype))
    return mt_fail(MT_EDTYPE, "%s must be floating point, got %s", what, mt_dtype_name(e->dtype));
  if (mt_broadcast_shapes(ndim, sizes, e->ndim, e->sizes, &nd, bs) || nd != ndim ||
      memcmp(bs, sizes, (size_t)ndim * sizeof *bs) != 0)
    return mt_fail(MT_ESHAPE, "%s of shape %s cannot be broadcast to the input's shape %s", what,
                   mt_shape_str(a, sizeof a, e->ndim, e->sizes), mt_shape_str(b, sizeof b, ndim, sizes));
  return check_no_grad(e, what);
}

static mt_status pw_loss(mt_tensor **out, pw_kind kind, const mt_tensor *input, const mt_tensor *target,
                         const mt_tensor *weight, const mt_tensor *pos_weight, mt_reduction reduction, double beta) {
  if (!out || !input || !target) return mt_fail(MT_EARG, "missing tensor argument");
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  mt_status st = check_reduction(reduction);
  if (st) return st;
  const mt_dtype rdt = mt_promote_types(input->dtype, target->dtype), cdt = compute_dtype(rdt);
  if (!mt_dtype_is_float(rdt))
    return mt_fail(MT_EDTYPE, "expected floating-point input and target, got %s and %s", mt_dtype_name(input->dtype),
                   mt_dtype_name(target->dtype));
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  if (kind == PW_BCE || kind == PW_BCE_LOGITS) {
    if (input->ndim != target->ndim || memcmp(input->sizes, target->sizes, (size_t)input->ndim * sizeof(int64_t)))
      return mt_fail(MT_ESHAPE, "target of shape %s must have the input's shape %s",
                     mt_shape_str(a, sizeof a, target->ndim, target->sizes),
                     mt_shape_str(b, sizeof b, input->ndim, input->sizes));
    ndim = input->ndim;
    memcpy(sizes, input->sizes, sizeof sizes);
  } else if ((st = mt_broadcast_shapes(input->ndim, input->sizes, target->ndim, target->sizes, &ndim, sizes))) {
    return st;
  }
  if ((st = check_extra(weight, "weight", ndim, sizes)) || (st = check_extra(pos_weight, "pos_weight", ndim, sizes)))
    return st;

  mt_tensor *ops[4] = {0}, *y = NULL, *res = NULL;
  const mt_tensor *srcs[4] = {input, target, weight, pos_weight};
  bool grad_on = mt_is_grad_enabled();
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the op records itself) */
  for (int i = 0; i < 4 && !st; i++)
    if (srcs[i]) st = dense_as(&ops[i], srcs[i], cdt, ndim, sizes);
  if (!st) st = mt_empty(&y, cdt, ndim, sizes);
  if (!st) {
    const int64_t n = mt_numel(y);
    bool ok = cdt == MT_FLOAT64 ? pw_forward_f64(kind, beta, mt_data(ops[0]), mt_data(ops[1]), PW_DATA(ops[2]),
                                                 PW_DATA(ops[3]), mt_data(y), n)
                                : pw_forward_f32(kind, (float)beta, mt_data(ops[0]), mt_data(ops[1]), PW_DATA(ops[2]),
                                                 PW_DATA(ops[3]), mt_data(y), n);
    if (!ok) st = mt_fail(MT_EARG, "all elements of input should be between 0 and 1");
    else if (reduction == MT_REDUCTION_NONE) st = mt_to_dtype(&res, y, rdt);
    else {
      double s = cdt == MT_FLOAT64 ? sum_f64(mt_data(y), n) : sum_f32(mt_data(y), n);
      if (reduction == MT_REDUCTION_MEAN) s /= (double)n; /* an empty mean is NaN, as PyTorch's */
      st = mt_full(&res, rdt, 0, NULL, mt_scalar_float(s));
    }
  }
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;
  for (int i = 0; i < 4; i++) mt_tensor_release(ops[i]);
  mt_tensor_release(y);

  const mt_tensor *ins[2] = {input, target};
  if (!st && mt_grad_needed(2, ins)) {
    pw_node *p = (pw_node *)mt_node_new(sizeof *p, pw_name(kind, reduction), pw_backward, pw_release, 2, ins, 1);
    if (!p) st = MT_ENOMEM;
    else {
      p->kind = kind, p->reduction = reduction, p->beta = beta, p->cdt = cdt, p->ndim = ndim;
      memcpy(p->sizes, sizes, sizeof sizes);
      for (int i = 0; i < 4 && !st; i++) {
        mt_saved *slot[4] = {&p->x, &p->t, &p->w, &p->pw};
        if (srcs[i]) st = mt_save_tensor(slot[i], srcs[i]);
      }
      if (!st) mt_node_set_output(&p->base, res, 0);
      mt_node_release(&p->base);
    }
  }
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  if (tr) { /* the public function's name and tensor arguments */
    static const char *const names[] = {"mse_loss", "l1_loss", "smooth_l1_loss", "bce_loss", "bce_with_logits"};
    static const int nins[] = {2, 2, 2, 3, 4};
    if (kind == PW_SMOOTH_L1)
      mt_trace_record(names[kind], 2, srcs, 1, &res, "reduction=i beta=f", (int64_t)reduction, beta);
    else mt_trace_record(names[kind], nins[kind], srcs, 1, &res, "reduction=i", (int64_t)reduction);
  }
  *out = res;
  return MT_OK;
}

MT_API mt_status mt_mse_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target, mt_reduction reduction) {
  return pw_loss(out, PW_MSE, input, target, NULL, NULL, reduction, 0);
}

MT_API mt_status mt_l1_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target, mt_reduction reduction) {
  return pw_loss(out, PW_L1, input, target, NULL, NULL, reduction, 0);
}

MT_API mt_status mt_smooth_l1_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target,
                                   mt_reduction reduction, double beta) {
  if (!(beta >= 0)) return mt_fail(MT_EARG, "beta must be non-negative, got %g", beta);
  return pw_loss(out, PW_SMOOTH_L1, input, target, NULL, NULL, reduction, beta);
}

MT_API mt_status mt_bce_loss(mt_tensor **out, const mt_tensor *input, const mt_tensor *target, const mt_tensor *weight,
                             mt_reduction reduction) {
  return pw_loss(out, PW_BCE, input, target, weight, NULL, reduction, 0);
}

MT_API mt_status mt_bce_with_logits(mt_tensor **out, const mt_tensor *input, const mt_tensor *target,
                                    const mt_tensor *weight, const mt_tensor *pos_weight, mt_reduction reduction) {
  return pw_loss(out, PW_BCE_LOGITS, input, target, weight, pos_weight, reduction, 0);
}

/* ============================================================================================ */
/* nll_loss                                                                                     */

/* log_probs seen as [N, C, S], target as [N, S]. */
typedef struct nll_geom {
  int64_t n, c, s;
} nll_geom;

/* Loss per target (0 where ignored) into y when given; the weighted sum and total weight. */
#define DEFINE_NLL(S, T)                                                                           \
  static void nll_forward_##S(const T *x, const int64_t *tgt, const double *w, nll_geom g, int64_t ignore, \
                              T *y, double *sum, double *total) {                                 \
    double s = 0, tw = 0;                                                                         \
    for (int64_t i = 0; i < g.n; i++)                                                             \
      for (int64_t j = 0; j < g.s; j++) {                                                         \
        const int64_t c = tgt[i * g.s + j];                                                       \
        T v = 0;                                                                                  \
        if (c != ignore) {                                                                        \
          const T wc = w ? (T)w[c] : (T)1;                                                        \
          v = -x[(i * g.c + c) * g.s + j] * wc;                                                   \
          tw += wc, s += v;                                                                       \
        }                                                                                         \
        if (y) y[i * g.s + j] = v;                                                                \
      }                                                                                           \
    *sum = s, *total = tw;                                                                        \
  }                                                                                               \
  /* gx (zeroed) at each target: -w[t] times g (elementwise) or times scale */                    \
  static void nll_backward_##S(T *gx, const int64_t *tgt, const double *w, nll_geom g, int64_t ignore, \
                               const T *gy, double scale) {                                       \
    for (int64_t i = 0; i < g.n; i++)                                                             \
      for (int64_t j = 0; j < g.s; j++) {                                                         \
        const int64_t c = tgt[i * g.s + j];                                                       \
        if (c == ignore) continue;                                                                \
        const T wc = w ? (T)w[c] : (T)1;                                                          \
        gx[(i * g.c + c) * g.s + j] = -wc * (gy ? gy[i * g.s + j] : (T)scale);                    \
      }                                                                                           \
  }
DEFINE_NLL(f32, float)
DEFINE_NLL(f64, double)

typedef struct nll_node {
  mt_node base;
  nll_geom geo;
  int64_t ignore_index;
  mt_reduction reduction;
  double total_weight;
  mt_saved target, weight;
} nll_node;

static void nll_release(mt_node *n) {
  nll_node *p = (nll_node *)n;
  mt_saved_release(&p->target), mt_saved_release(&p->weight);
}

/* A small float tensor read into a malloc'ed double array. */
static mt_status read_f64(double **out, const mt_tensor *t) {
  mt_tensor *d;
  mt_status st = dense_as(&d, t, MT_FLOAT64, t->ndim, t->sizes);
  if (st) return st;
  size_t n = (size_t)mt_numel(d);
  double *a = malloc((n ? n : 1) * sizeof *a);
  if (!a) st = mt_fail(MT_ENOMEM, "out of memory");
  else memcpy(a, mt_data(d), n * sizeof *a), *out = a;
  mt_tensor_release(d);
  return st;
}

static mt_status nll_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  nll_node *p = (nll_node *)n;
  const mt_tensor *g = gout[0];
  if (!g || !mt_edge_live(&n->next[0])) return MT_OK;
  mt_tensor *target, *weight = NULL, *tgt = NULL, *gy = NULL, *gx = NULL;
  double *w = NULL, scale = 0;
  const mt_edge *e = &n->next[0];
  const mt_dtype cdt = compute_dtype(e->dtype);
  mt_status st = mt_saved_get(&p->target, n, &target);
  if (!st && p->weight.t) st = mt_saved_get(&p->weight, n, &weight);
  if (!st) st = dense_as(&tgt, target, MT_INT64, target->ndim, target->sizes);
  if (!st && weight) st = read_f64(&w, weight);
  if (!st && p->reduction == MT_REDUCTION_NONE) st = dense_as(&gy, g, cdt, g->ndim, g->sizes);
  else if (!st) {
    mt_scalar s;
    if (!(st = mt_item(g, &s)))
      scale = mt_scalar_to_f64(s) / (p->reduction == MT_REDUCTION_MEAN ? p->total_weight : 1.0);
  }
  if (!st && !(st = mt_zeros(&gx, cdt, e->ndim, e->sizes))) {
    if (cdt == MT_FLOAT64)
      nll_backward_f64(mt_data(gx), mt_data(tgt), w, p->geo, p->ignore_index, gy ? mt_data(gy) : NULL, scale);
    else nll_backward_f32(mt_data(gx), mt_data(tgt), w, p->geo, p->ignore_index, gy ? mt_data(gy) : NULL, scale);
    gin[0] = gx;
  }
  mt_tensor_release(tgt), mt_tensor_release(gy);
  free(w);
  return st;
}

/* Shapes, dtypes and the target's range; fills the geometry and the unreduced shape. */
static mt_status nll_check(const mt_tensor *x, const mt_tensor *target, const mt_tensor *weight, nll_geom *geo) {
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN], c[MT_SHAPE_STRLEN];
  if (!mt_dtype_is_float(x->dtype))
    return mt_fail(MT_EDTYPE, "expected a floating-point input, got %s", mt_dtype_name(x->dtype));
  if (x->ndim < 1) return mt_fail(MT_ESHAPE, "expected an input of shape [C] or [N, C, ...], got a 0-dim tensor");
  if (target->dtype != MT_INT64 && target->dtype != MT_INT32)
    return mt_fail(MT_EDTYPE, "target must hold class indices (int64), got %s", mt_dtype_name(target->dtype));
  int64_t want[MT_MAX_DIMS];
  int nw = 0;
  for (int d = 0; d < x->ndim; d++)
    if (d != (x->ndim == 1 ? 0 : 1)) want[nw++] = x->sizes[d];
  if (target->ndim != nw || memcmp(target->sizes, want, (size_t)nw * sizeof *want) != 0)
    return mt_fail(MT_ESHAPE, "expected a target of shape %s for an input of shape %s, got %s",
                   mt_shape_str(a, sizeof a, nw, want), mt_shape_str(b, sizeof b, x->ndim, x->sizes),
                   mt_shape_str(c, sizeof c, target->ndim, target->sizes));
  *geo = (nll_geom){1, x->sizes[x->ndim == 1 ? 0 : 1], 1};
  if (x->ndim > 1) geo->n = x->sizes[0];
  for (int d = 2; d < x->ndim; d++) geo->s *= x->sizes[d];
  if (weight) {
    if (!mt_dtype_is_float(weight->dtype))
      return mt_fail(MT_EDTYPE, "weight must be floating point, got %s", mt_dtype_name(weight->dtype));
    if (weight->ndim != 1 || weight->sizes[0] != geo->c)
      return mt_fail(MT_ESHAPE, "weight should have one value per class (%lld), got shape %s", (long long)geo->c,
                     mt_shape_str(a, sizeof a, weight->ndim, weight->sizes));
  }
  return check_no_grad(weight, "weight");
}

MT_API mt_status mt_nll_loss(mt_tensor **out, const mt_tensor *log_probs, const mt_tensor *target,
                             const mt_tensor *weight, int64_t ignore_index, mt_reduction reduction) {
  if (!out || !log_probs || !target) return mt_fail(MT_EARG, "missing tensor argument");
  nll_geom geo;
  mt_status st = check_reduction(reduction);
  if (st || (st = nll_check(log_probs, target, weight, &geo))) return st;
  const mt_dtype cdt = compute_dtype(log_probs->dtype);
  mt_tensor *x = NULL, *tgt = NULL, *y = NULL, *res = NULL;
  double *w = NULL, sum = 0, total = 0;
  bool grad_on = mt_is_grad_enabled();
  mt_trace *const tr = mt_active_trace;
  mt_set_grad_enabled(false); /* the internal copies record nothing, neither for autograd */
  mt_active_trace = NULL;     /* nor for a trace (the op records itself) */
  if ((st = dense_as(&x, log_probs, cdt, log_probs->ndim, log_probs->sizes)) ||
      (st = dense_as(&tgt, target, MT_INT64, target->ndim, target->sizes)) || (weight && (st = read_f64(&w, weight))))
    goto done;
  const int64_t *tv = mt_data(tgt), nt = mt_numel(tgt);
  for (int64_t i = 0; i < nt; i++)
    if (tv[i] != ignore_index && (tv[i] < 0 || tv[i] >= geo.c)) {
      st = mt_fail(MT_EINDEX, "target %lld is out of bounds for %lld classes", MT_SHOW(tv[i]), (long long)geo.c);
      goto done;
    }
  if (reduction == MT_REDUCTION_NONE && (st = mt_empty(&y, cdt, target->ndim, target->sizes))) goto done;
  if (cdt == MT_FLOAT64)
    nll_forward_f64(mt_data(x), tv, w, geo, ignore_index, y ? mt_data(y) : NULL, &sum, &total);
  else nll_forward_f32(mt_data(x), tv, w, geo, ignore_index, y ? mt_data(y) : NULL, &sum, &total);
  if (y) st = mt_to_dtype(&res, y, log_probs->dtype);
  else /* the weighted mean divides by the total weight of the targets not ignored (0/0 is NaN) */
    st = mt_full(&res, log_probs->dtype, 0, NULL, mt_scalar_float(reduction == MT_REDUCTION_MEAN ? sum / total : sum));
  if (st) goto done;
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;

  const mt_tensor *ins[1] = {log_probs};
  if (mt_grad_needed(1, ins)) {
    nll_node *p = (nll_node *)mt_node_new(sizeof *p, log_probs->ndim > 2 ? "NllLoss2DBackward0" : "NllLossBackward0",
                                          nll_backward, nll_release, 1, ins, 1);
    if (!p) {
      st = MT_ENOMEM;
      goto done;
    }
    p->geo = geo, p->ignore_index = ignore_index, p->reduction = reduction, p->total_weight = total;
    if (!(st = mt_save_tensor(&p->target, target)) && (!weight || !(st = mt_save_tensor(&p->weight, weight))))
      mt_node_set_output(&p->base, res, 0);
    mt_node_release(&p->base);
  }
  if (!st && tr) {
    const mt_tensor *tins[3] = {log_probs, target, weight};
    mt_trace_record("nll_loss", 3, tins, 1, &res, "ignore_index=i reduction=i", ignore_index, (int64_t)reduction);
  }
done:
  mt_set_grad_enabled(grad_on);
  mt_active_trace = tr;
  mt_tensor_release(x), mt_tensor_release(tgt), mt_tensor_release(y);
  free(w);
  if (st) {
    mt_tensor_release(res);
    return st;
  }
  *out = res;
  return MT_OK;
}

/* ============================================================================================ */
/* cross_entropy                                                                                */

/* Small steps over recorded ops: each takes the status, does nothing once it failed, and
 * returns a new reference (NULL on failure). */
static mt_tensor *op_bin(mt_status *st, mt_binop op, const mt_tensor *a, const mt_tensor *b) {
  mt_tensor *r = NULL;
  if (!*st && (*st = mt_binary(&r, op, a, b))) r = NULL;
  return r;
}
static mt_tensor *op_scalar(mt_status *st, mt_binop op, const mt_tensor *a, double v) {
  mt_tensor *s = NULL, *r = NULL;
  if (!*st && !(*st = mt_wrap_number(&s, mt_scalar_float(v)))) r = op_bin(st, op, a, s);
  mt_tensor_release(s);
  return r;
}
static mt_tensor *op_sum(mt_status *st, const mt_tensor *a, int ndims, int64_t dim) {
  mt_tensor *r = NULL;
  if (!*st && (*st = mt_sum(&r, a, ndims, &dim, false))) r = NULL;
  return r;
}
static mt_tensor *op_neg(mt_status *st, const mt_tensor *a) {
  mt_tensor *r = NULL;
  if (!*st && (*st = mt_unary(&r, MT_NEG, a))) r = NULL;
  return r;
}

/* weight viewed so that it broadcasts along the class dim of an input of ndim dims. */
static mt_tensor *weight_view(mt_status *st, const mt_tensor *weight, int ndim, int class_dim) {
  int64_t sizes[MT_MAX_DIMS];
  for (int d = 0; d < ndim; d++) sizes[d] = d == class_dim ? weight->sizes[0] : 1;
  mt_tensor *r = NULL;
  if (!*st && (*st = mt_view(&r, weight, ndim, sizes))) r = NULL;
  return r;
}

/* PyTorch's cross_entropy_loss_prob_target: -(lsm * target' * w).sum over classes, with
 * target' = target (1 - ls) + ls / C; the mean divides by numel / C. */
static mt_status ce_prob_target(mt_tensor **out, const mt_tensor *lsm, const mt_tensor *target,
                                const mt_tensor *weight, double ls, mt_reduction reduction, int class_dim) {
  const int64_t C = lsm->sizes[class_dim];
  mt_status st = MT_OK;
  mt_tensor *t = NULL, *wv = NULL, *p = NULL, *s = NULL, *ns = NULL, *r = NULL;
  if (ls > 0) {
    mt_tensor *a = op_scalar(&st, MT_MUL, target, 1 - ls);
    t = op_scalar(&st, MT_ADD, a, ls / (double)C);
    mt_tensor_release(a);
  } else {
    mt_tensor_retain((mt_tensor *)target);
    t = (mt_tensor *)target;
  }
  p = op_bin(&st, MT_MUL, lsm, t);
  if (weight) {
    wv = weight_view(&st, weight, lsm->ndim, class_dim);
    mt_tensor *q = op_bin(&st, MT_MUL, p, wv);
    mt_tensor_release(p);
    p = q;
  }
  s = op_sum(&st, p, reduction == MT_REDUCTION_NONE ? 1 : 0, class_dim);
  ns = op_neg(&st, s);
  if (!st && reduction == MT_REDUCTION_MEAN) { /* an empty input gives NaN, as PyTorch's */
    const int64_t rows = C ? mt_numel(lsm) / C : 0;
    r = op_scalar(&st, MT_DIV, ns, rows ? (double)rows : NAN);
  } else if (!st) {
    mt_tensor_retain(ns);
    r = ns;
  }
  mt_tensor_release(t), mt_tensor_release(wv), mt_tensor_release(p), mt_tensor_release(s), mt_tensor_release(ns);
  if (st) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

/* PyTorch's cross_entropy_loss_label_smoothing: (1 - ls) nll + ls / C * smooth, where smooth
 * is -sum over classes of lsm (times the class weights), 0 at ignored targets, reduced as
 * nll_loss is (the weighted mean divides by the weight of the targets not ignored). */
static mt_status ce_smoothing(mt_tensor **out, const mt_tensor *lsm, const mt_tensor *target, const mt_tensor *weight,
                              int64_t ignore_index, double ls, mt_reduction reduction, int class_dim) {
  const int64_t C = lsm->sizes[class_dim];
  mt_tensor *nll, *wv = NULL, *p = NULL, *s = NULL, *smooth = NULL, *mask = NULL, *ign = NULL, *filled = NULL,
            *red = NULL, *a = NULL, *b = NULL, *r = NULL, *tgt = NULL;
  mt_status st = mt_nll_loss(&nll, lsm, target, weight, ignore_index, reduction);
  if (st) return st;
  double *w = NULL;
  if (weight) {
    wv = weight_view(&st, weight, lsm->ndim, class_dim);
    p = op_bin(&st, MT_MUL, lsm, wv);
  } else {
    mt_tensor_retain((mt_tensor *)lsm);
    p = (mt_tensor *)lsm;
  }
  s = op_sum(&st, p, 1, class_dim);
  smooth = op_neg(&st, s);
  if (!st && !(st = mt_wrap_number(&ign, mt_scalar_int(ignore_index)))) mask = op_bin(&st, MT_EQ, target, ign);
  if (!st && (st = mt_masked_fill(&filled, smooth, mask, mt_scalar_float(0)))) filled = NULL;
  if (reduction == MT_REDUCTION_NONE) {
    if (!st) mt_tensor_retain(filled), red = filled;
  } else {
    mt_tensor *total = op_sum(&st, filled, 0, 0);
    if (!st && reduction == MT_REDUCTION_MEAN) {
      /* the denominator: the weight (or count) of the targets not ignored; no gradient */
      double denom = 0;
      bool grad_on = mt_is_grad_enabled();
      mt_set_grad_enabled(false);
      st = dense_as(&tgt, target, MT_INT64, target->ndim, target->sizes);
      if (!st && weight) st = read_f64(&w, weight);
      if (!st) {
        const int64_t *tv = mt_data(tgt), nt = mt_numel(tgt);
        for (int64_t i = 0; i < nt; i++)
          if (tv[i] != ignore_index) denom += w ? w[tv[i]] : 1.0;
      }
      mt_set_grad_enabled(grad_on);
      red = op_scalar(&st, MT_DIV, total, denom);
    } else if (!st) {
      mt_tensor_retain(total), red = total;
    }
    mt_tensor_release(total);
  }
  a = op_scalar(&st, MT_MUL, nll, 1 - ls);
  b = op_scalar(&st, MT_MUL, red, ls / (double)C);
  r = op_bin(&st, MT_ADD, a, b);
  mt_tensor_release(nll), mt_tensor_release(wv), mt_tensor_release(p), mt_tensor_release(s);
  mt_tensor_release(smooth), mt_tensor_release(mask), mt_tensor_release(ign), mt_tensor_release(filled);
  mt_tensor_release(red), mt_tensor_release(a), mt_tensor_release(b), mt_tensor_release(tgt);
  free(w);
  if (st) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

MT_API mt_status mt_cross_entropy(mt_tensor **out, const mt_tensor *logits, const mt_tensor *target,
                                  const mt_tensor *weight, int64_t ignore_index, double label_smoothing,
                                  mt_reduction reduction) {
  if (!out || !logits || !target) return mt_fail(MT_EARG, "missing tensor argument");
  mt_status st = check_reduction(reduction);
  if (st) return st;
  if (!(label_smoothing >= 0 && label_smoothing <= 1))
    return mt_fail(MT_EARG, "label_smoothing must be between 0 and 1, got %g", label_smoothing);
  if (!mt_dtype_is_float(logits->dtype))
    return mt_fail(MT_EDTYPE, "expected a floating-point input, got %s", mt_dtype_name(logits->dtype));
  if (logits->ndim < 1) return mt_fail(MT_ESHAPE, "expected an input of shape [C] or [N, C, ...], got a 0-dim tensor");
  const int class_dim = logits->ndim == 1 ? 0 : 1;
  const bool prob = mt_dtype_is_float(target->dtype);
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  if (prob) { /* class probabilities, in the input's shape */
    if (target->ndim != logits->ndim || memcmp(target->sizes, logits->sizes, (size_t)logits->ndim * sizeof(int64_t)))
      return mt_fail(MT_ESHAPE, "a target of class probabilities must have the input's shape %s, got %s",
                     mt_shape_str(a, sizeof a, logits->ndim, logits->sizes),
                     mt_shape_str(b, sizeof b, target->ndim, target->sizes));
    if (weight && (weight->ndim != 1 || weight->sizes[0] != logits->sizes[class_dim]))
      return mt_fail(MT_ESHAPE, "weight should have one value per class (%lld), got shape %s",
                     (long long)logits->sizes[class_dim], mt_shape_str(a, sizeof a, weight->ndim, weight->sizes));
  } else {
    nll_geom geo; /* checked before the softmax is spent */
    if ((st = nll_check(logits, target, weight, &geo))) return st;
  }
  /* Composed of recorded ops (autograd goes through them), while a trace sees one node. */
  mt_trace *const tr = mt_active_trace;
  mt_active_trace = NULL;
  mt_tensor *lsm;
  if (!(st = mt_log_softmax(&lsm, logits, class_dim))) {
    if (prob) st = ce_prob_target(out, lsm, target, weight, label_smoothing, reduction, class_dim);
    else if (label_smoothing > 0)
      st = ce_smoothing(out, lsm, target, weight, ignore_index, label_smoothing, reduction, class_dim);
    else st = mt_nll_loss(out, lsm, target, weight, ignore_index, reduction);
    mt_tensor_release(lsm);
  }
  mt_active_trace = tr;
  if (!st && tr) {
    const mt_tensor *ins[3] = {logits, target, weight};
    mt_trace_record("cross_entropy", 3, ins, 1, out, "ignore_index=i label_smoothing=f reduction=i", ignore_index,
                    label_smoothing, (int64_t)reduction);
  }
  return st;
}
