/* test_nn_loss.c — mse, l1, smooth_l1, bce, bce_with_logits, nll_loss and cross_entropy:
 * gradients of input and target against finite differences (float64) over every reduction
 * and option, in tables; float32 values and gradients against PyTorch 1.13 (weighted means,
 * ignore_index with weights and label smoothing, probability targets); NaN where PyTorch
 * gives NaN; node names; error statuses.
 *
 * The PyTorch constants come from this script (inputs are sin() patterns both sides build the
 * same way: S(n, a, b, scale, off)[i] = off + scale * sin(i a + b), float32; the first value
 * is S1 = sum(loss_i cos(0.7 i)), which is also the backward objective, then S2 = sum(grad_i
 * sin(1.1 i)) for the input and, where it requires grad, the target):
 *   x = S(12, .7, .3, 1.2) [3, 4]; t = S(12, 1.3, .1, .9)
 *   mse: F.mse_loss(x, t); l1: reduction sum; smooth_l1: beta .5; smooth_l1_none: none, beta .5
 *   p = S(12, .7, .3, .45, .5), q = S(12, 1.3, .1, .5, .5), bw = S(4, .9, 0, .3, 1),
 *   pw = S(4, .5, .5, .8, 1.2): bce: F.binary_cross_entropy(p, q, weight=bw);
 *   bce_logits: F.binary_cross_entropy_with_logits(S(12, .7, .3, 3), q, weight=bw, pos_weight=pw);
 *   bce_logits_none: the same without weights, reduction none
 *   l = S(20, .61, .2, 2) [5, 4], cwt = [.3, 1, 2, .9], tg = [1, 0, 3, -100, 2]:
 *   nll_weighted: F.nll_loss(F.log_softmax(l, 1), tg, weight=cwt)
 *   ce_plain: F.cross_entropy(l, [1, 0, 3, 2, 2])
 *   ce_w_ign_ls: F.cross_entropy(l, tg, weight=cwt, label_smoothing=.1)
 *   ce_ign_ls_sum: F.cross_entropy(l, tg, label_smoothing=.25, reduction='sum')
 *   ce_w_ign_ls_none: F.cross_entropy(l, tg, weight=cwt, label_smoothing=.3, reduction='none')
 *   ce_ign_ls_mean: F.cross_entropy(l, tg, label_smoothing=.1)
 *   ce_4d: F.cross_entropy(S(24, .83, .4, 1.5) [2, 3, 2, 2], [[[0, 2], [1, -1]], [[2, 2], [0, 1]]],
 *          weight=[.5, 1.5, 1.2], ignore_index=-1, label_smoothing=.2)
 *   ce_prob: F.cross_entropy(l, softmax(S(20, 1.7, .9) [5, 4], 1), weight=cwt, label_smoothing=.15)
 *   ce_1d: F.cross_entropy(S(4, .61, .2, 2), tensor(2), label_smoothing=.1) */
#include "gradcheck.h"

static mt_tensor *pattern(mt_dtype dt, int ndim, const int64_t *sizes, double a, double b, double scale, double off) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) mt_set_flat(t, i, mt_scalar_float(off + scale * sin((double)i * a + b)));
  return t;
}

static mt_tensor *from_values(mt_dtype dt, int ndim, const int64_t *sizes, const double *v) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) mt_set_flat(t, i, mt_scalar_float(v[i]));
  return t;
}

static bool near(double got, double want, double tol) {
  return fabs(got - want) <= tol * (1 + fabs(want)) || (isnan(got) && isnan(want));
}

static const char *const red_names[3] = {"none", "mean", "sum"};

/* ---- pointwise losses ----------------------------------------------------------------------- */

typedef enum { MSE, L1, SMOOTH_L1, BCE, BCE_LOGITS } pw;

typedef struct pw_ctx {
  pw op;
  mt_reduction red;
  double beta;
  mt_tensor *weight, *pos_weight;
} pw_ctx;

static mt_status run_pw(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  pw_ctx *c = vctx;
  switch (c->op) {
  case MSE: return mt_mse_loss(out, in[0], in[1], c->red);
  case L1: return mt_l1_loss(out, in[0], in[1], c->red);
  case SMOOTH_L1: return mt_smooth_l1_loss(out, in[0], in[1], c->red, c->beta);
  case BCE: return mt_bce_loss(out, in[0], in[1], c->weight, c->red);
  case BCE_LOGITS: return mt_bce_with_logits(out, in[0], in[1], c->weight, c->pos_weight, c->red);
  }
  return MT_EARG;
}

