/*
 * jit.c — tracing. While a trace is active on a thread, every core op that thread runs
 * records a node here (mt_trace_record); mt_trace_end keeps the nodes the outputs need, decides
 * which of the tensors the trace met are constants (the weights) and builds the graph that
 * jit_graph.c runs, saves and loads.
 *
 * Values are identified by tensor identity: the trace retains every tensor it has seen, so no
 * address is reused while it lasts. Inputs get the first ids; each recorded op gives its
 * outputs fresh ids and rebinds the tensors to them, so a tensor's last record wins and an op
 * built from other recorded ops may record itself on top (the inner nodes are then unused and
 * dropped). A tensor that no kept node made and that is not an input is a constant; it must be
 * older than the trace (a storage serial below the trace's) or marked by mt_trace_constant.
 */
#include "jit.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- the map -------------------------------------------------------------------------------- */

static size_t map_slot(uint64_t k, size_t cap) {
  k ^= k >> 33; /* addresses and small ids both differ mostly in a few bits: mix them */
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return (size_t)k & (cap - 1);
}

static bool map_grow(mt_jit_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 64;
  uint64_t *keys = calloc(cap, sizeof *keys);
  int *vals = malloc(cap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    mt_fail(MT_ENOMEM, "out of memory");
    return false;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = map_slot(m->keys[i], cap);
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = m->keys[i];
    vals[j] = m->vals[i];
  }
  free(m->keys);
  free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = cap;
  return true;
}

bool mt_jit_map_put(mt_jit_map *m, uint64_t key, int val) {
  if ((m->len + 1) * 4 > m->cap * 3 && !map_grow(m)) return false;
  uint64_t k = key + 1;
  size_t i = map_slot(k, m->cap);
  while (m->keys[i] && m->keys[i] != k) i = (i + 1) & (m->cap - 1);
  if (!m->keys[i]) {
    m->keys[i] = k;
    m->len++;
  }
  m->vals[i] = val;
  return true;
}

