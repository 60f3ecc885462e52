/* test_jit.c — tracing core ops into graphs: for each op family a small graph is traced, then
 * run on the example inputs and on new ones, directly and after a save and load; every result
 * must equal the eager one exactly (the same kernels run). Also: which nodes a graph keeps,
 * constants, and the refusals of what cannot be traced. */
#include "mt_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define MAXIO 8

/* ---- tensors ------------------------------------------------------------------------------ */

static mt_tensor *scratch[256]; /* everything a case makes, released after it */
static int nscratch;
static mt_tensor *keep(mt_tensor *t) {
  if (nscratch < 256) scratch[nscratch++] = t;
  return t;
}
static void release_scratch(void) {
  while (nscratch) mt_tensor_release(scratch[--nscratch]);
}

/* Runs an op inside a builder: returns its failure, keeps its result for release. */
#define STEP(var, call)                                                                         \
  do {                                                                                          \
    mt_status st_ = (call);                                                                     \
    if (st_) return st_;                                                                        \
    keep(var);                                                                                  \
  } while (0)

/* Values that are exact in every dtype used here (multiples of 1/8, small), varied by seed;
 * integer tensors hold indices in [0, modulus). */
static mt_tensor *filled(mt_dtype dt, int ndim, const int64_t *sizes, int seed, int modulus) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) return NULL;
  for (int64_t i = 0; i < mt_numel(t); i++) {
    int64_t k = (i * 7 + seed * 13) % 29;
    mt_scalar v = modulus ? mt_scalar_int((i * 5 + seed * 3) % modulus) : mt_scalar_float((double)(k - 14) / 8);
    mt_set_flat(t, i, v);
  }
  return t;
}

static bool same_tensor(const mt_tensor *a, const mt_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->sizes[d] != b->sizes[d]) return false;
  for (int64_t i = 0; i < mt_numel(a); i++) {
    mt_scalar x, y;
    mt_get_flat(a, i, &x);
    mt_get_flat(b, i, &y);
    if (x.kind != y.kind) return false;
    if (x.kind == MT_SCALAR_FLOAT ? !(x.f == y.f || (x.f != x.f && y.f != y.f)) : x.i != y.i) return false;
  }
  return true;
}

/* Weights and index tensors made before any trace: they become constants. */
static mt_tensor *W, *Wt, *IDX, *GIDX;

/* ---- graphs, one per op family ---------------------------------------------------------------- */

typedef mt_status (*build_fn)(mt_tensor *const *in, mt_tensor **out);

static mt_status b_elementwise(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *half, *one, *s, *h, *r, *p, *m, *e, *c, *w, *f, *cl, *u;
  mt_scalar hi = mt_scalar_float(2), lo = mt_scalar_int(-1);
  STEP(s, mt_binary(&s, MT_ADD, in[0], in[1])); /* [3, 4] + [4] */
  STEP(half, mt_wrap_number(&half, mt_scalar_float(0.5)));
  STEP(h, mt_binary(&h, MT_MUL, s, half));
  STEP(one, mt_wrap_number(&one, mt_scalar_int(1)));
  STEP(r, mt_binary(&r, MT_SUB, one, h)); /* the number on the left */
  STEP(p, mt_binary(&p, MT_POW, r, in[1]));
  STEP(m, mt_binary(&m, MT_MAXIMUM, p, in[0]));
  STEP(e, mt_unary(&e, MT_TANH, m));
  STEP(c, mt_binary(&c, MT_GT, e, in[1]));
  STEP(w, mt_where(&w, c, in[0], e));
  STEP(f, mt_masked_fill(&f, w, c, mt_scalar_float(-1.5)));
  STEP(cl, mt_clamp(&cl, f, NULL, &hi));
  STEP(u, mt_clamp(&u, cl, &lo, NULL));
  out[0] = u, out[1] = c;
  return MT_OK;
}