static void test_pointwise_grad(void) {
  static const struct {
    const char *name;
    pw op;
    double beta;
    int xdim, tdim, wdim, pwdim; /* shapes below; wdim/pwdim 0: none, else their ndim */
    int64_t xs[3], ts[3], ws[3], ps[3];
    double lo, hi; /* input range */
  } cases[] = {
      {"mse", MSE, 0, 2, 2, 0, 0, {3, 4}, {3, 4}, {0}, {0}, -2, 2},
      {"mse broadcast", MSE, 0, 2, 1, 0, 0, {3, 4}, {4}, {0}, {0}, -2, 2},
      {"mse broadcast both", MSE, 0, 2, 3, 0, 0, {3, 1}, {2, 1, 4}, {0}, {0}, -2, 2},
      {"l1", L1, 0, 2, 2, 0, 0, {3, 4}, {3, 4}, {0}, {0}, -2, 2},
      {"l1 0-dim", L1, 0, 0, 0, 0, 0, {0}, {0}, {0}, {0}, -2, 2},
      {"smooth_l1 beta 1", SMOOTH_L1, 1.0, 2, 2, 0, 0, {3, 4}, {3, 4}, {0}, {0}, -2, 2},
      {"smooth_l1 beta .3", SMOOTH_L1, 0.3, 3, 1, 0, 0, {2, 3, 4}, {4}, {0}, {0}, -2, 2},
      {"smooth_l1 beta 0", SMOOTH_L1, 0.0, 2, 2, 0, 0, {3, 4}, {3, 4}, {0}, {0}, -2, 2},
      {"bce", BCE, 0, 2, 2, 0, 0, {3, 4}, {3, 4}, {0}, {0}, 0.05, 0.95},
      {"bce weight", BCE, 0, 2, 2, 1, 0, {3, 4}, {3, 4}, {4}, {0}, 0.05, 0.95},
      {"bce weight 2-d", BCE, 0, 2, 2, 2, 0, {3, 4}, {3, 4}, {3, 1}, {0}, 0.05, 0.95},
      {"bce_logits", BCE_LOGITS, 0, 2, 2, 0, 0, {3, 4}, {3, 4}, {0}, {0}, -4, 4},
      {"bce_logits weight", BCE_LOGITS, 0, 2, 2, 1, 0, {3, 4}, {3, 4}, {4}, {0}, -4, 4},
      {"bce_logits pos_weight", BCE_LOGITS, 0, 2, 2, 0, 1, {3, 4}, {3, 4}, {0}, {4}, -4, 4},
      {"bce_logits both", BCE_LOGITS, 0, 3, 3, 1, 1, {2, 3, 4}, {2, 3, 4}, {4}, {4}, -4, 4},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int r = 0; r < 3; r++) {
      pw_ctx c = {cases[i].op, (mt_reduction)r, cases[i].beta, NULL, NULL};
      if (cases[i].wdim) c.weight = gc_tensor(cases[i].wdim, cases[i].ws, 0.5, 2, 70 + (int)i);
      if (cases[i].pwdim) c.pos_weight = gc_tensor(cases[i].pwdim, cases[i].ps, 0.5, 3, 80 + (int)i);
      bool prob = cases[i].op == BCE || cases[i].op == BCE_LOGITS;
      const double tlo = prob ? 0.05 : -2, thi = prob ? 0.95 : 2;
      mt_tensor *in[2] = {gc_tensor(cases[i].xdim, cases[i].xs, cases[i].lo, cases[i].hi, (int)i * 3 + r),
                          gc_tensor(cases[i].tdim, cases[i].ts, tlo, thi, 40 + (int)i * 3 + r)};
      bool ok = in[0] && in[1] && gradcheck(cases[i].name, run_pw, &c, 2, in);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (%s, reduction %s)\n", cases[i].name, red_names[r]);
      mt_tensor_release(in[0]), mt_tensor_release(in[1]);
      mt_tensor_release(c.weight), mt_tensor_release(c.pos_weight);
    }
}

