/* test_jit_nn.c — tracing the neural-network ops (nn_*.c record themselves): each op, traced
 * in C, becomes exactly one node named as the op table names it (ops built from other recorded
 * ops, cross_entropy, still give one), with its arguments as attributes (defaults resolved);
 * the graph gives the eager results bit for bit on the example, on new inputs (another batch
 * size where the op allows) and after a save/load round trip. Dropout in evaluation records
 * nothing; dropout in training and batch_norm updating its running statistics are refused. */
#include "mt_test.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- tensors ----------------------------------------------------------------------------------- */

typedef enum kind {
  K_WAVE,  /* floats: 1.5 sin(0.7 i + seed) */
  K_PROB,  /* floats in (0.05, 0.95) */
  K_BIT,   /* 0.0 or 1.0 */
  K_CLASS, /* int64 in [0, arg) */
} kind;

typedef struct spec {
  mt_dtype dtype;
  int ndim;
  int64_t sizes[4];
  kind k;
  int arg;
} spec;

#define F32(n, ...) {MT_FLOAT32, n, {__VA_ARGS__}, K_WAVE, 0}
#define PROB(n, ...) {MT_FLOAT32, n, {__VA_ARGS__}, K_PROB, 0}
#define BIT(n, ...) {MT_FLOAT32, n, {__VA_ARGS__}, K_BIT, 0}
#define CLASS(c, n, ...) {MT_INT64, n, {__VA_ARGS__}, K_CLASS, c}

