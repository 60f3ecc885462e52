/* test_elementwise.c — binary and unary ops, clamp, where and masked_fill: values against
 * PyTorch 1.13 (elementwise_cases.h holds the tables, and the script that computed them), type
 * promotion, broadcasting, non-contiguous and in-place operands, error statuses and messages. */
#include "mt_test.h"
#include "elementwise_cases.h"

#include <stdlib.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static mt_scalar num(mt_dtype dt, double v) {
  if (dt == MT_BOOL) return mt_scalar_bool(v != 0);
  if (mt_dtype_info(dt)->is_float) return mt_scalar_float(v);
  return mt_scalar_int((int64_t)v);
}

/* A contiguous tensor holding vals in logical order. */
static mt_tensor *make(mt_dtype dt, int ndim, const int64_t *sizes, const double *vals) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) abort();
  for (int64_t i = 0; i < mt_numel(t); i++)
    if (mt_set_flat(t, i, num(dt, vals[i]))) abort();
  return t;
}

static mt_tensor *make1(mt_dtype dt, int64_t n, const double *vals) { return make(dt, 1, &n, vals); }

/* A [rows, cols] transposed (non-contiguous) view whose logical order is vals. */
static mt_tensor *make_t(mt_dtype dt, int64_t rows, int64_t cols, const double *vals) {
  double buf[64];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) buf[c * rows + r] = vals[r * cols + c];
  int64_t sizes[2] = {cols, rows};
  mt_tensor *base = make(dt, 2, sizes, buf), *t;
  if (mt_transpose(&t, base, 0, 1)) abort();
  mt_tensor_release(base);
  if (mt_is_contiguous(t)) abort();
  return t;
}

static mt_tensor *wrap_int(int64_t v) {
  mt_tensor *t;
  if (mt_wrap_number(&t, mt_scalar_int(v))) abort();
  return t;
}
static mt_tensor *wrap_float(double v) {
  mt_tensor *t;
  if (mt_wrap_number(&t, mt_scalar_float(v))) abort();
  return t;
}
static mt_tensor *zero_dim(mt_dtype dt, double v) {
  mt_tensor *t;
  if (mt_scalar_tensor(&t, dt, num(dt, v))) abort();
  return t;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (mt_get_flat(t, i, &s)) abort();
  return mt_scalar_to_f64(s);
}

/* Relative tolerance per dtype: PyTorch's vectorised libm may differ from glibc by an ulp or
 * two, and float16/bfloat16 results may then round to the neighbouring value. */
static double tol_of(mt_dtype dt) {
  switch (dt) {
  case MT_FLOAT32: return 2e-6;
  case MT_FLOAT64: return 1e-12;
  case MT_FLOAT16: return 2e-3;
  case MT_BFLOAT16: return 1e-2;
  default: return 0;
  }
}

static bool close_to(double got, double want, double tol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  return fabs(got - want) <= tol * (fabs(want) + 1e-3);
}

/* Checks dtype, element count and values (logical order); reports the first mismatch. */
static bool matches(const mt_tensor *t, mt_dtype dt, int64_t n, const double *want) {
  if (!t || t->dtype != dt || mt_numel(t) != n) return false;
  for (int64_t i = 0; i < n; i++)
    if (!close_to(at(t, i), want[i], tol_of(dt))) {
      fprintf(stderr, "  element %lld: got %.17g, want %.17g (%s)\n", (long long)i, at(t, i), want[i],
              mt_dtype_info(dt)->name);
      return false;
    }
  return true;
}

/* Two results of the same computation by different paths: same dtype, count and values. */
static bool same_values(const mt_tensor *x, const mt_tensor *y) {
  if (!x || !y || x->dtype != y->dtype || mt_numel(x) != mt_numel(y)) return false;
  for (int64_t i = 0; i < mt_numel(x); i++)
    if (!close_to(at(x, i), at(y, i), tol_of(x->dtype))) return false;
  return true;
}

static bool shape_is(const mt_tensor *t, int ndim, const int64_t *sizes) {
  if (t->ndim != ndim) return false;
  for (int d = 0; d < ndim; d++)
    if (t->sizes[d] != sizes[d]) return false;
  return true;
}

/* ---- inputs of the PyTorch tables -------------------------------------------------------- */

static void bin_inputs(mt_dtype dt, const double **a, const double **b) {
  if (mt_dtype_info(dt)->is_float) *a = bin_float_a, *b = bin_float_b;
  else if (dt == MT_UINT8) *a = bin_u8_a, *b = bin_u8_b;
  else if (dt == MT_BOOL) *a = bin_bool_a, *b = bin_bool_b;
  else *a = bin_int_a, *b = bin_int_b;
}

static const double *un_input(mt_dtype dt) {
  if (mt_dtype_info(dt)->is_float) return un_float;
  if (dt == MT_UINT8) return un_u8;
  if (dt == MT_BOOL) return un_bool;
  return un_int;
}

/* ---- binary ops over the table ----------------------------------------------------------- */

static void test_binary_table(void) {
  for (size_t r = 0; r < sizeof bin_cases / sizeof bin_cases[0]; r++) {
    const bin_case *c = &bin_cases[r];
    const double *va, *vb;
    bin_inputs(c->dt, &va, &vb);
    mt_tensor *a = make1(c->dt, 6, va), *b = make1(c->dt, 6, vb), *out = NULL;
    if (c->out < 0) {
      CHECK(mt_binary(&out, c->op, a, b) == MT_EDTYPE && out == NULL);
      mt_tensor_release(a);
      mt_tensor_release(b);
      continue;
    }
    mt_dtype want_dt = (mt_dtype)c->out;
    CHECK(mt_binary_result_dtype(c->op, a, b) == want_dt);

    /* contiguous */
    OK(mt_binary(&out, c->op, a, b));
    if (!matches(out, want_dt, 6, c->want))
      fprintf(stderr, "  ^ %s %s (contiguous)\n", mt_binop_name(c->op), mt_dtype_info(c->dt)->name);
    CHECK(matches(out, want_dt, 6, c->want));
    mt_tensor_release(out);

    /* transposed views, alone and mixed with a contiguous operand */
    mt_tensor *at_ = make_t(c->dt, 2, 3, va), *bt = make_t(c->dt, 2, 3, vb);
    int64_t s23[2] = {2, 3};
    mt_tensor *b23 = make(c->dt, 2, s23, vb);
    out = NULL;
    OK(mt_binary(&out, c->op, at_, bt));
    CHECK(out && shape_is(out, 2, s23) && mt_is_contiguous(out) && matches(out, want_dt, 6, c->want));
    mt_tensor_release(out);
    out = NULL;
    OK(mt_binary(&out, c->op, at_, b23));
    CHECK(matches(out, want_dt, 6, c->want));
    mt_tensor_release(out);

    /* one side a one-element tensor (the stride-0 scalar path) must agree with the same value
     * spread over a full tensor (the plain path) */
    for (int k = 0; k < 6; k++) {
      mt_tensor *s = zero_dim(c->dt, vb[k]), *full, *full23, *r1 = NULL, *r2 = NULL;
      if (mt_full(&full, c->dt, 1, (int64_t[]){6}, num(c->dt, vb[k])) ||
          mt_full(&full23, c->dt, 2, s23, num(c->dt, vb[k])))
        abort();
      OK(mt_binary(&r1, c->op, a, s));
      OK(mt_binary(&r2, c->op, a, full));
      CHECK(same_values(r1, r2));
      mt_tensor_release(r1), mt_tensor_release(r2);
      r1 = r2 = NULL;
      OK(mt_binary(&r1, c->op, s, bt)); /* scalar first, transposed second */
      OK(mt_binary(&r2, c->op, full23, b23));
      CHECK(same_values(r1, r2) && shape_is(r1, 2, s23));
      mt_tensor_release(r1), mt_tensor_release(r2);
      mt_tensor_release(s), mt_tensor_release(full), mt_tensor_release(full23);
    }

    /* in place, when the result dtype is a's own: contiguous and through a transposed view */
    if (want_dt == c->dt) {
      mt_tensor *ac = make1(c->dt, 6, va), *act = make_t(c->dt, 2, 3, va);
      OK(mt_binary_(c->op, ac, b));
      CHECK(matches(ac, want_dt, 6, c->want));
      OK(mt_binary_(c->op, act, b23));
      CHECK(matches(act, want_dt, 6, c->want) && !mt_is_contiguous(act));
      mt_tensor_release(ac), mt_tensor_release(act);
    }
    mt_tensor_release(at_), mt_tensor_release(bt), mt_tensor_release(b23);
    mt_tensor_release(a), mt_tensor_release(b);
  }
}

