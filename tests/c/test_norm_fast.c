/* test_norm_fast.c — the fast paths of batch norm (src/nn_norm.c) and of the unary gradients
 * (src/unary.c): the float32 sums against a plain double computation over every tail length
 * and a large offset; and a backward that writes over its incoming gradient when no one else
 * holds it, giving the same bits as one that may not, and leaving a shared gradient alone. */
#include <stdlib.h>

#include "mt_internal.h"
#include "mt_test.h"

static mt_tensor *filled(int ndim, const int64_t *sizes, double offset, double scale, uint64_t seed) {
  mt_tensor *t = NULL;
  OK(mt_empty(&t, MT_FLOAT32, ndim, sizes));
  mt_generator *g = NULL;
  OK(mt_generator_new(&g, seed));
  OK(mt_normal_(t, offset, scale, g));
  mt_generator_free(g);
  return t;
}

static bool same_bits(const mt_tensor *a, const mt_tensor *b) {
  return mt_numel(a) == mt_numel(b) && memcmp(mt_data(a), mt_data(b), (size_t)mt_numel(a) * sizeof(float)) == 0;
}

/* Batch statistics of [N, C, S] float32 inputs, S from 1 to 40 and 300 (every tail of the
 * 16-lane blocks, and more than one 256-element block), around 0 and around 1000: the output
 * of a weightless batch_norm has mean 0 and (biased) variance 1 / (1 + eps / var) per channel,
 * and the running statistics take the mean and unbiased variance computed in double. */
static void test_stats(void) {
  for (int64_t S = 1; S <= 41; S++) {
    const int64_t s = S == 41 ? 300 : S, N = 3, C = 2, sizes[3] = {N, C, s};
    for (int big = 0; big < 2; big++) {
      const double off = big ? 1000 : 0.5;
      mt_tensor *x = filled(3, sizes, off, 2, (uint64_t)(s * 2 + big)), *y = NULL, *rm = NULL, *rv = NULL;
      OK(mt_zeros(&rm, MT_FLOAT32, 1, &C));
      OK(mt_zeros(&rv, MT_FLOAT32, 1, &C));
      OK(mt_batch_norm(&y, x, NULL, NULL, rm, rv, true, 1.0, 1e-5));
      if (!y) continue;
      const float *xp = mt_data(x), *yp = mt_data(y), *rmp = mt_data(rm), *rvp = mt_data(rv);
      for (int64_t c = 0; c < C; c++) {
        double m = 0, v = 0, ym = 0, yv = 0;
        for (int64_t i = 0; i < N; i++)
          for (int64_t k = 0; k < s; k++) m += xp[(i * C + c) * s + k], ym += yp[(i * C + c) * s + k];
        m /= (double)(N * s), ym /= (double)(N * s);
        for (int64_t i = 0; i < N; i++)
          for (int64_t k = 0; k < s; k++) {
            const double d = xp[(i * C + c) * s + k] - m, e = yp[(i * C + c) * s + k] - ym;
            v += d * d, yv += e * e;
          }
        CHECK_NEAR(rmp[c], m, 1e-6 * fabs(m) + 1e-6);
        CHECK_NEAR(rvp[c], v / (double)(N * s - 1), 1e-4 * v / (double)(N * s - 1));
        CHECK_NEAR(ym, 0, 1e-4);
        CHECK_NEAR(yv / (double)(N * s), 1 / (1 + 1e-5 * (double)(N * s) / v), 1e-3);
      }
      mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(rm), mt_tensor_release(rv);
    }
  }
}

/* Runs y's node backward on a copy of g: held only by the call (as the engine holds the
 * gradients it passes on) when `unique`, else also by the caller. Returns gin[0]; *reused: it is
 * the copy itself; *kept: a shared copy is unchanged. */
static mt_tensor *backward_once(const mt_tensor *y, const mt_tensor *g, bool unique, bool *reused, bool *kept) {
  mt_tensor *gc = NULL, *gin[3] = {0};
  OK(mt_clone(&gc, g));
  if (!gc) return NULL;
  if (!unique) mt_tensor_retain(gc);
  mt_tensor *const gout[1] = {gc};
  OK(y->grad_fn->backward(y->grad_fn, gout, gin));
  *reused = gin[0] == gc;
  if (!unique) {
    *kept = same_bits(gc, g);
    mt_tensor_release(gc);
  }
  mt_tensor_release(gc);
  mt_tensor_release(gin[1]), mt_tensor_release(gin[2]);
  return gin[0];
}