static mt_tensor *make(const spec *s, const int64_t *sizes, double seed) {
  mt_tensor *t;
  if (mt_empty(&t, s->dtype, s->ndim, sizes ? sizes : s->sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) {
    double w = sin(0.7 * (double)i + seed);
    mt_scalar v = s->k == K_WAVE    ? mt_scalar_float(1.5 * w)
                  : s->k == K_PROB  ? mt_scalar_float(0.5 + 0.45 * w)
                  : s->k == K_BIT   ? mt_scalar_float(w > 0)
                                    : mt_scalar_int((int64_t)(i * 7 + (int64_t)(seed * 10)) % s->arg);
    mt_set_flat(t, i, v);
  }
  return t;
}

/* Same dtype, shape and bytes. */
static bool identical(const mt_tensor *a, const mt_tensor *b) {
  if (!a || !b || a->dtype != b->dtype || a->ndim != b->ndim ||
      memcmp(a->sizes, b->sizes, (size_t)a->ndim * sizeof *a->sizes))
    return false;
  mt_tensor *ca, *cb;
  if (mt_contiguous(&ca, a)) return false;
  if (mt_contiguous(&cb, b)) {
    mt_tensor_release(ca);
    return false;
  }
  bool same = !memcmp(mt_data(ca), mt_data(cb), (size_t)mt_numel(a) * mt_dtype_info(a->dtype)->size);
  mt_tensor_release(ca), mt_tensor_release(cb);
  return same;
}

/* ---- the ops, each called as a model would ------------------------------------------------------ */

#define MAXT 4
typedef mt_status (*model_fn)(mt_tensor **outs, mt_tensor *const *x, mt_tensor *const *w);

static const int64_t TWO[2] = {2, 2}, ONE[2] = {1, 1}, ZERO[2] = {0, 0};

static mt_status m_linear(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) { return mt_linear(o, x[0], w[0], w[1]); }
static mt_status m_linear_nobias(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_linear(o, x[0], w[0], NULL);
}
static mt_status m_conv2d(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_conv2d(o, x[0], w[0], w[1], (const int64_t[]){2, 1}, (const int64_t[]){1, 0}, (const int64_t[]){1, 2}, 1);
}
static mt_status m_conv2d_groups(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_conv2d(o, x[0], w[0], NULL, ONE, ONE, ONE, 2);
}
static mt_status m_conv1d(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_conv1d(o, x[0], w[0], w[1], 2, 1, 1, 2);
}
static mt_status m_max_pool(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_max_pool2d(o, NULL, x[0], TWO, NULL, NULL, NULL, false); /* defaults: stride = kernel */
}
static mt_status m_max_pool_indices(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_max_pool2d(&o[0], &o[1], x[0], (const int64_t[]){3, 2}, ONE, (const int64_t[]){1, 0}, ONE, true);
}
static mt_status m_avg_pool(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_avg_pool2d(o, x[0], (const int64_t[]){3, 3}, TWO, ONE, true, false);
}
static mt_status m_adaptive(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_adaptive_avg_pool2d(o, x[0], (const int64_t[]){2, 3});
}
static mt_status m_bn_eval(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_batch_norm(o, x[0], w[0], w[1], w[2], w[3], false, 0.1, 1e-5);
}
static mt_status m_bn_batch_stats(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_batch_norm(o, x[0], w[0], w[1], NULL, NULL, true, 0.1, 1e-3);
}
static mt_status m_layer_norm(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_layer_norm(o, x[0], 2, (const int64_t[]){3, 4}, w[0], w[1], 1e-5);
}
static mt_status m_embedding(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_embedding(o, w[0], x[0], 2);
}
static mt_status m_dropout_eval(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_dropout(o, x[0], 0.5, false, false, NULL);
}
static mt_status m_leaky_relu(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_leaky_relu(o, x[0], 0.15);
}
static mt_status m_gelu(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_gelu(o, x[0], false);
}
static mt_status m_gelu_tanh(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_gelu(o, x[0], true);
}
static mt_status m_silu(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_silu(o, x[0]);
}
static mt_status m_nll(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_nll_loss(o, x[0], x[1], w[0], 1, MT_REDUCTION_MEAN);
}
static mt_status m_cross_entropy(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_cross_entropy(o, x[0], x[1], w[0], 2, 0.1, MT_REDUCTION_SUM);
}
static mt_status m_cross_entropy_probs(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_cross_entropy(o, x[0], x[1], NULL, -100, 0, MT_REDUCTION_NONE);
}
static mt_status m_mse(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_mse_loss(o, x[0], x[1], MT_REDUCTION_MEAN);
}
static mt_status m_l1(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_l1_loss(o, x[0], x[1], MT_REDUCTION_NONE);
}
static mt_status m_smooth_l1(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  (void)w;
  return mt_smooth_l1_loss(o, x[0], x[1], MT_REDUCTION_SUM, 0.5);
}
static mt_status m_bce(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_bce_loss(o, x[0], x[1], w[0], MT_REDUCTION_MEAN);
}
static mt_status m_bce_logits(mt_tensor **o, mt_tensor *const *x, mt_tensor *const *w) {
  return mt_bce_with_logits(o, x[0], x[1], w[0], w[1], MT_REDUCTION_NONE);
}

typedef struct nn_case {
  const char *name;
  model_fn fn;
  const char *op;    /* the one node the graph holds; NULL: no node (the input passes through) */
  int nin, nout, nw; /* traced inputs, outputs, weights (made before the trace) */
  spec in[MAXT];
  int64_t again[MAXT][4]; /* the new inputs' sizes (all zero: as traced) */
  spec w[MAXT];
} nn_case;

static const nn_case CASES[] = {
    {"linear", m_linear, "linear", 1, 1, 2, {F32(3, 2, 3, 4)}, {{5, 3, 4}}, {F32(2, 6, 4), F32(1, 6)}},
    {"linear without bias", m_linear_nobias, "linear", 1, 1, 1, {F32(2, 3, 4)}, {{7, 4}}, {F32(2, 6, 4)}},
    {"conv2d", m_conv2d, "conv2d", 1, 1, 2, {F32(4, 2, 3, 7, 8)}, {{3, 3, 7, 8}}, {F32(4, 4, 3, 3, 3), F32(1, 4)}},
    {"conv2d unbatched, groups", m_conv2d_groups, "conv2d", 1, 1, 1, {F32(3, 4, 5, 5)}, {{0}}, {F32(4, 6, 2, 3, 3)}},
    {"conv1d", m_conv1d, "conv1d", 1, 1, 2, {F32(3, 2, 4, 9)}, {{1, 4, 12}}, {F32(3, 6, 2, 3), F32(1, 6)}},
    {"max_pool2d", m_max_pool, "max_pool2d", 1, 1, 0, {F32(4, 2, 3, 6, 5)}, {{1, 3, 8, 8}}, {{0}}},
    {"max_pool2d with indices", m_max_pool_indices, "max_pool2d_with_indices", 1, 2, 0, {F32(3, 2, 7, 6)}, {{0}}, {{0}}},
    {"avg_pool2d", m_avg_pool, "avg_pool2d", 1, 1, 0, {F32(4, 2, 3, 7, 6)}, {{3, 3, 5, 9}}, {{0}}},
    {"adaptive_avg_pool2d", m_adaptive, "adaptive_avg_pool2d", 1, 1, 0, {F32(4, 2, 3, 7, 8)}, {{1, 3, 5, 6}}, {{0}}},
    {"batch_norm (evaluation)", m_bn_eval, "batch_norm", 1, 1, 4, {F32(4, 4, 3, 2, 2)}, {{2, 3, 5, 1}},
     {F32(1, 3), F32(1, 3), F32(1, 3), PROB(1, 3)}},
    {"batch_norm (batch statistics)", m_bn_batch_stats, "batch_norm", 1, 1, 2, {F32(3, 5, 3, 4)}, {{2, 3, 6}},
     {F32(1, 3), F32(1, 3)}},
    {"layer_norm", m_layer_norm, "layer_norm", 1, 1, 2, {F32(3, 2, 3, 4)}, {{5, 3, 4}}, {F32(2, 3, 4), F32(2, 3, 4)}},
    {"embedding", m_embedding, "embedding", 1, 1, 1, {CLASS(5, 2, 2, 3)}, {{4, 1}}, {F32(2, 5, 3)}},
    {"dropout (evaluation)", m_dropout_eval, NULL, 1, 1, 0, {F32(2, 3, 4)}, {{6, 2}}, {{0}}},
    {"leaky_relu", m_leaky_relu, "leaky_relu", 1, 1, 0, {F32(2, 3, 5)}, {{0}}, {{0}}},
    {"gelu", m_gelu, "gelu", 1, 1, 0, {F32(2, 3, 5)}, {{4}}, {{0}}},
    {"gelu (tanh)", m_gelu_tanh, "gelu", 1, 1, 0, {F32(2, 3, 5)}, {{0}}, {{0}}},
    {"silu", m_silu, "silu", 1, 1, 0, {F32(2, 3, 5)}, {{2, 2, 2}}, {{0}}},
    {"nll_loss", m_nll, "nll_loss", 2, 1, 1, {F32(2, 6, 4), CLASS(4, 1, 6)}, {{3, 4}, {3}}, {PROB(1, 4)}},
    {"cross_entropy", m_cross_entropy, "cross_entropy", 2, 1, 1, {F32(3, 4, 5, 3), CLASS(5, 2, 4, 3)}, {{0}, {0}},
     {PROB(1, 5)}},
    {"cross_entropy (probabilities)", m_cross_entropy_probs, "cross_entropy", 2, 1, 0, {F32(2, 4, 5), PROB(2, 4, 5)},
     {{2, 5}, {2, 5}}, {{0}}},
    {"mse_loss", m_mse, "mse_loss", 2, 1, 0, {F32(2, 3, 4), F32(1, 4)}, {{5, 4}, {4}}, {{0}}},
    {"l1_loss", m_l1, "l1_loss", 2, 1, 0, {F32(2, 3, 4), F32(2, 3, 4)}, {{0}, {0}}, {{0}}},
    {"smooth_l1_loss", m_smooth_l1, "smooth_l1_loss", 2, 1, 0, {F32(2, 3, 4), F32(2, 3, 4)}, {{0}, {0}}, {{0}}},
    {"bce_loss", m_bce, "bce_loss", 2, 1, 1, {PROB(2, 3, 4), BIT(2, 3, 4)}, {{6, 4}, {6, 4}}, {PROB(1, 4)}},
    {"bce_with_logits", m_bce_logits, "bce_with_logits", 2, 1, 2, {F32(2, 3, 4), BIT(2, 3, 4)}, {{0}, {0}},
     {PROB(1, 4), F32(1, 4)}},
};

/* ---- running one case ------------------------------------------------------------------------- */

static char tmp_path[64];

static void release_all(mt_tensor **ts, int n) {
  for (int i = 0; i < n; i++) {
    mt_tensor_release(ts[i]);
    ts[i] = NULL;
  }
}

/* Runs g on x and compares with the eager op on x. */
static bool graph_matches(const nn_case *c, const mt_graph *g, mt_tensor *const *x, mt_tensor *const *w,
                          const char *when) {
  mt_tensor *want[MAXT] = {0}, *got[MAXT] = {0};
  bool ok = true;
  mt_status st = c->fn(want, x, w);
  mt_status gs = st ? st : mt_graph_run(g, x, got);
  if (st || gs) {
    fprintf(stderr, "%s (%s): %s\n", c->name, when, mt_last_error());
    ok = false;
  }
  for (int k = 0; ok && k < c->nout; k++) {
    if (!identical(got[k], want[k])) {
      fprintf(stderr, "%s (%s): output %d differs from the eager result\n", c->name, when, k);
      ok = false;
    }
  }
  release_all(want, MAXT), release_all(got, MAXT);
  return ok;
}

static void run_case(const nn_case *c) {
  mt_tensor *x[MAXT] = {0}, *w[MAXT] = {0}, *y[MAXT] = {0}, *x2[MAXT] = {0};
  mt_graph *g = NULL, *loaded = NULL;
  mt_value *tree = NULL;
  mt_trace *tr = NULL;
  for (int i = 0; i < c->nw; i++) CHECK((w[i] = make(&c->w[i], NULL, 0.3 + i)) != NULL);
  for (int i = 0; i < c->nin; i++) CHECK((x[i] = make(&c->in[i], NULL, 1.1 * i)) != NULL);

  OK(mt_trace_begin(&tr));
  for (int i = 0; i < c->nin; i++) OK(mt_trace_input(tr, x[i]));
  mt_status st = c->fn(y, x, w);
  if (st) {
    fprintf(stderr, "%s: %s\n", c->name, mt_last_error());
    mt_trace_abort(tr);
    CHECK(!"the op failed");
    goto done;
  }
  st = mt_trace_end(tr, c->nout, y, &g);
  if (st) fprintf(stderr, "%s: %s\n", c->name, mt_last_error());
  CHECK(st == MT_OK);
  if (st) goto done;
  CHECK(mt_graph_num_inputs(g) == c->nin && mt_graph_num_outputs(g) == c->nout);

  /* one node, named as the table names the op */
  OK(mt_graph_to_value(g, &tree));
  const mt_value *nodes = tree ? mt_value_dict_get(tree, "nodes") : NULL;
  CHECK(nodes && nodes->kind == MT_VAL_LIST);
  if (nodes && nodes->kind == MT_VAL_LIST) {
    CHECK(nodes->u.seq.len == (c->op ? 1u : 0u));
    if (nodes->u.seq.len != (c->op ? 1u : 0u)) {
      fprintf(stderr, "%s: %zu nodes:", c->name, nodes->u.seq.len);
      for (size_t j = 0; j < nodes->u.seq.len; j++) {
        const mt_value *op = mt_value_dict_get(nodes->u.seq.items[j], "op");
        fprintf(stderr, " %s", op && op->kind == MT_VAL_STR ? op->u.str.ptr : "?");
      }
      fprintf(stderr, "\n");
    }
    if (c->op && nodes->u.seq.len == 1) {
      const mt_value *op = mt_value_dict_get(nodes->u.seq.items[0], "op");
      CHECK(op && op->kind == MT_VAL_STR && !strcmp(op->u.str.ptr, c->op));
      if (!(op && op->kind == MT_VAL_STR && !strcmp(op->u.str.ptr, c->op)))
        fprintf(stderr, "%s: node '%s', expected '%s'\n", c->name, op && op->kind == MT_VAL_STR ? op->u.str.ptr : "?",
                c->op);
    }
  }

  /* the example, new values (in another shape where given), and the graph read back */
  CHECK(graph_matches(c, g, x, w, "example"));
  for (int i = 0; i < c->nin; i++)
    CHECK((x2[i] = make(&c->in[i], c->again[i][0] ? c->again[i] : NULL, 2.9 + i)) != NULL);
  CHECK(graph_matches(c, g, x2, w, "new inputs"));
  OK(mt_graph_save(g, tmp_path));
  OK(mt_graph_load(&loaded, tmp_path));
  if (loaded) CHECK(graph_matches(c, loaded, x2, w, "saved and loaded"));

done:
  mt_value_free(tree);
  mt_graph_free(g), mt_graph_free(loaded);
  release_all(x, MAXT), release_all(w, MAXT), release_all(y, MAXT), release_all(x2, MAXT);
}

/* ---- attributes ------------------------------------------------------------------------------- */

static const mt_value *attr(const mt_value *tree, const char *name) {
  const mt_value *nodes = mt_value_dict_get(tree, "nodes");
  if (!nodes || nodes->kind != MT_VAL_LIST || nodes->u.seq.len != 1) return NULL;
  const mt_value *attrs = mt_value_dict_get(nodes->u.seq.items[0], "attrs");
  return attrs ? mt_value_dict_get(attrs, name) : NULL;
}

static bool int_list_is(const mt_value *v, int n, const int64_t *want) {
  if (!v || v->kind != MT_VAL_LIST || v->u.seq.len != (size_t)n) return false;
  for (int i = 0; i < n; i++)
    if (v->u.seq.items[i]->kind != MT_VAL_INT || v->u.seq.items[i]->u.i != want[i]) return false;
  return true;
}

/* The tree of a one-op graph traced from c. */
static mt_value *traced_tree(const nn_case *c) {
  mt_tensor *x[MAXT] = {0}, *w[MAXT] = {0}, *y[MAXT] = {0};
  mt_graph *g = NULL;
  mt_value *tree = NULL;
  mt_trace *tr = NULL;
  for (int i = 0; i < c->nw; i++) w[i] = make(&c->w[i], NULL, 0.5);
  for (int i = 0; i < c->nin; i++) x[i] = make(&c->in[i], NULL, 0.1);
  if (!mt_trace_begin(&tr)) {
    for (int i = 0; i < c->nin; i++) mt_trace_input(tr, x[i]);
    if (c->fn(y, x, w)) mt_trace_abort(tr);
    else if (!mt_trace_end(tr, c->nout, y, &g)) mt_graph_to_value(g, &tree);
  }
  mt_graph_free(g);
  release_all(x, MAXT), release_all(w, MAXT), release_all(y, MAXT);
  return tree;
}

static const nn_case *find_case(const char *name) {
  for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++)
    if (!strcmp(CASES[i].name, name)) return &CASES[i];
  return NULL;
}

