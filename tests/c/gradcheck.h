/* gradcheck.h — finite-difference checks of backward formulas for the C tests.
 *
 * gradcheck(fn, ctx, n, inputs) runs fn on float64 inputs, back-propagates a fixed random
 * weighting of the output (so every output element matters), and compares each input's
 * gradient with central differences (eps 1e-6), elementwise within atol 1e-5 + rtol 1e-4.
 * Inputs must be float64 leaves; the check turns requires_grad on and off itself. */
#ifndef GRADCHECK_H
#define GRADCHECK_H

#include "mt_test.h"

typedef mt_status (*gc_fn)(mt_tensor **out, mt_tensor *const *inputs, void *ctx);

static double gc_weight(int64_t i) { return 0.5 + 0.37 * (double)((i * 7919 + 13) % 11) / 11.0 - 0.2 * (i % 3); }

/* sum(out * w) as a double, computed without autograd. */
static double gc_objective(gc_fn fn, void *ctx, mt_tensor *const *inputs, bool *ok) {
  mt_tensor *out;
  bool was = mt_is_grad_enabled();
  mt_set_grad_enabled(false);
  mt_status st = fn(&out, inputs, ctx);
  mt_set_grad_enabled(was);
  if (st) {
    *ok = false;
    fprintf(stderr, "gradcheck: forward failed: %s\n", mt_last_error());
    return 0;
  }
  double acc = 0;
  for (int64_t i = 0; i < mt_numel(out); i++) {
    mt_scalar v;
    mt_get_flat(out, i, &v);
    acc += mt_scalar_to_f64(v) * gc_weight(i);
  }
  mt_tensor_release(out);
  return acc;
}

/* Returns true when every gradient matches; prints the first mismatches. */
static bool gradcheck(const char *name, gc_fn fn, void *ctx, int n, mt_tensor *const *inputs) {
  bool ok = true;
  for (int k = 0; k < n; k++) {
    mt_set_grad(inputs[k], NULL);
    mt_requires_grad_(inputs[k], true);
  }
  mt_tensor *out = NULL, *w = NULL;
  if (fn(&out, inputs, ctx) != MT_OK) {
    fprintf(stderr, "gradcheck %s: forward failed: %s\n", name, mt_last_error());
    return false;
  }
  if (mt_empty(&w, out->dtype, out->ndim, out->sizes) != MT_OK) return false;
  for (int64_t i = 0; i < mt_numel(w); i++) mt_set_flat(w, i, mt_scalar_float(gc_weight(i)));
  if (mt_backward(out, w, false) != MT_OK) {
    fprintf(stderr, "gradcheck %s: backward failed: %s\n", name, mt_last_error());
    ok = false;
  }
  mt_tensor_release(out);
  mt_tensor_release(w);
  for (int k = 0; k < n && ok; k++) mt_requires_grad_(inputs[k], false);
  int reported = 0;
  for (int k = 0; k < n && ok; k++) {
    mt_tensor *x = inputs[k];
    for (int64_t i = 0; i < mt_numel(x); i++) {
      mt_scalar v;
      mt_get_flat(x, i, &v);
      double x0 = v.f, eps = 1e-6;
      mt_set_flat(x, i, mt_scalar_float(x0 + eps));
      double fp = gc_objective(fn, ctx, inputs, &ok);
      mt_set_flat(x, i, mt_scalar_float(x0 - eps));
      double fm = gc_objective(fn, ctx, inputs, &ok);
      mt_set_flat(x, i, mt_scalar_float(x0));
      double numeric = (fp - fm) / (2 * eps), analytic = 0;
      if (x->grad) {
        mt_scalar g;
        mt_get_flat(x->grad, i, &g);
        analytic = g.f;
      }
      if (fabs(numeric - analytic) > 1e-5 + 1e-4 * fabs(numeric)) {
        ok = false;
        if (reported++ < 5)
          fprintf(stderr, "gradcheck %s: input %d element %lld: analytic %.10g, numeric %.10g\n", name, k,
                  (long long)i, analytic, numeric);
      }
    }
  }
  for (int k = 0; k < n; k++) {
    mt_requires_grad_(inputs[k], false);
    mt_set_grad(inputs[k], NULL);
  }
  return ok;
}

/* A float64 tensor of the given shape filled with a deterministic spread of values in
 * [lo, hi], away from kinks for most smooth functions. */
static mt_tensor *gc_tensor(int ndim, const int64_t *sizes, double lo, double hi, int seed) {
  mt_tensor *t;
  if (mt_empty(&t, MT_FLOAT64, ndim, sizes)) return NULL;
  uint64_t s = 0x9e3779b97f4a7c15ull * (uint64_t)(seed + 1);
  for (int64_t i = 0; i < mt_numel(t); i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    mt_set_flat(t, i, mt_scalar_float(lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0));
  }
  return t;
}

/* One element of t as a double (logical order). */
static inline double val(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  mt_get_flat(t, i, &s);
  return mt_scalar_to_f64(s);
}

/* A float64 leaf of the given logical shape for gradcheck; with swap0 != swap1, a transposed
 * view of those dims, so that the op sees non-contiguous memory. */
typedef struct shape {
  int ndim;
  int64_t sizes[4];
  int swap0, swap1;
} shape;
#define SH(n, ...) {.ndim = n, .sizes = {__VA_ARGS__}}
#define SHT(d0, d1, n, ...) {.ndim = n, .sizes = {__VA_ARGS__}, .swap0 = d0, .swap1 = d1}

static inline mt_tensor *make_input(const shape *s, double lo, double hi, int seed) {
  if (s->swap0 == s->swap1) return gc_tensor(s->ndim, s->sizes, lo, hi, seed);
  int64_t phys[4];
  memcpy(phys, s->sizes, sizeof phys);
  phys[s->swap0] = s->sizes[s->swap1], phys[s->swap1] = s->sizes[s->swap0];
  mt_tensor *base = gc_tensor(s->ndim, phys, lo, hi, seed), *t = NULL;
  if (base && mt_transpose(&t, base, s->swap0, s->swap1)) t = NULL;
  mt_tensor_release(base);
  return t;
}

#endif
