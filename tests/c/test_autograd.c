/* test_autograd.c — the engine (accumulation, retain_graph, versions, in-place rules, long
 * chains) and the binary ops' backward against finite differences. */
#include "gradcheck.h"

typedef struct {
  mt_binop op;
} binop_ctx;

static mt_status run_binop(mt_tensor **out, mt_tensor *const *in, void *ctx) {
  return mt_binary(out, ((binop_ctx *)ctx)->op, in[0], in[1]);
}

static void test_binary_gradients(void) {
  static const struct {
    mt_binop op;
    double lo, hi;
  } rows[] = {
      {MT_ADD, -2, 2}, {MT_SUB, -2, 2},     {MT_MUL, -2, 2},     {MT_DIV, 0.5, 2},
      {MT_POW, 0.5, 2}, {MT_MAXIMUM, -2, 2}, {MT_MINIMUM, -2, 2}, {MT_FMOD, 0.7, 3}, {MT_REMAINDER, 0.7, 3},
  };
  /* same shapes, and broadcasting both ways ([3, 1] with [1, 4], [2, 3, 4] with [4]) */
  static const struct {
    int na, nb;
    int64_t a[3], b[3];
  } shapes[] = {{2, 2, {3, 4}, {3, 4}}, {2, 2, {3, 1}, {1, 4}}, {3, 1, {2, 3, 4}, {4}}, {0, 2, {0}, {2, 2}}};
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
      mt_tensor *in[2] = {gc_tensor(shapes[s].na, shapes[s].a, rows[r].lo, rows[r].hi, 1),
                          gc_tensor(shapes[s].nb, shapes[s].b, rows[r].lo, rows[r].hi, 2)};
      binop_ctx ctx = {rows[r].op};
      bool ok = gradcheck(mt_binop_name(rows[r].op), run_binop, &ctx, 2, in);
      CHECK(ok);
      if (!ok) fprintf(stderr, "  (op %s, shape case %zu)\n", mt_binop_name(rows[r].op), s);
      mt_tensor_release(in[0]);
      mt_tensor_release(in[1]);
    }
}