/* int32 with host numbers: x * 0.5 is float32 only if 0.5 stays a wrapped number. */
static mt_status b_integer(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *half, *three, *x, *r, *n, *neg;
  STEP(half, mt_wrap_number(&half, mt_scalar_float(0.5)));
  STEP(x, mt_binary(&x, MT_MUL, in[0], half));
  STEP(three, mt_wrap_number(&three, mt_scalar_int(3)));
  STEP(r, mt_binary(&r, MT_REMAINDER, in[0], three));
  STEP(n, mt_unary(&n, MT_LOGICAL_NOT, r));
  STEP(neg, mt_unary(&neg, MT_NEG, in[0]));
  out[0] = x, out[1] = r, out[2] = n, out[3] = neg;
  return MT_OK;
}

static mt_status b_reduce(mt_tensor *const *in, mt_tensor **out) {
  const int64_t d1[1] = {1}, d02[2] = {0, 2}, dl[1] = {-1};
  mt_tensor *s, *m, *v, *sd, *a, *p, *pos, *al, *an, *mx, *ix, *am, *sum2;
  STEP(s, mt_sum(&s, in[0], 1, d1, true));
  STEP(m, mt_mean(&m, in[0], 0, NULL, false));
  STEP(v, mt_var(&v, in[0], 2, d02, 1, false));
  STEP(sd, mt_std(&sd, in[0], 1, dl, 0, true));
  STEP(a, mt_amax(&a, in[0], 1, dl, false));
  STEP(p, mt_prod(&p, in[0], 1, d1, false));
  STEP(pos, mt_binary(&pos, MT_GT, in[0], m));
  STEP(al, mt_all(&al, pos, 1, d1, false));
  STEP(an, mt_any(&an, pos, 0, NULL, false));
  OK(mt_max_dim(&mx, &ix, in[0], -1, false));
  keep(mx), keep(ix);
  STEP(am, mt_argmax(&am, in[0], true, 0, false));
  STEP(sum2, mt_binary(&sum2, MT_ADD, s, sd));
  out[0] = sum2, out[1] = v, out[2] = a, out[3] = p, out[4] = al, out[5] = an, out[6] = ix, out[7] = am;
  return MT_OK;
}

static mt_status b_along(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *sm, *ls, *cs, *sv, *si, *tv, *ti, *mn, *mi, *ai;
  STEP(sm, mt_softmax(&sm, in[0], -1));
  STEP(ls, mt_log_softmax(&ls, in[0], 0));
  STEP(cs, mt_cumsum(&cs, in[0], 1));
  OK(mt_sort(&sv, &si, in[0], 1, true));
  keep(sv), keep(si);
  OK(mt_topk(&tv, &ti, in[0], 2, -1, false));
  keep(tv), keep(ti);
  OK(mt_min_dim(&mn, &mi, in[0], 0, true));
  keep(mn), keep(mi);
  STEP(ai, mt_argmin(&ai, in[0], false, 1, true));
  out[0] = sm, out[1] = ls, out[2] = cs, out[3] = sv, out[4] = si, out[5] = ti, out[6] = mi, out[7] = ai;
  return MT_OK;
}

static mt_status b_views(mt_tensor *const *in, mt_tensor **out) {
  const int64_t to2[2] = {-1, 6}, perm[3] = {2, 0, 1}, v1[1] = {-1}, ex[3] = {3, 2, 2};
  mt_tensor *tr, *rs, *pm, *fl, *t2, *us, *sq, *sqa, *nr, *sel, *e, *det, *ct, *cl, *vw, *db;
  STEP(tr, mt_transpose(&tr, in[0], 0, -1));  /* [4, 3, 2], not contiguous */
  STEP(rs, mt_reshape(&rs, tr, 2, to2));      /* a copy */
  STEP(pm, mt_permute(&pm, in[0], 3, perm));
  STEP(fl, mt_flatten(&fl, pm, 1, -1));
  STEP(t2, mt_t(&t2, rs));
  STEP(us, mt_unsqueeze(&us, t2, 0));
  STEP(sq, mt_squeeze(&sq, us, 0));
  STEP(nr, mt_narrow(&nr, in[0], -1, -2, 2)); /* negative start */
  STEP(sel, mt_select(&sel, nr, 1, -1));      /* negative index */
  STEP(sqa, mt_squeeze_all(&sqa, us));
  STEP(e, mt_expand(&e, sel, 3, ex));
  STEP(det, mt_detach(&det, fl));
  STEP(ct, mt_contiguous(&ct, tr));
  STEP(vw, mt_view(&vw, ct, 1, v1));
  STEP(cl, mt_clone(&cl, e));
  STEP(db, mt_to_dtype(&db, sqa, MT_FLOAT64));
  out[0] = sq, out[1] = cl, out[2] = det, out[3] = vw, out[4] = db;
  return MT_OK;
}

