/* test_autograd_shape.c — backward of the views (view.c), copies (copy.c), indexing (index.c)
 * and joins (join.c): finite-difference checks over one table of cases, PyTorch's node names,
 * and the rules around them (views of plain tensors stay plain, in-place writes through a
 * recorded view are refused, integer conversions carry no gradient, saved indices are
 * version-checked). */
#include "gradcheck.h"

static mt_tensor *index_tensor(int ndim, const int64_t *sizes, const int64_t *vals) {
  mt_tensor *t;
  if (mt_empty(&t, MT_INT64, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) mt_set_flat(t, i, mt_scalar_int(vals[i]));
  return t;
}

/* ---- the table ------------------------------------------------------------------------------ */

typedef enum op_kind {
  OP_VIEW, OP_RESHAPE, OP_FLATTEN, OP_TRANSPOSE, OP_T, OP_PERMUTE, OP_SQUEEZE, OP_SQUEEZE_ALL, OP_UNSQUEEZE,
  OP_NARROW, OP_SELECT, OP_EXPAND, OP_CONTIGUOUS, OP_CLONE, OP_INDEX_SELECT, OP_GATHER, OP_SCATTER,
  OP_SCATTER_ADD, OP_CAT, OP_STACK
} op_kind;

typedef struct gcase {
  const char *node; /* PyTorch's grad_fn name for the op's result */
  op_kind op;
  int nin;
  int ndim[3];
  int64_t sizes[3][4];
  bool transposed; /* the op gets transpose(leaf, 0, -1): non-contiguous inputs */
  int np;
  int64_t p[4];    /* the op's dims / sizes / start, length */
  bool has_index;
  int index_ndim;
  int64_t index_sizes[2];
  int64_t index[8];
} gcase;

static mt_status run_case(mt_tensor **out, mt_tensor *const *leaves, void *vctx) {
  const gcase *c = vctx;
  mt_tensor *in[3] = {0}, *index = NULL;
  mt_status st = MT_OK;
  for (int i = 0; i < c->nin && !st; i++) {
    if (c->transposed) {
      st = mt_transpose(&in[i], leaves[i], 0, -1);
    } else {
      mt_tensor_retain(leaves[i]);
      in[i] = leaves[i];
    }
  }
  if (!st && c->has_index && !(index = index_tensor(c->index_ndim, c->index_sizes, c->index))) st = MT_ENOMEM;
  if (!st) {
    const int64_t *p = c->p;
    switch (c->op) {
    case OP_VIEW: st = mt_view(out, in[0], c->np, p); break;
    case OP_RESHAPE: st = mt_reshape(out, in[0], c->np, p); break;
    case OP_FLATTEN: st = mt_flatten(out, in[0], p[0], p[1]); break;
    case OP_TRANSPOSE: st = mt_transpose(out, in[0], p[0], p[1]); break;
    case OP_T: st = mt_t(out, in[0]); break;
    case OP_PERMUTE: st = mt_permute(out, in[0], c->np, p); break;
    case OP_SQUEEZE: st = mt_squeeze(out, in[0], p[0]); break;
    case OP_SQUEEZE_ALL: st = mt_squeeze_all(out, in[0]); break;
    case OP_UNSQUEEZE: st = mt_unsqueeze(out, in[0], p[0]); break;
    case OP_NARROW: st = mt_narrow(out, in[0], p[0], p[1], p[2]); break;
    case OP_SELECT: st = mt_select(out, in[0], p[0], p[1]); break;
    case OP_EXPAND: st = mt_expand(out, in[0], c->np, p); break;
    case OP_CONTIGUOUS: st = mt_contiguous(out, in[0]); break;
    case OP_CLONE: st = mt_clone(out, in[0]); break;
    case OP_INDEX_SELECT: st = mt_index_select(out, in[0], p[0], index); break;
    case OP_GATHER: st = mt_gather(out, in[0], p[0], index); break;
    case OP_SCATTER: st = mt_scatter(out, in[0], p[0], index, in[1]); break;
    case OP_SCATTER_ADD: st = mt_scatter_add(out, in[0], p[0], index, in[1]); break;
    case OP_CAT: st = mt_cat(out, c->nin, (const mt_tensor *const *)in, p[0]); break;
    case OP_STACK: st = mt_stack(out, c->nin, (const mt_tensor *const *)in, p[0]); break;
    }
  }
  for (int i = 0; i < c->nin; i++) mt_tensor_release(in[i]);
  mt_tensor_release(index);
  return st;
}

#define NOIX false, 0, {0}, {0}
#define IX(nd, s0, s1, ...) true, nd, {s0, s1}, {__VA_ARGS__}

static const gcase cases[] = {
    /* views */
    {"ViewBackward0", OP_VIEW, 1, {2}, {{3, 4}}, false, 2, {2, 6}, NOIX},
    {"ViewBackward0", OP_VIEW, 1, {2}, {{3, 4}}, false, 1, {-1}, NOIX},
    {"ViewBackward0", OP_VIEW, 1, {0}, {{0}}, false, 2, {1, 1}, NOIX},
    {"ReshapeAliasBackward0", OP_RESHAPE, 1, {2}, {{3, 4}}, false, 3, {2, 2, 3}, NOIX},
    {"UnsafeViewBackward0", OP_RESHAPE, 1, {2}, {{3, 4}}, true, 1, {12}, NOIX}, /* needs a copy */
    {"ReshapeAliasBackward0", OP_FLATTEN, 1, {3}, {{2, 3, 4}}, false, 2, {1, 2}, NOIX},
    {"UnsafeViewBackward0", OP_FLATTEN, 1, {3}, {{2, 3, 4}}, true, 2, {0, -1}, NOIX},
    {"ReshapeAliasBackward0", OP_FLATTEN, 1, {0}, {{0}}, false, 2, {0, 0}, NOIX},
    {"TransposeBackward0", OP_TRANSPOSE, 1, {3}, {{2, 3, 4}}, false, 2, {0, 2}, NOIX},
    {"TransposeBackward0", OP_TRANSPOSE, 1, {2}, {{3, 4}}, true, 2, {-1, 0}, NOIX},
    {"TBackward0", OP_T, 1, {2}, {{3, 4}}, false, 0, {0}, NOIX},
    {"TBackward0", OP_T, 1, {2}, {{3, 4}}, true, 0, {0}, NOIX},
    {"TBackward0", OP_T, 1, {1}, {{3}}, false, 0, {0}, NOIX},
    {"TBackward0", OP_T, 1, {0}, {{0}}, false, 0, {0}, NOIX},
    {"PermuteBackward0", OP_PERMUTE, 1, {3}, {{2, 3, 4}}, false, 3, {2, 0, 1}, NOIX},
    {"PermuteBackward0", OP_PERMUTE, 1, {3}, {{2, 3, 4}}, true, 3, {1, 2, 0}, NOIX},
    {"SqueezeBackward1", OP_SQUEEZE, 1, {3}, {{3, 1, 4}}, false, 1, {1}, NOIX},
    {"SqueezeBackward1", OP_SQUEEZE, 1, {3}, {{3, 1, 4}}, false, 1, {0}, NOIX}, /* size 3: nothing to squeeze */
    {"SqueezeBackward1", OP_SQUEEZE, 1, {0}, {{0}}, false, 1, {0}, NOIX},
    {"SqueezeBackward0", OP_SQUEEZE_ALL, 1, {4}, {{1, 3, 1, 2}}, false, 0, {0}, NOIX},
    {"SqueezeBackward0", OP_SQUEEZE_ALL, 1, {3}, {{1, 3, 1}}, true, 0, {0}, NOIX},
    {"UnsqueezeBackward0", OP_UNSQUEEZE, 1, {2}, {{3, 4}}, false, 1, {1}, NOIX},
    {"UnsqueezeBackward0", OP_UNSQUEEZE, 1, {2}, {{3, 4}}, true, 1, {-1}, NOIX},
    {"UnsqueezeBackward0", OP_UNSQUEEZE, 1, {0}, {{0}}, false, 1, {0}, NOIX},
    {"SliceBackward0", OP_NARROW, 1, {2}, {{5, 4}}, false, 3, {0, 1, 3}, NOIX},
    {"SliceBackward0", OP_NARROW, 1, {2}, {{5, 4}}, true, 3, {-1, -4, 2}, NOIX},
    {"SliceBackward0", OP_NARROW, 1, {2}, {{5, 4}}, false, 3, {1, 2, 0}, NOIX}, /* empty slice */
    {"SelectBackward0", OP_SELECT, 1, {2}, {{3, 4}}, false, 2, {1, -1}, NOIX},
    {"SelectBackward0", OP_SELECT, 1, {3}, {{2, 3, 4}}, true, 2, {0, 2}, NOIX},
    {"SelectBackward0", OP_SELECT, 1, {1}, {{3}}, false, 2, {0, 1}, NOIX}, /* 0-dim result */
    {"ExpandBackward0", OP_EXPAND, 1, {2}, {{3, 1}}, false, 3, {2, 3, 4}, NOIX},
    {"ExpandBackward0", OP_EXPAND, 1, {2}, {{1, 3}}, true, 2, {-1, 5}, NOIX},
    {"ExpandBackward0", OP_EXPAND, 1, {0}, {{0}}, false, 1, {3}, NOIX},
    /* copies */
    {"CloneBackward0", OP_CONTIGUOUS, 1, {2}, {{3, 4}}, true, 0, {0}, NOIX},
    {"CloneBackward0", OP_CLONE, 1, {2}, {{3, 4}}, false, 0, {0}, NOIX},
    {"CloneBackward0", OP_CLONE, 1, {3}, {{2, 3, 4}}, true, 0, {0}, NOIX},
    /* indexing: repeated indices accumulate */
    {"IndexSelectBackward0", OP_INDEX_SELECT, 1, {2}, {{4, 3}}, false, 1, {0}, IX(1, 3, 0, 3, 0, 3)},
    {"IndexSelectBackward0", OP_INDEX_SELECT, 1, {2}, {{4, 3}}, true, 1, {1}, IX(1, 4, 0, 1, 1, 3, 0)},
    {"IndexSelectBackward0", OP_INDEX_SELECT, 1, {3}, {{2, 3, 2}}, false, 1, {-2}, IX(0, 0, 0, 2)},
    {"IndexSelectBackward0", OP_INDEX_SELECT, 1, {0}, {{0}}, false, 1, {0}, IX(1, 1, 0, 0)},
    {"GatherBackward0", OP_GATHER, 1, {2}, {{3, 4}}, false, 1, {1}, IX(2, 3, 2, 0, 3, 1, 1, 2, 0)},
    {"GatherBackward0", OP_GATHER, 1, {2}, {{3, 4}}, true, 1, {0}, IX(2, 2, 3, 3, 0, 3, 3, 1, 1)},
    {"GatherBackward0", OP_GATHER, 1, {2}, {{3, 4}}, false, 1, {0}, IX(2, 0, 2, 0)}, /* empty index */
    /* scatter: indices distinct along dim (overwrites would make the gradient ill-defined); src
     * reaches beyond index in the second case, and the rest of src gets a zero gradient */
    {"ScatterBackward0", OP_SCATTER, 2, {2, 2}, {{3, 4}, {2, 2}}, false, 1, {1}, IX(2, 2, 2, 0, 2, 3, 1)},
    {"ScatterBackward0", OP_SCATTER, 2, {2, 2}, {{3, 4}, {3, 3}}, false, 1, {0}, IX(2, 2, 2, 2, 0, 0, 1)},
    {"ScatterBackward0", OP_SCATTER, 2, {2, 2}, {{4, 3}, {3, 2}}, true, 1, {1}, IX(2, 2, 2, 3, 0, 1, 2)},
    {"ScatterAddBackward0", OP_SCATTER_ADD, 2, {2, 2}, {{3, 4}, {2, 3}}, false, 1, {1}, IX(2, 2, 2, 0, 0, 3, 1)},
    {"ScatterAddBackward0", OP_SCATTER_ADD, 2, {2, 2}, {{3, 4}, {2, 4}}, true, 1, {0}, IX(2, 2, 2, 1, 1, 1, 0)},
    /* joins */
    {"CatBackward0", OP_CAT, 3, {2, 2, 2}, {{2, 3}, {1, 3}, {4, 3}}, false, 1, {0}, NOIX},
    {"CatBackward0", OP_CAT, 2, {2, 2}, {{2, 1}, {2, 3}}, false, 1, {-1}, NOIX},
    {"CatBackward0", OP_CAT, 2, {2, 2}, {{3, 2}, {3, 4}}, true, 1, {0}, NOIX},
    {"CatBackward0", OP_CAT, 3, {2, 1, 2}, {{2, 3}, {0}, {2, 3}}, false, 1, {1}, NOIX}, /* [0] is skipped */
    {"StackBackward0", OP_STACK, 2, {2, 2}, {{2, 3}, {2, 3}}, false, 1, {0}, NOIX},
    {"StackBackward0", OP_STACK, 3, {2, 2, 2}, {{2, 3}, {2, 3}, {2, 3}}, true, 1, {-1}, NOIX},
    {"StackBackward0", OP_STACK, 2, {0, 0}, {{0}, {0}}, false, 1, {0}, NOIX},
};

static void test_gradients(void) {
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const gcase *c = &cases[k];
    mt_tensor *in[3] = {0};
    for (int i = 0; i < c->nin; i++) in[i] = gc_tensor(c->ndim[i], c->sizes[i], -2, 2, (int)(10 * k) + i);
    bool ok = gradcheck(c->node, run_case, (void *)c, c->nin, in);
    CHECK(ok);
    if (!ok) fprintf(stderr, "  (case %zu)\n", k);

    /* the result's node has PyTorch's name and leads to the inputs */
    for (int i = 0; i < c->nin; i++) mt_requires_grad_(in[i], true);
    mt_tensor *out = NULL;
    OK(run_case(&out, in, (void *)c));
    bool named = out && out->grad_fn && out->requires_grad && strcmp(mt_node_name(out->grad_fn), c->node) == 0;
    CHECK(named);
    if (!named) fprintf(stderr, "  case %zu: node %s, expected %s\n", k, out && out->grad_fn ? mt_node_name(out->grad_fn) : "(none)", c->node);
    mt_tensor_release(out);
    for (int i = 0; i < c->nin; i++) mt_tensor_release(in[i]);
  }
}