/* ---- unary ops over the table ------------------------------------------------------------ */

static void test_unary_table(void) {
  for (size_t r = 0; r < sizeof un_cases / sizeof un_cases[0]; r++) {
    const un_case *c = &un_cases[r];
    const double *v = un_input(c->dt);
    mt_tensor *a = make1(c->dt, 8, v), *out = NULL;
    if (c->out < 0) {
      CHECK(mt_unary(&out, c->op, a) == MT_EDTYPE && out == NULL);
      CHECK(mt_unary_(c->op, a) == MT_EDTYPE);
      mt_tensor_release(a);
      continue;
    }
    mt_dtype want_dt = (mt_dtype)c->out;
    OK(mt_unary(&out, c->op, a));
    if (!matches(out, want_dt, 8, c->want))
      fprintf(stderr, "  ^ %s %s\n", mt_unop_name(c->op), mt_dtype_info(c->dt)->name);
    CHECK(matches(out, want_dt, 8, c->want));
    CHECK(out != a);
    mt_tensor_release(out);
    CHECK(at(a, 0) == v[0]); /* input untouched */

    mt_tensor *t = make_t(c->dt, 2, 4, v);
    out = NULL;
    OK(mt_unary(&out, c->op, t));
    int64_t s24[2] = {2, 4};
    CHECK(out && shape_is(out, 2, s24) && mt_is_contiguous(out) && matches(out, want_dt, 8, c->want));
    mt_tensor_release(out);

    if (want_dt == c->dt) {
      OK(mt_unary_(c->op, a));
      CHECK(matches(a, want_dt, 8, c->want));
      OK(mt_unary_(c->op, t));
      CHECK(matches(t, want_dt, 8, c->want));
    } else if (!mt_dtype_info(c->dt)->is_float && mt_dtype_info(want_dt)->is_float) {
      FAILS(mt_unary_(c->op, a), MT_EDTYPE, "can't be cast to the desired output type");
    }
    mt_tensor_release(t);
    mt_tensor_release(a);
  }
}

/* ---- type promotion ---------------------------------------------------------------------- */

enum kind { DIM, ZERO, WRAPPED };
typedef struct operand_spec {
  mt_dtype dt;
  enum kind kind;
} operand_spec;

static mt_tensor *make_operand(operand_spec s) {
  if (s.kind == WRAPPED) {
    mt_tensor *t;
    mt_scalar v = s.dt == MT_FLOAT64 ? mt_scalar_float(2.5) : s.dt == MT_BOOL ? mt_scalar_bool(true) : mt_scalar_int(3);
    if (mt_wrap_number(&t, v)) abort();
    return t;
  }
  if (s.kind == ZERO) return zero_dim(s.dt, 1);
  return make1(s.dt, 1, (double[]){1});
}

static void test_promotion(void) {
  static const struct {
    operand_spec a, b;
    mt_dtype want;
  } rows[] = {
      /* torch.result_type in PyTorch 1.13 */
      {{MT_INT32, DIM}, {MT_FLOAT64, ZERO}, MT_FLOAT64},
      {{MT_INT32, DIM}, {MT_INT64, ZERO}, MT_INT32},
      {{MT_BOOL, DIM}, {MT_INT8, ZERO}, MT_INT8},
      {{MT_UINT8, DIM}, {MT_INT64, WRAPPED}, MT_UINT8},
      {{MT_BOOL, DIM}, {MT_INT64, WRAPPED}, MT_INT64},
      {{MT_BOOL, DIM}, {MT_FLOAT64, WRAPPED}, MT_FLOAT32},
      {{MT_FLOAT16, DIM}, {MT_FLOAT64, ZERO}, MT_FLOAT16},
      {{MT_FLOAT16, DIM}, {MT_FLOAT64, WRAPPED}, MT_FLOAT16},
      {{MT_INT8, ZERO}, {MT_FLOAT64, WRAPPED}, MT_FLOAT32},
      {{MT_INT8, ZERO}, {MT_FLOAT64, ZERO}, MT_FLOAT64},
      {{MT_FLOAT16, DIM}, {MT_BFLOAT16, DIM}, MT_FLOAT32},
      {{MT_UINT8, DIM}, {MT_INT8, DIM}, MT_INT16},
      {{MT_INT32, ZERO}, {MT_INT64, WRAPPED}, MT_INT32},
      {{MT_FLOAT64, WRAPPED}, {MT_INT16, DIM}, MT_FLOAT32},
      {{MT_BOOL, WRAPPED}, {MT_UINT8, DIM}, MT_UINT8},
      {{MT_INT64, WRAPPED}, {MT_BOOL, DIM}, MT_INT64},
      {{MT_FLOAT64, ZERO}, {MT_FLOAT32, DIM}, MT_FLOAT32},
      {{MT_FLOAT32, ZERO}, {MT_INT64, DIM}, MT_FLOAT32},
      {{MT_UINT8, ZERO}, {MT_INT8, ZERO}, MT_INT16},
      {{MT_BFLOAT16, ZERO}, {MT_INT64, DIM}, MT_BFLOAT16},
      {{MT_INT16, DIM}, {MT_INT32, DIM}, MT_INT32},
      {{MT_BOOL, DIM}, {MT_BOOL, ZERO}, MT_BOOL},
      {{MT_FLOAT16, ZERO}, {MT_INT64, WRAPPED}, MT_FLOAT16},
      {{MT_BOOL, ZERO}, {MT_FLOAT64, WRAPPED}, MT_FLOAT32},
      /* two host numbers: the same rule (a host float counts as float32) */
      {{MT_INT64, WRAPPED}, {MT_FLOAT64, WRAPPED}, MT_FLOAT32},
      {{MT_BOOL, WRAPPED}, {MT_INT64, WRAPPED}, MT_INT64},
      {{MT_FLOAT64, WRAPPED}, {MT_FLOAT64, WRAPPED}, MT_FLOAT32},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    mt_tensor *a = make_operand(rows[i].a), *b = make_operand(rows[i].b), *out = NULL;
    CHECK(mt_binary_result_dtype(MT_ADD, a, b) == rows[i].want);
    CHECK(mt_binary_result_dtype(MT_ADD, b, a) == rows[i].want);
    OK(mt_binary(&out, MT_ADD, a, b));
    CHECK(out && out->dtype == rows[i].want && !out->wrapped_number);
    if (out && out->dtype == rows[i].want) {
      mt_scalar s;
      OK(mt_get_flat(out, 0, &s));
      double want = (rows[i].a.kind == WRAPPED ? (rows[i].a.dt == MT_FLOAT64 ? 2.5 : rows[i].a.dt == MT_BOOL ? 1 : 3) : 1) +
                    (rows[i].b.kind == WRAPPED ? (rows[i].b.dt == MT_FLOAT64 ? 2.5 : rows[i].b.dt == MT_BOOL ? 1 : 3) : 1);
      if (rows[i].want == MT_BOOL) want = 1;
      CHECK(mt_scalar_to_f64(s) == want);
    }
    mt_tensor_release(out), mt_tensor_release(a), mt_tensor_release(b);
  }

  /* per-op rules */
  mt_tensor *i = make1(MT_INT64, 2, (double[]){7, -3}), *j = make1(MT_INT64, 2, (double[]){2, 2});
  mt_tensor *h = make1(MT_FLOAT16, 2, (double[]){7, 1}), *three = wrap_int(3), *out = NULL;
  CHECK(mt_binary_result_dtype(MT_DIV, i, j) == MT_FLOAT32);
  CHECK(mt_binary_result_dtype(MT_LT, h, i) == MT_BOOL);
  CHECK(mt_binary_result_dtype(MT_LOGICAL_AND, i, j) == MT_BOOL);
  OK(mt_binary(&out, MT_DIV, i, j));
  CHECK(matches(out, MT_FLOAT32, 2, (double[]){3.5, -1.5}));
  mt_tensor_release(out);
  out = NULL;
  OK(mt_binary(&out, MT_DIV, h, three)); /* float16 / 3 runs in float32, rounds once */
  CHECK(matches(out, MT_FLOAT16, 2, (double[]){2.333984375, 0.333251953125}) && at(out, 0) == 2.333984375);
  mt_tensor_release(out);
  out = NULL;
  mt_tensor *big = make1(MT_INT64, 1, (double[]){16777217}), *f = zero_dim(MT_FLOAT32, 16777216);
  OK(mt_binary(&out, MT_EQ, big, f)); /* compared in float32, as PyTorch: equal */
  CHECK(matches(out, MT_BOOL, 1, (double[]){1}));
  mt_tensor_release(out), mt_tensor_release(big), mt_tensor_release(f);
  mt_tensor_release(i), mt_tensor_release(j), mt_tensor_release(h), mt_tensor_release(three);
}