static mt_status b_index(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *is, *g, *sc, *sa, *gi;
  STEP(is, mt_index_select(&is, in[0], 0, IDX));  /* a constant index */
  STEP(gi, mt_index_select(&gi, in[0], 1, in[1])); /* an index that is an input */
  STEP(g, mt_gather(&g, in[0], 1, GIDX));
  STEP(sc, mt_scatter(&sc, in[0], 1, GIDX, in[0]));
  STEP(sa, mt_scatter_add(&sa, in[0], 1, GIDX, g));
  out[0] = is, out[1] = gi, out[2] = g, out[3] = sc, out[4] = sa;
  return MT_OK;
}

static mt_status b_join(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *c, *s, *w, *i64;
  STEP(i64, mt_to_dtype(&i64, in[2], MT_INT64));
  const mt_tensor *cs[3] = {in[0], in[1], in[0]}, *ss[2] = {in[0], in[0]};
  STEP(c, mt_cat(&c, 3, cs, 0));
  STEP(s, mt_stack(&s, 2, ss, -1));
  const mt_tensor *mixed[2] = {in[0], i64}; /* promotes */
  STEP(w, mt_cat(&w, 2, mixed, 1));
  out[0] = c, out[1] = s, out[2] = w;
  return MT_OK;
}

static mt_status b_matmul(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *mm, *mt, *bm, *b, *x2, *wtt;
  const int64_t sz[2] = {-1, 4};
  STEP(b, mt_matmul(&b, in[0], W));   /* [2, 3, 4] x [4, 4] */
  STEP(x2, mt_reshape(&x2, b, 2, sz));
  STEP(mm, mt_mm(&mm, x2, Wt));
  STEP(wtt, mt_transpose(&wtt, in[0], 1, 2));
  STEP(bm, mt_bmm(&bm, in[0], wtt));
  STEP(mt, mt_matmul(&mt, mm, W));
  out[0] = mt, out[1] = bm;
  return MT_OK;
}

/* The graph is the input itself: no nodes. */
static mt_status b_identity(mt_tensor *const *in, mt_tensor **out) {
  mt_tensor *c;
  STEP(c, mt_contiguous(&c, in[0])); /* hands back its input: records nothing */
  out[0] = c;
  return MT_OK;
}

typedef struct gcase {
  const char *name;
  build_fn fn;
  int nin, nout;
  mt_dtype dt[3];
  int ndim[3];
  int64_t sizes[3][4];
  int modulus[3]; /* integer inputs: values in [0, modulus) */
  int nodes;      /* nodes the graph keeps; -1 to skip the check */
} gcase;

static const gcase cases[] = {
    {"elementwise", b_elementwise, 2, 2, {MT_FLOAT32, MT_FLOAT32}, {2, 1}, {{3, 4}, {4}}, {0, 0}, 13},
    {"integer", b_integer, 1, 4, {MT_INT32}, {1}, {{6}}, {100}, 6},
    {"reduce", b_reduce, 1, 8, {MT_FLOAT32}, {3}, {{3, 4, 5}}, {0}, -1},
    {"along", b_along, 1, 8, {MT_FLOAT64}, {2}, {{4, 5}}, {0}, 7},
    {"views", b_views, 1, 5, {MT_FLOAT32}, {3}, {{2, 3, 4}}, {0}, 16},
    {"index", b_index, 2, 5, {MT_FLOAT32, MT_INT64}, {2, 1}, {{4, 5}, {3}}, {0, 5}, 5},
    {"join", b_join, 3, 3, {MT_FLOAT32, MT_FLOAT32, MT_INT32}, {2, 2, 2}, {{2, 3}, {1, 3}, {2, 3}}, {0, 0, 9}, 4},
    {"matmul", b_matmul, 1, 2, {MT_FLOAT32}, {3}, {{2, 3, 4}}, {0}, 6},
    {"identity", b_identity, 1, 1, {MT_FLOAT32}, {1}, {{5}}, {0}, 0},
};

