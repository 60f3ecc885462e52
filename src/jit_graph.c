/*
 * jit_graph.c — traced graphs: running them, and their file form. A graph file is a checkpoint
 * (checkpoint.c) holding the value tree
 *     {format = "moontorch.traced", version = 1, inputs = [ids], outputs = [ids],
 *      constants = {[id] = tensor, ...},
 *      nodes = [{op = "conv2d", inputs = [ids, -1 for an absent optional one], outputs = [ids],
 *                attrs = {stride = [1, 1], ...}}, ...]}
 * so that PyTorch opens it as plain data. Loading checks all of it before anything runs; the
 * ops check shapes when the graph runs, and their errors then name the node.
 */
#include "jit.h"

#include <stdio.h>
#include <stdlib.h>

#define FORMAT_NAME "moontorch.traced"
#define FORMAT_VERSION 1

/* ---- the graph structure -------------------------------------------------------------------- */

mt_graph *mt_jit_graph_alloc(int ninputs, int nconsts, int nnodes, int noutputs) {
  mt_graph *g = calloc(1, sizeof *g);
  if (!g) goto oom;
  g->ninputs = ninputs;
  g->nconsts = nconsts;
  g->nnodes = nnodes;
  g->noutputs = noutputs;
  g->consts = calloc((size_t)nconsts + 1, sizeof *g->consts);
  g->nodes = calloc((size_t)nnodes + 1, sizeof *g->nodes);
  g->outputs = calloc((size_t)noutputs + 1, sizeof *g->outputs);
  if (g->consts && g->nodes && g->outputs) return g;
oom:
  mt_graph_free(g);
  mt_fail(MT_ENOMEM, "out of memory");
  return NULL;
}

mt_status mt_jit_graph_finish(mt_graph *g) {
  int64_t n = (int64_t)g->ninputs + g->nconsts;
  for (int j = 0; j < g->nnodes; j++) n += g->nodes[j].nout;
  if (n > INT32_MAX) return mt_fail(MT_ENOMEM, "a graph of %lld values is too large", (long long)n);
  g->nvalues = (int)n;
  free(g->last_use);
  if (!(g->last_use = malloc(((size_t)n + 1) * sizeof *g->last_use))) return mt_fail(MT_ENOMEM, "out of memory");
  for (int v = 0; v < g->nvalues; v++) g->last_use[v] = -1;
  for (int j = 0; j < g->nnodes; j++)
    for (int i = 0; i < g->nodes[j].nin; i++)
      if (g->nodes[j].ins[i] >= 0) g->last_use[g->nodes[j].ins[i]] = j;
  for (int k = 0; k < g->noutputs; k++) g->last_use[g->outputs[k]] = g->nnodes; /* kept to the end */
  return MT_OK;
}

MT_API void mt_graph_free(mt_graph *g) {
  if (!g) return;
  for (int c = 0; g->consts && c < g->nconsts; c++) mt_tensor_release(g->consts[c]);
  for (int j = 0; g->nodes && j < g->nnodes; j++) {
    free(g->nodes[j].ins);
    mt_value_free(g->nodes[j].attrs);
  }
  free(g->consts);
  free(g->nodes);
  free(g->outputs);
  free(g->last_use);
  free(g);
}

MT_API int mt_graph_num_inputs(const mt_graph *g) { return g ? g->ninputs : 0; }
MT_API int mt_graph_num_outputs(const mt_graph *g) { return g ? g->noutputs : 0; }

/* ---- running -------------------------------------------------------------------------------- */

static void drop(mt_tensor **vals, int v) {
  mt_tensor_release(vals[v]);
  vals[v] = NULL;
}