/* ---- broadcasting ------------------------------------------------------------------------ */

static void test_broadcasting(void) {
  int nd;
  int64_t out[MT_MAX_DIMS];
  int64_t s31[2] = {3, 1}, s14[2] = {1, 4}, s23[2] = {2, 3}, s4[1] = {4}, s0[2] = {0, 3}, s13[2] = {1, 3};
  OK(mt_broadcast_shapes(2, s31, 2, s14, &nd, out));
  CHECK(nd == 2 && out[0] == 3 && out[1] == 4);
  int64_t s5[3] = {5, 1, 1};
  OK(mt_broadcast_shapes(3, s5, 2, s23, &nd, out));
  CHECK(nd == 3 && out[0] == 5 && out[1] == 2 && out[2] == 3);
  OK(mt_broadcast_shapes(0, NULL, 2, s0, &nd, out));
  CHECK(nd == 2 && out[0] == 0 && out[1] == 3);
  int64_t alias[2] = {3, 1};
  OK(mt_broadcast_shapes(2, alias, 2, s14, &nd, alias)); /* out may be an input */
  CHECK(alias[0] == 3 && alias[1] == 4);
  FAILS(mt_broadcast_shapes(2, s23, 1, s4, &nd, out), MT_ESHAPE, "shapes [2, 3] and [4] cannot be broadcast");

  /* [3,1] + [1,4] */
  mt_tensor *a = make(MT_FLOAT32, 2, s31, (double[]){1, 2, 3}), *b = make(MT_FLOAT32, 2, s14, (double[]){10, 20, 30, 40});
  mt_tensor *r = NULL;
  OK(mt_binary(&r, MT_ADD, a, b));
  int64_t s34[2] = {3, 4};
  CHECK(r && shape_is(r, 2, s34) &&
        matches(r, MT_FLOAT32, 12, (double[]){11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43}));
  mt_tensor_release(r);
  r = NULL;
  /* an int64 [3,1] against float64 [1,4] (conversion, then the iterator) */
  mt_tensor *ai = make(MT_INT64, 2, s31, (double[]){1, 2, 3}), *bd = make(MT_FLOAT64, 2, s14, (double[]){1, 2, 4, 8});
  OK(mt_binary(&r, MT_MUL, ai, bd));
  CHECK(r && shape_is(r, 2, s34) && matches(r, MT_FLOAT64, 12, (double[]){1, 2, 4, 8, 2, 4, 8, 16, 3, 6, 12, 24}));
  mt_tensor_release(r), mt_tensor_release(ai), mt_tensor_release(bd);
  r = NULL;

  /* 0-dim with 0-dim stays 0-dim; 0-dim with [3,1] broadcasts */
  mt_tensor *z1 = zero_dim(MT_FLOAT32, 2), *z2 = zero_dim(MT_FLOAT32, 5);
  OK(mt_binary(&r, MT_POW, z1, z2));
  CHECK(r && r->ndim == 0 && at(r, 0) == 32);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_binary(&r, MT_SUB, z2, a));
  CHECK(r && shape_is(r, 2, s31) && matches(r, MT_FLOAT32, 3, (double[]){4, 3, 2}));
  mt_tensor_release(r);
  r = NULL;

  /* empty: [0,3] + [1,3] is [0,3]; unary and comparisons of empties too */
  mt_tensor *e, *o13 = make(MT_FLOAT32, 2, s13, (double[]){1, 2, 3});
  OK(mt_zeros(&e, MT_FLOAT32, 2, s0));
  OK(mt_binary(&r, MT_ADD, e, o13));
  CHECK(r && shape_is(r, 2, s0) && r->dtype == MT_FLOAT32);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_binary(&r, MT_LT, o13, e));
  CHECK(r && shape_is(r, 2, s0) && r->dtype == MT_BOOL);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_unary(&r, MT_EXP, e));
  CHECK(r && shape_is(r, 2, s0));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_binary_(MT_ADD, e, o13));
  mt_tensor *ei, *zero = zero_dim(MT_INT64, 0);
  OK(mt_zeros(&ei, MT_INT64, 2, s0));
  OK(mt_binary(&r, MT_FMOD, ei, zero)); /* nothing divided: no error, as PyTorch */
  CHECK(r && shape_is(r, 2, s0));
  mt_tensor_release(r), mt_tensor_release(zero);
  r = NULL;

  /* errors */
  mt_tensor *x23, *x4;
  OK(mt_zeros(&x23, MT_FLOAT32, 2, s23));
  OK(mt_zeros(&x4, MT_FLOAT32, 1, s4));
  FAILS(mt_binary(&r, MT_ADD, x23, x4), MT_ESHAPE, "shapes [2, 3] and [4] cannot be broadcast");
  CHECK(r == NULL);
  FAILS(mt_binary(&r, MT_ADD, x4, x23), MT_ESHAPE, "shapes [4] and [2, 3] cannot be broadcast");

  mt_tensor_release(x23), mt_tensor_release(x4), mt_tensor_release(e), mt_tensor_release(ei), mt_tensor_release(o13);
  mt_tensor_release(z1), mt_tensor_release(z2), mt_tensor_release(a), mt_tensor_release(b);
}