static int node_count(const mt_graph *g) {
  mt_value *v;
  if (mt_graph_to_value(g, &v)) return -2;
  int n = (int)mt_value_dict_get(v, "nodes")->u.seq.len;
  mt_value_free(v);
  return n;
}

static bool outputs_match(const gcase *c, const mt_graph *g, mt_tensor *const *in, mt_tensor *const *want,
                          const char *when) {
  mt_tensor *got[MAXIO] = {0};
  mt_status st = mt_graph_run(g, in, got);
  bool ok = st == MT_OK;
  if (!ok) fprintf(stderr, "%s (%s): %s\n", c->name, when, mt_last_error());
  for (int k = 0; ok && k < c->nout; k++) {
    if (!same_tensor(got[k], want[k])) {
      fprintf(stderr, "%s (%s): output %d differs from the eager result\n", c->name, when, k);
      ok = false;
    }
  }
  for (int k = 0; k < c->nout; k++) mt_tensor_release(got[k]);
  return ok;
}

static void run_case(const gcase *c, const char *path) {
  mt_tensor *ex[3] = {0}, *nw[3] = {0}, *want[MAXIO] = {0}, *want2[MAXIO] = {0};
  for (int i = 0; i < c->nin; i++) {
    ex[i] = keep(filled(c->dt[i], c->ndim[i], c->sizes[i], 1, c->modulus[i]));
    nw[i] = keep(filled(c->dt[i], c->ndim[i], c->sizes[i], 2, c->modulus[i]));
  }
  mt_trace *tr;
  mt_graph *g = NULL, *loaded = NULL;
  OK(mt_trace_begin(&tr));
  for (int i = 0; i < c->nin; i++) OK(mt_trace_input(tr, ex[i]));
  mt_status st = c->fn(ex, want);
  if (st) {
    fprintf(stderr, "%s: the eager graph failed: %s\n", c->name, mt_last_error());
    CHECK(st == MT_OK);
    mt_trace_abort(tr);
    release_scratch();
    return;
  }
  OK(mt_trace_end(tr, c->nout, want, &g));
  CHECK(!mt_trace_active());
  if (!g) {
    fprintf(stderr, "case %s\n", c->name);
    release_scratch();
    return;
  }
  CHECK(mt_graph_num_inputs(g) == c->nin && mt_graph_num_outputs(g) == c->nout);
  if (c->nodes >= 0 && node_count(g) != c->nodes) {
    fprintf(stderr, "%s: the graph keeps %d nodes, expected %d\n", c->name, node_count(g), c->nodes);
    CHECK(node_count(g) == c->nodes);
  }
  CHECK(outputs_match(c, g, ex, want, "example"));
  OK(c->fn(nw, want2)); /* eager, no trace */
  CHECK(outputs_match(c, g, nw, want2, "new inputs"));
  OK(mt_graph_save(g, path));
  OK(mt_graph_load(&loaded, path));
  if (loaded) CHECK(outputs_match(c, loaded, nw, want2, "saved and loaded"));
  mt_graph_free(g);
  mt_graph_free(loaded);
  release_scratch();
}

/* ---- constants -------------------------------------------------------------------------------- */