MT_API mt_status mt_graph_run(const mt_graph *g, mt_tensor *const *inputs, mt_tensor **outputs) {
  if (!g || !outputs || (g->ninputs && !inputs)) return mt_fail(MT_EARG, "missing argument");
  for (int i = 0; i < g->ninputs; i++)
    if (!inputs[i]) return mt_fail(MT_EARG, "input %lld is missing", MT_SHOW(i));
  int arity = 1;
  for (int j = 0; j < g->nnodes; j++)
    if (g->nodes[j].nin + g->nodes[j].nout > arity) arity = g->nodes[j].nin + g->nodes[j].nout;
  /* vals holds one reference per live value; a value goes as soon as its last reader ran. */
  mt_tensor **vals = calloc((size_t)g->nvalues + (size_t)arity, sizeof *vals);
  if (!vals) return mt_fail(MT_ENOMEM, "out of memory");
  mt_tensor **args = vals + g->nvalues;
  for (int i = 0; i < g->ninputs; i++) mt_tensor_retain(vals[i] = inputs[i]);
  /* Each run reads the constants through headers of its own: ops retain their inputs, and
   * tensor refcounts are not atomic, while storage refcounts are; so threads may share a graph. */
  mt_status st = MT_OK;
  for (int c = 0; c < g->nconsts && !st; c++) {
    const mt_tensor *k = g->consts[c];
    st = mt_make_view(&vals[g->ninputs + c], k, k->offset, k->ndim, k->sizes, k->strides);
  }
  for (int j = 0; j < g->nnodes && !st; j++) {
    const mt_jit_node *node = &g->nodes[j];
    for (int i = 0; i < node->nin; i++) args[i] = node->ins[i] >= 0 ? vals[node->ins[i]] : NULL;
    st = node->op->run(node->attrs, node->nin, args, args + node->nin);
    if (st) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", mt_last_error());
      st = mt_fail(st, "node %lld ('%s'): %s", MT_SHOW(j), node->op->name, msg);
      break;
    }
    for (int k = 0; k < node->nout; k++) {
      vals[node->outs[k]] = args[node->nin + k];
      if (g->last_use[node->outs[k]] < 0) drop(vals, node->outs[k]); /* an output nothing reads */
    }
    for (int i = 0; i < node->nin; i++)
      if (node->ins[i] >= 0 && g->last_use[node->ins[i]] == j) drop(vals, node->ins[i]);
  }
  if (!st) {
    for (int k = 0; k < g->noutputs; k++) mt_tensor_retain(outputs[k] = vals[g->outputs[k]]);
  }
  for (int v = 0; v < g->nvalues; v++) mt_tensor_release(vals[v]);
  free(vals);
  return st;
}

/* ---- to a value tree ------------------------------------------------------------------------ */

/* A copy of an attribute value (None, bool, int, float, str, or a list or tuple of those). */
static mt_value *copy_value(const mt_value *v) {
  switch (v->kind) {
  case MT_VAL_NONE: return mt_value_none();
  case MT_VAL_BOOL: return mt_value_bool(v->u.b);
  case MT_VAL_INT: return mt_value_int(v->u.i);
  case MT_VAL_FLOAT: return mt_value_float(v->u.f);
  case MT_VAL_STR: return mt_value_str(v->u.str.ptr, v->u.str.len);
  case MT_VAL_LIST:
  case MT_VAL_TUPLE: {
    mt_value *s = v->kind == MT_VAL_LIST ? mt_value_list() : mt_value_tuple();
    for (size_t i = 0; s && i < v->u.seq.len; i++) {
      if (mt_value_append(s, copy_value(v->u.seq.items[i]))) {
        mt_value_free(s);
        return NULL;
      }
    }
    return s;
  }
  case MT_VAL_DICT: {
    mt_value *d = mt_value_dict(v->u.dict.ordered);
    for (size_t i = 0; d && i < v->u.dict.len; i++) {
      if (mt_value_dict_set(d, copy_value(v->u.dict.keys[i]), copy_value(v->u.dict.vals[i]))) {
        mt_value_free(d);
        return NULL;
      }
    }
    return d;
  }
  default: mt_fail(MT_EARG, "an attribute holds a value that is not plain data"); return NULL;
  }
}

static mt_value *id_list(int n, const int *ids) {
  mt_value *l = mt_value_list();
  for (int i = 0; l && i < n; i++) {
    if (mt_value_append(l, mt_value_int(ids[i]))) {
      mt_value_free(l);
      return NULL;
    }
  }
  return l;
}

/* Sets d[key] = v; false (freeing v) on failure. */
static bool put(mt_value *d, const char *key, mt_value *v) {
  return mt_value_dict_set(d, mt_value_str(key, strlen(key)), v) == MT_OK;
}

