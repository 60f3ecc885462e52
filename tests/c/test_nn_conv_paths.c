/* test_nn_conv_paths.c — the fast paths of nn_conv.c and nn_linear.c against a plain
 * float64 reference: "same"-width convolutions (the contiguous-run im2col / col2im, with
 * dilation, one-sided padding and kernels wider than the image), tiles of output rows (an
 * element whose column matrix exceeds the budget), 1x1 convolutions that skip im2col, groups;
 * results that do not depend on the thread count; linear's per-row gemv for a few rows (strided
 * inputs, transposed weights, with and without bias). */
#include "gradcheck.h"

#include <stdlib.h>

typedef struct ccase {
  const char *what;
  int64_t N, C, H, W, Cout, kH, kW, sh, sw, ph, pw, dh, dw, groups;
  bool bias;
} ccase;

static const ccase conv_cases[] = {
    {"same 3x3", 2, 3, 6, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},
    {"same 3x3 dilation 2", 2, 2, 7, 6, 3, 3, 3, 1, 1, 2, 2, 2, 2, 1, true},
    {"same width, no row padding", 2, 2, 5, 6, 3, 3, 3, 1, 1, 0, 1, 1, 1, 1, false},
    {"same width, 1x3 kernel", 1, 3, 4, 5, 2, 1, 3, 1, 1, 0, 1, 1, 1, 1, true},
    {"kernel wider than the image", 2, 2, 3, 2, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1, true},
    {"same 3x3, groups 2", 3, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true},
    {"1x1, groups 2", 2, 4, 3, 5, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2, true},
    {"strided", 2, 3, 7, 8, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, true},
    {"tiles, same", 2, 64, 9, 100, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},  /* K * W_out = 57600: 4 rows a tile */
    {"tiles, strided", 1, 64, 11, 200, 2, 3, 3, 2, 1, 0, 1, 1, 1, 1, true},
    {"tiles, 1x1", 2, 600, 5, 500, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, false}, /* K * W_out = 300000: 1 row */
};

static double at4(const double *p, const int64_t *s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return p[((a * s[1] + b) * s[2] + c) * s[3] + d];
}

/* y, and with gy the gradients, of the convolution in plain loops (float64). */
static void reference(const ccase *k, const double *x, const double *w, const double *b, const double *gy, int64_t Ho,
                      int64_t Wo, double *y, double *gx, double *gw, double *gb) {
  const int64_t xs[4] = {k->N, k->C, k->H, k->W}, Cg = k->C / k->groups, Og = k->Cout / k->groups;
  const int64_t ws[4] = {k->Cout, Cg, k->kH, k->kW}, ys[4] = {k->N, k->Cout, Ho, Wo};
  for (int64_t n = 0; n < k->N; n++)
    for (int64_t o = 0; o < k->Cout; o++)
      for (int64_t oh = 0; oh < Ho; oh++)
        for (int64_t ow = 0; ow < Wo; ow++) {
          const int64_t yi = ((n * k->Cout + o) * Ho + oh) * Wo + ow, grp = o / Og;
          double acc = b ? b[o] : 0;
          for (int64_t c = 0; c < Cg; c++)
            for (int64_t i = 0; i < k->kH; i++)
              for (int64_t j = 0; j < k->kW; j++) {
                const int64_t ih = oh * k->sh - k->ph + i * k->dh, iw = ow * k->sw - k->pw + j * k->dw;
                if (ih < 0 || ih >= k->H || iw < 0 || iw >= k->W) continue;
                const int64_t ci = grp * Cg + c, xi = ((n * k->C + ci) * k->H + ih) * k->W + iw;
                acc += at4(w, ws, o, c, i, j) * x[xi];
                if (gy) {
                  gx[xi] += at4(w, ws, o, c, i, j) * gy[yi];
                  gw[((o * Cg + c) * k->kH + i) * k->kW + j] += x[xi] * gy[yi];
                }
              }
          y[yi] = acc;
          if (gy) gb[o] += gy[yi];
        }
  (void)xs, (void)ys;
}