static void test_constants(const char *path) {
  int64_t sz[2] = {2, 4};
  mt_tensor *x = filled(MT_FLOAT32, 2, sz, 1, 0), *a, *b, *y, *z = NULL, *zy, *outs[2];
  mt_trace *tr;
  mt_graph *g = NULL, *loaded = NULL;
  /* W and its transpose share a storage: so do the two constants, also in the file */
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_matmul(&a, x, W));
  OK(mt_matmul(&b, x, Wt));
  OK(mt_zeros(&z, MT_FLOAT32, 1, &sz[1])); /* made during the trace, as a host's zeros would be */
  mt_trace_constant(z);
  OK(mt_binary(&y, MT_ADD, a, b));
  OK(mt_binary(&zy, MT_SUB, y, z));
  outs[0] = zy, outs[1] = a;
  OK(mt_trace_end(tr, 2, outs, &g));
  OK(mt_graph_save(g, path));
  OK(mt_graph_load(&loaded, path));
  mt_value *v = NULL;
  if (loaded) OK(mt_graph_to_value(loaded, &v));
  if (v) {
    const mt_value *cs = mt_value_dict_get(v, "constants");
    CHECK(cs->u.dict.len == 3);
    if (cs->u.dict.len == 3) {
      CHECK(cs->u.dict.vals[0]->u.tensor->storage == cs->u.dict.vals[1]->u.tensor->storage);
      CHECK(cs->u.dict.vals[0]->u.tensor->storage != cs->u.dict.vals[2]->u.tensor->storage);
      CHECK(!cs->u.dict.vals[0]->u.tensor->requires_grad);
    }
    mt_value_free(v);
  }
  mt_tensor *got[2] = {0};
  if (loaded) OK(mt_graph_run(loaded, &x, got));
  if (got[0]) CHECK(same_tensor(got[0], zy) && same_tensor(got[1], a));
  /* outputs are new references; a graph output that is an input comes back as that tensor */
  mt_tensor_release(got[0]);
  mt_tensor_release(got[1]);
  mt_graph_free(g);
  mt_graph_free(loaded);
  mt_tensor *list[] = {x, a, b, y, z, zy};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) mt_tensor_release(list[i]);
}

/* ---- one graph, several threads: runs share nothing but the graph ----------------------------- */

typedef struct thread_job {
  const mt_graph *g;
  mt_tensor *x;    /* this thread's input */
  mt_tensor *want; /* and its eager result */
  bool ok;
} thread_job;

static void *run_many(void *arg) {
  thread_job *job = arg;
  job->ok = true;
  for (int i = 0; i < 200 && job->ok; i++) {
    mt_tensor *got[2] = {0};
    job->ok = mt_graph_run(job->g, &job->x, got) == MT_OK && same_tensor(got[0], job->want);
    mt_tensor_release(got[0]);
    mt_tensor_release(got[1]);
  }
  return NULL;
}

static void test_threads(void) {
  const gcase *c = NULL;
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    if (strcmp(cases[i].name, "matmul") == 0) c = &cases[i];
  mt_tensor *ex = keep(filled(c->dt[0], c->ndim[0], c->sizes[0], 1, 0)), *want[MAXIO];
  mt_trace *tr;
  mt_graph *g = NULL;
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, ex));
  OK(c->fn(&ex, want));
  OK(mt_trace_end(tr, c->nout, want, &g));
  enum { NT = 4 };
  thread_job jobs[NT];
  pthread_t th[NT];
  for (int t = 0; t < NT; t++) {
    jobs[t] = (thread_job){g, keep(filled(c->dt[0], c->ndim[0], c->sizes[0], 3 + t, 0)), NULL, false};
    OK(c->fn(&jobs[t].x, want));
    jobs[t].want = want[0];
  }
  for (int t = 0; t < NT; t++) CHECK(pthread_create(&th[t], NULL, run_many, &jobs[t]) == 0);
  for (int t = 0; t < NT; t++) {
    pthread_join(th[t], NULL);
    CHECK(jobs[t].ok);
  }
  mt_graph_free(g);
  release_scratch();
}

/* ---- what cannot be traced --------------------------------------------------------------------- */

typedef enum { BAD_UNRECORDED, BAD_VIEW_OF_INPUT, BAD_OUTPUT, BAD_RANDOM, BAD_RANDPERM, BAD_INPLACE } bad_kind;

