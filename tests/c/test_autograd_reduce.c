/* test_autograd_reduce.c — backward of the reductions (sum, prod, mean, var, std, amax, amin,
 * max/min along a dim), sort/topk and the matrix products, against finite differences over
 * dims, keepdim, 0-dim, broadcast batches and non-contiguous inputs; zeros in prod and ties
 * in amax/max against PyTorch 1.13's values; node names; what must not record. */
#include "gradcheck.h"

static mt_tensor *from_values(int ndim, const int64_t *sizes, const double *v) {
  mt_tensor *t;
  if (mt_empty(&t, MT_FLOAT64, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) mt_set_flat(t, i, mt_scalar_float(v[i]));
  return t;
}

/* ---- reductions over a set of dims ---------------------------------------------------------- */

typedef enum { SUM, PROD, MEAN, VAR, STD, AMAX, AMIN, MAXD, MIND, SORT, TOPK } opk;

typedef struct red_ctx {
  opk op;
  int ndims;
  int64_t dims[3];
  bool keepdim;
  int64_t correction, k;
  bool flag; /* sort: descending; topk: largest */
} red_ctx;

static mt_status run_red(mt_tensor **out, mt_tensor *const *in, void *vctx) {
  const red_ctx *c = vctx;
  mt_tensor *idx = NULL;
  mt_status st;
  switch (c->op) {
  case SUM: return mt_sum(out, in[0], c->ndims, c->dims, c->keepdim);
  case PROD: return mt_prod(out, in[0], c->ndims, c->dims, c->keepdim);
  case MEAN: return mt_mean(out, in[0], c->ndims, c->dims, c->keepdim);
  case VAR: return mt_var(out, in[0], c->ndims, c->dims, c->correction, c->keepdim);
  case STD: return mt_std(out, in[0], c->ndims, c->dims, c->correction, c->keepdim);
  case AMAX: return mt_amax(out, in[0], c->ndims, c->dims, c->keepdim);
  case AMIN: return mt_amin(out, in[0], c->ndims, c->dims, c->keepdim);
  case MAXD: st = mt_max_dim(out, &idx, in[0], c->dims[0], c->keepdim); break;
  case MIND: st = mt_min_dim(out, &idx, in[0], c->dims[0], c->keepdim); break;
  case SORT: st = mt_sort(out, &idx, in[0], c->dims[0], c->flag); break;
  case TOPK: st = mt_topk(out, &idx, in[0], c->k, c->dims[0], c->flag); break;
  default: return MT_EARG;
  }
  mt_tensor_release(idx);
  return st;
}

static const struct {
  const char *name;
  opk op;
  int64_t correction;
  double lo, hi;
} set_ops[] = {
    {"sum", SUM, 0, -2, 2},    {"prod", PROD, 0, 0.5, 1.5}, {"mean", MEAN, 0, -2, 2},
    {"var", VAR, 1, -2, 2},    {"var c=0", VAR, 0, -2, 2},  {"var c=2", VAR, 2, -2, 2},
    {"std", STD, 1, -2, 2},    {"std c=0", STD, 0, -2, 2},  {"amax", AMAX, 0, -2, 2},
    {"amin", AMIN, 0, -2, 2},
};

static const struct {
  shape s;
  int ndims;
  int64_t dims[3];
  bool keepdim;
} set_cases[] = {
    {SH(2, 3, 4), 0, {0}, false},        /* everything */
    {SH(2, 3, 4), 1, {0}, false},
    {SH(2, 3, 4), 1, {1}, true},
    {SH(3, 2, 3, 4), 2, {0, 2}, false},
    {SH(3, 2, 3, 4), 1, {-1}, true},
    {SH(3, 2, 3, 4), 0, {0}, true},      /* everything, keepdim */
    {SH(0, 0), 0, {0}, false},           /* 0-dim */
    {SH(0, 0), 1, {0}, true},            /* 0-dim with a dim */
    {SHT(0, 1, 2, 3, 4), 1, {1}, false},        /* transposed */
    {SHT(0, 2, 3, 4, 3, 2), 2, {0, 1}, true},   /* transposed, two dims */
    {SHT(0, 2, 3, 4, 3, 2), 1, {1}, false},     /* transposed, the middle dim */
};

static void test_set_reductions(void) {
  for (size_t o = 0; o < sizeof set_ops / sizeof set_ops[0]; o++)
    for (size_t c = 0; c < sizeof set_cases / sizeof set_cases[0]; c++) {
      /* var/std of one element with a correction is NaN, as in PyTorch: nothing to check */
      if (set_cases[c].s.ndim == 0 && set_ops[o].correction > 0) continue;
      red_ctx ctx = {set_ops[o].op, set_cases[c].ndims, {0}, set_cases[c].keepdim, set_ops[o].correction, 0, false};
      memcpy(ctx.dims, set_cases[c].dims, sizeof ctx.dims);
      mt_tensor *x = make_input(&set_cases[c].s, set_ops[o].lo, set_ops[o].hi, (int)(o * 31 + c));
      bool ok = x && gradcheck(set_ops[o].name, run_red, &ctx, 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (%s, case %zu)\n", set_ops[o].name, c);
      mt_tensor_release(x);
    }
}

/* ---- one dim: max/min values, sort, topk ---------------------------------------------------- */

static void test_dim_ops(void) {
  static const struct {
    const char *name;
    opk op;
    bool flag;
    int64_t k;
  } ops[] = {{"max", MAXD, false, 0}, {"min", MIND, false, 0},  {"sort", SORT, false, 0},
             {"sort desc", SORT, true, 0}, {"topk", TOPK, true, 2}, {"topk smallest", TOPK, false, 2},
             {"topk 0", TOPK, true, 0}};
  static const struct {
    shape s;
    int64_t dim;
    bool keepdim;
  } cases[] = {
      {SH(2, 3, 4), 0, false}, {SH(2, 3, 4), 1, true},  {SH(2, 3, 4), -1, false},
      {SH(3, 2, 3, 4), 1, false}, {SH(3, 2, 3, 4), 2, true}, {SH(1, 5), 0, false},
      {SHT(0, 1, 2, 3, 4), 1, false},  /* transposed */
      {SHT(0, 2, 3, 4, 3, 2), 0, true}, /* transposed */
  };
  for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      red_ctx ctx = {ops[o].op, 1, {cases[c].dim}, cases[c].keepdim, 0, ops[o].k, ops[o].flag};
      mt_tensor *x = make_input(&cases[c].s, -2, 2, (int)(o * 17 + c));
      bool ok = x && gradcheck(ops[o].name, run_red, &ctx, 1, &x);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (%s, case %zu)\n", ops[o].name, c);
      mt_tensor_release(x);
    }
  /* a 0-dim input is its own max, sort and top-1 */
  for (size_t o = 0; o < 6; o++) {
    red_ctx ctx = {ops[o].op, 1, {0}, false, 0, 1, ops[o].flag};
    int64_t none[1] = {0};
    mt_tensor *x = gc_tensor(0, none, -2, 2, 5);
    CHECK(gradcheck(ops[o].name, run_red, &ctx, 1, &x));
    mt_tensor_release(x);
  }
}

/* ---- exact values where finite differences do not reach: zeros, ties ------------------------ */

static void test_exact(void) {
  static const struct {
    const char *what;
    red_ctx c;
    int ndim;
    int64_t sizes[2];
    double v[6], want[6];
  } rows[] = {
      /* prod with zeros: one zero gets the product of the others, two zeros give 0 */
      {"prod, one zero", {.op = PROD}, 1, {3}, {2, 0, 3}, {0, 6, 0}},
      {"prod dim 1", {.op = PROD, .ndims = 1, .dims = {1}}, 2, {2, 3}, {2, 0, 0, 1, 2, 3}, {0, 0, 0, 6, 3, 2}},
      {"prod dim 0", {.op = PROD, .ndims = 1, .dims = {0}, .keepdim = true}, 2, {2, 3}, {0, 0, 5, 4, 2, 3},
       {4, 2, 3, 0, 0, 5}},
      {"prod, two zeros", {.op = PROD}, 2, {2, 3}, {0, 1, 2, 3, 0, 4}, {0, 0, 0, 0, 0, 0}},
      /* amax/amin split among ties; max/min along a dim route to the first of them */
      {"amax ties", {.op = AMAX}, 1, {4}, {1, 3, 3, 2}, {0, .5, .5, 0}},
      {"amin dim ties", {.op = AMIN, .ndims = 1, .dims = {1}}, 2, {2, 3}, {1, 1, 2, 2, 2, 2},
       {.5, .5, 0, 1. / 3, 1. / 3, 1. / 3}},
      {"max dim ties", {.op = MAXD, .ndims = 1, .dims = {1}}, 2, {2, 3}, {1, 3, 3, 2, 2, 2}, {0, 1, 0, 1, 0, 0}},
      /* std' is 0 where std is 0 */
      {"std of a constant", {.op = STD, .ndims = 1, .dims = {1}, .correction = 1}, 2, {2, 3}, {1, 1, 1, 2, 3, 4},
       {0, 0, 0, -0.5, 0, 0.5}},
  };
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    mt_tensor *x = from_values(rows[r].ndim, rows[r].sizes, rows[r].v), *y = NULL, *ones = NULL;
    mt_tensor *in[1] = {x};
    red_ctx c = rows[r].c;
    OK(mt_requires_grad_(x, true));
    OK(run_red(&y, in, &c));
    if (!y) {
      mt_tensor_release(x);
      continue;
    }
    OK(mt_full(&ones, MT_FLOAT64, y->ndim, y->sizes, mt_scalar_float(1)));
    OK(mt_backward(y, ones, false));
    bool ok = x->grad != NULL;
    for (int64_t i = 0; ok && i < mt_numel(x); i++) ok = fabs(val(x->grad, i) - rows[r].want[i]) < 1e-12;
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (%s)\n", rows[r].what);
    mt_tensor_release(ones);
    mt_tensor_release(y);
    mt_tensor_release(x);
  }
  /* prod with zeros against finite differences too (prod is linear in each element) */
  static const double z[12] = {2, 0, 1.5, 0.5, 0, 0, 3, 1, 1.25, 0.75, 2, 1};
  static const red_ctx pz[] = {{.op = PROD},
                               {.op = PROD, .ndims = 1, .dims = {0}},
                               {.op = PROD, .ndims = 1, .dims = {1}, .keepdim = true},
                               {.op = PROD, .ndims = 2, .dims = {0, 1}}};
  int64_t s34[2] = {3, 4};
  for (size_t i = 0; i < sizeof pz / sizeof pz[0]; i++) {
    mt_tensor *x = from_values(2, s34, z);
    red_ctx c = pz[i];
    CHECK(gradcheck("prod zeros", run_red, &c, 1, &x));
    mt_tensor_release(x);
  }
}

