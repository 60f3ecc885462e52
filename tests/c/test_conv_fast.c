/* test_conv_fast.c — nn_conv.c's float32 fast path (stride 1, output as wide as the input:
 * planes + AVX2/FMA tiles) against its im2col + gemm path and a float64 run of the same conv:
 * forward, grad_input and grad_weight over shapes that hit every tile remainder (output
 * channels 1..7, positions not a multiple of 8 or 24, kernel taps not a multiple of 3), height
 * padding beyond the kernel (grad_input's planes then start inside grad_output), dilation,
 * 1-wide kernels and images, a batch of one, grad_weight alone (an input without grad);
 * NaN and infinity propagate to the same places; the bits do not depend on the thread count.
 * On a CPU without AVX2 + FMA both runs take the gemm path and the test still holds. */
#include "gradcheck.h"

#include <stdlib.h>

extern int mt_conv_generic_only; /* conv_planes.c: 1 forces the im2col + gemm path */

typedef struct fcase {
  const char *what;
  int64_t N, C, H, W, Cout, kH, kW, ph, pw, dh, dw;
  bool bias, x_grad;
} fcase;

static const fcase cases[] = {
    {"epoch conv1", 3, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, false, false},
    {"epoch conv2", 3, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, false, true},
    {"odd channels, bias", 2, 3, 5, 7, 7, 3, 3, 1, 1, 1, 1, true, true},
    {"one output channel", 2, 2, 9, 3, 1, 3, 3, 1, 1, 1, 1, true, true},
    {"two output channels, 5x5", 1, 5, 6, 6, 2, 5, 5, 2, 2, 1, 1, false, true},
    {"row padding beyond the kernel", 2, 3, 4, 5, 5, 3, 3, 3, 1, 1, 1, true, true},
    {"no row padding", 2, 2, 5, 6, 3, 3, 3, 0, 1, 1, 1, false, true},
    {"dilation 2", 2, 2, 7, 6, 6, 3, 3, 2, 2, 2, 2, true, true},
    {"3x1 kernel", 2, 4, 6, 5, 3, 3, 1, 1, 0, 1, 1, false, true},
    {"1x3 kernel, width 1 rows", 2, 2, 3, 1, 3, 1, 3, 0, 1, 1, 1, true, true},
    {"kernel wider than the image", 2, 2, 3, 2, 3, 5, 5, 2, 2, 1, 1, true, true},
    {"image of one pixel", 3, 2, 1, 1, 4, 3, 3, 1, 1, 1, 1, false, true},
    {"many positions, 25 tiles", 1, 2, 20, 30, 9, 3, 3, 1, 1, 1, 1, true, true},
};

typedef struct result {
  mt_tensor *y, *gx, *gw, *gb;
} result;

static void result_release(result *r) {
  mt_tensor_release(r->y), mt_tensor_release(r->gx), mt_tensor_release(r->gw), mt_tensor_release(r->gb);
}

/* The conv of case k in dtype dt on inputs from seeds, and its gradients for gy; poison puts
 * NaN and infinity into x. */
static result run(const fcase *k, mt_dtype dt, bool generic, int poison) {
  result r = {0};
  const int64_t xs[4] = {k->N, k->C, k->H, k->W}, ws[4] = {k->Cout, k->C, k->kH, k->kW}, bs[1] = {k->Cout};
  mt_tensor *x = NULL, *w = NULL, *b = NULL, *g = NULL;
  mt_tensor *x64 = gc_tensor(4, xs, -1, 1, 1), *w64 = gc_tensor(4, ws, -1, 1, 2), *b64 = gc_tensor(1, bs, -1, 1, 3);
  if (!x64 || !w64 || !b64) goto done;
  if (poison) {
    double *p = mt_data(x64);
    const int64_t n = mt_numel(x64);
    p[n / 2] = NAN;
    if (poison > 1) p[n / 3] = INFINITY;
  }
  OK(mt_to_dtype(&x, x64, dt));
  OK(mt_to_dtype(&w, w64, dt));
  if (k->bias) OK(mt_to_dtype(&b, b64, dt));
  if (!x || !w || (k->bias && !b)) goto done;
  if (k->x_grad) OK(mt_requires_grad_(x, true));
  OK(mt_requires_grad_(w, true));
  if (b) OK(mt_requires_grad_(b, true));
  mt_conv_generic_only = generic;
  OK(mt_conv2d(&r.y, x, w, b, (const int64_t[]){1, 1}, (const int64_t[]){k->ph, k->pw}, (const int64_t[]){k->dh, k->dw},
               1));
  mt_tensor *g64 = r.y ? gc_tensor(4, r.y->sizes, -1, 1, 4) : NULL;
  if (g64) OK(mt_to_dtype(&g, g64, dt));
  mt_tensor_release(g64);
  if (g) OK(mt_backward(r.y, g, false));
  mt_conv_generic_only = 0;
  if ((r.gx = x->grad)) mt_tensor_retain(r.gx);
  if ((r.gw = w->grad)) mt_tensor_retain(r.gw);
  if (b && (r.gb = b->grad)) mt_tensor_retain(r.gb);
done:
  mt_tensor_release(x64), mt_tensor_release(w64), mt_tensor_release(b64);
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b), mt_tensor_release(g);
  return r;
}

