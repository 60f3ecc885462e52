/* test_jit_format.c — the traced-model file: a valid graph's value tree, broken one way at a
 * time, must be refused before anything runs, with MT_EFORMAT and a message that says what is
 * wrong and where (node and op); through a file, the message starts with the file's path. */
#include "mt_test.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- building and editing value trees ---------------------------------------------------------- */

static mt_value *copy_value(const mt_value *v) { /* a deep copy through the public format */
  void *data;
  size_t len;
  mt_value *r = NULL;
  if (mt_serialize(v, &data, &len)) return NULL;
  if (mt_deserialize(&r, data, len)) r = NULL;
  free(data);
  return r;
}

static void set(mt_value *d, const char *key, mt_value *v) { mt_value_dict_set(d, mt_value_str(key, strlen(key)), v); }

/* *slot without `key` (a fresh copy of the rest). */
static void drop_key(mt_value **slot, const char *key) {
  mt_value *d = mt_value_dict(false);
  for (size_t i = 0; i < (*slot)->u.dict.len; i++) {
    const mt_value *k = (*slot)->u.dict.keys[i];
    if (k->kind == MT_VAL_STR && strcmp(k->u.str.ptr, key) == 0) continue;
    mt_value_dict_set(d, copy_value(k), copy_value((*slot)->u.dict.vals[i]));
  }
  mt_value_free(*slot);
  *slot = d;
}

static mt_value *ints(int n, ...) {
  mt_value *l = mt_value_list();
  va_list ap;
  va_start(ap, n);
  for (int i = 0; i < n; i++) mt_value_append(l, mt_value_int(va_arg(ap, int)));
  va_end(ap);
  return l;
}

static mt_value *str(const char *s) { return mt_value_str(s, strlen(s)); }
static mt_value **node_slot(mt_value *root, int j) { return &mt_value_dict_get(root, "nodes")->u.seq.items[j]; }
static mt_value *node(mt_value *root, int j) { return *node_slot(root, j); }
static mt_value *attrs(mt_value *root, int j) { return mt_value_dict_get(node(root, j), "attrs"); }
static mt_value **attrs_slot(mt_value *root, int j) {
  mt_value *n = node(root, j);
  for (size_t i = 0;; i++)
    if (strcmp(n->u.dict.keys[i]->u.str.ptr, "attrs") == 0) return &n->u.dict.vals[i];
}

/* ---- the broken trees --------------------------------------------------------------------------
 * The base graph: x (id 0) and the constant W (id 1);
 *   node 0 matmul(0, 1) -> 2, node 1 clamp(2) -> 3 {min = -1, max = None},
 *   node 2 sum(3) -> 4 {dims = [1], keepdim = false}, node 3 to_dtype(4) -> 5 {dtype = "float64"},
 *   node 4 binary(5, 5) -> 6 {op = "mul"}; outputs [6]. */

#define MUT(name, body) static void name(mt_value **root) { mt_value *r = *root; (void)r; body; }
MUT(m_not_dict, mt_value_free(*root); *root = ints(1, 0))
MUT(m_format, set(r, "format", str("moontorch.model")))
MUT(m_version, set(r, "version", mt_value_int(2)))
MUT(m_version_type, set(r, "version", str("1")))
MUT(m_root_extra, set(r, "extra", mt_value_none()))
MUT(m_no_inputs, drop_key(root, "inputs"))
MUT(m_inputs_type, set(r, "inputs", str("x")))
MUT(m_input_negative, set(r, "inputs", ints(1, -1)))
MUT(m_outputs_empty, set(r, "outputs", mt_value_list()))
MUT(m_output_undefined, set(r, "outputs", ints(1, 42)))
MUT(m_consts_type, set(r, "constants", mt_value_list()))
MUT(m_const_value, mt_value *c = mt_value_dict(false); mt_value_dict_set(c, mt_value_int(1), str("W"));
    set(r, "constants", c))
MUT(m_const_key, mt_value *c = mt_value_dict(false); mt_value_dict_set(c, str("1"), mt_value_int(0));
    set(r, "constants", c))
MUT(m_const_twice, mt_value *c = copy_value(mt_value_dict_get(r, "constants"));
    mt_value_dict_set(c, mt_value_int(0), copy_value(c->u.dict.vals[0])); set(r, "constants", c))