MT_API mt_status mt_graph_to_value(const mt_graph *g, mt_value **out) {
  if (!g || !out) return mt_fail(MT_EARG, "missing argument");
  mt_value *root = mt_value_dict(false), *consts = mt_value_dict(false), *nodes = mt_value_list();
  int *inputs = malloc(((size_t)g->ninputs + 1) * sizeof *inputs);
  bool ok = root && consts && nodes && inputs;
  for (int i = 0; ok && i < g->ninputs; i++) inputs[i] = i;
  for (int c = 0; ok && c < g->nconsts; c++)
    ok = mt_value_dict_set(consts, mt_value_int(g->ninputs + c), mt_value_tensor(g->consts[c])) == MT_OK;
  for (int j = 0; ok && j < g->nnodes; j++) {
    const mt_jit_node *node = &g->nodes[j];
    mt_value *n = mt_value_dict(false);
    ok = n && put(n, "op", mt_value_str(node->op->name, strlen(node->op->name))) &&
         put(n, "inputs", id_list(node->nin, node->ins)) && put(n, "outputs", id_list(node->nout, node->outs)) &&
         put(n, "attrs", copy_value(node->attrs));
    if (!ok) {
      mt_value_free(n);
      break;
    }
    ok = mt_value_append(nodes, n) == MT_OK;
  }
  ok = ok && put(root, "format", mt_value_str(FORMAT_NAME, strlen(FORMAT_NAME))) &&
       put(root, "version", mt_value_int(FORMAT_VERSION)) && put(root, "inputs", id_list(g->ninputs, inputs)) &&
       put(root, "outputs", id_list(g->noutputs, g->outputs));
  if (ok) {
    ok = put(root, "constants", consts);
    consts = NULL;
  }
  if (ok) {
    ok = put(root, "nodes", nodes);
    nodes = NULL;
  }
  free(inputs);
  mt_value_free(consts);
  mt_value_free(nodes);
  if (!ok) {
    mt_value_free(root);
    return mt_fail(MT_ENOMEM, "out of memory");
  }
  *out = root;
  return MT_OK;
}

/* ---- from a value tree: everything is checked before the graph exists -------------------- */

typedef struct reader {
  mt_graph *g;
  mt_jit_map ids; /* id in the file -> value number */
  int next;       /* the next value number */
} reader;

static mt_status bad(const char *fmt, ...) MT_PRINTF(1, 2);
static mt_status bad(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mt_fail(MT_EFORMAT, "%s", msg);
}

static const char *kind_of(const mt_value *v) {
  static const char *const names[] = {"None", "a bool", "an int", "a float", "a str", "bytes",
                                      "a list", "a tuple", "a dict", "a tensor"};
  return (unsigned)v->kind < sizeof names / sizeof *names ? names[v->kind] : "an unknown value";
}

/* A list (or tuple) of ints, as `what` names it; at most `max` items. */
static mt_status int_seq(const mt_value *v, const char *what, size_t max) {
  if (!v) return bad("%s is missing", what);
  if (v->kind != MT_VAL_LIST && v->kind != MT_VAL_TUPLE) return bad("%s should be a list of ints, not %s", what, kind_of(v));
  if (v->u.seq.len > max) return bad("%s has %zu items, more than %zu", what, v->u.seq.len, max);
  for (size_t i = 0; i < v->u.seq.len; i++)
    if (v->u.seq.items[i]->kind != MT_VAL_INT)
      return bad("%s should be a list of ints, but holds %s", what, kind_of(v->u.seq.items[i]));
  return MT_OK;
}

/* Only the given keys, each a str. */
static mt_status only_keys(const mt_value *d, const char *where, const char *const *keys, int n) {
  for (size_t i = 0; i < d->u.dict.len; i++) {
    const mt_value *k = d->u.dict.keys[i];
    bool known = false;
    for (int j = 0; j < n && !known; j++) known = k->kind == MT_VAL_STR && strcmp(k->u.str.ptr, keys[j]) == 0;
    if (!known) {
      if (k->kind == MT_VAL_STR) return bad("%sunexpected key '%.60s'", where, k->u.str.ptr);
      return bad("%sunexpected key (%s)", where, kind_of(k));
    }
  }
  return MT_OK;
}