/* a and want agree within tol relative to 1 + max |want| (float32 sums of n terms are off by
 * about sqrt(n) roundings of the largest), NaN where want is NaN, the same infinities. */
static bool agree(const mt_tensor *a, const mt_tensor *want, double tol, const char *what, const char *name) {
  if (!a || !want || mt_numel(a) != mt_numel(want)) {
    fprintf(stderr, "%s: %s missing\n", name, what);
    return false;
  }
  double worst = 0, scale = 1;
  for (int64_t i = 0; i < mt_numel(want); i++)
    if (isfinite(val(want, i))) scale = fmax(scale, 1 + fabs(val(want, i)));
  for (int64_t i = 0; i < mt_numel(a); i++) {
    const double u = val(a, i), v = val(want, i);
    if (!isfinite(u) || !isfinite(v)) {
      if (!(isnan(u) && isnan(v)) && u != v) {
        fprintf(stderr, "%s: %s[%lld] is %g, want %g\n", name, what, (long long)i, u, v);
        return false;
      }
      continue;
    }
    worst = fmax(worst, fabs(u - v) / scale);
  }
  if (worst > tol) fprintf(stderr, "%s: %s off by %g (of the largest)\n", name, what, worst);
  return worst <= tol;
}

static void compare(const result *a, const result *want, const fcase *k, const char *name) {
  const int64_t Ho = a->y ? a->y->sizes[2] : 1;
  const double fwd = 2e-6 * sqrt((double)(k->C * k->kH * k->kW)), bwd_x = 2e-6 * sqrt((double)(k->Cout * k->kH * k->kW));
  const double bwd_w = 2e-6 * sqrt((double)(k->N * Ho * k->W)); /* grad_weight's sums over the batch */
  CHECK(agree(a->y, want->y, fwd, "output", name));
  if (k->x_grad) CHECK(agree(a->gx, want->gx, bwd_x, "grad_input", name));
  else CHECK(!a->gx && !want->gx);
  CHECK(agree(a->gw, want->gw, bwd_w, "grad_weight", name));
  if (k->bias) CHECK(agree(a->gb, want->gb, bwd_w, "grad_bias", name));
}

/* Fast float32 against gemm float32 and against float64, clean and poisoned. */
static void test_against_gemm(void) {
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    const fcase *k = &cases[i];
    for (int poison = 0; poison < 3; poison++) {
      char name[128];
      snprintf(name, sizeof name, "%s%s", k->what, poison == 2 ? " (NaN, inf)" : poison ? " (NaN)" : "");
      result fast = run(k, MT_FLOAT32, false, poison), gemm = run(k, MT_FLOAT32, true, poison);
      result ref = run(k, MT_FLOAT64, false, poison);
      compare(&fast, &gemm, k, name);
      compare(&fast, &ref, k, name);
      result_release(&fast), result_release(&gemm), result_release(&ref);
    }
  }
}

static bool same_bits(const mt_tensor *a, const mt_tensor *b) {
  if (!a && !b) return true;
  return a && b && mt_numel(a) == mt_numel(b) &&
         memcmp(mt_data(a), mt_data(b), (size_t)mt_numel(a) * mt_dtype_info(a->dtype)->size) == 0;
}

/* The epoch's shapes with an odd batch (uneven chunks): the same bits for 1, 2 and 3 threads. */
static void test_thread_invariance(void) {
  const int before = mt_get_num_threads();
  const fcase k[2] = {{"conv1", 37, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, false, false},
                      {"conv2", 37, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, true, true}};
  for (int s = 0; s < 2; s++) {
    OK(mt_set_num_threads(1));
    result one = run(&k[s], MT_FLOAT32, false, 0);
    for (int t = 2; t <= 3; t++) {
      OK(mt_set_num_threads(t));
      result more = run(&k[s], MT_FLOAT32, false, 0);
      const bool same = same_bits(one.y, more.y) && same_bits(one.gx, more.gx) && same_bits(one.gw, more.gw) &&
                        same_bits(one.gb, more.gb);
      CHECK(one.y && one.gw && same);
      if (!same) fprintf(stderr, "%s, %d threads: the bits differ\n", k[s].what, t);
      result_release(&more);
    }
    result_release(&one);
  }
  OK(mt_set_num_threads(before));
}

int main(void) {
  (void)gradcheck; /* gradcheck.h's finite differences need float64, which takes the gemm path */
  test_against_gemm();
  test_thread_invariance();
  return mt_test_finish("test_conv_fast");
}