/* ---- the rules around them -------------------------------------------------------------------- */

static void test_views_of_plain_tensors(void) {
  int64_t sz[2] = {3, 4}, one = 12;
  mt_tensor *x, *v;
  OK(mt_zeros(&x, MT_FLOAT64, 2, sz));
  OK(mt_view(&v, x, 1, &one)); /* no input requires grad: just a header */
  CHECK(!v->grad_fn && !v->requires_grad && v->storage == x->storage);
  OK(mt_fill_(v, mt_scalar_float(2)));
  CHECK(val(x, 5) == 2);
  mt_tensor_release(v);

  OK(mt_requires_grad_(x, true));
  mt_set_grad_enabled(false); /* no_grad: views record nothing either */
  OK(mt_transpose(&v, x, 0, 1));
  CHECK(!v->grad_fn && !v->requires_grad);
  mt_tensor_release(v);
  mt_set_grad_enabled(true);

  mt_tensor *x3;
  int64_t sz3[3] = {2, 2, 2};
  OK(mt_zeros(&x3, MT_FLOAT64, 3, sz3));
  FAILS(mt_t(&v, x3), MT_EARG, "at most 2 dims, got 3");
  mt_tensor_release(x3);

  /* alias and detach never record: the engine keeps saved tensors through alias */
  OK(mt_alias(&v, x));
  CHECK(!v->grad_fn && !v->requires_grad);
  mt_tensor_release(v);
  OK(mt_detach(&v, x));
  CHECK(!v->grad_fn && !v->requires_grad);
  mt_tensor_release(v);

  /* a view of a tensor that requires grad has history: writes through it are refused */
  OK(mt_select(&v, x, 0, 1));
  CHECK(v->grad_fn && v->requires_grad);
  FAILS(mt_fill_(v, mt_scalar_float(0)), MT_ESTATE, "history");
  mt_tensor_release(v);

  /* copies that need not copy hand back the input itself, adding no node */
  OK(mt_contiguous(&v, x));
  CHECK(v == x && !v->grad_fn);
  mt_tensor_release(v);
  OK(mt_to_dtype(&v, x, MT_FLOAT64));
  CHECK(v == x);
  mt_tensor_release(v);
  OK(mt_flatten(&v, x, 1, 1));
  CHECK(v == x);
  mt_tensor_release(v);

  /* reshape that must copy: UnsafeViewBackward0 over CloneBackward0, as PyTorch's graph */
  mt_tensor *t;
  OK(mt_transpose(&t, x, 0, 1));
  OK(mt_reshape(&v, t, 1, &one));
  CHECK(v->grad_fn && strcmp(mt_node_name(v->grad_fn), "UnsafeViewBackward0") == 0);
  mt_node *clone = mt_node_next(v->grad_fn, 0);
  CHECK(clone && strcmp(mt_node_name(clone), "CloneBackward0") == 0 && mt_node_next(clone, 0) == t->grad_fn);
  mt_tensor_release(v);
  mt_tensor_release(t);
  mt_tensor_release(x);
}