/* ---- in place ---------------------------------------------------------------------------- */

static void test_in_place(void) {
  /* the result is converted into a's dtype (wrapping, as PyTorch) */
  mt_tensor *i8 = make1(MT_INT8, 2, (double[]){1, 100}), *k = make1(MT_INT64, 2, (double[]){1000, 28});
  OK(mt_binary_(MT_ADD, i8, k));
  CHECK(matches(i8, MT_INT8, 2, (double[]){-23, -128}));
  mt_tensor *f = make1(MT_FLOAT32, 2, (double[]){1.5, -2.5}), *w = wrap_float(1.5);
  OK(mt_binary_(MT_EQ, f, w)); /* a comparison writes 1/0 into a float tensor */
  CHECK(matches(f, MT_FLOAT32, 2, (double[]){1, 0}));
  mt_tensor *u8 = make1(MT_UINT8, 1, (double[]){250}), *ten = wrap_int(10);
  OK(mt_binary_(MT_ADD, u8, ten));
  CHECK(matches(u8, MT_UINT8, 1, (double[]){4}));
  mt_tensor *fi = make1(MT_FLOAT32, 1, (double[]){1.5}), *one = make1(MT_INT64, 1, (double[]){1});
  OK(mt_binary_(MT_ADD, fi, one));
  CHECK(matches(fi, MT_FLOAT32, 1, (double[]){2.5}));

  /* errors: a's shape cannot grow; float results do not go into integer tensors */
  mt_tensor *i2 = make1(MT_INT64, 2, (double[]){3, -2}), *w15 = wrap_float(1.5), *two = wrap_int(2), *r = NULL;
  int64_t s22[2] = {2, 2};
  mt_tensor *m22 = make(MT_INT64, 2, s22, (double[]){1, 2, 3, 4});
  FAILS(mt_binary_(MT_ADD, i2, m22), MT_ESHAPE, "output with shape [2] doesn't match the broadcast shape [2, 2]");
  FAILS(mt_binary_(MT_ADD, i2, w15), MT_EDTYPE, "result type float32 can't be cast to the desired output type int64");
  FAILS(mt_binary_(MT_DIV, i2, two), MT_EDTYPE, "result type float32 can't be cast to the desired output type int64");
  FAILS(mt_binary_(MT_MUL, i8, w15), MT_EDTYPE, "result type float32 can't be cast to the desired output type int8");
  mt_tensor *bl = make1(MT_BOOL, 2, (double[]){1, 0});
  FAILS(mt_binary_(MT_ADD, bl, one), MT_EDTYPE, "result type int64 can't be cast to the desired output type bool");
  CHECK(matches(i2, MT_INT64, 2, (double[]){3, -2}) && matches(bl, MT_BOOL, 2, (double[]){1, 0})); /* untouched */
  mt_tensor *bt = make1(MT_BOOL, 2, (double[]){1, 1});
  OK(mt_binary_(MT_LOGICAL_AND, bl, bt));
  CHECK(matches(bl, MT_BOOL, 2, (double[]){1, 0}));
  OK(mt_binary_(MT_EQ, i2, two));
  CHECK(matches(i2, MT_INT64, 2, (double[]){0, 0}));

  /* a stride-0 (expanded) output would write several results into one element */
  mt_tensor *row = make1(MT_FLOAT32, 3, (double[]){1, 2, 3}), *ex;
  int64_t s23[2] = {2, 3};
  OK(mt_expand(&ex, row, 2, s23));
  FAILS(mt_binary_(MT_ADD, ex, w15), MT_EARG, "more than one element of the written-to tensor");
  FAILS(mt_unary_(MT_NEG, ex), MT_EARG, "more than one element");
  mt_scalar zero = mt_scalar_int(0);
  FAILS(mt_clamp_(ex, &zero, NULL), MT_EARG, "more than one element");

  /* operands sharing a's memory: the same view (a += a), and a transposed one (m += m^T) */
  mt_tensor *a = make1(MT_FLOAT64, 3, (double[]){1, 2, 3});
  OK(mt_binary_(MT_ADD, a, a));
  CHECK(matches(a, MT_FLOAT64, 3, (double[]){2, 4, 6}));
  OK(mt_binary_(MT_MUL, a, a));
  CHECK(matches(a, MT_FLOAT64, 3, (double[]){4, 16, 36}));
  int64_t s33[2] = {3, 3};
  mt_tensor *m = make(MT_FLOAT32, 2, s33, (double[]){0, 1, 2, 3, 4, 5, 6, 7, 8}), *mt;
  OK(mt_transpose(&mt, m, 0, 1));
  OK(mt_binary_(MT_ADD, m, mt));
  CHECK(matches(m, MT_FLOAT32, 9, (double[]){0, 4, 8, 4, 8, 12, 8, 12, 16}));
  /* and through the transposed view itself, a broadcast row of the same storage */
  mt_tensor *m2 = make(MT_FLOAT32, 2, s33, (double[]){0, 1, 2, 3, 4, 5, 6, 7, 8}), *m2t, *row0;
  OK(mt_transpose(&m2t, m2, 0, 1));
  OK(mt_select(&row0, m2, 0, 0)); /* [0, 1, 2], broadcast along m2t's rows */
  OK(mt_binary_(MT_SUB, m2t, row0));
  /* m2t was [[0,3,6],[1,4,7],[2,5,8]]; minus [0,1,2] per row */
  CHECK(matches(m2t, MT_FLOAT32, 9, (double[]){0, 2, 4, 1, 3, 5, 2, 4, 6}));

  mt_tensor_release(i8), mt_tensor_release(k), mt_tensor_release(f), mt_tensor_release(w), mt_tensor_release(u8);
  mt_tensor_release(ten), mt_tensor_release(fi), mt_tensor_release(one), mt_tensor_release(i2), mt_tensor_release(w15);
  mt_tensor_release(two), mt_tensor_release(m22), mt_tensor_release(bl), mt_tensor_release(bt), mt_tensor_release(r);
  mt_tensor_release(row), mt_tensor_release(ex), mt_tensor_release(a), mt_tensor_release(m), mt_tensor_release(mt);
  mt_tensor_release(m2), mt_tensor_release(m2t), mt_tensor_release(row0);
}

/* ---- op-specific rules and errors -------------------------------------------------------- */