bool mt_jit_map_get(const mt_jit_map *m, uint64_t key, int *val) {
  if (!m->cap) return false;
  uint64_t k = key + 1;
  for (size_t i = map_slot(k, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
    if (m->keys[i] == k) {
      *val = m->vals[i];
      return true;
    }
  }
  return false;
}

void mt_jit_map_free(mt_jit_map *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* ---- attribute formats ---------------------------------------------------------------------- */

/* One `name=T` of a format: T is i, f, b, s, S, S? (opt), In (n = -1) or I<digit> (n). */
typedef struct attr_tok {
  const char *name;
  size_t len;
  char type;
  int n;
  bool opt;
} attr_tok;

/* Reads the next token of *fmt: 1 when one was read, 0 at the end, -1 if malformed. */
static int next_tok(const char **fmt, attr_tok *a) {
  const char *p = *fmt;
  while (*p == ' ') p++;
  if (!*p) return 0;
  const char *eq = strchr(p, '=');
  if (!eq || eq == p) return -1;
  a->name = p;
  a->len = (size_t)(eq - p);
  a->type = eq[1];
  a->n = 0;
  a->opt = false;
  p = eq + 2;
  switch (a->type) {
  case 'i': case 'f': case 'b': case 's': break;
  case 'S':
    if (*p == '?') a->opt = true, p++;
    break;
  case 'I':
    if (*p == 'n') a->n = -1;
    else if (*p >= '0' && *p <= '9') a->n = *p - '0';
    else return -1;
    p++;
    break;
  default: return -1;
  }
  if (*p && *p != ' ') return -1;
  *fmt = p;
  return 1;
}

static mt_value *scalar_value(mt_scalar s) {
  return s.kind == MT_SCALAR_BOOL ? mt_value_bool(s.i != 0)
         : s.kind == MT_SCALAR_INT ? mt_value_int(s.i)
                                   : mt_value_float(s.f);
}

static mt_value *int_list(int n, const int64_t *p) {
  mt_value *l = mt_value_list();
  for (int i = 0; l && i < n; i++) {
    if (mt_value_append(l, mt_value_int(p[i]))) {
      mt_value_free(l);
      return NULL;
    }
  }
  return l;
}

/* The attribute dict of one record; NULL when out of memory or the format is malformed. */
static mt_value *attrs_from_args(const char *fmt, va_list ap) {
  mt_value *d = mt_value_dict(false);
  attr_tok a;
  int r;
  while (d && (r = next_tok(&fmt, &a)) != 0) {
    mt_value *v = NULL;
    if (r < 0) goto fail;
    switch (a.type) {
    case 'i': v = mt_value_int(va_arg(ap, int64_t)); break;
    case 'f': v = mt_value_float(va_arg(ap, double)); break;
    case 'b': v = mt_value_bool(va_arg(ap, int) != 0); break;
    case 's': {
      const char *s = va_arg(ap, const char *);
      v = mt_value_str(s, strlen(s));
      break;
    }
    case 'S':
      if (a.opt) {
        const mt_scalar *s = va_arg(ap, const mt_scalar *);
        v = s ? scalar_value(*s) : mt_value_none();
      } else {
        v = scalar_value(va_arg(ap, mt_scalar));
      }
      break;
    case 'I': {
      int n = a.n >= 0 ? a.n : va_arg(ap, int);
      v = int_list(n, va_arg(ap, const int64_t *));
      break;
    }
    }
    if (!v || mt_value_dict_set(d, mt_value_str(a.name, a.len), v)) goto fail;
  }
  return d;
fail:
  mt_value_free(d);
  return NULL;
}

static const char *kind_name(const mt_value *v) {
  static const char *const names[] = {"None", "a bool", "an int", "a float", "a str", "bytes",
                                      "a list", "a tuple", "a dict", "a tensor"};
  return (unsigned)v->kind < sizeof names / sizeof *names ? names[v->kind] : "an unknown value";
}

static bool is_seq(const mt_value *v) { return v->kind == MT_VAL_LIST || v->kind == MT_VAL_TUPLE; }

/* Whether v has the token's type; `want` describes the type for messages. */
static bool attr_fits(const attr_tok *a, const mt_value *v, char *want, size_t n) {
  switch (a->type) {
  case 'i': snprintf(want, n, "an int"); return v->kind == MT_VAL_INT;
  case 'f': snprintf(want, n, "a number"); return v->kind == MT_VAL_FLOAT || v->kind == MT_VAL_INT;
  case 'b': snprintf(want, n, "a bool"); return v->kind == MT_VAL_BOOL;
  case 's': snprintf(want, n, "a str"); return v->kind == MT_VAL_STR;
  case 'S':
    snprintf(want, n, a->opt ? "a number, a bool or None" : "a number or a bool");
    return v->kind == MT_VAL_BOOL || v->kind == MT_VAL_INT || v->kind == MT_VAL_FLOAT ||
           (a->opt && v->kind == MT_VAL_NONE);
  case 'I': {
    if (a->n >= 0) snprintf(want, n, "a list of %d ints", a->n);
    else snprintf(want, n, "a list of at most %d ints", MT_MAX_DIMS);
    if (!is_seq(v) || (a->n >= 0 ? v->u.seq.len != (size_t)a->n : v->u.seq.len > MT_MAX_DIMS)) return false;
    for (size_t i = 0; i < v->u.seq.len; i++)
      if (v->u.seq.items[i]->kind != MT_VAL_INT) return false;
    return true;
  }
  }
  return false;
}

mt_status mt_jit_check_attrs(const char *fmt, const mt_value *attrs) {
  if (attrs->kind != MT_VAL_DICT) return mt_fail(MT_EFORMAT, "attrs should be a dict, not %s", kind_name(attrs));
  size_t count = 0;
  attr_tok a;
  char want[48];
  for (const char *p = fmt; next_tok(&p, &a) > 0; count++) {
    const mt_value *v = NULL;
    for (size_t i = 0; i < attrs->u.dict.len && !v; i++) {
      const mt_value *k = attrs->u.dict.keys[i];
      if (k->kind == MT_VAL_STR && k->u.str.len == a.len && memcmp(k->u.str.ptr, a.name, a.len) == 0)
        v = attrs->u.dict.vals[i];
    }
    if (!v) return mt_fail(MT_EFORMAT, "attribute '%.*s' is missing", (int)a.len, a.name);
    if (!attr_fits(&a, v, want, sizeof want))
      return mt_fail(MT_EFORMAT, "attribute '%.*s' should be %s, not %s", (int)a.len, a.name, want, kind_name(v));
  }
  if (attrs->u.dict.len == count) return MT_OK;
  for (size_t i = 0; i < attrs->u.dict.len; i++) { /* some key is not in the format: name it */
    const mt_value *k = attrs->u.dict.keys[i];
    if (k->kind != MT_VAL_STR) return mt_fail(MT_EFORMAT, "attribute names should be strs, not %s", kind_name(k));
    bool known = false;
    for (const char *p = fmt; !known && next_tok(&p, &a) > 0;)
      known = a.len == k->u.str.len && memcmp(a.name, k->u.str.ptr, a.len) == 0;
    if (!known) return mt_fail(MT_EFORMAT, "unknown attribute '%s'", k->u.str.ptr);
  }
  return mt_fail(MT_EFORMAT, "an attribute appears twice");
}

/* ---- the trace ------------------------------------------------------------------------------ */

/* How a value entered the trace when no recorded op made it. */
enum { V_SEEN, V_INPUT, V_CONSTANT };

typedef struct tvalue {
  mt_tensor *t;  /* retained */
  int producer;  /* index of the node that made it, or -1 */
  uint8_t kind;
} tvalue;

struct mt_trace {
  bool poisoned; /* an op that cannot be traced ran, or recording ran out of memory */
  char reason[256];
  uint64_t serial0; /* storages with a smaller serial existed before the trace began */
  tvalue *vals;
  int nvals, capvals;
  mt_jit_map ids; /* tensor address -> its latest value id */
  mt_jit_node *nodes;
  int nnodes, capnodes;
  int *inputs; /* value ids of the inputs, in order */
  int ninputs, capinputs;
};

_Thread_local mt_trace *mt_active_trace;

MT_API bool mt_trace_active(void) { return mt_active_trace != NULL; }

static void poison(mt_trace *tr, const char *fmt, ...) MT_PRINTF(2, 3);
static void poison(mt_trace *tr, const char *fmt, ...) {
  if (tr->poisoned) return; /* the first reason is the one to report */
  tr->poisoned = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tr->reason, sizeof tr->reason, fmt, ap);
  va_end(ap);
}

void mt_trace_refuse(const char *what) {
  mt_trace *tr = mt_active_trace;
  if (tr) poison(tr, "%s cannot be traced", what);
}

static bool grow(void **p, int *cap, int need, size_t elem) {
  if (need <= *cap) return true;
  int cap2 = *cap ? *cap * 2 : 16;
  while (cap2 < need) cap2 *= 2;
  void *q = realloc(*p, (size_t)cap2 * elem);
  if (!q) {
    mt_fail(MT_ENOMEM, "out of memory");
    return false;
  }
  *p = q;
  *cap = cap2;
  return true;
}

/* A new value for t (retained), bound to t's address; -1 when out of memory. */
static int add_value(mt_trace *tr, const mt_tensor *t, int producer, uint8_t kind) {
  if (tr->nvals == INT32_MAX) {
    mt_fail(MT_ENOMEM, "the trace has too many values");
    return -1;
  }
  if (!grow((void **)&tr->vals, &tr->capvals, tr->nvals + 1, sizeof *tr->vals) ||
      !mt_jit_map_put(&tr->ids, (uintptr_t)t, tr->nvals))
    return -1;
  mt_tensor_retain((mt_tensor *)t);
  tr->vals[tr->nvals] = (tvalue){(mt_tensor *)t, producer, kind};
  return tr->nvals++;
}

MT_API mt_status mt_trace_begin(mt_trace **out) {
  if (!out) return mt_fail(MT_EARG, "missing output argument");
  if (mt_active_trace) return mt_fail(MT_ESTATE, "a trace is already active on this thread");
  mt_trace *tr = calloc(1, sizeof *tr);
  if (!tr) return mt_fail(MT_ENOMEM, "out of memory");
  mt_storage *probe; /* the next serial: every storage that exists now has a smaller one */
  mt_status st = mt_storage_alloc(&probe, 0, false);
  if (st) {
    free(tr);
    return st;
  }
  tr->serial0 = mt_storage_serial(probe);
  mt_storage_release(probe);
  mt_active_trace = tr;
  *out = tr;
  return MT_OK;
}

MT_API mt_status mt_trace_input(mt_trace *tr, const mt_tensor *t) {
  if (!tr || !t) return mt_fail(MT_EARG, "missing argument");
  if (tr->nnodes) return mt_fail(MT_ESTATE, "inputs must be declared before the traced code runs");
  int id;
  if (mt_jit_map_get(&tr->ids, (uintptr_t)t, &id) && tr->vals[id].kind == V_INPUT) {
    int first = 0;
    while (tr->inputs[first] != id) first++;
    return mt_fail(MT_EARG, "the same tensor is given as input %lld and input %lld", MT_SHOW(first),
                   MT_SHOW(tr->ninputs));
  }
  if (!grow((void **)&tr->inputs, &tr->capinputs, tr->ninputs + 1, sizeof *tr->inputs) ||
      (id = add_value(tr, t, -1, V_INPUT)) < 0)
    return MT_ENOMEM;
  tr->inputs[tr->ninputs++] = id;
  return MT_OK;
}

MT_API void mt_trace_constant(const mt_tensor *t) {
  mt_trace *tr = mt_active_trace;
  if (!tr || tr->poisoned || !t) return;
  int id;
  if (mt_jit_map_get(&tr->ids, (uintptr_t)t, &id)) {
    if (tr->vals[id].kind == V_SEEN && tr->vals[id].producer < 0) tr->vals[id].kind = V_CONSTANT;
  } else if (add_value(tr, t, -1, V_CONSTANT) < 0) {
    poison(tr, "out of memory while tracing");
  }
}

void mt_trace_record(const char *opname, int nin, const mt_tensor *const *ins, int nout, mt_tensor *const *outs,
                     const char *attr_fmt, ...) {
  mt_trace *tr = mt_active_trace;
  if (!tr || tr->poisoned) return;
  /* An op that hands back one of its inputs (contiguous of a contiguous tensor, to_dtype to its
   * own dtype) leaves the value as it was: rebinding it would put a no-op node between the
   * tensor and every later reader, including the op that called this one. */
  for (int i = 0; nout == 1 && i < nin; i++)
    if (outs[0] == ins[i]) return;
  /* Recorders and the table must agree, or a saved graph would not run: check each record. */
  const mt_jit_op *op = mt_jit_find_op(opname);
  if (!op) {
    poison(tr, "internal error: '%s' was recorded but the op table does not know it", opname);
    return;
  }
  if ((op->nin >= 0 ? nin != op->nin : nin < 1) || nout != op->nout || strcmp(attr_fmt, op->attrs) != 0) {
    poison(tr, "internal error: '%s' was recorded with %d inputs, %d outputs and attributes \"%s\"; the op table "
               "says %d, %d and \"%s\"",
           opname, nin, nout, attr_fmt, op->nin, op->nout, op->attrs);
    return;
  }
  for (int i = 0; i < nin; i++) {
    if (!ins[i] && !(i < 32 && (op->optional >> i & 1u))) {
      poison(tr, "internal error: '%s' was recorded without its required input %d", opname, i);
      return;
    }
  }
  for (int k = 0; k < nout; k++) {
    if (!outs[k]) {
      poison(tr, "internal error: '%s' was recorded without output %d", opname, k);
      return;
    }
  }
  va_list ap;
  va_start(ap, attr_fmt);
  mt_value *attrs = attrs_from_args(attr_fmt, ap);
  va_end(ap);
  int *ids = malloc((size_t)(nin + nout) * sizeof *ids);
  if (!attrs || !ids || !grow((void **)&tr->nodes, &tr->capnodes, tr->nnodes + 1, sizeof *tr->nodes)) goto oom;
  for (int i = 0; i < nin; i++) {
    ids[i] = -1;
    if (ins[i] && !mt_jit_map_get(&tr->ids, (uintptr_t)ins[i], &ids[i]) &&
        (ids[i] = add_value(tr, ins[i], -1, V_SEEN)) < 0)
      goto oom;
  }
  /* Inputs were looked up first: an op that returns its input (contiguous) reads the old id. */
  for (int k = 0; k < nout; k++)
    if ((ids[nin + k] = add_value(tr, outs[k], tr->nnodes, V_SEEN)) < 0) goto oom;
  tr->nodes[tr->nnodes++] = (mt_jit_node){op, nin, nout, ids, ids + nin, attrs};
  return;
oom:
  mt_value_free(attrs);
  free(ids);
  poison(tr, "out of memory while tracing");
}

static void trace_free(mt_trace *tr) {
  for (int i = 0; i < tr->nvals; i++) mt_tensor_release(tr->vals[i].t);
  for (int n = 0; n < tr->nnodes; n++) {
    free(tr->nodes[n].ins);
    mt_value_free(tr->nodes[n].attrs);
  }
  mt_jit_map_free(&tr->ids);
  free(tr->vals);
  free(tr->nodes);
  free(tr->inputs);
  free(tr);
}

MT_API void mt_trace_abort(mt_trace *tr) {
  if (!tr) return;
  if (mt_active_trace == tr) mt_active_trace = NULL;
  trace_free(tr);
}

/* ---- building the graph --------------------------------------------------------------------- */

/* A value that the kept nodes read but none made: fine if an input, a marked constant, or a
 * tensor that existed before the trace (a weight) and is not a view of an input. */
static mt_status check_free_value(const mt_trace *tr, int id, const char *keep, const int *out_ids, int nout) {
  const tvalue *v = &tr->vals[id];
  if (v->kind != V_SEEN) return MT_OK;
  bool of_input = false;
  for (int i = 0; i < tr->ninputs && !of_input; i++) of_input = tr->vals[tr->inputs[i]].t->storage == v->t->storage;
  if (!of_input && mt_storage_serial(v->t->storage) < tr->serial0) return MT_OK;
  const char *what = of_input ? "is a view of a traced input made by an op that cannot be traced"
                              : "was made during the trace by an op that cannot be traced";
  for (int n = 0; n < tr->nnodes; n++) {
    const mt_jit_node *node = &tr->nodes[n];
    for (int i = 0; keep[n] && i < node->nin; i++)
      if (node->ins[i] == id) return mt_fail(MT_ESTATE, "the input of '%s' %s", node->op->name, what);
  }
  for (int k = 0; k < nout; k++)
    if (out_ids[k] == id) return mt_fail(MT_ESTATE, "output %lld %s", MT_SHOW(k), what);
  return MT_OK; /* not reached: the value is needed by a node or an output */
}

static mt_status build_graph(mt_trace *tr, int nout, mt_tensor *const *outputs, mt_graph **out) {
  if (tr->poisoned) return mt_fail(MT_ESTATE, "%s", tr->reason);
  if (nout < 1 || !outputs) return mt_fail(MT_EARG, "a traced graph needs at least one output");
  for (int k = 0; k < nout; k++)
    if (!outputs[k]) return mt_fail(MT_EARG, "output %lld is missing", MT_SHOW(k));
  mt_status st = MT_OK;
  mt_graph *g = NULL;
  int *out_ids = malloc((size_t)nout * sizeof *out_ids);
  if (!out_ids) return mt_fail(MT_ENOMEM, "out of memory");
  for (int k = 0; k < nout; k++) {
    if (!mt_jit_map_get(&tr->ids, (uintptr_t)outputs[k], &out_ids[k]) &&
        (out_ids[k] = add_value(tr, outputs[k], -1, V_SEEN)) < 0) {
      free(out_ids);
      return MT_ENOMEM;
    }
  }
  char *need = calloc((size_t)tr->nvals, 1), *keep = calloc((size_t)tr->nnodes + 1, 1);
  int *num = malloc(((size_t)tr->nvals + 1) * sizeof *num);
  if (!need || !keep || !num) {
    st = mt_fail(MT_ENOMEM, "out of memory");
    goto done;
  }
  /* Walk back from the outputs: a node is kept when a needed value is one of its outputs. */
  for (int k = 0; k < nout; k++) need[out_ids[k]] = 1;
  int nkept = 0;
  for (int n = tr->nnodes - 1; n >= 0; n--) {
    const mt_jit_node *node = &tr->nodes[n];
    for (int k = 0; k < node->nout && !keep[n]; k++) keep[n] = need[node->outs[k]];
    if (!keep[n]) continue;
    nkept++;
    for (int i = 0; i < node->nin; i++)
      if (node->ins[i] >= 0) need[node->ins[i]] = 1;
  }
  /* Number the values: inputs, constants (in the order the trace met them), node outputs. */
  int next = 0, nconsts = 0;
  for (int id = 0; id < tr->nvals; id++) num[id] = -1;
  for (int i = 0; i < tr->ninputs; i++) num[tr->inputs[i]] = next++;
  for (int id = 0; id < tr->nvals; id++) {
    if (!need[id] || tr->vals[id].producer >= 0 || tr->vals[id].kind == V_INPUT) continue;
    if ((st = check_free_value(tr, id, keep, out_ids, nout))) goto done;
    num[id] = next++;
    nconsts++;
  }
  if (!(g = mt_jit_graph_alloc(tr->ninputs, nconsts, nkept, nout))) {
    st = MT_ENOMEM;
    goto done;
  }
  for (int id = 0, c = 0; id < tr->nvals; id++) {
    if (num[id] < tr->ninputs || num[id] < 0) continue;
    const mt_tensor *t = tr->vals[id].t; /* a header of its own: no autograd history in a graph */
    if ((st = mt_make_view(&g->consts[c++], t, t->offset, t->ndim, t->sizes, t->strides))) goto done;
  }
  for (int n = 0, j = 0; n < tr->nnodes; n++) {
    if (!keep[n]) continue;
    mt_jit_node *node = &tr->nodes[n];
    for (int k = 0; k < node->nout; k++) num[node->outs[k]] = next++;
    for (int i = 0; i < node->nin + node->nout; i++) /* ins and outs share one array */
      if (node->ins[i] >= 0) node->ins[i] = num[node->ins[i]];
    g->nodes[j++] = *node; /* the graph takes the arrays and the attributes */
    node->ins = NULL;
    node->attrs = NULL;
  }
  for (int k = 0; k < nout; k++) g->outputs[k] = num[out_ids[k]];
  st = mt_jit_graph_finish(g);
done:
  if (st) mt_graph_free(g);
  else *out = g;
  free(out_ids);
  free(need);
  free(keep);
  free(num);
  return st;
}

MT_API mt_status mt_trace_end(mt_trace *tr, int nout, mt_tensor *const *outputs, mt_graph **out) {
  if (!tr) return mt_fail(MT_EARG, "missing trace");
  if (mt_active_trace == tr) mt_active_trace = NULL; /* building runs no recorded op */
  mt_status st = out ? build_graph(tr, nout, outputs, out) : mt_fail(MT_EARG, "missing output argument");
  trace_free(tr);
  return st;
}