static void refused(bad_kind kind, mt_status want, const char *needle) {
  int64_t sz[1] = {4};
  mt_tensor *x = filled(MT_FLOAT32, 1, sz, 1, 0), *t = NULL, *y = NULL, *out;
  mt_trace *tr;
  mt_graph *g = NULL;
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  switch (kind) {
  case BAD_UNRECORDED: OK(mt_zeros(&t, MT_FLOAT32, 1, sz)); break; /* not marked as a constant */
  case BAD_VIEW_OF_INPUT: OK(mt_from_storage(&t, x->storage, MT_FLOAT32, 0, 1, sz, &(int64_t){1})); break;
  case BAD_OUTPUT: OK(mt_full(&t, MT_FLOAT32, 1, sz, mt_scalar_int(1))); break;
  case BAD_RANDOM:
    OK(mt_empty(&t, MT_FLOAT32, 1, sz));
    mt_trace_constant(t);
    OK(mt_uniform_(t, 0, 1, NULL));
    break;
  case BAD_RANDPERM: OK(mt_randperm(&t, 4, MT_FLOAT32, NULL)); break;
  case BAD_INPLACE:
    OK(mt_clone(&t, x));
    OK(mt_unary_(MT_EXP, t));
    break;
  }
  if (kind != BAD_OUTPUT) OK(mt_binary(&y, MT_MUL, x, t));
  out = kind == BAD_OUTPUT ? t : y;
  FAILS(mt_trace_end(tr, 1, &out, &g), want, needle);
  CHECK(g == NULL && !mt_trace_active());
  mt_tensor_release(x);
  mt_tensor_release(t);
  mt_tensor_release(y);
}

static void test_trace_states(void) {
  int64_t sz[1] = {3};
  mt_tensor *x = filled(MT_FLOAT32, 1, sz, 1, 0), *y = NULL;
  mt_trace *tr, *tr2;
  mt_graph *g = NULL;
  CHECK(!mt_trace_active());
  OK(mt_trace_begin(&tr));
  CHECK(mt_trace_active());
  FAILS(mt_trace_begin(&tr2), MT_ESTATE, "already active");
  OK(mt_trace_input(tr, x));
  FAILS(mt_trace_input(tr, x), MT_EARG, "the same tensor is given as input 0 and input 1");
  OK(mt_unary(&y, MT_EXP, x));
  FAILS(mt_trace_input(tr, y), MT_ESTATE, "before the traced code runs");
  FAILS(mt_trace_end(tr, 0, NULL, &g), MT_EARG, "at least one output"); /* frees tr */
  CHECK(!mt_trace_active());
  OK(mt_trace_begin(&tr));
  mt_trace_abort(tr);
  CHECK(!mt_trace_active());
  mt_trace_abort(NULL);
  /* errors at run time name the node */
  mt_tensor *v = filled(MT_FLOAT32, 1, sz, 2, 0), *m;
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_matmul(&m, x, v)); /* [3] . [3]: the constant keeps its size */
  OK(mt_trace_end(tr, 1, &m, &g));
  int64_t sz2[1] = {4};
  mt_tensor *x4 = filled(MT_FLOAT32, 1, sz2, 1, 0), *got = NULL, *none[1] = {NULL};
  FAILS(mt_graph_run(g, &x4, &got), MT_ESHAPE, "node 0 ('matmul'): ");
  CHECK(got == NULL);
  FAILS(mt_graph_run(g, none, &got), MT_EARG, "input 0 is missing");
  mt_graph_free(g);
  mt_tensor_release(m);
  mt_tensor_release(v);
  mt_tensor_release(x4);
  mt_tensor_release(x);
  mt_tensor_release(y);
}

int main(void) {
  char path[] = "/tmp/test_jit_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  int64_t ws[2] = {4, 4}, is[1] = {3}, gs[2] = {4, 2};
  W = filled(MT_FLOAT32, 2, ws, 3, 0);
  OK(mt_transpose(&Wt, W, 0, 1));
  IDX = filled(MT_INT64, 1, is, 1, 4);
  GIDX = filled(MT_INT64, 2, gs, 1, 5);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i], path);
  test_constants(path);
  test_threads();
  refused(BAD_UNRECORDED, MT_ESTATE, "the input of 'binary' was made during the trace by an op that cannot be traced");
  refused(BAD_VIEW_OF_INPUT, MT_ESTATE, "the input of 'binary' is a view of a traced input");
  refused(BAD_OUTPUT, MT_ESTATE, "output 0 was made during the trace");
  refused(BAD_RANDOM, MT_ESTATE, "random number generation cannot be traced");
  refused(BAD_RANDPERM, MT_ESTATE, "random number generation cannot be traced");
  refused(BAD_INPLACE, MT_ESTATE, "an in-place operation cannot be traced");
  test_trace_states();
  mt_tensor_release(W);
  mt_tensor_release(Wt);
  mt_tensor_release(IDX);
  mt_tensor_release(GIDX);
  unlink(path);
  return mt_test_finish("test_jit");
}