static bool close_all(const mt_tensor *t, const double *want, double tol, const char *what, const char *name) {
  double worst = 0;
  for (int64_t i = 0; i < mt_numel(t); i++) {
    double d = fabs(val(t, i) - want[i]) / (1 + fabs(want[i]));
    if (!(d <= worst)) worst = d;
  }
  if (worst > tol) fprintf(stderr, "%s: %s off by %g\n", name, what, worst);
  return worst <= tol;
}

static mt_tensor *as_dtype(mt_tensor *t, mt_dtype dt) {
  mt_tensor *r = NULL;
  if (t && mt_to_dtype(&r, t, dt) != MT_OK) r = NULL;
  mt_tensor_release(t);
  return r;
}

/* Forward and every gradient against the reference, in float64 and float32. */
static void test_reference(void) {
  for (size_t ci = 0; ci < sizeof conv_cases / sizeof *conv_cases; ci++) {
    const ccase *k = &conv_cases[ci];
    const int64_t Ho = (k->H + 2 * k->ph - k->dh * (k->kH - 1) - 1) / k->sh + 1;
    const int64_t Wo = (k->W + 2 * k->pw - k->dw * (k->kW - 1) - 1) / k->sw + 1;
    const int64_t xs[4] = {k->N, k->C, k->H, k->W}, ws[4] = {k->Cout, k->C / k->groups, k->kH, k->kW};
    const int64_t ys[4] = {k->N, k->Cout, Ho, Wo}, bs[1] = {k->Cout};
    const int64_t nx = k->N * k->C * k->H * k->W, nw = ws[0] * ws[1] * ws[2] * ws[3], ny = k->N * k->Cout * Ho * Wo;
    mt_tensor *x64 = gc_tensor(4, xs, -1, 1, (int)ci), *w64 = gc_tensor(4, ws, -1, 1, (int)ci + 100);
    mt_tensor *b64 = k->bias ? gc_tensor(1, bs, -1, 1, (int)ci + 200) : NULL, *g64 = gc_tensor(4, ys, -1, 1, (int)ci + 300);
    double *ref = calloc((size_t)(ny + nx + nw + k->Cout), sizeof(double));
    if (!x64 || !w64 || !g64 || (k->bias && !b64) || !ref) {
      CHECK(false);
      goto next;
    }
    double *rgx = ref + ny, *rgw = rgx + nx, *rgb = rgw + nw;
    reference(k, mt_data(x64), mt_data(w64), b64 ? mt_data(b64) : NULL, mt_data(g64), Ho, Wo, ref, rgx, rgw, rgb);
    for (int pass = 0; pass < 2; pass++) {
      const mt_dtype dt = pass ? MT_FLOAT32 : MT_FLOAT64;
      const double tol = pass ? 2e-5 * (double)(ws[1] * k->kH * k->kW) : 1e-12;
      char name[96];
      snprintf(name, sizeof name, "conv %s (%s)", k->what, pass ? "float32" : "float64");
      mt_tensor *x = NULL, *w = NULL, *b = NULL, *g = NULL, *y = NULL;
      OK(pass ? mt_to_dtype(&x, x64, dt) : mt_detach(&x, x64)); /* fresh leaves */
      OK(pass ? mt_to_dtype(&w, w64, dt) : mt_detach(&w, w64));
      if (b64) OK(pass ? mt_to_dtype(&b, b64, dt) : mt_detach(&b, b64));
      OK(mt_to_dtype(&g, g64, dt));
      OK(mt_requires_grad_(x, true));
      OK(mt_requires_grad_(w, true));
      if (b) OK(mt_requires_grad_(b, true));
      OK(mt_conv2d(&y, x, w, b, (const int64_t[]){k->sh, k->sw}, (const int64_t[]){k->ph, k->pw},
                   (const int64_t[]){k->dh, k->dw}, k->groups));
      if (y) {
        CHECK(close_all(y, ref, tol, "output", name));
        OK(mt_backward(y, g, false));
        CHECK(x->grad && close_all(x->grad, rgx, tol, "grad_input", name));
        CHECK(w->grad && close_all(w->grad, rgw, tol * (double)(k->N * Ho * Wo) / (double)(ws[1] * k->kH * k->kW + 1),
                                   "grad_weight", name));
        if (b) CHECK(b->grad && close_all(b->grad, rgb, tol * (double)(k->N * Ho * Wo), "grad_bias", name));
      }
      mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b), mt_tensor_release(g), mt_tensor_release(y);
    }
  next:
    free(ref);
    mt_tensor_release(x64), mt_tensor_release(w64), mt_tensor_release(b64), mt_tensor_release(g64);
  }
}