/* Values where finite differences do not reach: kinks, clamps, the empty mean. */
static void test_pointwise_exact(void) {
  const int64_t n4[1] = {4}, n2[1] = {2}, none[1] = {0};
  /* smooth_l1 with beta 0 is l1 in value; its gradient at 0 is -1, as PyTorch's */
  const double xv[4] = {0, 1, -1, 0.5}, zv[4] = {0, 0, 0, 0};
  mt_tensor *x = from_values(MT_FLOAT64, 1, n4, xv), *z = from_values(MT_FLOAT64, 1, n4, zv), *y = NULL;
  OK(mt_requires_grad_(x, true));
  OK(mt_smooth_l1_loss(&y, x, z, MT_REDUCTION_SUM, 0));
  CHECK(y && val(y, 0) == 2.5);
  OK(mt_backward(y, NULL, false));
  CHECK(x->grad && val(x->grad, 0) == -1 && val(x->grad, 1) == 1 && val(x->grad, 2) == -1);
  mt_tensor_release(y), mt_set_grad(x, NULL);
  /* l1's gradient at 0 is 0 (abs'(0)); mse's mean divides by the count */
  OK(mt_l1_loss(&y, x, z, MT_REDUCTION_MEAN));
  OK(mt_backward(y, NULL, false));
  CHECK(x->grad && val(x->grad, 0) == 0 && val(x->grad, 3) == 0.25);
  mt_tensor_release(y), mt_set_grad(x, NULL);
  OK(mt_mse_loss(&y, x, z, MT_REDUCTION_MEAN));
  CHECK(y && val(y, 0) == 2.25 / 4);
  mt_tensor_release(y);
  /* bce clamps log at -100; bce of 0 and 1 with targets 1 and 0 is 100 each */
  const double pv[2] = {0, 1}, qv[2] = {1, 0}, q2[2] = {0.5, 2};
  mt_tensor *p = from_values(MT_FLOAT32, 1, n2, pv), *q = from_values(MT_FLOAT32, 1, n2, qv),
            *q2t = from_values(MT_FLOAT32, 1, n2, q2);
  OK(mt_bce_loss(&y, p, q, NULL, MT_REDUCTION_NONE));
  CHECK(y && y->dtype == MT_FLOAT32 && val(y, 0) == 100 && val(y, 1) == 100);
  mt_tensor_release(y);
  OK(mt_bce_loss(&y, p, q2t, NULL, MT_REDUCTION_NONE));
  CHECK(y && val(y, 0) == 50 && val(y, 1) == -100);
  mt_tensor_release(y);
  /* bce_with_logits is stable for large logits */
  const double lv[2] = {-200, 200};
  mt_tensor *l = from_values(MT_FLOAT32, 1, n2, lv);
  OK(mt_bce_with_logits(&y, l, q, NULL, NULL, MT_REDUCTION_NONE));
  CHECK(y && val(y, 0) == 200 && val(y, 1) == 200);
  mt_tensor_release(y);
  /* an empty mean is NaN, an empty sum 0 */
  mt_tensor *e = NULL;
  OK(mt_zeros(&e, MT_FLOAT32, 1, none));
  OK(mt_mse_loss(&y, e, e, MT_REDUCTION_MEAN));
  CHECK(y && y->ndim == 0 && isnan(val(y, 0)));
  mt_tensor_release(y);
  OK(mt_bce_loss(&y, e, e, NULL, MT_REDUCTION_SUM));
  CHECK(y && val(y, 0) == 0);
  mt_tensor_release(y);
  /* dtypes: float32 with int64 targets is float32; float32 with float64 is float64 */
  const double iv[4] = {1, 2, 3, 4};
  mt_tensor *xf = from_values(MT_FLOAT32, 1, n4, xv), *ti = from_values(MT_INT64, 1, n4, iv);
  OK(mt_mse_loss(&y, xf, ti, MT_REDUCTION_NONE));
  CHECK(y && y->dtype == MT_FLOAT32 && y->ndim == 1 && val(y, 0) == 1);
  mt_tensor_release(y);
  OK(mt_mse_loss(&y, xf, z, MT_REDUCTION_SUM));
  CHECK(y && y->dtype == MT_FLOAT64);
  mt_tensor_release(y);

  /* errors */
  const double bad[2] = {1.5, 0.5};
  const int64_t s23[2] = {2, 3}, n3[1] = {3};
  mt_tensor *b = from_values(MT_FLOAT32, 1, n2, bad), *m23 = NULL, *v3 = NULL, *w = NULL;
  OK(mt_zeros(&m23, MT_FLOAT32, 2, s23));
  OK(mt_zeros(&v3, MT_FLOAT32, 1, n3));
  OK(mt_full(&w, MT_FLOAT32, 1, n3, mt_scalar_float(1)));
  FAILS(mt_bce_loss(&y, b, q, NULL, MT_REDUCTION_MEAN), MT_EARG, "between 0 and 1");
  FAILS(mt_bce_loss(&y, m23, v3, NULL, MT_REDUCTION_MEAN), MT_ESHAPE,
        "target of shape [3] must have the input's shape [2, 3]");
  FAILS(mt_bce_with_logits(&y, m23, v3, NULL, NULL, MT_REDUCTION_MEAN), MT_ESHAPE, "must have the input's shape");
  FAILS(mt_bce_with_logits(&y, m23, m23, NULL, p, MT_REDUCTION_MEAN), MT_ESHAPE,
        "pos_weight of shape [2] cannot be broadcast to the input's shape [2, 3]");
  FAILS(mt_mse_loss(&y, m23, q, MT_REDUCTION_MEAN), MT_ESHAPE, "cannot be broadcast");
  FAILS(mt_mse_loss(&y, ti, ti, MT_REDUCTION_MEAN), MT_EDTYPE, "floating-point");
  FAILS(mt_smooth_l1_loss(&y, x, z, MT_REDUCTION_MEAN, -1), MT_EARG, "beta must be non-negative");
  FAILS(mt_mse_loss(&y, x, z, (mt_reduction)7), MT_EARG, "unknown reduction 7");
  OK(mt_requires_grad_(w, true));
  FAILS(mt_bce_loss(&y, m23, m23, w, MT_REDUCTION_MEAN), MT_EARG, "weight cannot require grad");
  mt_set_grad_enabled(false); /* without grad mode nothing is differentiated: allowed */
  OK(mt_bce_loss(&y, m23, m23, w, MT_REDUCTION_MEAN));
  mt_set_grad_enabled(true);
  mt_tensor_release(y);
  mt_tensor *all[] = {x, z, p, q, q2t, l, e, xf, ti, b, m23, v3, w};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_tensor_release(all[i]);
}