static void test_attributes(void) {
  mt_value *t = traced_tree(find_case("max_pool2d")); /* stride, padding, dilation left NULL */
  CHECK(t != NULL);
  if (t) {
    CHECK(int_list_is(attr(t, "kernel"), 2, TWO));
    CHECK(int_list_is(attr(t, "stride"), 2, TWO));
    CHECK(int_list_is(attr(t, "padding"), 2, ZERO));
    CHECK(int_list_is(attr(t, "dilation"), 2, ONE));
    const mt_value *cm = attr(t, "ceil_mode");
    CHECK(cm && cm->kind == MT_VAL_BOOL && !cm->u.b);
    mt_value_free(t);
  }
  t = traced_tree(find_case("conv1d"));
  CHECK(t != NULL);
  if (t) {
    const char *names[4] = {"stride", "padding", "dilation", "groups"};
    const int64_t want[4] = {2, 1, 1, 2};
    for (int i = 0; i < 4; i++) {
      const mt_value *v = attr(t, names[i]);
      CHECK(v && v->kind == MT_VAL_INT && v->u.i == want[i]);
    }
    mt_value_free(t);
  }
  t = traced_tree(find_case("cross_entropy")); /* three inputs: the weight a constant */
  CHECK(t != NULL);
  if (t) {
    const mt_value *r = attr(t, "reduction"), *ls = attr(t, "label_smoothing"), *ii = attr(t, "ignore_index");
    CHECK(r && r->kind == MT_VAL_INT && r->u.i == MT_REDUCTION_SUM);
    CHECK(ls && ls->kind == MT_VAL_FLOAT && ls->u.f == 0.1);
    CHECK(ii && ii->kind == MT_VAL_INT && ii->u.i == 2);
    const mt_value *consts = mt_value_dict_get(t, "constants");
    CHECK(consts && consts->kind == MT_VAL_DICT && consts->u.dict.len == 1);
    mt_value_free(t);
  }
  t = traced_tree(find_case("layer_norm"));
  CHECK(t != NULL);
  if (t) {
    CHECK(int_list_is(attr(t, "normalized_shape"), 2, (const int64_t[]){3, 4}));
    mt_value_free(t);
  }
  t = traced_tree(find_case("linear without bias")); /* the absent bias is id -1 */
  CHECK(t != NULL);
  if (t) {
    const mt_value *nodes = mt_value_dict_get(t, "nodes");
    const mt_value *ins = nodes && nodes->u.seq.len == 1 ? mt_value_dict_get(nodes->u.seq.items[0], "inputs") : NULL;
    CHECK(ins && ins->kind == MT_VAL_LIST && ins->u.seq.len == 3 && ins->u.seq.items[2]->kind == MT_VAL_INT &&
          ins->u.seq.items[2]->u.i == -1);
    mt_value_free(t);
  }
}