static void test_binary_rules(void) {
  mt_tensor *r = NULL;
  mt_tensor *b = make1(MT_BOOL, 2, (double[]){1, 0}), *i = make1(MT_INT64, 2, (double[]){3, -2});
  mt_tensor *t = wrap_int(1), *tb;
  OK(mt_wrap_number(&tb, mt_scalar_bool(true)));
  FAILS(mt_binary(&r, MT_SUB, b, b), MT_EDTYPE, "subtraction of two bool tensors is not supported");
  FAILS(mt_binary(&r, MT_SUB, i, tb), MT_EDTYPE, "subtraction with a bool tensor is not supported");
  FAILS(mt_binary(&r, MT_SUB, b, t), MT_EDTYPE, "subtraction with a bool tensor is not supported");
  FAILS(mt_binary(&r, MT_POW, b, b), MT_EDTYPE, "pow is not defined for bool tensors");
  FAILS(mt_binary(&r, MT_REMAINDER, b, b), MT_EDTYPE, "remainder is not defined for bool tensors");
  FAILS(mt_binary_((mt_binop)99, i, i), MT_EARG, "unknown binary op");
  CHECK(r == NULL);
  CHECK(strcmp(mt_binop_name(MT_LOGICAL_XOR), "logical_xor") == 0 && strcmp(mt_binop_name(MT_REMAINDER), "remainder") == 0);

  /* integer powers: a host exponent < 0 is an error, a tensor one gives 0 (or +-1) */
  mt_tensor *m1 = wrap_int(-1), *m1t = zero_dim(MT_INT64, -1);
  FAILS(mt_binary(&r, MT_POW, i, m1), MT_EARG, "integers to negative integer powers are not allowed");
  FAILS(mt_binary(&r, MT_POW, b, m1), MT_EARG, "integers to negative integer powers are not allowed");
  OK(mt_binary(&r, MT_POW, i, m1t));
  CHECK(matches(r, MT_INT64, 2, (double[]){0, 0}));
  mt_tensor_release(r);
  r = NULL;
  mt_tensor *base = make1(MT_INT64, 5, (double[]){2, 1, -1, 0, 3}), *ex = make1(MT_INT64, 5, (double[]){-1, -2, -3, -1, 0});
  OK(mt_binary(&r, MT_POW, base, ex));
  CHECK(matches(r, MT_INT64, 5, (double[]){0, 1, -1, 0, 1}));
  mt_tensor_release(r);
  r = NULL;
  mt_tensor *two = wrap_int(2), *pm = make1(MT_INT64, 2, (double[]){-1, 2});
  OK(mt_binary(&r, MT_POW, two, pm)); /* a host base with tensor exponents is fine */
  CHECK(matches(r, MT_INT64, 2, (double[]){0, 4}));
  mt_tensor_release(r);
  r = NULL;
  mt_tensor *b3 = make1(MT_INT64, 1, (double[]){3}), *e50 = make1(MT_INT64, 1, (double[]){50});
  OK(mt_binary(&r, MT_POW, b3, e50)); /* 3^50 wraps as in PyTorch */
  CHECK(r && r->dtype == MT_INT64 && *(int64_t *)mt_data(r) == 6048575297968530377LL);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_binary(&r, MT_POW, b, two)); /* bool ** 2 is int64 */
  CHECK(matches(r, MT_INT64, 2, (double[]){1, 0}));
  mt_tensor_release(r);
  r = NULL;

  /* integer division by zero in fmod / remainder: an error, never a crash */
  mt_tensor *z = wrap_int(0), *zt = make1(MT_INT64, 2, (double[]){1, 0}), *z8 = make1(MT_INT8, 2, (double[]){1, 0});
  FAILS(mt_binary(&r, MT_FMOD, i, z), MT_EARG, "integer division by zero");
  FAILS(mt_binary(&r, MT_FMOD, i, zt), MT_EARG, "integer division by zero");
  FAILS(mt_binary(&r, MT_REMAINDER, i, z8), MT_EARG, "integer division by zero");
  FAILS(mt_binary_(MT_REMAINDER, i, zt), MT_EARG, "integer division by zero");
  CHECK(matches(i, MT_INT64, 2, (double[]){3, -2}) && r == NULL);
  mt_tensor *fz = wrap_float(0.0);
  OK(mt_binary(&r, MT_FMOD, i, fz)); /* float: NaN */
  CHECK(r && r->dtype == MT_FLOAT32 && isnan(at(r, 0)) && isnan(at(r, 1)));
  mt_tensor_release(r);
  r = NULL;
  mt_tensor *mn = make1(MT_INT64, 1, (double[]){0}), *neg1 = wrap_int(-1);
  *(int64_t *)mt_data(mn) = INT64_MIN;
  OK(mt_binary(&r, MT_FMOD, mn, neg1)); /* INT64_MIN % -1 traps in C; here it is 0 */
  CHECK(matches(r, MT_INT64, 1, (double[]){0}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_binary(&r, MT_REMAINDER, mn, neg1));
  CHECK(matches(r, MT_INT64, 1, (double[]){0}));
  mt_tensor_release(r);
  r = NULL;

  /* int64 arithmetic wraps without UB */
  mt_tensor *p62 = make1(MT_INT64, 1, (double[]){0}), *four = wrap_int(4), *mx = make1(MT_INT64, 1, (double[]){0});
  *(int64_t *)mt_data(p62) = INT64_C(1) << 62;
  *(int64_t *)mt_data(mx) = INT64_MAX;
  OK(mt_binary(&r, MT_MUL, p62, four));
  CHECK(r && *(int64_t *)mt_data(r) == 0);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_binary(&r, MT_ADD, mx, t));
  CHECK(r && *(int64_t *)mt_data(r) == INT64_MIN);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_unary(&r, MT_NEG, mn));
  CHECK(r && *(int64_t *)mt_data(r) == INT64_MIN);
  mt_tensor_release(r);
  r = NULL;
  OK(mt_unary(&r, MT_ABS, mn));
  CHECK(r && *(int64_t *)mt_data(r) == INT64_MIN);
  mt_tensor_release(r);
  r = NULL;

  /* NaN: maximum/minimum propagate it, comparisons are false (ne true) */
  mt_tensor *fa = make1(MT_FLOAT32, 2, (double[]){NAN, 1}), *fb = make1(MT_FLOAT32, 2, (double[]){1, NAN});
  static const struct {
    mt_binop op;
    double want[2];
  } nan_rows[] = {{MT_MAXIMUM, {NAN, NAN}}, {MT_MINIMUM, {NAN, NAN}}, {MT_EQ, {0, 0}}, {MT_NE, {1, 1}},
                  {MT_LT, {0, 0}},          {MT_GE, {0, 0}},          {MT_LOGICAL_AND, {1, 1}}};
  for (size_t k = 0; k < sizeof nan_rows / sizeof nan_rows[0]; k++) {
    OK(mt_binary(&r, nan_rows[k].op, fa, fb));
    CHECK(matches(r, nan_rows[k].op >= MT_EQ ? MT_BOOL : MT_FLOAT32, 2, nan_rows[k].want));
    mt_tensor_release(r);
    r = NULL;
  }

  /* float pow with a host exponent: the special-cased exponents (PyTorch 1.13 values) */
  mt_tensor *x = make1(MT_FLOAT32, 4, (double[]){4, 0.25, 2, 9});
  static const struct {
    double e, want[4];
  } pow_rows[] = {
      {2, {16, 0.0625, 4, 81}},
      {3, {64, 0.015625, 8, 729}},
      {0.5, {2, 0.5, 1.4142135381698608, 3}},
      {-0.5, {0.5, 2, 0.7071067690849304, 0.3333333432674408}},
      {-1, {0.25, 4, 0.5, 0.1111111119389534}},
      {-2, {0.0625, 16, 0.25, 0.012345679104328156}},
      {1.5, {8, 0.125, 2.8284270763397217, 27}},
  };
  for (size_t k = 0; k < sizeof pow_rows / sizeof pow_rows[0]; k++) {
    mt_tensor *e = wrap_float(pow_rows[k].e);
    OK(mt_binary(&r, MT_POW, x, e));
    CHECK(matches(r, MT_FLOAT32, 4, pow_rows[k].want));
    mt_tensor_release(r), mt_tensor_release(e);
    r = NULL;
  }

  mt_tensor *objs[] = {b, i, t, tb, m1, m1t, base, ex, two, pm, b3, e50, z, zt, z8, fz, mn, neg1, p62, four, mx, fa, fb, x};
  for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++) mt_tensor_release(objs[k]);
}