static mt_status define(reader *r, int64_t id, const char *where) {
  int have;
  if (id < 0) return bad("%sid %lld is negative", where, (long long)id);
  if (mt_jit_map_get(&r->ids, (uint64_t)id, &have)) return bad("%sid %lld is defined twice", where, (long long)id);
  if (!mt_jit_map_put(&r->ids, (uint64_t)id, r->next)) return MT_ENOMEM;
  r->next++;
  return MT_OK;
}

static mt_status read_node(reader *r, const mt_value *v, int j) {
  char where[160];
  snprintf(where, sizeof where, "node %lld: ", MT_SHOW(j));
  if (v->kind != MT_VAL_DICT) return bad("%sshould be a dict, not %s", where, kind_of(v));
  const mt_value *opv = mt_value_dict_get(v, "op"), *ins = mt_value_dict_get(v, "inputs"),
                 *outs = mt_value_dict_get(v, "outputs"), *attrs = mt_value_dict_get(v, "attrs");
  if (!opv || opv->kind != MT_VAL_STR) return bad("%s'op' should be a str, not %s", where, opv ? kind_of(opv) : "missing");
  const mt_jit_op *op = mt_jit_find_op(opv->u.str.ptr);
  if (!op) return bad("%sunknown op '%.60s'", where, opv->u.str.ptr);
  snprintf(where, sizeof where, "node %lld ('%s'): ", MT_SHOW(j), op->name);
  static const char *const keys[] = {"op", "inputs", "outputs", "attrs"};
  mt_status st = only_keys(v, where, keys, 4);
  char what[200];
  snprintf(what, sizeof what, "%sinputs", where);
  if (!st) st = int_seq(ins, what, INT32_MAX / 2);
  snprintf(what, sizeof what, "%soutputs", where);
  if (!st) st = int_seq(outs, what, 16);
  if (st) return st;
  size_t nin = ins->u.seq.len, nout = outs->u.seq.len;
  if (op->nin >= 0 ? nin != (size_t)op->nin : nin < 1)
    return bad("%stakes %s%d input%s, got %zu", where, op->nin < 0 ? "at least " : "", op->nin < 0 ? 1 : op->nin,
               op->nin == 1 || op->nin < 0 ? "" : "s", nin);
  if (nout != (size_t)op->nout)
    return bad("%sgives %d output%s, got %zu", where, op->nout, op->nout == 1 ? "" : "s", nout);
  if (!attrs) return bad("%s'attrs' is missing", where);
  if ((st = mt_jit_check_attrs(op->attrs, attrs)) || (op->check && (st = op->check(attrs)))) {
    char msg[400];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    return bad("%s%s", where, msg);
  }
  mt_jit_node *node = &r->g->nodes[j];
  node->op = op;
  node->nin = (int)nin;
  node->nout = (int)nout;
  if (!(node->ins = malloc((nin + nout) * sizeof *node->ins)) || !(node->attrs = copy_value(attrs)))
    return mt_fail(MT_ENOMEM, "out of memory");
  node->outs = node->ins + nin;
  for (size_t i = 0; i < nin; i++) {
    int64_t id = ins->u.seq.items[i]->u.i;
    if (id == -1 && i < 32 && (op->optional >> i & 1u)) {
      node->ins[i] = -1;
    } else if (id == -1) {
      return bad("%sinput %lld is absent (id -1), but it is required", where, MT_SHOW((int64_t)i));
    } else if (id < 0 || !mt_jit_map_get(&r->ids, (uint64_t)id, &node->ins[i])) {
      return bad("%sinput id %lld is not defined before this node", where, (long long)id);
    }
  }
  for (size_t k = 0; k < nout; k++) {
    node->outs[k] = r->next;
    if ((st = define(r, outs->u.seq.items[k]->u.i, where))) return st;
  }
  return MT_OK;
}