static void test_dtype_conversions(void) {
  int64_t sz[2] = {2, 3};
  mt_tensor *x = gc_tensor(2, sz, -2, 2, 7), *y, *w, *f;
  OK(mt_requires_grad_(x, true));

  /* float64 -> float32: the gradient comes back as float64 */
  OK(mt_to_dtype(&y, x, MT_FLOAT32));
  CHECK(y->grad_fn && strcmp(mt_node_name(y->grad_fn), "ToCopyBackward0") == 0);
  OK(mt_empty(&w, MT_FLOAT32, 2, sz));
  for (int i = 0; i < 6; i++) mt_set_flat(w, i, mt_scalar_float(0.5 * i - 1));
  OK(mt_backward(y, w, false));
  CHECK(x->grad && x->grad->dtype == MT_FLOAT64);
  for (int i = 0; i < 6 && x->grad; i++) CHECK(val(x->grad, i) == 0.5 * i - 1);
  mt_tensor_release(y);

  /* float32 leaf -> float64 -> float32 leaf gradient */
  OK(mt_clone(&f, w));
  OK(mt_requires_grad_(f, true));
  OK(mt_to_dtype(&y, f, MT_FLOAT64));
  mt_tensor *g64;
  OK(mt_to_dtype(&g64, w, MT_FLOAT64));
  OK(mt_backward(y, g64, false));
  CHECK(f->grad && f->grad->dtype == MT_FLOAT32 && val(f->grad, 5) == 1.5);
  mt_tensor_release(y);
  mt_tensor_release(g64);

  /* to an integer dtype: no gradient can flow, the result has no history */
  OK(mt_to_dtype(&y, x, MT_INT64));
  CHECK(!y->grad_fn && !y->requires_grad);
  mt_tensor_release(y);

  /* mixed float dtypes in cat: each input gets its gradient in its own dtype; an integer
   * input takes part without a gradient */
  mt_tensor *ints, *c;
  OK(mt_zeros(&ints, MT_INT32, 2, sz));
  OK(mt_set_grad(x, NULL));
  OK(mt_set_grad(f, NULL));
  const mt_tensor *parts[3] = {f, ints, x};
  OK(mt_cat(&c, 3, parts, 0));
  CHECK(c->dtype == MT_FLOAT64 && c->grad_fn && mt_node_num_next(c->grad_fn) == 3);
  mt_tensor *gc;
  int64_t csz[2] = {6, 3};
  OK(mt_empty(&gc, MT_FLOAT64, 2, csz));
  for (int i = 0; i < 18; i++) mt_set_flat(gc, i, mt_scalar_float(i));
  OK(mt_backward(c, gc, false));
  CHECK(f->grad && f->grad->dtype == MT_FLOAT32 && val(f->grad, 4) == 4);
  CHECK(x->grad && x->grad->dtype == MT_FLOAT64 && val(x->grad, 4) == 16);
  CHECK(!ints->grad);
  mt_tensor_release(c);
  mt_tensor_release(gc);

  /* scatter into an integer tensor from a src that requires grad: an integer result, no node */
  int64_t isz[2] = {1, 2}, iv[2] = {0, 2};
  mt_tensor *index = index_tensor(2, isz, iv), *s;
  OK(mt_scatter(&s, ints, 1, index, x));
  CHECK(s->dtype == MT_INT32 && !s->grad_fn && !s->requires_grad);
  mt_tensor_release(s);
  mt_tensor_release(index);
  mt_tensor_release(ints);

  mt_tensor_release(w);
  mt_tensor_release(f);
  mt_tensor_release(x);
}