MUT(m_nodes_type, set(r, "nodes", mt_value_dict(false)))
MUT(m_node_type, mt_value_free(node(r, 0)); *node_slot(r, 0) = mt_value_int(5))
MUT(m_unknown_op, set(node(r, 0), "op", str("conv9d")))
MUT(m_no_op, drop_key(node_slot(r, 0), "op"))
MUT(m_node_extra, set(node(r, 0), "extra", mt_value_int(1)))
MUT(m_ninputs, set(node(r, 0), "inputs", ints(1, 0)))
MUT(m_required_absent, set(node(r, 0), "inputs", ints(2, 0, -1)))
MUT(m_undefined_input, set(node(r, 0), "inputs", ints(2, 0, 99)))
MUT(m_used_before_defined, set(node(r, 1), "inputs", ints(1, 5)))
MUT(m_defined_twice, set(node(r, 2), "outputs", ints(1, 0)))
MUT(m_output_negative, set(node(r, 2), "outputs", ints(1, -3)))
MUT(m_noutputs, set(node(r, 2), "outputs", ints(2, 7, 8)))
MUT(m_no_attrs, drop_key(node_slot(r, 1), "attrs"))
MUT(m_attrs_type, set(node(r, 1), "attrs", ints(1, 1)))
MUT(m_attr_type, set(attrs(r, 2), "dims", str("x")))
MUT(m_attr_long, set(attrs(r, 2), "dims", ints(9, 0, 0, 0, 0, 0, 0, 0, 0, 0)))
MUT(m_attr_item, mt_value *l = ints(1, 0); mt_value_append(l, mt_value_float(1)); set(attrs(r, 2), "dims", l))
MUT(m_attr_bool, set(attrs(r, 2), "keepdim", mt_value_int(0)))
MUT(m_attr_missing, drop_key(attrs_slot(r, 1), "max"))
MUT(m_attr_unknown, set(attrs(r, 3), "bogus", mt_value_int(1)))
MUT(m_scalar_type, set(attrs(r, 1), "min", str("-1")))
MUT(m_binop, set(attrs(r, 4), "op", str("frobnicate")))
MUT(m_dtype, set(attrs(r, 3), "dtype", str("float128")))
MUT(m_reduction, set(node(r, 4), "op", str("mse_loss")); mt_value *a = mt_value_dict(false);
    set(a, "reduction", mt_value_int(7)); set(node(r, 4), "attrs", a))

typedef struct bad_case {
  void (*mutate)(mt_value **root);
  const char *needle;
} bad_case;

static const bad_case bad_cases[] = {
    {m_not_dict, "not a traced model: the file holds a list, not a dict"},
    {m_format, "not a traced model (its 'format' is not \"moontorch.traced\")"},
    {m_version, "traced-model version 2 is not supported (this moontorch reads version 1)"},
    {m_version_type, "'version' should be an int"},
    {m_root_extra, "unexpected key 'extra'"},
    {m_no_inputs, "'inputs' is missing"},
    {m_inputs_type, "'inputs' should be a list of ints, not a str"},
    {m_input_negative, "input id -1 is negative"},
    {m_outputs_empty, "'outputs' is empty"},
    {m_output_undefined, "output id 42 is not defined"},
    {m_consts_type, "'constants' should be a dict of id -> tensor"},
    {m_const_value, "constant 1 should be a tensor, not a str"},
    {m_const_key, "'constants' should be keyed by int ids, not by a str"},
    {m_const_twice, "constant id 0 is defined twice"},
    {m_nodes_type, "'nodes' should be a list"},
    {m_node_type, "node 0: should be a dict, not an int"},
    {m_unknown_op, "node 0: unknown op 'conv9d'"},
    {m_no_op, "node 0: 'op' should be a str, not missing"},
    {m_node_extra, "node 0 ('matmul'): unexpected key 'extra'"},
    {m_ninputs, "node 0 ('matmul'): takes 2 inputs, got 1"},
    {m_required_absent, "node 0 ('matmul'): input 1 is absent (id -1), but it is required"},
    {m_undefined_input, "node 0 ('matmul'): input id 99 is not defined before this node"},
    {m_used_before_defined, "node 1 ('clamp'): input id 5 is not defined before this node"},
    {m_defined_twice, "node 2 ('sum'): id 0 is defined twice"},
    {m_output_negative, "node 2 ('sum'): id -3 is negative"},
    {m_noutputs, "node 2 ('sum'): gives 1 output, got 2"},
    {m_no_attrs, "node 1 ('clamp'): 'attrs' is missing"},
    {m_attrs_type, "node 1 ('clamp'): attrs should be a dict, not a list"},
    {m_attr_type, "node 2 ('sum'): attribute 'dims' should be a list of at most 8 ints, not a str"},
    {m_attr_long, "node 2 ('sum'): attribute 'dims' should be a list of at most 8 ints, not a list"},
    {m_attr_item, "node 2 ('sum'): attribute 'dims' should be a list of at most 8 ints, not a list"},
    {m_attr_bool, "node 2 ('sum'): attribute 'keepdim' should be a bool, not an int"},
    {m_attr_missing, "node 1 ('clamp'): attribute 'max' is missing"},
    {m_attr_unknown, "node 3 ('to_dtype'): unknown attribute 'bogus'"},
    {m_scalar_type, "node 1 ('clamp'): attribute 'min' should be a number, a bool or None, not a str"},
    {m_binop, "node 4 ('binary'): unknown binary op 'frobnicate'"},
    {m_dtype, "node 3 ('to_dtype'): unknown dtype 'float128'"},
    {m_reduction, "node 4 ('mse_loss'): reduction 7 is not 0 (none), 1 (mean) or 2 (sum)"},
};