static void test_unary_rules(void) {
  mt_tensor *r = NULL, *b = make1(MT_BOOL, 2, (double[]){1, 0});
  FAILS(mt_unary(&r, MT_NEG, b), MT_EDTYPE, "negation of a bool tensor is not supported");
  FAILS(mt_unary(&r, MT_ABS, b), MT_EDTYPE, "abs is not defined for bool tensors");
  FAILS(mt_unary(&r, MT_RELU, b), MT_EDTYPE, "relu is not defined for bool tensors");
  FAILS(mt_unary(&r, (mt_unop)77, b), MT_EARG, "unknown unary op");
  CHECK(r == NULL);
  CHECK(strcmp(mt_unop_name(MT_SIGMOID), "sigmoid") == 0 && strcmp(mt_unop_name(MT_LOGICAL_NOT), "logical_not") == 0);

  /* sign of NaN and of -0 is 0; relu keeps NaN and -0.0; round is half to even */
  mt_tensor *f = make1(MT_FLOAT32, 3, (double[]){NAN, -0.0, 0.0});
  OK(mt_unary(&r, MT_SIGN, f));
  CHECK(matches(r, MT_FLOAT32, 3, (double[]){0, 0, 0}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_unary(&r, MT_RELU, f));
  CHECK(r && isnan(at(r, 0)) && at(r, 1) == 0 && signbit(at(r, 1)));
  mt_tensor_release(r);
  r = NULL;
  mt_tensor *h = make1(MT_FLOAT64, 6, (double[]){0.5, 1.5, 2.5, -0.5, -1.5, -2.5});
  OK(mt_unary(&r, MT_ROUND, h));
  CHECK(matches(r, MT_FLOAT64, 6, (double[]){0, 2, 2, -0.0, -2, -2}));
  mt_tensor_release(r);
  r = NULL;

  /* sigmoid stays finite and accurate for large |x| (PyTorch: float64 values) */
  mt_tensor *s = make1(MT_FLOAT64, 4, (double[]){-100, 100, -800, 0});
  OK(mt_unary(&r, MT_SIGMOID, s));
  CHECK(matches(r, MT_FLOAT64, 4, (double[]){3.7200759760208356e-44, 1, 0, 0.5}));
  mt_tensor_release(r);
  r = NULL;
  mt_tensor *s32 = make1(MT_FLOAT32, 4, (double[]){-1000, 1000, -20, 20});
  OK(mt_unary(&r, MT_SIGMOID, s32));
  CHECK(matches(r, MT_FLOAT32, 4, (double[]){0, 1, 2.0611536e-09, 1}));
  mt_tensor_release(r);
  r = NULL;

  /* in place on dtypes without kernels, and dtype rules for in-place results */
  mt_tensor *hf = make1(MT_FLOAT16, 2, (double[]){1, -1});
  OK(mt_unary_(MT_EXP, hf));
  CHECK(matches(hf, MT_FLOAT16, 2, (double[]){2.71875, 0.367919921875}));
  mt_tensor *fl = make1(MT_FLOAT32, 2, (double[]){1.5, 0});
  OK(mt_unary_(MT_LOGICAL_NOT, fl));
  CHECK(matches(fl, MT_FLOAT32, 2, (double[]){0, 1}));
  mt_tensor *i8 = make1(MT_INT8, 2, (double[]){-12, 3});
  OK(mt_unary_(MT_SQUARE, i8)); /* 144 wraps to -112 */
  CHECK(matches(i8, MT_INT8, 2, (double[]){-112, 9}));
  FAILS(mt_unary_(MT_SQUARE, b), MT_EDTYPE, "result type int64 can't be cast to the desired output type bool");
  FAILS(mt_unary_(MT_SQRT, i8), MT_EDTYPE, "result type float32 can't be cast to the desired output type int8");
  OK(mt_unary_(MT_SIGN, b));
  CHECK(matches(b, MT_BOOL, 2, (double[]){1, 0}));

  mt_tensor_release(b), mt_tensor_release(f), mt_tensor_release(h), mt_tensor_release(s), mt_tensor_release(s32);
  mt_tensor_release(hf), mt_tensor_release(fl), mt_tensor_release(i8);
}

/* float32 exp and sigmoid over a dense sweep, against libm in double: within a few ulp where
 * the result is normal, and right at the edges (overflow, underflow, subnormals, NaN). */
static void test_exp_accuracy(void) {
  const int64_t n = 200001;
  mt_tensor *x, *e = NULL, *s = NULL;
  OK(mt_arange(&x, MT_FLOAT32, 0, (double)n, 1));
  float *px = mt_data(x);
  for (int64_t i = 0; i < n; i++) px[i] = -110.0f + 200.0f * (float)i / (float)(n - 1); /* -110 .. 90 */
  px[0] = NAN, px[1] = INFINITY, px[2] = -INFINITY, px[3] = 88.72283f, px[4] = 88.72284f, px[5] = -87.5f;
  OK(mt_unary(&e, MT_EXP, x));
  OK(mt_unary(&s, MT_SIGMOID, x));
  if (!e || !s) {
    mt_tensor_release(x), mt_tensor_release(e), mt_tensor_release(s);
    return;
  }
  const float *pe = mt_data(e), *ps = mt_data(s);
  int bad_exp = 0, bad_sig = 0;
  for (int64_t i = 0; i < n; i++) {
    double want = exp((double)px[i]), got = pe[i];
    double ulp = fabs(want) >= 0x1p-126 ? fabs(want) * 0x1p-23 : 0x1p-149;
    bool ok = isnan(want) ? isnan(got) : isinf((float)want) ? isinf(got) : fabs(got - want) <= 2 * ulp;
    if (!ok && bad_exp++ < 5) fprintf(stderr, "  exp(%.9g) = %.9g, want %.9g\n", px[i], got, want);
    double sw = 1 / (1 + exp(-(double)px[i])), sg = ps[i];
    double sulp = fabs(sw) >= 0x1p-126 ? fabs(sw) * 0x1p-23 : 0x1p-149;
    bool sok = isnan(sw) ? isnan(sg) : fabs(sg - sw) <= 4 * sulp;
    if (!sok && bad_sig++ < 5) fprintf(stderr, "  sigmoid(%.9g) = %.9g, want %.9g\n", px[i], sg, sw);
  }
  CHECK(bad_exp == 0);
  CHECK(bad_sig == 0);
  CHECK(isnan(pe[0]) && isinf(pe[1]) && pe[2] == 0 && isinf(pe[4]) && pe[5] > 0);
  mt_tensor_release(x), mt_tensor_release(e), mt_tensor_release(s);
}

/* ---- clamp ------------------------------------------------------------------------------- */

static void test_clamp(void) {
  mt_tensor *r = NULL;
  mt_scalar lo2 = mt_scalar_float(2), hi1 = mt_scalar_float(1), nan = mt_scalar_float(NAN);
  mt_tensor *f = make1(MT_FLOAT32, 3, (double[]){1, 5, NAN});
  OK(mt_clamp(&r, f, &lo2, &hi1)); /* min > max: everything is max; NaN stays NaN */
  CHECK(matches(r, MT_FLOAT32, 3, (double[]){1, 1, NAN}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_clamp(&r, f, &nan, NULL)); /* a NaN bound is ignored (PyTorch 1.13) */
  CHECK(matches(r, MT_FLOAT32, 3, (double[]){1, 5, NAN}));
  mt_tensor_release(r);
  r = NULL;
  FAILS(mt_clamp(&r, f, NULL, NULL), MT_EARG, "at least one of min and max must be given");

  /* dtypes: int tensor with a float bound is float32; int bounds keep int8; bool needs an int */
  mt_tensor *i = make1(MT_INT64, 2, (double[]){3, -2}), *i8 = make1(MT_INT8, 2, (double[]){100, 3});
  mt_tensor *b = make1(MT_BOOL, 2, (double[]){1, 0});
  mt_scalar half = mt_scalar_float(0.5), z = mt_scalar_int(0), one = mt_scalar_int(1), m200 = mt_scalar_int(-200);
  mt_scalar m15 = mt_scalar_float(-1.5), bt = mt_scalar_bool(true), f15 = mt_scalar_float(1.5);
  OK(mt_clamp(&r, i, &half, NULL));
  CHECK(matches(r, MT_FLOAT32, 2, (double[]){3, 0.5}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_clamp(&r, i8, &z, &one));
  CHECK(matches(r, MT_INT8, 2, (double[]){1, 1}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_clamp(&r, i8, &m15, NULL));
  CHECK(matches(r, MT_FLOAT32, 2, (double[]){100, 3}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_clamp(&r, b, &z, NULL));
  CHECK(matches(r, MT_INT64, 2, (double[]){1, 0}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_clamp(&r, i, NULL, &f15));
  CHECK(matches(r, MT_FLOAT32, 2, (double[]){1.5, -2}));
  mt_tensor_release(r);
  r = NULL;
  FAILS(mt_clamp(&r, b, &bt, NULL), MT_EDTYPE, "clamp is not defined for bool tensors");
  FAILS(mt_clamp(&r, i8, &m200, NULL), MT_EARG, "value -200 cannot be converted to type int8 without overflow");
  CHECK(r == NULL);

  /* in place: through a transposed view, and the cast rule */
  mt_tensor *t = make_t(MT_FLOAT64, 2, 3, (double[]){-3, -1, 0, 1, 2, 3});
  mt_scalar lo = mt_scalar_int(-1), hi = mt_scalar_float(1.5);
  OK(mt_clamp_(t, &lo, &hi));
  CHECK(matches(t, MT_FLOAT64, 6, (double[]){-1, -1, 0, 1, 1.5, 1.5}) && !mt_is_contiguous(t));
  FAILS(mt_clamp_(i, &half, NULL), MT_EDTYPE, "result type float32 can't be cast to the desired output type int64");
  mt_tensor *u8 = make1(MT_UINT8, 3, (double[]){0, 100, 255});
  mt_scalar lo10 = mt_scalar_int(10), hi200 = mt_scalar_int(200);
  OK(mt_clamp_(u8, &lo10, &hi200));
  CHECK(matches(u8, MT_UINT8, 3, (double[]){10, 100, 200}));
  mt_tensor *hf = make1(MT_FLOAT16, 2, (double[]){-7, 7});
  mt_scalar m5 = mt_scalar_int(-5);
  OK(mt_clamp_(hf, &m5, NULL));
  CHECK(matches(hf, MT_FLOAT16, 2, (double[]){-5, 7}));

  mt_tensor_release(f), mt_tensor_release(i), mt_tensor_release(i8), mt_tensor_release(b), mt_tensor_release(t);
  mt_tensor_release(u8), mt_tensor_release(hf);
}

/* ---- where ------------------------------------------------------------------------------- */

static void test_where(void) {
  mt_tensor *r = NULL;
  int64_t s21[2] = {2, 1}, s23[2] = {2, 3};
  mt_tensor *c21 = make(MT_BOOL, 2, s21, (double[]){1, 0}), *a = make1(MT_INT64, 3, (double[]){1, 2, 3});
  mt_tensor *zero = zero_dim(MT_INT64, 0);
  OK(mt_where(&r, c21, a, zero)); /* 3-way broadcast */
  CHECK(r && shape_is(r, 2, s23) && matches(r, MT_INT64, 6, (double[]){1, 2, 3, 0, 0, 0}));
  mt_tensor_release(r);
  r = NULL;

  mt_tensor *c = make1(MT_BOOL, 2, (double[]){1, 0}), *i = make1(MT_INT64, 2, (double[]){3, -2});
  mt_tensor *w25 = wrap_float(2.5), *w300 = wrap_int(300), *wm1 = wrap_int(-1), *w100 = wrap_int(100);
  mt_tensor *i8 = make1(MT_INT8, 2, (double[]){1, 2}), *u8 = make1(MT_UINT8, 2, (double[]){1, 2});
  mt_tensor *d0 = zero_dim(MT_FLOAT64, 1.5);
  OK(mt_where(&r, c, i, w25));
  CHECK(matches(r, MT_FLOAT32, 2, (double[]){3, 2.5}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_where(&r, c, i8, w100)); /* a host int does not widen int8 */
  CHECK(matches(r, MT_INT8, 2, (double[]){1, 100}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_where(&r, c, u8, wm1)); /* -1 wraps into uint8, as PyTorch allows */
  CHECK(matches(r, MT_UINT8, 2, (double[]){1, 255}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_where(&r, c, d0, i)); /* a 0-dim float64 beats int64 dims */
  CHECK(matches(r, MT_FLOAT64, 2, (double[]){1.5, -2}));
  mt_tensor_release(r);
  r = NULL;
  FAILS(mt_where(&r, c, i8, w300), MT_EARG, "value 300 cannot be converted to type int8 without overflow");
  FAILS(mt_where(&r, i, i, i), MT_EDTYPE, "condition must be a bool tensor, got int64");
  mt_tensor *a4 = make1(MT_INT64, 4, (double[]){1, 2, 3, 4});
  FAILS(mt_where(&r, c, a4, i), MT_ESHAPE, "cannot be broadcast");
  CHECK(r == NULL);

  /* non-contiguous everything, float16 (2-byte elements) */
  double cv[6] = {1, 0, 0, 1, 1, 0}, xv[6] = {1, 2, 3, 4, 5, 6}, yv[6] = {-1, -2, -3, -4, -5, -6};
  mt_tensor *ct = make_t(MT_BOOL, 2, 3, cv), *xt = make_t(MT_FLOAT16, 2, 3, xv), *yt = make_t(MT_FLOAT16, 2, 3, yv);
  OK(mt_where(&r, ct, xt, yt));
  CHECK(r && shape_is(r, 2, s23) && matches(r, MT_FLOAT16, 6, (double[]){1, -2, -3, 4, 5, -6}));
  mt_tensor_release(r);
  r = NULL;
  /* mixed dtypes convert: float16 with float32 gives float32 */
  mt_tensor *y32 = make(MT_FLOAT32, 2, s23, yv);
  OK(mt_where(&r, ct, xt, y32));
  CHECK(matches(r, MT_FLOAT32, 6, (double[]){1, -2, -3, 4, 5, -6}));
  mt_tensor_release(r);
  r = NULL;
  /* empty */
  mt_tensor *ce;
  int64_t s0[1] = {0};
  OK(mt_empty(&ce, MT_BOOL, 1, s0));
  OK(mt_where(&r, ce, w25, zero));
  CHECK(r && r->ndim == 1 && r->sizes[0] == 0 && r->dtype == MT_FLOAT32);
  mt_tensor_release(r);

  mt_tensor *objs[] = {c21, a, zero, c, i, w25, w300, wm1, w100, i8, u8, d0, a4, ct, xt, yt, y32, ce};
  for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++) mt_tensor_release(objs[k]);
}

/* ---- masked_fill ------------------------------------------------------------------------- */

static void test_masked_fill(void) {
  mt_tensor *r = NULL;
  mt_tensor *i = make1(MT_INT64, 2, (double[]){3, -2}), *m = make1(MT_BOOL, 2, (double[]){1, 0});
  OK(mt_masked_fill(&r, i, m, mt_scalar_float(2.7))); /* keeps t's dtype: 2.7 -> 2 */
  CHECK(matches(r, MT_INT64, 2, (double[]){2, -2}) && matches(i, MT_INT64, 2, (double[]){3, -2}));
  mt_tensor_release(r);
  r = NULL;

  /* the mask broadcasts to t's shape; t's shape never grows */
  int64_t s21[2] = {2, 1}, s22[2] = {2, 2};
  mt_tensor *t22 = make(MT_FLOAT32, 2, s22, (double[]){1, 2, 3, 4}), *m21 = make(MT_BOOL, 2, s21, (double[]){0, 1});
  OK(mt_masked_fill(&r, t22, m21, mt_scalar_int(-1)));
  CHECK(r && shape_is(r, 2, s22) && matches(r, MT_FLOAT32, 4, (double[]){1, 2, -1, -1}));
  mt_tensor_release(r);
  r = NULL;
  FAILS(mt_masked_fill(&r, i, m21, mt_scalar_int(5)), MT_ESHAPE,
        "mask of shape [2, 1] cannot be broadcast to the tensor's shape [2]");
  mt_tensor *m3 = make1(MT_BOOL, 3, (double[]){1, 1, 1});
  FAILS(mt_masked_fill(&r, i, m3, mt_scalar_int(5)), MT_ESHAPE, "mask of shape [3] cannot be broadcast");
  FAILS(mt_masked_fill(&r, i, i, mt_scalar_int(5)), MT_EDTYPE, "mask must be a bool tensor, got int64");
  CHECK(r == NULL);

  /* value conversion: checked, except that an int may wrap into uint8 from -255 */
  mt_tensor *u8 = make1(MT_UINT8, 2, (double[]){1, 2}), *i8 = make1(MT_INT8, 2, (double[]){1, 2});
  mt_tensor *h = make1(MT_FLOAT16, 2, (double[]){1, 2}), *bl = make1(MT_BOOL, 2, (double[]){0, 0});
  OK(mt_masked_fill(&r, u8, m, mt_scalar_int(-1)));
  CHECK(matches(r, MT_UINT8, 2, (double[]){255, 2}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_masked_fill(&r, bl, m, mt_scalar_int(7)));
  CHECK(matches(r, MT_BOOL, 2, (double[]){1, 0}));
  mt_tensor_release(r);
  r = NULL;
  OK(mt_masked_fill(&r, h, m, mt_scalar_float(INFINITY)));
  CHECK(matches(r, MT_FLOAT16, 2, (double[]){INFINITY, 2}));
  mt_tensor_release(r);
  r = NULL;
  FAILS(mt_masked_fill(&r, u8, m, mt_scalar_int(-256)), MT_EARG, "value -256 cannot be converted to type uint8");
  FAILS(mt_masked_fill(&r, i8, m, mt_scalar_int(300)), MT_EARG, "value 300 cannot be converted to type int8");
  FAILS(mt_masked_fill(&r, i8, m, mt_scalar_float(127.9)), MT_EARG, "cannot be converted to type int8");
  FAILS(mt_masked_fill(&r, i8, m, mt_scalar_float(NAN)), MT_EARG, "cannot be converted to type int8");
  FAILS(mt_masked_fill(&r, h, m, mt_scalar_float(1e5)), MT_EARG, "cannot be converted to type float16");
  FAILS(mt_masked_fill(&r, u8, m, mt_scalar_float(-0.5)), MT_EARG, "cannot be converted to type uint8");
  CHECK(r == NULL);

  /* in place through a transposed view, with a transposed mask */
  mt_tensor *t = make_t(MT_FLOAT64, 2, 3, (double[]){1, 2, 3, 4, 5, 6});
  mt_tensor *mt = make_t(MT_BOOL, 2, 3, (double[]){1, 0, 1, 0, 1, 0});
  OK(mt_masked_fill_(t, mt, mt_scalar_float(-0.5)));
  CHECK(matches(t, MT_FLOAT64, 6, (double[]){-0.5, 2, -0.5, 4, -0.5, 6}));
  mt_tensor *m0 = zero_dim(MT_BOOL, 1); /* a 0-dim mask fills everything */
  OK(mt_masked_fill_(t, m0, mt_scalar_int(9)));
  CHECK(matches(t, MT_FLOAT64, 6, (double[]){9, 9, 9, 9, 9, 9}));
  mt_tensor *e;
  int64_t s0[2] = {0, 2};
  OK(mt_empty(&e, MT_INT32, 2, s0));
  OK(mt_masked_fill_(e, m0, mt_scalar_int(1)));

  mt_tensor *objs[] = {i, m, t22, m21, m3, u8, i8, h, bl, t, mt, m0, e};
  for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++) mt_tensor_release(objs[k]);
}

/* ---- the small-tensor fast path ------------------------------------------------------------ */

static void test_many_small_adds(void) {
  /* 100k adds of 16-element tensors: must give the right values and leave nothing behind */
  double v[16];
  for (int k = 0; k < 16; k++) v[k] = k;
  mt_tensor *a = make1(MT_FLOAT32, 16, v), *b = make1(MT_FLOAT32, 16, v);
  uint64_t live = mt_storage_bytes_live();
  bool ok = true;
  for (int it = 0; it < 100000; it++) {
    mt_tensor *r;
    if (mt_binary(&r, MT_ADD, a, b)) { ok = false; break; }
    ok &= ((float *)mt_data(r))[15] == 30.0f;
    mt_tensor_release(r);
  }
  CHECK(ok);
  CHECK(mt_storage_bytes_live() == live);
  mt_tensor_release(a), mt_tensor_release(b);
}

int main(void) {
  test_binary_table();
  test_unary_table();
  test_promotion();
  test_broadcasting();
  test_in_place();
  test_binary_rules();
  test_unary_rules();
  test_exp_accuracy();
  test_clamp();
  test_where();
  test_masked_fill();
  test_many_small_adds();
  return mt_test_finish("test_elementwise");
}