static void check_reuse(const char *what, const mt_tensor *y, const mt_tensor *g, bool expect_reuse) {
  bool r1 = false, r2 = true, kept = false;
  mt_tensor *a = backward_once(y, g, true, &r1, &kept), *b = backward_once(y, g, false, &r2, &kept);
  CHECK(a && b && same_bits(a, b));
  CHECK(r1 == expect_reuse);
  CHECK(!r2 && kept);
  if (!a || !b || !same_bits(a, b) || r1 != expect_reuse || r2 || !kept) fprintf(stderr, "  (%s)\n", what);
  mt_tensor_release(a), mt_tensor_release(b);
}

static void test_grad_reuse(void) {
  const int64_t sizes[4] = {4, 3, 5, 7}, C = 3;
  mt_tensor *x = filled(4, sizes, 0.2, 1, 1), *g = filled(4, sizes, 0, 1, 2), *w = filled(1, &C, 1, 0.2, 3);
  OK(mt_requires_grad_(x, true));
  OK(mt_requires_grad_(w, true));
  const mt_unop ops[3] = {MT_RELU, MT_SIGMOID, MT_SQRT};
  for (int k = 0; k < 3; k++) {
    mt_tensor *y = NULL;
    OK(mt_unary(&y, ops[k], x));
    if (y) check_reuse(mt_unop_name(ops[k]), y, g, true);
    mt_tensor_release(y);
  }
  mt_scalar lo = mt_scalar_float(-0.5), hi = mt_scalar_float(0.5);
  mt_tensor *y = NULL;
  OK(mt_clamp(&y, x, &lo, &hi));
  if (y) check_reuse("clamp", y, g, true);
  mt_tensor_release(y);
  for (int training = 0; training < 2; training++) {
    mt_tensor *rm = NULL, *rv = NULL;
    OK(mt_zeros(&rm, MT_FLOAT32, 1, &C));
    OK(mt_full(&rv, MT_FLOAT32, 1, &C, mt_scalar_float(1.0)));
    y = NULL;
    OK(mt_batch_norm(&y, x, w, NULL, rm, rv, training, 0.1, 1e-5));
    if (y) check_reuse(training ? "batch_norm training" : "batch_norm evaluation", y, g, true);
    mt_tensor_release(y), mt_tensor_release(rm), mt_tensor_release(rv);
  }
  /* a gradient that is not dense is never written over */
  mt_tensor *gt = NULL, *gs = NULL;
  OK(mt_transpose(&gt, g, 2, 3));
  const int64_t tsizes[4] = {4, 3, 7, 5};
  mt_tensor *xt = filled(4, tsizes, 0.2, 1, 4);
  OK(mt_requires_grad_(xt, true));
  y = NULL;
  OK(mt_unary(&y, MT_RELU, xt));
  if (y && gt) {
    bool reused = true, kept = false;
    OK(mt_contiguous(&gs, gt)); /* the expected values, from a dense copy */
    mt_tensor *gin[1] = {0};
    mt_tensor *const gout[1] = {gt};
    mt_tensor_retain(gt); /* gt holds g's storage: refused on that count too */
    OK(y->grad_fn->backward(y->grad_fn, gout, gin));
    mt_tensor_release(gt);
    mt_tensor *want = backward_once(y, gs, false, &reused, &kept);
    CHECK(gin[0] && gin[0] != gt && want && same_bits(gin[0], want));
    mt_tensor_release(gin[0]), mt_tensor_release(want);
  }
  mt_tensor_release(y), mt_tensor_release(gt), mt_tensor_release(gs), mt_tensor_release(xt);
  mt_tensor_release(x), mt_tensor_release(g), mt_tensor_release(w);
}

int main(void) {
  test_stats();
  test_grad_reuse();
  return mt_test_finish("test_norm_fast");
}