static void test_engine(void) {
  int64_t sz[1] = {3};
  mt_tensor *x = gc_tensor(1, sz, -1, 1, 3), *y, *z, *w;
  OK(mt_requires_grad_(x, true));
  CHECK(x->requires_grad && !x->grad_fn);

  /* z = x * x + x: dz/dx = 2x + 1, accumulated across two backward calls */
  OK(mt_binary(&y, MT_MUL, x, x));
  CHECK(y->grad_fn && strcmp(mt_node_name(y->grad_fn), "MulBackward0") == 0);
  OK(mt_binary(&z, MT_ADD, y, x));
  CHECK(mt_node_num_next(z->grad_fn) == 2 && mt_node_next(z->grad_fn, 0) == y->grad_fn);
  FAILS(mt_backward(z, NULL, false), MT_ESHAPE, "one element");
  mt_tensor *ones;
  OK(mt_full(&ones, MT_FLOAT64, 1, sz, mt_scalar_float(1)));
  OK(mt_backward(z, ones, true));
  for (int i = 0; i < 3; i++) CHECK_NEAR(val(x->grad, i), 2 * val(x, i) + 1, 1e-12);
  OK(mt_backward(z, ones, false)); /* retained: a second pass works and accumulates */
  for (int i = 0; i < 3; i++) CHECK_NEAR(val(x->grad, i), 2 * (2 * val(x, i) + 1), 1e-12);
  FAILS(mt_backward(z, ones, false), MT_ESTATE, "second time");
  mt_tensor_release(z);
  mt_tensor_release(y);

  /* in-place rules */
  mt_tensor *one;
  OK(mt_wrap_number(&one, mt_scalar_float(1)));
  FAILS(mt_binary_(MT_ADD, x, one), MT_ESTATE, "leaf tensor that requires grad");
  mt_set_grad_enabled(false);
  OK(mt_binary_(MT_ADD, x, one)); /* an optimizer step under no_grad */
  mt_set_grad_enabled(true);

  /* a saved tensor modified in place after the graph was built */
  mt_tensor *c, *d;
  OK(mt_clone(&c, ones));
  OK(mt_binary(&d, MT_MUL, x, c)); /* saves c */
  OK(mt_binary_(MT_ADD, c, one));
  FAILS(mt_backward(d, ones, false), MT_ESTATE, "modified by an in-place operation");
  mt_tensor_release(d);
  OK(mt_binary(&d, MT_MUL, x, c));
  FAILS(mt_binary_(MT_ADD, d, one), MT_ESTATE, "history");
  FAILS(mt_binary_(MT_ADD, c, x), MT_ESTATE, "requires grad");
  mt_tensor_release(d);
  mt_tensor_release(c);

  /* no grad mode records nothing; detach cuts history */
  mt_set_grad_enabled(false);
  OK(mt_binary(&w, MT_MUL, x, x));
  CHECK(!w->requires_grad && !w->grad_fn);
  mt_tensor_release(w);
  mt_set_grad_enabled(true);
  OK(mt_detach(&w, x));
  CHECK(!w->requires_grad && w->storage == x->storage);
  mt_tensor_release(w);
  FAILS(mt_backward(ones, NULL, false), MT_ESTATE, "does not require grad");

  /* pow at the corners PyTorch defines: d(0^0)/da = 0, d(0^b)/db = 0 for b >= 0 */
  mt_tensor *zb, *za, *p;
  OK(mt_zeros(&za, MT_FLOAT64, 1, sz));
  OK(mt_zeros(&zb, MT_FLOAT64, 1, sz));
  OK(mt_requires_grad_(za, true));
  OK(mt_requires_grad_(zb, true));
  OK(mt_binary(&p, MT_POW, za, zb));
  OK(mt_backward(p, ones, false));
  for (int i = 0; i < 3; i++) CHECK(val(za->grad, i) == 0 && val(zb->grad, i) == 0);
  mt_tensor_release(p), mt_tensor_release(za), mt_tensor_release(zb);

  /* mixed dtypes: a float32 leaf gets a float32 gradient */
  mt_tensor *f;
  OK(mt_to_dtype(&f, ones, MT_FLOAT32));
  OK(mt_requires_grad_(f, true));
  OK(mt_binary(&w, MT_MUL, f, x));
  CHECK(w->dtype == MT_FLOAT64);
  OK(mt_backward(w, ones, false));
  CHECK(f->grad && f->grad->dtype == MT_FLOAT32 && fabs(val(f->grad, 1) - val(x, 1)) < 1e-6);
  mt_tensor_release(w);
  mt_tensor_release(f);

  mt_tensor *i64;
  OK(mt_zeros(&i64, MT_INT64, 1, sz));
  FAILS(mt_requires_grad_(i64, true), MT_EDTYPE, "floating point");
  mt_tensor_release(i64);

  mt_tensor_release(one);
  mt_tensor_release(ones);
  mt_tensor_release(x);
}

/* A 200k-step chain is freed and differentiated without deep recursion. */
static void test_long_chain(void) {
  mt_tensor *x, *one, *h;
  OK(mt_scalar_tensor(&x, MT_FLOAT64, mt_scalar_float(1)));
  OK(mt_requires_grad_(x, true));
  OK(mt_wrap_number(&one, mt_scalar_float(1)));
  mt_tensor_retain(x);
  h = x;
  bool built = true;
  for (int i = 0; i < 200000 && built; i++) {
    mt_tensor *n;
    built = mt_binary(&n, MT_ADD, h, one) == MT_OK;
    mt_tensor_release(h);
    h = built ? n : NULL;
  }
  CHECK(built);
  if (!built) return;
  OK(mt_backward(h, NULL, false));
  CHECK(x->grad && val(x->grad, 0) == 1);
  mt_tensor_release(h); /* frees 200k nodes */
  mt_tensor_release(one);
  mt_tensor_release(x);
}

int main(void) {
  test_engine();
  test_binary_gradients();
  test_long_chain();
  return mt_test_finish("test_autograd");
}
