/* test_nn_layers.c — batch_norm, layer_norm, embedding, dropout, leaky_relu, gelu and silu:
 * backward against finite differences (float64) for every option, in tables; float32
 * forward and gradients against PyTorch 1.13; running statistics, dropout masks from a seed,
 * node names and error statuses.
 *
 * The PyTorch constants come from this script (inputs are sin() patterns both sides build
 * the same way; S1 = sum(y_i cos(0.7 i)) is also the backward objective, S2 = sum(grad_i
 * sin(1.1 i)) per input):
 *   def S(n, a, b, scale, off): [off + scale * sin(i * a + b) for i in range(n)]  (float32)
 *   bn_train: x = S(48, .37, .1, 2) as [4, 3, 2, 2], w = [.5, 1.5, -1], b = [.1, -.2, .3],
 *             rm = [0, .5, -.5], rv = [1, 2, .5]; F.batch_norm(x, rm, rv, w, b, True, .1, 1e-5)
 *   bn_eval: the same in evaluation mode (running stats as bn_train left them)
 *   bn_2d_plain: x = S(15, .81, .3, 1.5, .2) as [5, 3], no weight/bias/running stats
 *   ln_affine: x = S(24, .53, .2, 1.7) as [3, 2, 4], w = S(8, 1, 0, .1, 1), b = S(8, .6, .4, .05)
 *   ln_plain: x = S(20, .77, .9, 2.5) as [4, 5], normalized_shape [5]
 *   embedding: w = S(15, .45, .3) as [5, 3], ids [[0, 2, 4], [2, 2, 1]], padding_idx 2
 *   activations: x = S(12, .9, .2, 3); leaky_relu with slope 0.2
 *   dropout: torch.manual_seed(123); F.dropout(torch.ones(4, 5), 0.3)
 *   dropout2d: torch.manual_seed(7); F.dropout2d(torch.ones(2, 3, 2, 2), 0.5)[:, :, 0, 0] */
#include "gradcheck.h"

/* off + scale * sin(i a + b), in logical order. */
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

/* ---- batch_norm ----------------------------------------------------------------------------- */

typedef struct bn_ctx {
  bool weight, bias, training;
  mt_tensor *rm, *rv; /* running statistics (not differentiated), or NULL */
} bn_ctx;

static mt_status run_bn(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  bn_ctx *c = vctx;
  int k = 1;
  const mt_tensor *w = c->weight ? in[k++] : NULL, *b = c->bias ? in[k++] : NULL;
  return mt_batch_norm(out, in[0], w, b, c->rm, c->rv, c->training, 0.1, 1e-5);
}

