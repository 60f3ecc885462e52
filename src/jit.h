/*
 * jit.h — private to the traced-model files: the op table (jit_ops.c), the graph that the
 * tracer (jit.c) builds and the runtime (jit_graph.c) runs, saves and loads.
 */
#ifndef MT_JIT_H
#define MT_JIT_H

#include "mt_internal.h"

/* ---- the op table (jit_ops.c) ------------------------------------------------------------ */

/* Runs one node: ins[i] is NULL for an absent optional input; on success every outs[k]
 * (k < the op's nout) holds a new reference, on failure none does. `attrs` has been checked
 * against the op's attribute format. */
typedef mt_status (*mt_jit_run_fn)(const mt_value *attrs, int nin, mt_tensor *const *ins, mt_tensor **outs);

typedef struct mt_jit_op {
  const char *name;  /* the core function without mt_: "conv2d" runs mt_conv2d */
  int nin;           /* inputs; -1: one or more (cat, stack) */
  unsigned optional; /* bit i set: input i may be absent (NULL when recorded, id -1 in a file) */
  int nout;
  /* The attribute format its recorders pass to mt_trace_record (mt_internal.h), one more type
   * besides those: S? is a `const mt_scalar *` that may be NULL (clamp's bounds), None in a file. */
  const char *attrs;
  mt_status (*check)(const mt_value *attrs); /* value rules beyond types (op names, dtypes), or NULL */
  mt_jit_run_fn run;
} mt_jit_op;

const mt_jit_op *mt_jit_find_op(const char *name); /* NULL when unknown */

/* Checks an attribute dict against a format: exactly its names, each of its type. Fails with
 * MT_EFORMAT and a message without prefix ("attribute 'stride' should be a list of 2 ints"). */
mt_status mt_jit_check_attrs(const char *fmt, const mt_value *attrs);

/* ---- graphs (built by jit.c and jit_graph.c, run by jit_graph.c) ------------------------- */

typedef struct mt_jit_node {
  const mt_jit_op *op;
  int nin, nout;
  int *ins;        /* value numbers; -1 for an absent optional input */
  int *outs;       /* shares the allocation of ins (ins + nin) */
  mt_value *attrs; /* dict of name -> value, owned */
} mt_jit_node;

/* Values are numbered densely: inputs 0 .. ninputs-1, constants next, then the outputs of the
 * nodes in order. That numbering is also what a saved file holds. */
struct mt_graph {
  int ninputs, nconsts, nnodes, noutputs, nvalues;
  mt_tensor **consts; /* value ninputs + i; aliases without autograd history */
  mt_jit_node *nodes;
  int *outputs;
  int *last_use; /* per value: the last node that reads it, nnodes for graph outputs, -1 if none */
};

/* Allocates an empty graph with room for the given counts (arrays zeroed); NULL when out of
 * memory (mt_last_error says so). */
mt_graph *mt_jit_graph_alloc(int ninputs, int nconsts, int nnodes, int noutputs);
/* Fills nvalues and last_use once everything else is in place. */
mt_status mt_jit_graph_finish(mt_graph *g);

/* ---- a map from 64-bit keys to ints (jit.c): tensor addresses, ids read from a file ---- */

typedef struct mt_jit_map {
  uint64_t *keys; /* key + 1, so that 0 marks an empty slot; UINT64_MAX keys are not allowed */
  int *vals;
  size_t cap, len; /* cap: a power of two, or 0 */
} mt_jit_map;

/* put fails (false, after mt_fail MT_ENOMEM) only when memory runs out; get: false if absent. */
bool mt_jit_map_put(mt_jit_map *m, uint64_t key, int val); /* inserts or replaces */
bool mt_jit_map_get(const mt_jit_map *m, uint64_t key, int *val);
void mt_jit_map_free(mt_jit_map *m);

#endif /* MT_JIT_H */