static void test_legacy_empty_and_saved_index(void) {
  /* a [0] input skipped by cat gets an empty gradient, as PyTorch gives */
  int64_t zero = 0, sz[2] = {2, 3};
  mt_tensor *e, *x = gc_tensor(2, sz, -1, 1, 3), *c;
  OK(mt_zeros(&e, MT_FLOAT64, 1, &zero));
  OK(mt_requires_grad_(e, true));
  OK(mt_requires_grad_(x, true));
  const mt_tensor *parts[2] = {e, x};
  OK(mt_cat(&c, 2, parts, 1));
  mt_tensor *ones;
  OK(mt_full(&ones, MT_FLOAT64, 2, sz, mt_scalar_float(1)));
  OK(mt_backward(c, ones, false));
  CHECK(e->grad && e->grad->ndim == 1 && e->grad->sizes[0] == 0);
  CHECK(x->grad && val(x->grad, 5) == 1);
  mt_tensor_release(c);

  /* the index a node saved is checked for in-place changes before it is used */
  int64_t n = 2, iv[2] = {1, 0};
  mt_tensor *index = index_tensor(1, &n, iv), *y;
  OK(mt_index_select(&y, x, 0, index));
  OK(mt_fill_(index, mt_scalar_int(0)));
  FAILS(mt_backward(y, ones, false), MT_ESTATE, "modified by an in-place operation");
  mt_tensor_release(y);

  mt_tensor_release(index);
  mt_tensor_release(ones);
  mt_tensor_release(e);
  mt_tensor_release(x);
}