static void test_batch_norm_grad(void) {
  static const struct {
    shape s;
    bool weight, bias, training, running;
  } cases[] = {
      {SH(2, 5, 3), true, true, true, true},
      {SH(2, 4, 2), false, false, true, false},
      {SH(3, 2, 3, 4), true, false, true, true},
      {SH(3, 2, 3, 4), false, true, true, false},
      {SH(4, 2, 3, 2, 2), true, true, true, true},
      {SHT(2, 3, 4, 2, 3, 2, 3), true, true, true, false}, /* non-contiguous */
      {SHT(0, 1, 4, 1, 2, 3, 2), true, true, true, true},  /* non-contiguous, batch of one */
      {SH(2, 5, 3), true, true, false, true},             /* evaluation */
      {SH(3, 2, 3, 4), false, false, false, true},
      {SHT(2, 3, 4, 2, 3, 2, 3), true, true, false, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const int64_t C = cases[i].s.sizes[1];
    bn_ctx c = {cases[i].weight, cases[i].bias, cases[i].training, NULL, NULL};
    if (cases[i].running) {
      c.rm = gc_tensor(1, &C, -0.5, 0.5, 100 + (int)i);
      c.rv = gc_tensor(1, &C, 0.5, 2.0, 200 + (int)i);
    }
    mt_tensor *in[3] = {make_input(&cases[i].s, -2, 2, (int)i)};
    int n = 1;
    if (c.weight) in[n++] = gc_tensor(1, &C, 0.5, 1.5, 300 + (int)i);
    if (c.bias) in[n++] = gc_tensor(1, &C, -1, 1, 400 + (int)i);
    bool ok = in[0] && gradcheck("batch_norm", run_bn, &c, n, in);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (batch_norm case %zu)\n", i);
    for (int k = 0; k < n; k++) mt_tensor_release(in[k]);
    mt_tensor_release(c.rm), mt_tensor_release(c.rv);
  }
}

static void test_batch_norm_running(void) {
  /* float64, by hand: channel c of [3, 2] holds x[:, c]; momentum 0.25 */
  const int64_t xs[2] = {3, 2}, cs[1] = {2};
  const double xv[6] = {1, 10, 2, 20, 4, 60}, rm0[2] = {0.5, -1}, rv0[2] = {2, 3};
  mt_tensor *x = from_values(MT_FLOAT64, 2, xs, xv), *rm = from_values(MT_FLOAT64, 1, cs, rm0),
            *rv = from_values(MT_FLOAT64, 1, cs, rv0), *y = NULL;
  uint32_t v0 = mt_tensor_version(rm), v1 = mt_tensor_version(rv);
  OK(mt_requires_grad_(x, true));
  OK(mt_batch_norm(&y, x, NULL, NULL, rm, rv, true, 0.25, 0));
  const double mean[2] = {7.0 / 3, 30}, uvar[2] = {7.0 / 3, 700}; /* unbiased: sum sq dev / 2 */
  for (int c = 0; c < 2; c++) {
    CHECK_NEAR(val(rm, c), 0.75 * rm0[c] + 0.25 * mean[c], 1e-12);
    CHECK_NEAR(val(rv, c), 0.75 * rv0[c] + 0.25 * uvar[c], 1e-9);
  }
  /* normalised with the biased variance */
  CHECK_NEAR(val(y, 0), (1 - mean[0]) / sqrt(uvar[0] * 2 / 3), 1e-12);
  CHECK(mt_tensor_version(rm) != v0 && mt_tensor_version(rv) != v1);
  CHECK(!rm->requires_grad && !rm->grad_fn && !rv->requires_grad);
  CHECK(y && y->grad_fn && !strcmp(mt_node_name(y->grad_fn), "NativeBatchNormBackward0"));
  mt_tensor_release(y), y = NULL;

  /* evaluation: running stats used, left alone */
  v0 = mt_tensor_version(rm);
  double rm1 = val(rm, 1), rv1 = val(rv, 1);
  OK(mt_batch_norm(&y, x, NULL, NULL, rm, rv, false, 0.25, 1e-5));
  CHECK_NEAR(val(y, 1), (10 - rm1) / sqrt(rv1 + 1e-5), 1e-12);
  CHECK(mt_tensor_version(rm) == v0);
  mt_tensor_release(y), y = NULL;

  /* an empty batch: empty output, running stats untouched */
  const int64_t es[3] = {0, 2, 4};
  mt_tensor *e = NULL;
  OK(mt_zeros(&e, MT_FLOAT64, 3, es));
  OK(mt_batch_norm(&y, e, NULL, NULL, rm, rv, true, 0.25, 1e-5));
  CHECK(y && y->ndim == 3 && mt_numel(y) == 0 && val(rm, 1) == rm1);
  mt_tensor_release(y), y = NULL;

  /* errors */
  const int64_t one[2] = {1, 2}, c3[1] = {3};
  mt_tensor *x1 = NULL, *w3 = NULL, *xi = NULL;
  OK(mt_zeros(&x1, MT_FLOAT64, 2, one));
  OK(mt_zeros(&w3, MT_FLOAT64, 1, c3));
  OK(mt_zeros(&xi, MT_INT64, 2, xs));
  FAILS(mt_batch_norm(&y, x1, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), MT_EARG, "more than 1 value per channel");
  FAILS(mt_batch_norm(&y, x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5), MT_EARG, "evaluation mode");
  FAILS(mt_batch_norm(&y, x, w3, NULL, NULL, NULL, true, 0.1, 1e-5), MT_ESHAPE, "weight should have shape [2]");
  FAILS(mt_batch_norm(&y, x, NULL, NULL, rm, NULL, true, 0.1, 1e-5), MT_EARG, "together");
  FAILS(mt_batch_norm(&y, xi, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), MT_EDTYPE, "int64");
  FAILS(mt_batch_norm(&y, w3, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), MT_ESHAPE, "at least 2 dims");
  OK(mt_requires_grad_(rm, true));
  FAILS(mt_batch_norm(&y, x, NULL, NULL, rm, rv, true, 0.1, 1e-5), MT_EARG, "must not require grad");
  mt_tensor_release(x), mt_tensor_release(rm), mt_tensor_release(rv), mt_tensor_release(e);
  mt_tensor_release(x1), mt_tensor_release(w3), mt_tensor_release(xi);
}

/* ---- layer_norm ----------------------------------------------------------------------------- */

typedef struct ln_ctx {
  int nshape;
  int64_t shape[3];
  bool weight, bias;
} ln_ctx;

static mt_status run_ln(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  ln_ctx *c = vctx;
  int k = 1;
  const mt_tensor *w = c->weight ? in[k++] : NULL, *b = c->bias ? in[k++] : NULL;
  return mt_layer_norm(out, in[0], c->nshape, c->shape, w, b, 1e-5);
}

static void test_layer_norm(void) {
  static const struct {
    shape s;
    int nshape;
    bool weight, bias;
  } cases[] = {
      {SH(2, 3, 5), 1, true, true},     {SH(2, 3, 5), 1, false, false}, {SH(3, 2, 3, 4), 2, true, false},
      {SH(3, 2, 3, 4), 1, false, true}, {SH(1, 6), 1, true, true},       {SH(3, 2, 3, 4), 3, true, true},
      {SHT(1, 2, 3, 2, 4, 3), 1, true, true},                             /* non-contiguous */
      {SHT(0, 3, 4, 2, 2, 3, 3), 2, true, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ln_ctx c = {cases[i].nshape, {0}, cases[i].weight, cases[i].bias};
    const int lead = cases[i].s.ndim - c.nshape;
    memcpy(c.shape, cases[i].s.sizes + lead, (size_t)c.nshape * sizeof(int64_t));
    mt_tensor *in[3] = {make_input(&cases[i].s, -2, 2, (int)i)};
    int n = 1;
    if (c.weight) in[n++] = gc_tensor(c.nshape, c.shape, 0.5, 1.5, 50 + (int)i);
    if (c.bias) in[n++] = gc_tensor(c.nshape, c.shape, -1, 1, 60 + (int)i);
    bool ok = in[0] && gradcheck("layer_norm", run_ln, &c, n, in);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (layer_norm case %zu)\n", i);
    for (int k = 0; k < n; k++) mt_tensor_release(in[k]);
  }
  /* the result is normalised: mean 0, biased variance 1 (eps 0) */
  const int64_t s[2] = {2, 4}, n4[1] = {4}, n3[1] = {3};
  mt_tensor *x = pattern(MT_FLOAT64, 2, s, 0.9, 0.1, 3, 1), *y = NULL, *w = NULL;
  OK(mt_layer_norm(&y, x, 1, n4, NULL, NULL, 0));
  double m = 0, v = 0;
  for (int j = 0; j < 4; j++) m += val(y, j) / 4;
  for (int j = 0; j < 4; j++) v += (val(y, j) - m) * (val(y, j) - m) / 4;
  CHECK_NEAR(m, 0, 1e-12);
  CHECK_NEAR(v, 1, 1e-12);
  mt_tensor_release(y);
  OK(mt_zeros(&w, MT_FLOAT64, 1, n3));
  FAILS(mt_layer_norm(&y, x, 1, n3, NULL, NULL, 1e-5), MT_ESHAPE, "expected an input of shape [*, 3], got [2, 4]");
  FAILS(mt_layer_norm(&y, x, 1, n4, w, NULL, 1e-5), MT_ESHAPE, "expected weight of shape [4]");
  FAILS(mt_layer_norm(&y, x, 0, n4, NULL, NULL, 1e-5), MT_EARG, "normalized_shape");
  mt_tensor_release(x), mt_tensor_release(w);
}

/* ---- embedding ------------------------------------------------------------------------------ */

typedef struct emb_ctx {
  mt_tensor *ids;
  int64_t padding_idx;
} emb_ctx;

/* The padding row's gradient is 0 by definition, not by calculus: the rows it fills are
 * multiplied by 0 here so that finite differences agree (test_embedding checks the padding
 * row's gradient directly). */
static mt_status run_emb(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  emb_ctx *c = vctx;
  mt_tensor *y, *pad = NULL, *keep = NULL, *k3 = NULL;
  mt_status st = mt_embedding(&y, in[0], c->ids, c->padding_idx);
  if (st || c->padding_idx < 0) return st ? st : (*out = y, MT_OK);
  if (!(st = mt_wrap_number(&pad, mt_scalar_int(c->padding_idx))) && !(st = mt_binary(&keep, MT_NE, c->ids, pad)) &&
      !(st = mt_unsqueeze(&k3, keep, -1)))
    st = mt_binary(out, MT_MUL, y, k3);
  mt_tensor_release(y), mt_tensor_release(pad), mt_tensor_release(keep), mt_tensor_release(k3);
  return st;
}

static void test_embedding(void) {
  static const struct {
    int ndim;
    int64_t sizes[2];
    double ids[6];
    int64_t padding_idx;
    mt_dtype dt;
  } cases[] = {
      {1, {4}, {0, 3, 3, 1}, -1, MT_INT64},
      {2, {2, 3}, {0, 2, 4, 2, 2, 1}, 2, MT_INT64}, /* repeats, padding */
      {2, {3, 2}, {4, 4, 0, 1, 3, 4}, 4, MT_INT32},
      {0, {0}, {3}, -1, MT_INT64},                   /* one id: a [dim] result */
  };
  const int64_t ws[2] = {5, 3};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    emb_ctx c = {from_values(cases[i].dt, cases[i].ndim, cases[i].sizes, cases[i].ids), cases[i].padding_idx};
    mt_tensor *w = gc_tensor(2, ws, -1, 1, (int)i);
    CHECK(gradcheck("embedding", run_emb, &c, 1, &w));
    /* the padding row gets exactly no gradient */
    if (c.padding_idx >= 0) {
      mt_tensor *y = NULL, *ones = NULL;
      OK(mt_requires_grad_(w, true));
      OK(mt_embedding(&y, w, c.ids, c.padding_idx));
      OK(mt_full(&ones, MT_FLOAT64, y->ndim, y->sizes, mt_scalar_float(1)));
      OK(mt_backward(y, ones, false));
      for (int j = 0; j < 3; j++) CHECK(val(w->grad, c.padding_idx * 3 + j) == 0);
      mt_tensor_release(y), mt_tensor_release(ones);
    }
    mt_tensor_release(w), mt_tensor_release(c.ids);
  }
  /* non-contiguous weight: rows of the transpose */
  const int64_t ts[2] = {3, 5}, is[1] = {2};
  const double iv[2] = {4, 1};
  mt_tensor *base = pattern(MT_FLOAT32, 2, ts, 0.3, 0, 1, 0), *wt = NULL, *ids = from_values(MT_INT64, 1, is, iv),
            *y = NULL;
  OK(mt_transpose(&wt, base, 0, 1));
  OK(mt_embedding(&y, wt, ids, -1));
  CHECK(y && y->ndim == 2 && y->sizes[0] == 2 && y->sizes[1] == 3 && y->dtype == MT_FLOAT32);
  if (y) CHECK(val(y, 1) == val(base, 5 + 4) && val(y, 3) == val(base, 1));
  mt_tensor_release(y);
  /* errors */
  const double bad[2] = {5, -1};
  const int64_t one[1] = {1};
  mt_tensor *b1 = from_values(MT_INT64, 1, one, bad), *b2 = from_values(MT_INT64, 1, one, bad + 1),
            *bf = from_values(MT_FLOAT32, 1, is, iv);
  FAILS(mt_embedding(&y, wt, b1, -1), MT_EINDEX, "index 5 is out of range for 5 embeddings");
  FAILS(mt_embedding(&y, wt, b2, -1), MT_EINDEX, "index -1 is out of range");
  FAILS(mt_embedding(&y, wt, bf, -1), MT_EDTYPE, "int64 or int32");
  FAILS(mt_embedding(&y, wt, ids, 5), MT_EINDEX, "padding_idx 5 is out of range");
  FAILS(mt_embedding(&y, ids, ids, -1), MT_ESHAPE, "2-D");
  mt_tensor_release(base), mt_tensor_release(wt), mt_tensor_release(ids);
  mt_tensor_release(b1), mt_tensor_release(b2), mt_tensor_release(bf);
}

/* ---- dropout -------------------------------------------------------------------------------- */

typedef struct drop_ctx {
  double p;
  bool training, channelwise;
  mt_generator *g;
} drop_ctx;

static mt_status run_drop(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  drop_ctx *c = vctx;
  mt_manual_seed(c->g, 42); /* the same mask on every call */
  return mt_dropout(out, in[0], c->p, c->training, c->channelwise, c->g);
}

static void test_dropout(void) {
  mt_generator *g = NULL;
  OK(mt_generator_new(&g, 1));
  static const struct {
    shape s;
    double p;
    bool training, channelwise;
  } cases[] = {
      {SH(2, 4, 5), 0.3, true, false},  {SH(4, 2, 3, 2, 2), 0.5, true, true}, /* elementwise, channels */
      {SHT(1, 2, 3, 2, 4, 3), 0.4, true, false},                              /* non-contiguous */
      {SH(2, 4, 5), 1.0, true, false},  {SH(2, 4, 5), 0.3, false, false},    /* p = 1; evaluation */
      {SH(2, 4, 5), 0.0, true, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    drop_ctx c = {cases[i].p, cases[i].training, cases[i].channelwise, g};
    mt_tensor *x = make_input(&cases[i].s, -2, 2, (int)i);
    bool ok = x && gradcheck("dropout", run_drop, &c, 1, &x);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (dropout case %zu)\n", i);
    mt_tensor_release(x);
  }

  /* PyTorch's masks for the same seeds */
  static const double want[20] = {1.42857146, 1.42857146, 1.42857146, 1.42857146, 1.42857146, 1.42857146, 1.42857146,
                                  1.42857146, 0, 1.42857146, 0, 1.42857146, 1.42857146, 1.42857146,
                                  1.42857146, 1.42857146, 0, 1.42857146, 1.42857146, 1.42857146};
  const int64_t s45[2] = {4, 5}, s4d[4] = {2, 3, 2, 2};
  mt_tensor *ones = NULL, *y = NULL, *y2 = NULL;
  OK(mt_full(&ones, MT_FLOAT32, 2, s45, mt_scalar_float(1)));
  mt_manual_seed(g, 123);
  OK(mt_dropout(&y, ones, 0.3, true, false, g));
  bool same = y != NULL;
  for (int i = 0; same && i < 20; i++) same = fabs(val(y, i) - want[i]) < 1e-6;
  CHECK(same);
  mt_tensor_release(y), mt_tensor_release(ones);
  static const double want2d[6] = {2, 2, 0, 0, 0, 0};
  OK(mt_full(&ones, MT_FLOAT32, 4, s4d, mt_scalar_float(1)));
  mt_manual_seed(g, 7);
  OK(mt_dropout(&y, ones, 0.5, true, true, g));
  same = y != NULL;
  for (int i = 0; same && i < 24; i++) same = val(y, i) == want2d[i / 4]; /* whole [N, C] planes */
  CHECK(same);
  mt_tensor_release(y), mt_tensor_release(ones);

  /* the default generator follows mt_manual_seed(NULL, ...) the same way */
  const int64_t big[1] = {10000};
  OK(mt_full(&ones, MT_FLOAT64, 1, big, mt_scalar_float(1)));
  mt_manual_seed(NULL, 5);
  OK(mt_dropout(&y, ones, 0.3, true, false, NULL));
  mt_manual_seed(NULL, 5);
  OK(mt_dropout(&y2, ones, 0.3, true, false, NULL));
  int64_t zeros = 0, equal = 0;
  for (int64_t i = 0; y && y2 && i < big[0]; i++) {
    zeros += val(y, i) == 0;
    equal += val(y, i) == val(y2, i);
    if (val(y, i) != 0) CHECK_NEAR(val(y, i), 1 / 0.7, 1e-12);
  }
  CHECK(equal == big[0]);
  CHECK(zeros > 2800 && zeros < 3200);
  mt_tensor_release(y), mt_tensor_release(y2);

  /* identity cases hand back the input itself; p = 1 multiplies by 0 */
  OK(mt_dropout(&y, ones, 0.3, false, false, g));
  CHECK(y == ones);
  mt_tensor_release(y);
  OK(mt_dropout(&y, ones, 1.0, true, false, g));
  CHECK(y && val(y, 17) == 0 && y != ones);
  mt_tensor_release(y);

  mt_tensor *xi = NULL, *x1 = NULL;
  OK(mt_zeros(&xi, MT_INT64, 1, big));
  OK(mt_zeros(&x1, MT_FLOAT32, 1, big));
  FAILS(mt_dropout(&y, ones, 1.5, true, false, g), MT_EARG, "between 0 and 1, but got 1.5");
  FAILS(mt_dropout(&y, ones, -0.1, true, false, g), MT_EARG, "between 0 and 1");
  FAILS(mt_dropout(&y, xi, 0.5, true, false, g), MT_EDTYPE, "floating-point");
  FAILS(mt_dropout(&y, x1, 0.5, true, true, g), MT_ESHAPE, "at least 2 dims");
  mt_tensor_release(xi), mt_tensor_release(x1), mt_tensor_release(ones);
  mt_generator_free(g);
}

/* ---- activations ---------------------------------------------------------------------------- */

typedef enum { LEAKY, GELU, GELU_TANH, SILU } act;

typedef struct act_ctx {
  act op;
  double slope;
} act_ctx;

static mt_status run_act(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  act_ctx *c = vctx;
  switch (c->op) {
  case LEAKY: return mt_leaky_relu(out, in[0], c->slope);
  case GELU: return mt_gelu(out, in[0], false);
  case GELU_TANH: return mt_gelu(out, in[0], true);
  case SILU: return mt_silu(out, in[0]);
  }
  return MT_EARG;
}

static void test_activations(void) {
  static const act_ctx ops[] = {{LEAKY, 0.01}, {LEAKY, 0.2}, {LEAKY, -0.5}, {GELU, 0}, {GELU_TANH, 0}, {SILU, 0}};
  static const shape shapes[] = {SH(1, 7), SH(2, 3, 4), SHT(0, 2, 3, 2, 3, 4), SH(0, 0)};
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      act_ctx c = ops[o];
      mt_tensor *x = make_input(&shapes[s], -4, 4, (int)(o * 7 + s));
      bool ok = x && gradcheck("activation", run_act, &c, 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (activation %zu, shape %zu)\n", o, s);
      mt_tensor_release(x);
    }
  /* large magnitudes stay finite; float16 runs through float32 */
  const double xv[4] = {-100, -30, 30, 100};
  const int64_t n4[1] = {4};
  mt_tensor *x = from_values(MT_FLOAT32, 1, n4, xv), *h = NULL, *y = NULL;
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
    OK(run_act(&y, &x, (void *)&ops[o]));
    for (int i = 0; y && i < 4; i++) CHECK(isfinite(val(y, i)));
    mt_tensor_release(y), y = NULL;
  }
  OK(mt_to_dtype(&h, x, MT_FLOAT16));
  OK(mt_silu(&y, h));
  CHECK(y && y->dtype == MT_FLOAT16 && val(y, 3) == 100 && val(y, 0) == 0);
  mt_tensor_release(y), mt_tensor_release(h), mt_tensor_release(x);
  mt_tensor *xi = NULL;
  OK(mt_zeros(&xi, MT_INT64, 1, n4));
  FAILS(mt_gelu(&y, xi, false), MT_EDTYPE, "floating-point");
  FAILS(mt_leaky_relu(&y, xi, 0.1), MT_EDTYPE, "int64");
  mt_tensor_release(xi);
}

/* ---- PyTorch float32 parity ----------------------------------------------------------------- */

typedef struct pcase {
  const char *name;
  double want[16];
} pcase;

static const pcase parity[] = {
    {"bn_train", {4.93976816, -0.581993013, -5.97937524, 0.256463356}},
    {"bn_train_running", {0.0255839713, 0.467557102, -0.472400099, 1.1223408, 1.9996959, 0.662350357}},
    {"bn_eval", {9.35893538, -0.713726352, -7.85975812, 0.256463356}},
    {"bn_2d_plain", {9.05114199, 0.805264808}},
    {"ln_affine", {-4.54919152, 4.58361194, -0.375572649, 4.79472408}},
    {"ln_plain", {12.3247364, 1.21626357}},
    {"embedding", {3.12158703, 1, 0.764842212, 0.169967145, -0.475536942, 0.203004867, 0.786070287, 0, 0, 0, 0, 0,
                   0, -0.49026081, 0.186512366, 0.775565863}},
    {"gelu", {7.98094403, 0.286655925}},
    {"gelu_tanh", {7.98182646, 0.286527677}},
    {"silu", {7.85115659, 0.38511928}},
    {"leaky_relu", {9.1997451, 0.592395034}},
};

static const double *want_of(const char *name) {
  for (size_t i = 0; i < sizeof parity / sizeof parity[0]; i++)
    if (!strcmp(parity[i].name, name)) return parity[i].want;
  return NULL;
}

/* S1 of y, backward with the cos weights, S2 of each input's gradient; compared with want. */
static void check_parity(const char *name, mt_tensor *y, int n, mt_tensor *const *ins) {
  const double *want = want_of(name);
  if (!y || !want) {
    CHECK(!"parity case missing");
    return;
  }
  mt_tensor *gw = NULL;
  double s1 = 0;
  OK(mt_empty(&gw, MT_FLOAT32, y->ndim, y->sizes));
  for (int64_t i = 0; i < mt_numel(y); i++) {
    s1 += val(y, i) * (double)(float)cos(0.7 * (double)i);
    mt_set_flat(gw, i, mt_scalar_float(cos(0.7 * (double)i)));
  }
  bool ok = near(s1, want[0], 2e-6);
  OK(mt_backward(y, gw, false));
  for (int k = 0; k < n; k++) {
    double s2 = 0;
    for (int64_t i = 0; ins[k]->grad && i < mt_numel(ins[k]); i++)
      s2 += val(ins[k]->grad, i) * (double)(float)sin(1.1 * (double)i);
    ok = ok && ins[k]->grad && near(s2, want[1 + k], 2e-5);
  }
  CHECK(ok);
  if (!ok) fprintf(stderr, "  (PyTorch parity: %s)\n", name);
  mt_tensor_release(gw);
}

static mt_tensor *leaf32(int ndim, const int64_t *sizes, double a, double b, double scale, double off) {
  mt_tensor *t = pattern(MT_FLOAT32, ndim, sizes, a, b, scale, off);
  if (t) mt_requires_grad_(t, true);
  return t;
}

static void test_parity(void) {
  const int64_t xs[4] = {4, 3, 2, 2}, c3[1] = {3};
  const double wv[3] = {0.5, 1.5, -1.0}, bv[3] = {0.1, -0.2, 0.3}, rm0[3] = {0, 0.5, -0.5}, rv0[3] = {1, 2, 0.5};
  mt_tensor *rm = from_values(MT_FLOAT32, 1, c3, rm0), *rv = from_values(MT_FLOAT32, 1, c3, rv0), *y = NULL;
  for (int training = 1; training >= 0; training--) {
    mt_tensor *in[3] = {leaf32(4, xs, 0.37, 0.1, 2, 0), from_values(MT_FLOAT32, 1, c3, wv),
                        from_values(MT_FLOAT32, 1, c3, bv)};
    mt_requires_grad_(in[1], true), mt_requires_grad_(in[2], true);
    OK(mt_batch_norm(&y, in[0], in[1], in[2], rm, rv, training, 0.1, 1e-5));
    check_parity(training ? "bn_train" : "bn_eval", y, 3, in);
    if (training) {
      const double *want = want_of("bn_train_running");
      for (int c = 0; c < 3; c++) CHECK(near(val(rm, c), want[c], 1e-6) && near(val(rv, c), want[3 + c], 1e-6));
    }
    mt_tensor_release(y), y = NULL;
    for (int k = 0; k < 3; k++) mt_tensor_release(in[k]);
  }
  mt_tensor_release(rm), mt_tensor_release(rv);

  const int64_t s53[2] = {5, 3};
  mt_tensor *x = leaf32(2, s53, 0.81, 0.3, 1.5, 0.2);
  OK(mt_batch_norm(&y, x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
  check_parity("bn_2d_plain", y, 1, &x);
  mt_tensor_release(y), mt_tensor_release(x);

  const int64_t s324[3] = {3, 2, 4}, s24[2] = {2, 4}, s45[2] = {4, 5}, n5[1] = {5};
  mt_tensor *ln[3] = {leaf32(3, s324, 0.53, 0.2, 1.7, 0), leaf32(2, s24, 1, 0, 0.1, 1),
                      leaf32(2, s24, 0.6, 0.4, 0.05, 0)};
  OK(mt_layer_norm(&y, ln[0], 2, s24, ln[1], ln[2], 1e-5));
  check_parity("ln_affine", y, 3, ln);
  mt_tensor_release(y);
  for (int k = 0; k < 3; k++) mt_tensor_release(ln[k]);
  x = leaf32(2, s45, 0.77, 0.9, 2.5, 0);
  OK(mt_layer_norm(&y, x, 1, n5, NULL, NULL, 1e-5));
  check_parity("ln_plain", y, 1, &x);
  mt_tensor_release(y), mt_tensor_release(x);

  /* embedding: the whole weight gradient */
  const int64_t is[2] = {2, 3};
  const double iv[6] = {0, 2, 4, 2, 2, 1};
  mt_tensor *w = leaf32(2, s53, 0.45, 0.3, 1, 0), *ids = from_values(MT_INT64, 2, is, iv), *gw = NULL;
  OK(mt_embedding(&y, w, ids, 2));
  const double *want = want_of("embedding");
  double s1 = 0;
  OK(mt_empty(&gw, MT_FLOAT32, 3, (const int64_t[]){2, 3, 3}));
  for (int64_t i = 0; y && i < 18; i++) {
    s1 += val(y, i) * (double)(float)cos(0.7 * (double)i);
    mt_set_flat(gw, i, mt_scalar_float(cos(0.7 * (double)i)));
  }
  CHECK(near(s1, want[0], 2e-6));
  OK(mt_backward(y, gw, false));
  bool ok = w->grad != NULL;
  for (int i = 0; ok && i < 15; i++) ok = near(val(w->grad, i), want[1 + i], 1e-6);
  CHECK(ok);
  mt_tensor_release(y), mt_tensor_release(w), mt_tensor_release(ids), mt_tensor_release(gw);

  const int64_t n12[1] = {12};
  static const struct {
    const char *name;
    act_ctx c;
  } acts[] = {{"gelu", {GELU, 0}}, {"gelu_tanh", {GELU_TANH, 0}}, {"silu", {SILU, 0}}, {"leaky_relu", {LEAKY, 0.2}}};
  for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
    x = leaf32(1, n12, 0.9, 0.2, 3, 0);
    OK(run_act(&y, &x, (void *)&acts[i].c));
    check_parity(acts[i].name, y, 1, &x);
    mt_tensor_release(y), mt_tensor_release(x);
  }
}

/* float16 and bfloat16 run through float32 and come back in their own dtype. */
static void test_half(void) {
  const int64_t s[3] = {4, 3, 5}, c3[1] = {3}, n5[1] = {5};
  mt_tensor *x = pattern(MT_FLOAT32, 3, s, 0.7, 0.2, 2, 0.5), *ref = NULL, *y = NULL;
  const mt_dtype halves[2] = {MT_FLOAT16, MT_BFLOAT16};
  for (int h = 0; h < 2; h++)
    for (int op = 0; op < 3; op++) {
      mt_tensor *xh = NULL, *w = NULL;
      OK(mt_to_dtype(&xh, x, halves[h]));
      OK(mt_full(&w, halves[h], 1, op == 1 ? n5 : c3, mt_scalar_float(1.5)));
      mt_requires_grad_(xh, true), mt_requires_grad_(w, true);
      for (int pass = 0; pass < 2; pass++) {
        const mt_tensor *in = pass ? xh : x;
        mt_tensor *wp = w, *w32 = NULL;
        if (!pass) {
          OK(mt_to_dtype(&w32, w, MT_FLOAT32));
          wp = w32;
        }
        mt_tensor **dst = pass ? &y : &ref;
        if (op == 0) OK(mt_batch_norm(dst, in, wp, NULL, NULL, NULL, true, 0.1, 1e-5));
        else if (op == 1) OK(mt_layer_norm(dst, in, 1, n5, wp, NULL, 1e-5));
        else OK(mt_gelu(dst, in, true));
        mt_tensor_release(w32);
      }
      bool ok = y && ref && y->dtype == halves[h];
      for (int64_t i = 0; ok && i < mt_numel(x); i++) ok = fabs(val(y, i) - val(ref, i)) < 0.05 * (1 + fabs(val(ref, i)));
      CHECK(ok);
      /* backward reaches the half leaves in their dtype */
      mt_tensor *g = NULL;
      OK(mt_full(&g, halves[h], 3, s, mt_scalar_float(1)));
      if (y) OK(mt_backward(y, g, false));
      CHECK(xh->grad && xh->grad->dtype == halves[h] && (op == 2 || (w->grad && w->grad->dtype == halves[h])));
      mt_tensor_release(g), mt_tensor_release(y), mt_tensor_release(ref), mt_tensor_release(xh), mt_tensor_release(w);
      y = ref = NULL;
    }
  mt_tensor_release(x);
}

/* ---- node names, and nothing recorded without grad ------------------------------------------ */

static void test_names(void) {
  const int64_t s[2] = {4, 3}, c3[1] = {3}, i2[1] = {2};
  const double iv[2] = {1, 2};
  mt_tensor *x = pattern(MT_FLOAT32, 2, s, 0.4, 0.1, 1, 0), *ids = from_values(MT_INT64, 1, i2, iv), *y = NULL;
  mt_requires_grad_(x, true);
  static const char *const names[] = {"NativeBatchNormBackward0", "NativeLayerNormBackward0", "EmbeddingBackward0",
                                      "MulBackward0", "LeakyReluBackward0", "GeluBackward0", "GeluBackward0",
                                      "SiluBackward0"};
  for (int grad = 1; grad >= 0; grad--) {
    mt_set_grad_enabled(grad);
    for (int k = 0; k < 8; k++) {
      mt_status st = MT_EARG;
      switch (k) {
      case 0: st = mt_batch_norm(&y, x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5); break;
      case 1: st = mt_layer_norm(&y, x, 1, c3, NULL, NULL, 1e-5); break;
      case 2: st = mt_embedding(&y, x, ids, -1); break;
      case 3: st = mt_dropout(&y, x, 0.5, true, false, NULL); break;
      case 4: st = mt_leaky_relu(&y, x, 0.1); break;
      case 5: st = mt_gelu(&y, x, false); break;
      case 6: st = mt_gelu(&y, x, true); break;
      case 7: st = mt_silu(&y, x); break;
      }
      OK(st);
      if (grad) CHECK(y && y->grad_fn && !strcmp(mt_node_name(y->grad_fn), names[k]));
      else CHECK(y && !y->grad_fn && !y->requires_grad);
      mt_tensor_release(y), y = NULL;
    }
  }
  mt_set_grad_enabled(true);
  mt_tensor_release(x), mt_tensor_release(ids);
}

int main(void) {
  test_batch_norm_grad();
  test_batch_norm_running();
  test_layer_norm();
  test_embedding();
  test_dropout();
  test_activations();
  test_parity();
  test_half();
  test_names();
  return mt_test_finish("test_nn_layers");
}