static mt_status read_graph(reader *r, const mt_value *v) {
  if (v->kind != MT_VAL_DICT) return bad("not a traced model: the file holds %s, not a dict", kind_of(v));
  const mt_value *format = mt_value_dict_get(v, "format"), *version = mt_value_dict_get(v, "version");
  if (!format || format->kind != MT_VAL_STR || strcmp(format->u.str.ptr, FORMAT_NAME) != 0)
    return bad("not a traced model (its 'format' is not \"%s\")", FORMAT_NAME);
  if (!version || version->kind != MT_VAL_INT) return bad("'version' should be an int");
  if (version->u.i != FORMAT_VERSION)
    return bad("traced-model version %lld is not supported (this moontorch reads version %d)",
               (long long)version->u.i, FORMAT_VERSION);
  static const char *const keys[] = {"format", "version", "inputs", "outputs", "constants", "nodes"};
  const mt_value *ins = mt_value_dict_get(v, "inputs"), *outs = mt_value_dict_get(v, "outputs"),
                 *consts = mt_value_dict_get(v, "constants"), *nodes = mt_value_dict_get(v, "nodes");
  mt_status st;
  if ((st = only_keys(v, "", keys, 6)) || (st = int_seq(ins, "'inputs'", INT32_MAX / 4)) ||
      (st = int_seq(outs, "'outputs'", INT32_MAX / 4)))
    return st;
  if (outs->u.seq.len == 0) return bad("'outputs' is empty");
  if (!consts || consts->kind != MT_VAL_DICT) return bad("'constants' should be a dict of id -> tensor");
  if (!nodes || nodes->kind != MT_VAL_LIST) return bad("'nodes' should be a list");
  if (consts->u.dict.len > INT32_MAX / 4 || nodes->u.seq.len > INT32_MAX / 4) return bad("the graph is too large");
  if (!(r->g = mt_jit_graph_alloc((int)ins->u.seq.len, (int)consts->u.dict.len, (int)nodes->u.seq.len,
                                  (int)outs->u.seq.len)))
    return MT_ENOMEM;
  for (size_t i = 0; i < ins->u.seq.len; i++)
    if ((st = define(r, ins->u.seq.items[i]->u.i, "input "))) return st;
  for (size_t c = 0; c < consts->u.dict.len; c++) {
    const mt_value *k = consts->u.dict.keys[c], *t = consts->u.dict.vals[c];
    if (k->kind != MT_VAL_INT) return bad("'constants' should be keyed by int ids, not by %s", kind_of(k));
    if (t->kind != MT_VAL_TENSOR || !t->u.tensor)
      return bad("constant %lld should be a tensor, not %s", (long long)k->u.i, kind_of(t));
    const mt_tensor *kt = t->u.tensor; /* a header of its own, without autograd history */
    if ((st = define(r, k->u.i, "constant ")) ||
        (st = mt_make_view(&r->g->consts[c], kt, kt->offset, kt->ndim, kt->sizes, kt->strides)))
      return st;
  }
  for (size_t j = 0; j < nodes->u.seq.len; j++)
    if ((st = read_node(r, nodes->u.seq.items[j], (int)j))) return st;
  for (size_t k = 0; k < outs->u.seq.len; k++) {
    int64_t id = outs->u.seq.items[k]->u.i;
    if (id < 0 || !mt_jit_map_get(&r->ids, (uint64_t)id, &r->g->outputs[k]))
      return bad("output id %lld is not defined", (long long)id);
  }
  return mt_jit_graph_finish(r->g);
}

MT_API mt_status mt_graph_from_value(mt_graph **out, const mt_value *v) {
  if (!out || !v) return mt_fail(MT_EARG, "missing argument");
  reader r = {0};
  mt_status st = read_graph(&r, v);
  mt_jit_map_free(&r.ids);
  if (st) mt_graph_free(r.g);
  else *out = r.g;
  return st;
}

/* ---- files ---------------------------------------------------------------------------------- */

MT_API mt_status mt_graph_save(const mt_graph *g, const char *path) {
  if (!g || !path) return mt_fail(MT_EARG, "missing argument");
  mt_value *v;
  mt_status st = mt_graph_to_value(g, &v);
  if (st) return st;
  st = mt_save(v, path);
  mt_value_free(v);
  return st;
}

MT_API mt_status mt_graph_load(mt_graph **out, const char *path) {
  if (!out || !path) return mt_fail(MT_EARG, "missing argument");
  mt_value *v;
  mt_status st = mt_load(&v, path, NULL); /* its errors name the file already */
  if (st) return st;
  st = mt_graph_from_value(out, v);
  mt_value_free(v);
  if (st) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", mt_last_error());
    return mt_fail(st, "%s: %s", path, msg);
  }
  return MT_OK;
}