static bool same_bits(const mt_tensor *a, const mt_tensor *b) {
  return a && b && mt_numel(a) == mt_numel(b) &&
         memcmp(mt_data(a), mt_data(b), (size_t)mt_numel(a) * mt_dtype_info(a->dtype)->size) == 0;
}

/* One conv step (output and gradients) with `threads` threads. */
static void conv_step(int threads, const int64_t *xs, const int64_t *ws, mt_tensor *out[4]) {
  OK(mt_set_num_threads(threads));
  mt_tensor *x = as_dtype(gc_tensor(4, xs, -1, 1, 7), MT_FLOAT32), *w = as_dtype(gc_tensor(4, ws, -1, 1, 8), MT_FLOAT32);
  mt_tensor *b = as_dtype(gc_tensor(1, ws, -1, 1, 9), MT_FLOAT32), *g = NULL, *y = NULL;
  const int64_t s1[2] = {1, 1};
  out[0] = out[1] = out[2] = out[3] = NULL;
  if (!x || !w || !b) goto done;
  OK(mt_requires_grad_(x, true));
  OK(mt_requires_grad_(w, true));
  OK(mt_requires_grad_(b, true));
  OK(mt_conv2d(&y, x, w, b, s1, s1, s1, 1));
  if (!y || !(g = as_dtype(gc_tensor(4, y->sizes, -1, 1, 10), MT_FLOAT32))) goto done;
  OK(mt_backward(y, g, false));
  out[0] = y, y = NULL;
  if ((out[1] = x->grad)) mt_tensor_retain(out[1]);
  if ((out[2] = w->grad)) mt_tensor_retain(out[2]);
  if ((out[3] = b->grad)) mt_tensor_retain(out[3]);
done:
  mt_tensor_release(x), mt_tensor_release(w), mt_tensor_release(b), mt_tensor_release(g), mt_tensor_release(y);
}

/* The same bits with 1, 2 and 3 threads: a batch (chunks with grad_weight partials) and a
 * single element (the forward cut into tiles for the threads). */
static void test_thread_invariance(void) {
  const int before = mt_get_num_threads();
  const int64_t shapes[2][2][4] = {{{16, 8, 12, 12}, {16, 8, 3, 3}}, {{1, 32, 14, 14}, {64, 32, 3, 3}}};
  for (int s = 0; s < 2; s++) {
    mt_tensor *one[4], *more[4];
    conv_step(1, shapes[s][0], shapes[s][1], one);
    for (int t = 2; t <= 3; t++) {
      conv_step(t, shapes[s][0], shapes[s][1], more);
      for (int i = 0; i < 4; i++) {
        CHECK(same_bits(one[i], more[i]));
        if (!same_bits(one[i], more[i])) fprintf(stderr, "shape %d, %d threads: result %d differs\n", s, t, i);
        mt_tensor_release(more[i]);
      }
    }
    for (int i = 0; i < 4; i++) mt_tensor_release(one[i]);
  }
  OK(mt_set_num_threads(before));
}

/* x [rows, in] (element stride 2 when strided), w [out, in] (strides (1, out) when wt: BLAS
 * reads it as a transpose) and b, all of dtype dt, from the float64 bases. */
static void linear_operands(mt_dtype dt, bool strided, bool wt, mt_tensor *xb, mt_tensor *wb, mt_tensor *bb, mt_tensor **x,
                            mt_tensor **w, mt_tensor **b) {
  mt_tensor *xd = NULL, *xs = NULL, *wd = NULL, *wtt = NULL, *wtc = NULL;
  OK(mt_to_dtype(&xd, xb, dt));
  OK(mt_to_dtype(&wd, wb, dt));
  OK(mt_to_dtype(b, bb, dt));
  if (xd) OK(mt_select(&xs, xd, 2, 0)); /* [rows, in] with strides (2 * in, 2) */
  if (xs) {
    if (strided) *x = xs, mt_tensor_retain(xs);
    else OK(mt_clone(x, xs));
  }
  if (wd && wt) {
    OK(mt_transpose(&wtt, wd, 0, 1));
    OK(mt_clone(&wtc, wtt));
    if (wtc) OK(mt_transpose(w, wtc, 0, 1));
  } else if (wd) {
    *w = wd, mt_tensor_retain(wd);
  }
  mt_tensor_release(xd), mt_tensor_release(xs), mt_tensor_release(wd), mt_tensor_release(wtt), mt_tensor_release(wtc);
}