/* ---- nll_loss and cross_entropy ------------------------------------------------------------- */

typedef struct cls_ctx {
  bool ce;
  mt_tensor *target, *weight;
  int64_t ignore_index;
  double ls;
  mt_reduction red;
} cls_ctx;

static mt_status run_cls(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  cls_ctx *c = vctx;
  if (c->ce) return mt_cross_entropy(out, in[0], c->target, c->weight, c->ignore_index, c->ls, c->red);
  return mt_nll_loss(out, in[0], c->target, c->weight, c->ignore_index, c->red);
}

/* cross_entropy with probability targets, the target differentiated too */
static mt_status run_ce_prob(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  cls_ctx *c = vctx;
  return mt_cross_entropy(out, in[0], in[1], c->weight, -100, c->ls, c->red);
}

static void test_class_grad(void) {
  static const struct {
    const char *name;
    bool ce;
    int xdim, tdim;
    int64_t xs[4], ts[3];
    double tv[12];
    bool weight;
    int64_t ignore;
    double ls;
  } cases[] = {
      {"nll", false, 2, 1, {5, 4}, {5}, {1, 0, 3, 2, 2}, false, -100, 0},
      {"nll weight ignore", false, 2, 1, {5, 4}, {5}, {1, 0, 3, -100, 2}, true, -100, 0},
      {"nll 1-d", false, 1, 0, {4}, {0}, {2}, true, -100, 0},
      {"nll 4-d", false, 4, 3, {2, 3, 2, 2}, {2, 2, 2}, {0, 2, 1, 1, 2, 2, 0, 1}, true, 1, 0},
      {"nll 3-d", false, 3, 2, {2, 3, 2}, {2, 2}, {0, 2, 1, 0}, false, 0, 0},
      {"ce", true, 2, 1, {5, 4}, {5}, {1, 0, 3, 2, 2}, false, -100, 0},
      {"ce weight ignore", true, 2, 1, {5, 4}, {5}, {1, 0, 3, -100, 2}, true, -100, 0},
      {"ce smoothing", true, 2, 1, {5, 4}, {5}, {1, 0, 3, 2, 2}, false, -100, 0.1},
      {"ce smoothing weight ignore", true, 2, 1, {5, 4}, {5}, {1, 3, 3, 0, 2}, true, 3, 0.2},
      {"ce smoothing 1-d", true, 1, 0, {4}, {0}, {3}, true, -100, 0.3},
      {"ce smoothing 4-d", true, 4, 3, {2, 3, 2, 2}, {2, 2, 2}, {0, 2, 1, -1, 2, 2, 0, 1}, true, -1, 0.25},
      {"ce smoothing 1", true, 2, 1, {3, 4}, {3}, {0, 1, 2}, true, -100, 1.0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int r = 0; r < 3; r++) {
      const int64_t C = cases[i].xs[cases[i].xdim == 1 ? 0 : 1];
      cls_ctx c = {cases[i].ce, from_values(MT_INT64, cases[i].tdim, cases[i].ts, cases[i].tv),
                   cases[i].weight ? gc_tensor(1, &C, 0.3, 2, 90 + (int)i) : NULL, cases[i].ignore, cases[i].ls,
                   (mt_reduction)r};
      /* nll_loss takes log-probabilities: negative values */
      const double lo = cases[i].ce ? -2 : -3, hi = cases[i].ce ? 2 : -0.1;
      mt_tensor *x = gc_tensor(cases[i].xdim, cases[i].xs, lo, hi, (int)i * 3 + r);
      bool ok = x && gradcheck(cases[i].name, run_cls, &c, 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (%s, reduction %s)\n", cases[i].name, red_names[r]);
      mt_tensor_release(x), mt_tensor_release(c.target), mt_tensor_release(c.weight);
    }
  /* probability targets: the logits and the target both get gradients */
  const int64_t s54[2] = {5, 4}, c4[1] = {4}, s2322[4] = {2, 3, 2, 2}, c3[1] = {3};
  for (int r = 0; r < 3; r++)
    for (int k = 0; k < 3; k++) {
      const bool four = k == 2;
      cls_ctx c = {true, NULL, four ? gc_tensor(1, c3, 0.3, 2, 7) : k ? gc_tensor(1, c4, 0.3, 2, 5) : NULL, -100,
                   k ? 0.15 : 0, (mt_reduction)r};
      mt_tensor *in[2] = {gc_tensor(four ? 4 : 2, four ? s2322 : s54, -2, 2, 11 + r),
                          gc_tensor(four ? 4 : 2, four ? s2322 : s54, 0, 1, 21 + r)};
      bool ok = gradcheck("ce prob", run_ce_prob, &c, 2, in);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (ce prob %d, reduction %s)\n", k, red_names[r]);
      mt_tensor_release(in[0]), mt_tensor_release(in[1]), mt_tensor_release(c.weight);
    }
}

static void test_class_exact(void) {
  const int64_t s34[2] = {3, 4}, n3[1] = {3}, c4[1] = {4}, n0[2] = {0, 4}, e0[1] = {0};
  mt_tensor *x = pattern(MT_FLOAT64, 2, s34, 0.5, 0.2, 1, -2), *y = NULL;
  /* nll_loss picks -x[i, t_i]; the weighted mean divides by the weights picked */
  const double tv[3] = {1, 3, 0}, wv[4] = {0.5, 2, 1, 3}, allign[3] = {-100, -100, -100}, w0[4] = {0, 0, 1, 1};
  mt_tensor *t = from_values(MT_INT64, 1, n3, tv), *w = from_values(MT_FLOAT64, 1, c4, wv),
            *ign = from_values(MT_INT64, 1, n3, allign), *wz = from_values(MT_FLOAT64, 1, c4, w0);
  OK(mt_nll_loss(&y, x, t, w, -100, MT_REDUCTION_MEAN));
  const double want = -(2 * val(x, 1) + 3 * val(x, 7) + 0.5 * val(x, 8)) / 5.5;
  CHECK(y && y->ndim == 0 && fabs(val(y, 0) - want) < 1e-12);
  mt_tensor_release(y);
  OK(mt_nll_loss(&y, x, t, NULL, 3, MT_REDUCTION_NONE));
  CHECK(y && y->ndim == 1 && val(y, 1) == 0 && val(y, 2) == -val(x, 8));
  mt_tensor_release(y);
  /* everything ignored, or a total weight of 0: the mean is NaN (and so is its gradient
   * where weights are 0, as PyTorch's) */
  OK(mt_nll_loss(&y, x, ign, NULL, -100, MT_REDUCTION_MEAN));
  CHECK(y && isnan(val(y, 0)));
  mt_tensor_release(y);
  OK(mt_cross_entropy(&y, x, ign, w, -100, 0.2, MT_REDUCTION_MEAN));
  CHECK(y && isnan(val(y, 0)));
  mt_tensor_release(y);
  OK(mt_requires_grad_(x, true));
  const double t2[3] = {0, 1, 1};
  mt_tensor *tt = from_values(MT_INT64, 1, n3, t2);
  OK(mt_nll_loss(&y, x, tt, wz, -100, MT_REDUCTION_MEAN));
  CHECK(y && isnan(val(y, 0)));
  OK(mt_backward(y, NULL, false));
  CHECK(x->grad && isnan(val(x->grad, 0)) && val(x->grad, 2) == 0);
  mt_tensor_release(y), mt_set_grad(x, NULL), mt_requires_grad_(x, false);
  /* an empty batch: mean NaN, sum 0 */
  mt_tensor *ex = NULL, *et = NULL;
  OK(mt_zeros(&ex, MT_FLOAT32, 2, n0));
  OK(mt_zeros(&et, MT_INT64, 1, e0));
  OK(mt_cross_entropy(&y, ex, et, NULL, -100, 0, MT_REDUCTION_MEAN));
  CHECK(y && isnan(val(y, 0)));
  mt_tensor_release(y);
  OK(mt_cross_entropy(&y, ex, et, NULL, -100, 0.1, MT_REDUCTION_SUM));
  CHECK(y && val(y, 0) == 0);
  mt_tensor_release(y);
  /* int32 targets are accepted */
  mt_tensor *t32 = NULL;
  OK(mt_to_dtype(&t32, t, MT_INT32));
  OK(mt_cross_entropy(&y, x, t32, NULL, -100, 0, MT_REDUCTION_SUM));
  CHECK(y != NULL);
  mt_tensor_release(y);

  /* errors */
  const double oob[3] = {1, 4, 0}, neg[3] = {1, -5, 0}, fv[3] = {0, 1, 2};
  mt_tensor *to = from_values(MT_INT64, 1, n3, oob), *tn = from_values(MT_INT64, 1, n3, neg),
            *tf = from_values(MT_FLOAT32, 1, n3, fv), *w3 = NULL, *x0 = NULL, *t4 = NULL;
  OK(mt_zeros(&w3, MT_FLOAT64, 1, n3));
  OK(mt_zeros(&x0, MT_FLOAT64, 0, NULL));
  OK(mt_zeros(&t4, MT_INT64, 1, c4));
  FAILS(mt_nll_loss(&y, x, to, NULL, -100, MT_REDUCTION_MEAN), MT_EINDEX, "target 4 is out of bounds for 4 classes");
  FAILS(mt_cross_entropy(&y, x, tn, NULL, -100, 0, MT_REDUCTION_MEAN), MT_EINDEX, "target -5 is out of bounds");
  FAILS(mt_nll_loss(&y, x, t4, NULL, -100, MT_REDUCTION_MEAN), MT_ESHAPE,
        "expected a target of shape [3] for an input of shape [3, 4], got [4]");
  FAILS(mt_nll_loss(&y, x, tf, NULL, -100, MT_REDUCTION_MEAN), MT_EDTYPE, "class indices");
  FAILS(mt_cross_entropy(&y, x, tf, NULL, -100, 0, MT_REDUCTION_MEAN), MT_ESHAPE, "class probabilities");
  FAILS(mt_nll_loss(&y, x, t, w3, -100, MT_REDUCTION_MEAN), MT_ESHAPE, "one value per class (4)");
  FAILS(mt_cross_entropy(&y, x, t, NULL, -100, 1.5, MT_REDUCTION_MEAN), MT_EARG,
        "label_smoothing must be between 0 and 1");
  FAILS(mt_cross_entropy(&y, x0, t, NULL, -100, 0, MT_REDUCTION_MEAN), MT_ESHAPE, "0-dim");
  FAILS(mt_nll_loss(&y, t, t, NULL, -100, MT_REDUCTION_MEAN), MT_EDTYPE, "floating-point");
  OK(mt_requires_grad_(w, true));
  FAILS(mt_cross_entropy(&y, x, t, w, -100, 0.1, MT_REDUCTION_MEAN), MT_EARG, "weight cannot require grad");
  mt_tensor *all[] = {x, t, w, ign, wz, tt, ex, et, t32, to, tn, tf, w3, x0, t4};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_tensor_release(all[i]);
}

/* ---- PyTorch float32 parity ----------------------------------------------------------------- */

typedef struct pcase {
  const char *name;
  double want[3];
} pcase;

static const pcase parity[] = {
    {"mse", {1.00344026, -0.395367544, 0.395367544}},
    {"l1", {10.0530148, -1.32606971, 1.32606971}},
    {"smooth_l1", {0.609023392, -0.168193211, 0.168193211}},
    {"smooth_l1_none", {-1.29835406, -0.355090483, 0.355090483}},
    {"bce", {1.12243879, -0.937348003, 0.198492834}},
    {"bce_logits", {1.88423669, -0.155744125, 0.463796227}},
    {"bce_logits_none", {-1.16974988, -0.151860967, 1.91507057}},
    {"nll_weighted", {1.35611773, -0.511786377}},
    {"ce_plain", {1.1532253, -0.17205779}},
    {"ce_w_ign_ls", {1.39426851, -0.495030385}},
    {"ce_ign_ls_sum", {4.84085464, -1.11155212}},
    {"ce_w_ign_ls_none", {-0.754051197, 0.76011374}},
    {"ce_ign_ls_mean", {1.10378408, -0.284912402}},
    {"ce_4d", {2.10101318, -0.0809489246}},
    {"ce_prob", {1.45304477, -0.16290651}},
    {"ce_1d", {1.02311969, -0.308401326}},
};

static mt_tensor *leaf32(int ndim, const int64_t *sizes, double a, double b, double scale, double off, bool grad) {
  mt_tensor *t = pattern(MT_FLOAT32, ndim, sizes, a, b, scale, off);
  if (t && grad) mt_requires_grad_(t, true);
  return t;
}

/* S1 of y, backward with the cos weights, S2 of each input's gradient. */
static void check_parity(const pcase *pc, mt_tensor *y, int n, mt_tensor *const *ins) {
  if (!y) {
    CHECK(!"parity forward failed");
    return;
  }
  mt_tensor *gw = NULL;
  double s1 = 0;
  OK(mt_empty(&gw, MT_FLOAT32, y->ndim, y->sizes));
  for (int64_t i = 0; i < mt_numel(y); i++) {
    s1 += val(y, i) * (double)(float)cos(0.7 * (double)i);
    mt_set_flat(gw, i, mt_scalar_float(cos(0.7 * (double)i)));
  }
  bool ok = near(s1, pc->want[0], 2e-6);
  OK(mt_backward(y, gw, false));
  for (int k = 0; k < n; k++) {
    double s2 = 0;
    for (int64_t i = 0; ins[k]->grad && i < mt_numel(ins[k]); i++)
      s2 += val(ins[k]->grad, i) * (double)(float)sin(1.1 * (double)i);
    ok = ok && ins[k]->grad && near(s2, pc->want[1 + k], 2e-5);
  }
  CHECK(ok);
  if (!ok) fprintf(stderr, "  (PyTorch parity: %s)\n", pc->name);
  mt_tensor_release(gw);
}

static void test_parity(void) {
  const int64_t s34[2] = {3, 4}, n4[1] = {4}, s54[2] = {5, 4}, n5[1] = {5}, s2322[4] = {2, 3, 2, 2},
                s222[3] = {2, 2, 2}, n3[1] = {3};
  const double cwv[4] = {0.3, 1, 2, 0.9}, tgv[5] = {1, 0, 3, -100, 2}, tpv[5] = {1, 0, 3, 2, 2},
               t4v[8] = {0, 2, 1, -1, 2, 2, 0, 1}, w3v[3] = {0.5, 1.5, 1.2};
  mt_tensor *bw = leaf32(1, n4, 0.9, 0, 0.3, 1, false), *pw = leaf32(1, n4, 0.5, 0.5, 0.8, 1.2, false),
            *cw = from_values(MT_FLOAT32, 1, n4, cwv), *tg = from_values(MT_INT64, 1, n5, tgv),
            *tp = from_values(MT_INT64, 1, n5, tpv), *t4 = from_values(MT_INT64, 3, s222, t4v),
            *w3 = from_values(MT_FLOAT32, 1, n3, w3v), *y = NULL;
  for (size_t k = 0; k < sizeof parity / sizeof parity[0]; k++) {
    const pcase *pc = &parity[k];
    const char *nm = pc->name;
    mt_tensor *in[2] = {NULL, NULL};
    int n = 2;
    mt_status st = MT_EARG;
    if (!strncmp(nm, "bce", 3)) {
      in[0] = !strcmp(nm, "bce") ? leaf32(2, s34, 0.7, 0.3, 0.45, 0.5, true) : leaf32(2, s34, 0.7, 0.3, 3, 0, true);
      in[1] = leaf32(2, s34, 1.3, 0.1, 0.5, 0.5, true);
      if (!strcmp(nm, "bce")) st = mt_bce_loss(&y, in[0], in[1], bw, MT_REDUCTION_MEAN);
      else if (!strcmp(nm, "bce_logits")) st = mt_bce_with_logits(&y, in[0], in[1], bw, pw, MT_REDUCTION_MEAN);
      else st = mt_bce_with_logits(&y, in[0], in[1], NULL, NULL, MT_REDUCTION_NONE);
    } else if (strncmp(nm, "nll", 3) && strncmp(nm, "ce", 2)) {
      in[0] = leaf32(2, s34, 0.7, 0.3, 1.2, 0, true);
      in[1] = leaf32(2, s34, 1.3, 0.1, 0.9, 0, true);
      if (!strcmp(nm, "mse")) st = mt_mse_loss(&y, in[0], in[1], MT_REDUCTION_MEAN);
      else if (!strcmp(nm, "l1")) st = mt_l1_loss(&y, in[0], in[1], MT_REDUCTION_SUM);
      else if (!strcmp(nm, "smooth_l1")) st = mt_smooth_l1_loss(&y, in[0], in[1], MT_REDUCTION_MEAN, 0.5);
      else st = mt_smooth_l1_loss(&y, in[0], in[1], MT_REDUCTION_NONE, 0.5);
    } else {
      n = 1;
      in[0] = !strcmp(nm, "ce_4d") ? leaf32(4, s2322, 0.83, 0.4, 1.5, 0, true)
              : !strcmp(nm, "ce_1d") ? leaf32(1, n4, 0.61, 0.2, 2, 0, true)
                                     : leaf32(2, s54, 0.61, 0.2, 2, 0, true);
      if (!strcmp(nm, "nll_weighted")) {
        mt_tensor *lsm = NULL;
        OK(mt_log_softmax(&lsm, in[0], 1));
        st = mt_nll_loss(&y, lsm, tg, cw, -100, MT_REDUCTION_MEAN);
        mt_tensor_release(lsm);
      } else if (!strcmp(nm, "ce_plain")) {
        st = mt_cross_entropy(&y, in[0], tp, NULL, -100, 0, MT_REDUCTION_MEAN);
      } else if (!strcmp(nm, "ce_w_ign_ls")) {
        st = mt_cross_entropy(&y, in[0], tg, cw, -100, 0.1, MT_REDUCTION_MEAN);
      } else if (!strcmp(nm, "ce_ign_ls_sum")) {
        st = mt_cross_entropy(&y, in[0], tg, NULL, -100, 0.25, MT_REDUCTION_SUM);
      } else if (!strcmp(nm, "ce_w_ign_ls_none")) {
        st = mt_cross_entropy(&y, in[0], tg, cw, -100, 0.3, MT_REDUCTION_NONE);
      } else if (!strcmp(nm, "ce_ign_ls_mean")) {
        st = mt_cross_entropy(&y, in[0], tg, NULL, -100, 0.1, MT_REDUCTION_MEAN);
      } else if (!strcmp(nm, "ce_4d")) {
        st = mt_cross_entropy(&y, in[0], t4, w3, -1, 0.2, MT_REDUCTION_MEAN);
      } else if (!strcmp(nm, "ce_prob")) {
        mt_tensor *raw = leaf32(2, s54, 1.7, 0.9, 1, 0, false), *prob = NULL;
        OK(mt_softmax(&prob, raw, 1));
        st = mt_cross_entropy(&y, in[0], prob, cw, -100, 0.15, MT_REDUCTION_MEAN);
        mt_tensor_release(raw), mt_tensor_release(prob);
      } else {
        mt_tensor *two = NULL;
        OK(mt_scalar_tensor(&two, MT_INT64, mt_scalar_int(2)));
        st = mt_cross_entropy(&y, in[0], two, NULL, -100, 0.1, MT_REDUCTION_MEAN);
        mt_tensor_release(two);
      }
    }
    OK(st);
    check_parity(pc, y, n, in);
    mt_tensor_release(y), y = NULL;
    mt_tensor_release(in[0]), mt_tensor_release(in[1]);
  }
  mt_tensor *all[] = {bw, pw, cw, tg, tp, t4, w3};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mt_tensor_release(all[i]);
}

/* ---- node names, and nothing recorded without grad ------------------------------------------ */

static void test_names(void) {
  const int64_t s34[2] = {3, 4}, s3422[4] = {3, 4, 2, 2}, s322[3] = {3, 2, 2}, n3[1] = {3};
  const double tv[3] = {0, 3, 1};
  mt_tensor *x = pattern(MT_FLOAT32, 2, s34, 0.4, 0.1, 0.3, 0.5), *x4 = pattern(MT_FLOAT32, 4, s3422, 0.4, 0.1, 1, 0),
            *t = from_values(MT_INT64, 1, n3, tv), *t4 = NULL, *y = NULL;
  OK(mt_zeros(&t4, MT_INT64, 3, s322));
  mt_requires_grad_(x, true), mt_requires_grad_(x4, true);
  static const char *const names[] = {"MseLossBackward0", "MeanBackward0", "SumBackward0", "AbsBackward0",
                                      "SmoothL1LossBackward0", "BinaryCrossEntropyBackward0",
                                      "BinaryCrossEntropyWithLogitsBackward0", "NllLossBackward0",
                                      "NllLoss2DBackward0", "NllLossBackward0", "AddBackward0"};
  for (int grad = 1; grad >= 0; grad--) {
    mt_set_grad_enabled(grad);
    for (int k = 0; k < 11; k++) {
      mt_status st = MT_EARG;
      switch (k) {
      case 0: st = mt_mse_loss(&y, x, x, MT_REDUCTION_MEAN); break;
      case 1: st = mt_l1_loss(&y, x, x, MT_REDUCTION_MEAN); break;
      case 2: st = mt_l1_loss(&y, x, x, MT_REDUCTION_SUM); break;
      case 3: st = mt_l1_loss(&y, x, x, MT_REDUCTION_NONE); break;
      case 4: st = mt_smooth_l1_loss(&y, x, x, MT_REDUCTION_MEAN, 1); break;
      case 5: st = mt_bce_loss(&y, x, x, NULL, MT_REDUCTION_MEAN); break;
      case 6: st = mt_bce_with_logits(&y, x, x, NULL, NULL, MT_REDUCTION_MEAN); break;
      case 7: st = mt_nll_loss(&y, x, t, NULL, -100, MT_REDUCTION_MEAN); break;
      case 8: st = mt_nll_loss(&y, x4, t4, NULL, -100, MT_REDUCTION_MEAN); break;
      case 9: st = mt_cross_entropy(&y, x, t, NULL, -100, 0, MT_REDUCTION_MEAN); break;
      case 10: st = mt_cross_entropy(&y, x, t, NULL, -100, 0.1, MT_REDUCTION_MEAN); break;
      }
      OK(st);
      if (grad) CHECK(y && y->grad_fn && !strcmp(mt_node_name(y->grad_fn), names[k]));
      else CHECK(y && !y->grad_fn && !y->requires_grad);
      mt_tensor_release(y), y = NULL;
    }
  }
  mt_set_grad_enabled(true);
  /* a cross entropy's graph runs through log_softmax */
  OK(mt_cross_entropy(&y, x, t, NULL, -100, 0, MT_REDUCTION_MEAN));
  CHECK(y && mt_node_num_next(y->grad_fn) == 1 && mt_node_next(y->grad_fn, 0) &&
        !strcmp(mt_node_name(mt_node_next(y->grad_fn, 0)), "LogSoftmaxBackward0"));
  mt_tensor_release(y);
  mt_tensor_release(x), mt_tensor_release(x4), mt_tensor_release(t), mt_tensor_release(t4);
}

int main(void) {
  test_pointwise_grad();
  test_pointwise_exact();
  test_class_grad();
  test_class_exact();
  test_parity();
  test_names();
  return mt_test_finish("test_nn_loss");
}
