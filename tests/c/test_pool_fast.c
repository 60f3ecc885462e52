/* test_pool_fast.c — max_pool2d's float32 2x2 fast path (kernel 2, stride 2, no padding; no
 * indices asked for: the node keeps one-byte window codes, see src/nn_pool.c) against the
 * general path that returns PyTorch's int64 indices (checked against PyTorch in
 * test_nn_conv.c). Forward values and input gradients must match bit for bit, over shapes
 * with even and odd H and W (rows shorter than, equal to and longer than a vector step), ties
 * (ReLU zeros, small integers), NaN, infinities and signed zeros, in both kernel variants
 * (AVX2 and the SSE2 baseline) and on 1 and 3 threads. */
#include <stdint.h>
#include <stdlib.h>

#include "mt_test.h"

extern int mt_pool_baseline_only; /* src/nn_pool.c's switch to the baseline kernels */

static const int64_t K2[2] = {2, 2};

enum fill { F_RANDN, F_RELU, F_TIES, F_SPECIAL };

static uint64_t rng_state;
static double uniform(void) { /* a fixed LCG: the cases are the same on every run */
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(rng_state >> 11) / 9007199254740992.0;
}

static mt_tensor *filled(int ndim, const int64_t *sizes, enum fill f, uint64_t seed) {
  mt_tensor *t = NULL;
  if (mt_empty(&t, MT_FLOAT32, ndim, sizes)) return NULL;
  float *d = mt_data(t);
  rng_state = seed;
  for (int64_t i = 0; i < mt_numel(t); i++) {
    const double u = uniform();
    float v = (float)(4 * u - 2);
    switch (f) {
    case F_RANDN: break;
    case F_RELU: v = v > 0 ? v : 0; break;
    case F_TIES: v = (float)((int)(3 * u) - 1); break;
    case F_SPECIAL: {
      static const float special[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1.0f};
      if (uniform() < 0.4) v = special[(int)(7 * uniform())];
      break;
    }
    }
    d[i] = v;
  }
  return t;
}

static bool same_bits(const mt_tensor *a, const mt_tensor *b) {
  if (!a || !b || a->ndim != b->ndim || mt_numel(a) != mt_numel(b)) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->sizes[i] != b->sizes[i]) return false;
  mt_tensor *ca = NULL, *cb = NULL;
  bool same = !mt_contiguous(&ca, a) && !mt_contiguous(&cb, b) &&
              !memcmp(mt_data(ca), mt_data(cb), (size_t)mt_numel(a) * sizeof(float));
  mt_tensor_release(ca), mt_tensor_release(cb);
  return same;
}

/* One case: x (any layout) through the fast path with a node, without a node, and through the
 * indices path; gy fills the output's shape. */
static void check_case(const mt_tensor *x0, enum fill gfill, uint64_t seed, const char *what) {
  mt_tensor *xa = NULL, *xb = NULL, *ya = NULL, *yb = NULL, *yc = NULL, *ib = NULL, *gy = NULL;
  int fails = mt_test_failures;
  OK(mt_clone(&xa, x0));
  OK(mt_clone(&xb, x0));
  if (!xa || !xb) goto done;
  OK(mt_requires_grad_(xa, true));
  OK(mt_requires_grad_(xb, true));
  OK(mt_max_pool2d(&ya, NULL, xa, K2, NULL, NULL, NULL, false));
  OK(mt_max_pool2d(&yb, &ib, xb, K2, NULL, NULL, NULL, false));
  OK(mt_max_pool2d(&yc, NULL, x0, K2, NULL, NULL, NULL, false)); /* no grad: no codes */
  if (!ya || !yb || !yc) goto done;
  CHECK(same_bits(ya, yb));
  CHECK(same_bits(yc, yb));
  CHECK(ya->grad_fn && !strcmp(mt_node_name(ya->grad_fn), "MaxPool2DWithIndicesBackward0"));
  gy = filled(ya->ndim, ya->sizes, gfill, seed + 99);
  OK(mt_backward(ya, gy, true));
  OK(mt_backward(yb, gy, true));
  CHECK(xa->grad && xb->grad && same_bits(xa->grad, xb->grad));
  /* retained: a second backward through the same node accumulates the same gradient again */
  OK(mt_backward(ya, gy, false));
  OK(mt_backward(yb, gy, false));
  CHECK(xa->grad && xb->grad && same_bits(xa->grad, xb->grad));
  FAILS(mt_backward(ya, gy, false), MT_ESTATE, "MaxPool2DWithIndicesBackward0 has already freed its saved tensors");
done:
  if (mt_test_failures != fails) fprintf(stderr, "  in case %s\n", what);
  mt_tensor_release(xa), mt_tensor_release(xb), mt_tensor_release(ya), mt_tensor_release(yb);
  mt_tensor_release(yc), mt_tensor_release(ib), mt_tensor_release(gy);
}