/* A view chain built and differentiated several times frees its nodes (run under ASan). */
static void test_chain_of_views(void) {
  int64_t sz[3] = {2, 3, 4}, flat = 24;
  mt_tensor *x = gc_tensor(3, sz, -1, 1, 5), *a, *b, *c, *d;
  OK(mt_requires_grad_(x, true));
  OK(mt_permute(&a, x, 3, (int64_t[]){2, 0, 1}));   /* [4, 2, 3] */
  OK(mt_narrow(&b, a, 0, 1, 2));                      /* [2, 2, 3] */
  OK(mt_reshape(&c, b, 1, (int64_t[]){12}));          /* a copy: not viewable */
  OK(mt_unsqueeze(&d, c, 0));                         /* [1, 12] */
  mt_tensor *g;
  int64_t gsz[2] = {1, 12};
  OK(mt_full(&g, MT_FLOAT64, 2, gsz, mt_scalar_float(3)));
  OK(mt_backward(d, g, false));
  /* x[i][j][k] reached d iff k is 1 or 2 */
  bool right = x->grad != NULL;
  for (int64_t i = 0; i < flat && right; i++) right = val(x->grad, i) == ((i % 4 == 1 || i % 4 == 2) ? 3 : 0);
  CHECK(right);
  mt_tensor_release(g);
  mt_tensor_release(d);
  mt_tensor_release(c);
  mt_tensor_release(b);
  mt_tensor_release(a);
  mt_tensor_release(x);
}

int main(void) {
  test_gradients();
  test_views_of_plain_tensors();
  test_dtype_conversions();
  test_legacy_empty_and_saved_index();
  test_chain_of_views();
  return mt_test_finish("test_autograd_shape");
}