/* ---- matrix products ------------------------------------------------------------------------ */

typedef enum { MATMUL, MM, BMM } mmk;
static mt_status run_mm(mt_tensor **out, mt_tensor *const *in, void *ctx) {
  mmk k = *(const mmk *)ctx;
  return k == MM ? mt_mm(out, in[0], in[1]) : k == BMM ? mt_bmm(out, in[0], in[1]) : mt_matmul(out, in[0], in[1]);
}

static void test_matmul(void) {
  static const struct {
    mmk kind;
    shape a, b;
    const char *name;
  } cases[] = {
      {MATMUL, SH(1, 4), SH(1, 4), "DotBackward0"},
      {MATMUL, SH(2, 3, 4), SH(1, 4), "MvBackward0"},
      {MATMUL, SH(1, 4), SH(2, 4, 5), "SqueezeBackward3"},
      {MATMUL, SH(2, 3, 4), SH(2, 4, 5), "MmBackward0"},
      {MATMUL, SH(3, 2, 3, 4), SH(1, 4), "UnsafeViewBackward0"},
      {MATMUL, SH(1, 4), SH(3, 2, 4, 5), "UnsafeViewBackward0"},
      {MATMUL, SH(3, 2, 3, 4), SH(2, 4, 5), "UnsafeViewBackward0"},
      {MATMUL, SH(2, 3, 4), SH(3, 2, 4, 5), "CloneBackward0"},
      {MATMUL, SH(3, 2, 3, 4), SH(3, 2, 4, 5), "UnsafeViewBackward0"},
      {MATMUL, SH(4, 2, 1, 3, 4), SH(3, 5, 4, 2), "UnsafeViewBackward0"}, /* broadcast batch */
      {MATMUL, SH(3, 1, 3, 4), SH(3, 2, 4, 5), "UnsafeViewBackward0"},
      {MATMUL, SHT(0, 1, 2, 3, 4), SHT(1, 2, 3, 2, 4, 5), "CloneBackward0"},  /* transposed */
      {MATMUL, SHT(1, 2, 3, 2, 3, 4), SHT(0, 1, 2, 4, 5), "UnsafeViewBackward0"},
      {MATMUL, SHT(0, 2, 4, 2, 3, 4, 2), SH(2, 2, 3), "UnsafeViewBackward0"}, /* batch dims not foldable */
      {MATMUL, SH(2, 3, 0), SH(2, 0, 2), "MmBackward0"},                   /* k = 0 */
      {MM, SHT(0, 1, 2, 3, 4), SH(2, 4, 5), "MmBackward0"},
      {BMM, SH(3, 2, 3, 4), SHT(1, 2, 3, 2, 4, 5), "BmmBackward0"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    mt_tensor *in[2] = {make_input(&cases[c].a, -1, 1, (int)c), make_input(&cases[c].b, -1, 1, (int)c + 50)}, *y = NULL;
    mmk kind = cases[c].kind;
    bool ok = in[0] && in[1] && gradcheck(cases[c].name, run_mm, &kind, 2, in);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (matmul case %zu)\n", c);
    OK(mt_requires_grad_(in[0], true));
    OK(run_mm(&y, in, &kind));
    CHECK(y && y->grad_fn && strcmp(mt_node_name(y->grad_fn), cases[c].name) == 0);
    if (y && y->grad_fn && strcmp(mt_node_name(y->grad_fn), cases[c].name) != 0)
      fprintf(stderr, "  case %zu: %s, expected %s\n", c, mt_node_name(y->grad_fn), cases[c].name);
    mt_tensor_release(y);
    mt_tensor_release(in[0]);
    mt_tensor_release(in[1]);
  }

  /* only b requires grad; a saved operand overwritten afterwards is refused */
  int64_t sa[2] = {3, 4}, sb[2] = {4, 2};
  mt_tensor *a = gc_tensor(2, sa, -1, 1, 7), *b = gc_tensor(2, sb, -1, 1, 8), *y, *ones, *two;
  OK(mt_requires_grad_(b, true));
  OK(mt_matmul(&y, a, b));
  OK(mt_full(&ones, MT_FLOAT64, 2, y->sizes, mt_scalar_float(1)));
  OK(mt_backward(y, ones, false));
  CHECK(!a->grad && b->grad && b->grad->ndim == 2 && b->grad->sizes[0] == 4 && b->grad->sizes[1] == 2);
  /* dB = A^T 1: row k of dB is the column sum of A */
  CHECK(b->grad && fabs(val(b->grad, 0) - (val(a, 0) + val(a, 4) + val(a, 8))) < 1e-12);
  mt_tensor_release(y);
  OK(mt_matmul(&y, a, b));
  OK(mt_wrap_number(&two, mt_scalar_float(2)));
  OK(mt_binary_(MT_MUL, a, two));
  FAILS(mt_backward(y, ones, false), MT_ESTATE, "modified by an in-place operation");
  mt_tensor_release(y);
  mt_tensor_release(two);
  mt_tensor_release(ones);

  /* float32: a float32 gradient, equal to the float64 one within float32 precision */
  mt_tensor *a32, *b32;
  OK(mt_requires_grad_(b, false));
  OK(mt_to_dtype(&a32, a, MT_FLOAT32));
  OK(mt_to_dtype(&b32, b, MT_FLOAT32));
  OK(mt_requires_grad_(a32, true));
  OK(mt_matmul(&y, a32, b32));
  OK(mt_full(&ones, MT_FLOAT32, 2, y->sizes, mt_scalar_float(1)));
  OK(mt_backward(y, ones, false));
  CHECK(a32->grad && a32->grad->dtype == MT_FLOAT32 && fabs(val(a32->grad, 1) - (val(b, 2) + val(b, 3))) < 1e-5);
  mt_tensor_release(y);
  mt_tensor_release(ones);
  mt_tensor_release(a32);
  mt_tensor_release(b32);
  mt_tensor_release(a);
  mt_tensor_release(b);
}

/* ---- names, and what must not record -------------------------------------------------------- */

static void test_names_and_plain(void) {
  int64_t s34[2] = {3, 4};
  static const struct {
    red_ctx c;
    const char *name;
  } rows[] = {
#define ON(o, d) {.op = o, .ndims = 1, .dims = {d}}
      {{.op = SUM}, "SumBackward0"},
      {ON(SUM, 1), "SumBackward1"},
      {{.op = PROD}, "ProdBackward0"},
      {ON(PROD, 0), "ProdBackward1"},
      {{.op = MEAN}, "MeanBackward0"},
      {{.op = MEAN, .ndims = 2, .dims = {0, 1}}, "MeanBackward1"},
      {{.op = VAR, .ndims = 1, .dims = {0}, .correction = 1}, "VarBackward0"},
      {{.op = STD}, "StdBackward0"},
      {ON(AMAX, 1), "AmaxBackward0"},
      {{.op = AMIN}, "AminBackward0"},
      {ON(MAXD, 0), "MaxBackward0"},
      {ON(MIND, 1), "MinBackward0"},
      {ON(SORT, 1), "SortBackward0"},
      {{.op = TOPK, .ndims = 1, .dims = {1}, .k = 2, .flag = true}, "TopkBackward0"},
#undef ON
  };
  mt_tensor *x = gc_tensor(2, s34, -1, 1, 9), *y, *idx;
  mt_tensor *in[1] = {x};
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
    red_ctx c = rows[r].c;
    OK(mt_requires_grad_(x, true));
    OK(run_red(&y, in, &c));
    bool ok = y->requires_grad && y->grad_fn && strcmp(mt_node_name(y->grad_fn), rows[r].name) == 0;
    CHECK(ok);
    if (!ok) fprintf(stderr, "  expected %s\n", rows[r].name);
    mt_tensor_release(y);
    /* without an input that requires grad, or with grad mode off: nothing recorded */
    OK(mt_requires_grad_(x, false));
    OK(run_red(&y, in, &c));
    CHECK(!y->requires_grad && !y->grad_fn);
    mt_tensor_release(y);
    OK(mt_requires_grad_(x, true));
    mt_set_grad_enabled(false);
    OK(run_red(&y, in, &c));
    CHECK(!y->requires_grad && !y->grad_fn);
    mt_set_grad_enabled(true);
    mt_tensor_release(y);
  }
  /* indices never require grad; all/any/argmax record nothing */
  OK(mt_max_dim(&y, &idx, x, 1, false));
  CHECK(y->grad_fn && !idx->requires_grad && !idx->grad_fn);
  mt_tensor_release(y), mt_tensor_release(idx);
  OK(mt_topk(&y, &idx, x, 2, 0, true));
  CHECK(y->grad_fn && !idx->requires_grad && !idx->grad_fn);
  mt_tensor_release(y), mt_tensor_release(idx);
  OK(mt_argmax(&idx, x, true, 0, false));
  CHECK(!idx->requires_grad && !idx->grad_fn);
  mt_tensor_release(idx);
  OK(mt_any(&y, x, 0, NULL, false));
  CHECK(!y->requires_grad && !y->grad_fn);
  mt_tensor_release(y);

  /* a float32 input gets a float32 gradient; a retained graph runs twice and accumulates */
  mt_tensor *f;
  OK(mt_requires_grad_(x, false)); /* f is a leaf of its own */
  OK(mt_to_dtype(&f, x, MT_FLOAT32));
  OK(mt_requires_grad_(f, true));
  OK(mt_prod(&y, f, 0, NULL, false));
  OK(mt_backward(y, NULL, true));
  OK(mt_backward(y, NULL, false));
  FAILS(mt_backward(y, NULL, false), MT_ESTATE, "second time");
  double p = 1;
  for (int i = 1; i < 12; i++) p *= (float)val(x, i);
  CHECK(f->grad && f->grad->dtype == MT_FLOAT32 && fabs(val(f->grad, 0) - 2 * p) < 1e-5 * fabs(p) + 1e-7);
  mt_tensor_release(y);
  mt_tensor_release(f);
  mt_tensor_release(x);
}

int main(void) {
  test_set_reductions();
  test_dim_ops();
  test_exact();
  test_matmul();
  test_names_and_plain();
  return mt_test_finish("test_autograd_reduce");
}