static void test_shapes(void) {
  /* W covers Wo = 1..3 (scalar), 4..7 (4-wide steps, the last one overlapping), 8, 9, 14, 16, 17
   * (8-wide steps); odd H and W leave a row or column no window covers. */
  static const int64_t shapes[][4] = {
      {1, 1, 2, 2},   {1, 1, 3, 3},   {2, 3, 2, 5},  {1, 2, 5, 7},    {2, 2, 4, 8},  {1, 3, 3, 9},
      {2, 1, 6, 14},  {1, 2, 7, 15},  {1, 1, 2, 16}, {2, 2, 5, 17},   {1, 1, 4, 18}, {1, 2, 3, 19},
      {2, 4, 14, 14}, {2, 3, 28, 28}, {1, 1, 9, 33}, {1, 2, 2, 35},   {3, 1, 8, 64}, {2, 2, 11, 29},
      {0, 2, 4, 4}, /* an empty batch */
  };
  char what[160];
  for (int variant = 0; variant < 2; variant++) {
    mt_pool_baseline_only = variant;
    for (int threads = 1; threads <= 3; threads += 2) {
      OK(mt_set_num_threads(threads));
      for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int f = F_RANDN; f <= F_SPECIAL; f++) {
          const uint64_t seed = 1000 * s + (uint64_t)f;
          mt_tensor *x = filled(4, shapes[s], (enum fill)f, seed);
          snprintf(what, sizeof what, "[%lld, %lld, %lld, %lld] fill %d, %s, %d threads", (long long)shapes[s][0],
                   (long long)shapes[s][1], (long long)shapes[s][2], (long long)shapes[s][3], f,
                   variant ? "baseline" : "best", threads);
          if (x) check_case(x, f == F_SPECIAL ? F_SPECIAL : F_RANDN, seed, what);
          mt_tensor_release(x);
        }
    }
  }
  mt_pool_baseline_only = 0;
  OK(mt_set_num_threads(1));
}

/* A 3-D input, and a strided one (the fast path works on the contiguous copy). */
static void test_layouts(void) {
  mt_tensor *x = filled(3, (const int64_t[]){3, 6, 10}, F_TIES, 7), *xt = NULL;
  mt_tensor *t = filled(4, (const int64_t[]){2, 3, 9, 12}, F_RELU, 8);
  if (x) check_case(x, F_RANDN, 7, "[3, 6, 10]");
  if (t) OK(mt_transpose(&xt, t, 2, 3)); /* [2, 3, 12, 9], not contiguous */
  if (xt) {
    CHECK(!mt_is_contiguous(xt));
    check_case(xt, F_SPECIAL, 8, "transposed [2, 3, 12, 9]");
  }
  mt_tensor_release(x), mt_tensor_release(t), mt_tensor_release(xt);
}

/* Known answers: the scan order (top row first, left to right) decides ties, a NaN wins and
 * the last NaN is kept, and the gradient goes to that one position only. */
static void test_rules(void) {
  static const float in[][4] = {
      {1, 1, 1, 1}, {0, 2, 2, 0}, {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, {NAN, 5, 1, 2}, {3, NAN, 9, NAN}, {1, 2, 3, 3},
  };
  static const int winner[] = {0, 1, 0, 0, 3, 2};
  const int n = (int)(sizeof in / sizeof in[0]);
  for (int variant = 0; variant < 2; variant++) {
    mt_pool_baseline_only = variant;
    /* n windows side by side in one row pair: [1, 1, 2, 2n] */
    mt_tensor *x = NULL, *y = NULL, *gy = NULL;
    OK(mt_empty(&x, MT_FLOAT32, 4, (const int64_t[]){1, 1, 2, 2 * n}));
    OK(mt_empty(&gy, MT_FLOAT32, 4, (const int64_t[]){1, 1, 1, n}));
    if (!x || !gy) break;
    float *xd = mt_data(x), *gd = mt_data(gy);
    for (int i = 0; i < n; i++) {
      xd[2 * i] = in[i][0], xd[2 * i + 1] = in[i][1], xd[2 * n + 2 * i] = in[i][2], xd[2 * n + 2 * i + 1] = in[i][3];
      gd[i] = (float)(i + 1);
    }
    OK(mt_requires_grad_(x, true));
    OK(mt_max_pool2d(&y, NULL, x, K2, NULL, NULL, NULL, false));
    if (y) OK(mt_backward(y, gy, false));
    if (y && x->grad) {
      const float *yd = mt_data(y), *g = mt_data(x->grad);
      for (int i = 0; i < n; i++) {
        const int w = winner[i], pos[4] = {2 * i, 2 * i + 1, 2 * n + 2 * i, 2 * n + 2 * i + 1};
        const float want = in[i][w];
        CHECK(isnan(want) ? isnan(yd[i]) : yd[i] == want);
        for (int k = 0; k < 4; k++) CHECK(g[pos[k]] == (k == w ? (float)(i + 1) : 0.0f));
      }
    }
    mt_tensor_release(x), mt_tensor_release(y), mt_tensor_release(gy);
  }
  mt_pool_baseline_only = 0;
}

/* Too small for a 2x2 window: an error, not a fast-path read past the image; with ceil_mode a
 * 1 x 1 input has one (clipped) window, which the general path takes. */
static void test_tiny(void) {
  static const int64_t tiny[][4] = {{1, 1, 1, 1}, {2, 1, 1, 8}, {1, 2, 8, 1}};
  mt_tensor *x = NULL, *y = NULL;
  for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
    x = filled(4, tiny[i], F_RANDN, 40 + i);
    if (x) FAILS(mt_max_pool2d(&y, NULL, x, K2, NULL, NULL, NULL, false), MT_ESHAPE, "too small");
    mt_tensor_release(x);
  }
  x = filled(4, tiny[0], F_RANDN, 43);
  if (x) OK(mt_requires_grad_(x, true));
  if (x) OK(mt_max_pool2d(&y, NULL, x, K2, NULL, NULL, NULL, true));
  if (y) {
    CHECK(mt_numel(y) == 1 && *(const float *)mt_data(y) == *(const float *)mt_data(x));
    OK(mt_backward(y, NULL, false));
    CHECK(x->grad && *(const float *)mt_data(x->grad) == 1.0f);
  }
  mt_tensor_release(x), mt_tensor_release(y);
}

int main(void) {
  test_tiny();
  test_shapes();
  test_layouts();
  test_rules();
  return mt_test_finish("test_pool_fast");
}