/* ---- refusals ---------------------------------------------------------------------------------- */

static void test_refusals(void) {
  const int64_t sz[4] = {4, 3, 2, 2}, c3 = 3;
  mt_tensor *x, *rm, *rv, *y = NULL;
  mt_graph *g = NULL;
  mt_trace *tr;
  if (mt_full(&x, MT_FLOAT32, 4, sz, mt_scalar_float(0.5)) || mt_zeros(&rm, MT_FLOAT32, 1, &c3) ||
      mt_full(&rv, MT_FLOAT32, 1, &c3, mt_scalar_float(1))) {
    CHECK(!"setup");
    return;
  }
  /* dropout in training draws a mask: refused, however the rest of the trace goes */
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_dropout(&y, x, 0.25, true, false, NULL));
  FAILS(mt_trace_end(tr, 1, &y, &g), MT_ESTATE, "dropout in training mode (random number generation) cannot be traced");
  CHECK(g == NULL && !mt_trace_active());
  mt_tensor_release(y), y = NULL;

  /* p = 1 draws nothing but is still a training-mode dropout */
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_dropout(&y, x, 1.0, true, true, NULL));
  FAILS(mt_trace_end(tr, 1, &y, &g), MT_ESTATE, "dropout in training mode");
  mt_tensor_release(y), y = NULL;

  /* batch_norm in training with running statistics writes them: refused */
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_batch_norm(&y, x, NULL, NULL, rm, rv, true, 0.1, 1e-5));
  FAILS(mt_trace_end(tr, 1, &y, &g), MT_ESTATE, "updating batch_norm's running statistics cannot be traced");
  mt_tensor_release(y), y = NULL;

  /* after the refusals, tracing works again */
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_batch_norm(&y, x, NULL, NULL, rm, rv, false, 0.1, 1e-5));
  OK(mt_trace_end(tr, 1, &y, &g));
  CHECK(g && mt_graph_num_outputs(g) == 1);
  mt_graph_free(g);
  mt_tensor_release(y), mt_tensor_release(x), mt_tensor_release(rm), mt_tensor_release(rv);
}

int main(void) {
  snprintf(tmp_path, sizeof tmp_path, "/tmp/mt_test_jit_nn_%ld.pt", (long)getpid());
  for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) run_case(&CASES[i]);
  test_attributes();
  test_refusals();
  unlink(tmp_path);
  return mt_test_finish("test_jit_nn");
}