/* ---- tests ------------------------------------------------------------------------------------- */

static mt_graph *base_graph(mt_tensor **x_out) {
  int64_t xs[2] = {2, 4}, ws[2] = {4, 4}, one = 1;
  mt_tensor *x, *w, *a, *b, *c, *d, *e;
  mt_empty(&x, MT_FLOAT32, 2, xs);
  mt_empty(&w, MT_FLOAT32, 2, ws);
  for (int i = 0; i < 8; i++) mt_set_flat(x, i, mt_scalar_float(i * 0.25 - 1));
  for (int i = 0; i < 16; i++) mt_set_flat(w, i, mt_scalar_float((i % 5) * 0.5 - 1));
  mt_scalar lo = mt_scalar_int(-1);
  mt_trace *tr;
  mt_graph *g = NULL;
  OK(mt_trace_begin(&tr));
  OK(mt_trace_input(tr, x));
  OK(mt_matmul(&a, x, w));
  OK(mt_clamp(&b, a, &lo, NULL));
  OK(mt_sum(&c, b, 1, &one, false));
  OK(mt_to_dtype(&d, c, MT_FLOAT64));
  OK(mt_binary(&e, MT_MUL, d, d));
  OK(mt_trace_end(tr, 1, &e, &g));
  mt_tensor *list[] = {w, a, b, c, d, e};
  for (size_t i = 0; i < sizeof list / sizeof *list; i++) mt_tensor_release(list[i]);
  *x_out = x;
  return g;
}

static void test_bad_trees(const mt_graph *g, const char *path) {
  mt_value *v;
  mt_graph *out = NULL;
  OK(mt_graph_to_value(g, &v)); /* the unbroken tree loads */
  OK(mt_graph_from_value(&out, v));
  mt_graph_free(out);
  mt_value_free(v);
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
    const bad_case *c = &bad_cases[i];
    out = NULL;
    OK(mt_graph_to_value(g, &v));
    c->mutate(&v);
    FAILS(mt_graph_from_value(&out, v), MT_EFORMAT, c->needle);
    CHECK(out == NULL);
    /* the same through a file: the message names it first */
    char want[512];
    snprintf(want, sizeof want, "%s: %s", path, c->needle);
    OK(mt_save(v, path));
    FAILS(mt_graph_load(&out, path), MT_EFORMAT, want);
    CHECK(out == NULL);
    mt_value_free(v);
  }
}

static void test_files(const mt_graph *g, mt_tensor *x, const char *path) {
  mt_graph *loaded = NULL;
  char want[600];
  /* a file that does not exist, one cut short, one holding something else */
  snprintf(want, sizeof want, "%s.missing", path);
  FAILS(mt_graph_load(&loaded, want), MT_EIO, want);
  OK(mt_graph_save(g, path));
  FILE *f = fopen(path, "rb");
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fclose(f);
  CHECK(truncate(path, size / 2) == 0);
  FAILS(mt_graph_load(&loaded, path), MT_EFORMAT, path);
  mt_value *tv = mt_value_tensor(x);
  OK(mt_save(tv, path));
  mt_value_free(tv);
  snprintf(want, sizeof want, "%s: not a traced model: the file holds a tensor, not a dict", path);
  FAILS(mt_graph_load(&loaded, path), MT_EFORMAT, want);
  CHECK(loaded == NULL);
  /* and a good one loads, runs, and saves again to a tree equal to the first */
  OK(mt_graph_save(g, path));
  OK(mt_graph_load(&loaded, path));
  mt_tensor *a = NULL, *b = NULL;
  if (loaded) {
    OK(mt_graph_run(g, &x, &a));
    OK(mt_graph_run(loaded, &x, &b));
    CHECK(a && b && a->dtype == MT_FLOAT64 && b->dtype == MT_FLOAT64 && a->ndim == 1 && b->ndim == 1);
    for (int i = 0; a && b && i < 2; i++) CHECK(((double *)mt_data(a))[i] == ((double *)mt_data(b))[i]);
    mt_value *v1, *v2;
    void *d1, *d2;
    size_t n1, n2;
    OK(mt_graph_to_value(g, &v1));
    OK(mt_graph_to_value(loaded, &v2));
    OK(mt_serialize(v1, &d1, &n1));
    OK(mt_serialize(v2, &d2, &n2));
    CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0);
    free(d1);
    free(d2);
    mt_value_free(v1);
    mt_value_free(v2);
  }
  mt_tensor_release(a);
  mt_tensor_release(b);
  mt_graph_free(loaded);
}

int main(void) {
  char path[] = "/tmp/test_jit_format_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  mt_tensor *x = NULL;
  mt_graph *g = base_graph(&x);
  if (g) {
    test_bad_trees(g, path);
    test_files(g, x, path);
  }
  mt_graph_free(g);
  mt_tensor_release(x);
  unlink(path);
  return mt_test_finish("test_jit_format");
}