/* linear with 1..5 rows (gemv up to 4), against float64 sums, with and without bias; strided
 * inputs and a transposed weight give the contiguous results. */
static void test_linear_rows(void) {
  const int64_t in_f = 37, out_f = 11;
  for (int64_t rows = 1; rows <= 5; rows++)
    for (int variant = 0; variant < 8; variant++) {
      const bool strided = variant & 1, wt = variant & 2, f32 = variant & 4;
      const double tol = f32 ? 1e-5 : 1e-12;
      mt_tensor *xb = gc_tensor(3, (const int64_t[]){rows, in_f, 2}, -1, 1, (int)rows);
      mt_tensor *wb = gc_tensor(2, (const int64_t[]){out_f, in_f}, -1, 1, 40), *bb = gc_tensor(1, (const int64_t[]){out_f}, -1, 1, 41);
      mt_tensor *x = NULL, *w = NULL, *b = NULL, *y = NULL, *y2 = NULL;
      if (xb && wb && bb) linear_operands(f32 ? MT_FLOAT32 : MT_FLOAT64, strided, wt, xb, wb, bb, &x, &w, &b);
      if (x && w && b) {
        OK(mt_linear(&y, x, w, b));
        OK(mt_linear(&y2, x, w, NULL));
      }
      double worst = y && y2 ? 0 : INFINITY;
      for (int64_t r = 0; y && y2 && r < rows; r++)
        for (int64_t o = 0; o < out_f; o++) {
          double acc = 0;
          for (int64_t i = 0; i < in_f; i++) acc += val(x, r * in_f + i) * val(w, o * in_f + i);
          worst = fmax(worst, fabs(val(y, r * out_f + o) - (acc + val(b, o))));
          worst = fmax(worst, fabs(val(y2, r * out_f + o) - acc));
        }
      CHECK(worst <= tol);
      if (!(worst <= tol)) fprintf(stderr, "linear, %lld rows, variant %d: off by %g\n", (long long)rows, variant, worst);
      mt_tensor_release(xb), mt_tensor_release(wb), mt_tensor_release(bb), mt_tensor_release(x), mt_tensor_release(w);
      mt_tensor_release(b), mt_tensor_release(y), mt_tensor_release(y2);
    }
}

static mt_status run_flat(mt_tensor **out, mt_tensor *const *in, void *ctx) {
  const ccase *k = ctx;
  return mt_conv2d(out, in[0], in[1], in[2], (const int64_t[]){k->sh, k->sw}, (const int64_t[]){k->ph, k->pw},
                   (const int64_t[]){k->dh, k->dw}, k->groups);
}

/* Finite differences through the contiguous-run paths (the reference test checks the same
 * formulas exactly; this one checks them against the forward itself). */
static void test_flat_gradcheck(void) {
  for (size_t ci = 2; ci <= 4; ci++) { /* no row padding, 1x3 kernel, kernel wider than the image */
    const ccase *k = &conv_cases[ci];
    mt_tensor *in[3] = {gc_tensor(4, (const int64_t[]){k->N, k->C, k->H, k->W}, -1, 1, 60),
                        gc_tensor(4, (const int64_t[]){k->Cout, k->C / k->groups, k->kH, k->kW}, -1, 1, 61),
                        gc_tensor(1, (const int64_t[]){k->Cout}, -1, 1, 62)};
    CHECK(in[0] && in[1] && in[2] && gradcheck(k->what, run_flat, (void *)k, 3, in));
    for (int i = 0; i < 3; i++) mt_tensor_release(in[i]);
  }
}

int main(void) {
  test_reference();
  test_flat_gradcheck();
  test_thread_invariance();
  test_linear_rows();
  return mt_test_finish("test_nn_conv_paths");
}
