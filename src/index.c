/*
 * index.c — index_select, gather, scatter, scatter_add and index_add_.
 *
 * All five are one loop seen from different sides: walk a shape; at each position read an
 * index k and move one element between `dst` and `src`, where one side's address is shifted
 * by k times its stride along `dim`. index_select and index_add_ use a 1-D index that is
 * broadcast (stride 0) over the other dims, so their inner runs have a constant index and
 * turn into memcpy / vectorised adds when rows are contiguous.
 *
 * Every index is range-checked before any element moves, so a failing call writes nothing.
 * Index tensors are int64 or int32; a contiguous int64 index is read in place, any other is
 * converted once to contiguous int64.
 *
 * Autograd (PyTorch's formulas): index_select sends its gradient back with index_add into
 * zeros, gather with scatter_add into zeros; scatter and scatter_add send src the gradient
 * gathered at index, and the input the gradient (with the overwritten positions zeroed, for
 * scatter). Each node saves the index.
 */
#include "mt_internal.h"

#include <stdlib.h>

/* ---- kernels over one run ---------------------------------------------------------------- */

/* Element j of a run: dst + j*ds + k*dxs and src + j*ss + k*sxs with k = ix[j*is]; strides in
 * bytes except `is` (int64 elements). One of dxs / sxs is 0: the unindexed side. */
typedef void (*run_fn)(char *d, int64_t ds, const char *s, int64_t ss, const int64_t *ix, int64_t is,
                       int64_t dxs, int64_t sxs, int64_t n);

/* Pure data movement depends only on the element size. */
#define DEF_COPY(T, name)                                                                       \
  static void name(char *d, int64_t ds, const char *s, int64_t ss, const int64_t *ix, int64_t is,  \
                   int64_t dxs, int64_t sxs, int64_t n) {                                      \
    if (is == 0) { /* one index for the whole run: a plain strided copy */                     \
      d += ix[0] * dxs;                                                                         \
      s += ix[0] * sxs;                                                                         \
      if (ds == (int64_t)sizeof(T) && ss == (int64_t)sizeof(T)) {                               \
        memcpy(d, s, (size_t)n * sizeof(T));                                                    \
        return;                                                                                 \
      }                                                                                         \
      for (int64_t j = 0; j < n; j++) *(T *)(d + j * ds) = *(const T *)(s + j * ss);            \
      return;                                                                                   \
    }                                                                                           \
    for (int64_t j = 0; j < n; j++) {                                                           \
      int64_t k = ix[j * is];                                                                   \
      *(T *)(d + j * ds + k * dxs) = *(const T *)(s + j * ss + k * sxs);                        \
    }                                                                                           \
  }
DEF_COPY(uint8_t, copy_1)
DEF_COPY(uint16_t, copy_2)
DEF_COPY(uint32_t, copy_4)
DEF_COPY(uint64_t, copy_8)

static run_fn copy_kernel(size_t esize) {
  switch (esize) {
  case 1: return copy_1;
  case 2: return copy_2;
  case 4: return copy_4;
  default: return copy_8;
  }
}

/* Accumulation, per dtype. Integers wrap as PyTorch's do (unsigned arithmetic avoids C's
 * signed-overflow UB); bool adds as logical or; half types round after every add, as on CPU. */
#define ADD_PLAIN(T, a, b) ((T)((a) + (b)))
#define ADD_WRAP64(T, a, b) ((T)((uint64_t)(a) + (uint64_t)(b)))
#define ADD_WRAP32(T, a, b) ((T)((uint32_t)(a) + (uint32_t)(b)))
#define ADD_OR(T, a, b) ((a) || (b))
#define ADD_F16(T, a, b) mt_f32_to_f16(mt_f16_to_f32(a) + mt_f16_to_f32(b))
#define ADD_BF16(T, a, b) mt_f32_to_bf16(mt_bf16_to_f32(a) + mt_bf16_to_f32(b))

#define ADD_KERNELS(X)                                                                          \
  X(MT_FLOAT32, float, f32, ADD_PLAIN)                                                          \
  X(MT_FLOAT64, double, f64, ADD_PLAIN)                                                         \
  X(MT_FLOAT16, mt_half, f16, ADD_F16)                                                          \
  X(MT_BFLOAT16, mt_bf16, bf16, ADD_BF16)                                                       \
  X(MT_INT64, int64_t, i64, ADD_WRAP64)                                                         \
  X(MT_INT32, int32_t, i32, ADD_WRAP32)                                                         \
  X(MT_INT16, int16_t, i16, ADD_WRAP32)                                                         \
  X(MT_INT8, int8_t, i8, ADD_WRAP32)                                                            \
  X(MT_UINT8, uint8_t, u8, ADD_WRAP32)                                                          \
  X(MT_BOOL, bool, b8, ADD_OR)

/* Only the destination is ever indexed when accumulating (sxs is 0). */
#define DEF_ADD(E, T, sfx, ADD)                                                                 \
  static void add_##sfx(char *d, int64_t ds, const char *s, int64_t ss, const int64_t *ix, int64_t is, \
                        int64_t dxs, int64_t sxs, int64_t n) {                                 \
    (void)sxs;                                                                                  \
    if (is == 0) {                                                                              \
      d += ix[0] * dxs;                                                                         \
      if (ds == (int64_t)sizeof(T) && ss == (int64_t)sizeof(T)) { /* vectorisable */            \
        T *restrict dp = (T *)d;                                                                \
        const T *restrict sp = (const T *)s;                                                    \
        for (int64_t j = 0; j < n; j++) dp[j] = ADD(T, dp[j], sp[j]);                           \
        return;                                                                                 \
      }                                                                                         \
      for (int64_t j = 0; j < n; j++) {                                                         \
        T *p = (T *)(d + j * ds);                                                               \
        *p = ADD(T, *p, *(const T *)(s + j * ss));                                              \
      }                                                                                         \
      return;                                                                                   \
    }                                                                                           \
    for (int64_t j = 0; j < n; j++) { /* indices may repeat: strictly in order */              \
      T *p = (T *)(d + j * ds + ix[j * is] * dxs);                                              \
      *p = ADD(T, *p, *(const T *)(s + j * ss));                                                \
    }                                                                                           \
  }
ADD_KERNELS(DEF_ADD)

static run_fn add_kernel(mt_dtype dt) {
  switch (dt) {
#define CASE_ADD(E, T, sfx, ADD) case E: return add_##sfx;
    ADD_KERNELS(CASE_ADD)
#undef CASE_ADD
  default: return NULL;
  }
}

/* ---- the walk ---------------------------------------------------------------------------- */

typedef struct walk {
  int nd;
  int64_t sizes[MT_MAX_DIMS];
  int64_t dst_st[MT_MAX_DIMS], src_st[MT_MAX_DIMS], idx_st[MT_MAX_DIMS]; /* bytes, bytes, elements */
  char *dst;
  const char *src;
  const int64_t *idx;
  int64_t dxs, sxs; /* bytes per index step on the indexed side, 0 on the other */
} walk;

/* Drops size-1 dims, merges dims that every operand steps across evenly, then runs `fn` over
 * the innermost dim with an odometer over the rest. Callers skip empty shapes. */
static void walk_run(walk *w, run_fn fn) {
  int n = 0;
  for (int d = 0; d < w->nd; d++) {
    if (w->sizes[d] == 1) continue;
    if (n > 0) {
      int64_t sz = w->sizes[d];
      int p = n - 1;
      if (w->dst_st[p] == w->dst_st[d] * sz && w->src_st[p] == w->src_st[d] * sz &&
          w->idx_st[p] == w->idx_st[d] * sz) {
        w->sizes[p] *= sz;
        w->dst_st[p] = w->dst_st[d];
        w->src_st[p] = w->src_st[d];
        w->idx_st[p] = w->idx_st[d];
        continue;
      }
    }
    w->sizes[n] = w->sizes[d];
    w->dst_st[n] = w->dst_st[d];
    w->src_st[n] = w->src_st[d];
    w->idx_st[n] = w->idx_st[d];
    n++;
  }
  if (n == 0) { /* a single element */
    fn(w->dst, 0, w->src, 0, w->idx, 0, w->dxs, w->sxs, 1);
    return;
  }
  int in = n - 1;
  int64_t pos[MT_MAX_DIMS] = {0};
  char *d = w->dst;
  const char *s = w->src;
  const int64_t *ix = w->idx;
  for (;;) {
    fn(d, w->dst_st[in], s, w->src_st[in], ix, w->idx_st[in], w->dxs, w->sxs, w->sizes[in]);
    int k = in - 1;
    for (; k >= 0; k--) {
      d += w->dst_st[k];
      s += w->src_st[k];
      ix += w->idx_st[k];
      if (++pos[k] < w->sizes[k]) break;
      d -= w->dst_st[k] * w->sizes[k];
      s -= w->src_st[k] * w->sizes[k];
      ix -= w->idx_st[k] * w->sizes[k];
      pos[k] = 0;
    }
    if (k < 0) return;
  }
}

/* ---- shared checks ----------------------------------------------------------------------- */

/* PyTorch treats a 0-dim tensor as 1-D of size 1 in these shape rules. */
static int ne_ndim(const mt_tensor *t) { return t->ndim > 0 ? t->ndim : 1; }
static int64_t ne_size(const mt_tensor *t, int d) { return t->ndim > 0 ? t->sizes[d] : 1; }
static int64_t ne_stride(const mt_tensor *t, int d) { return t->ndim > 0 ? t->strides[d] : 0; }

static char *shape_of(char *buf, const mt_tensor *t) { return mt_shape_str(buf, MT_SHAPE_STRLEN, t->ndim, t->sizes); }

/* Index values as contiguous int64, each checked against [0, limit). `*held` is the tensor
 * behind `*vals` (index itself, retained, or a converted copy); release it when done.
 * `private_copy` forces a copy (the index shares memory with a tensor about to be written). */
static mt_status load_index(const mt_tensor *index, int64_t limit, int dim, bool private_copy,
                            mt_tensor **held, const int64_t **vals) {
  if (index->dtype != MT_INT64 && index->dtype != MT_INT32)
    return mt_fail(MT_EDTYPE, "index must be an int64 or int32 tensor, got %s", mt_dtype_name(index->dtype));
  mt_tensor *c = NULL;
  mt_status st;
  if (index->dtype == MT_INT64 && !private_copy) st = mt_contiguous(&c, index);
  else if (index->dtype == MT_INT64) st = mt_clone(&c, index);
  else st = mt_to_dtype(&c, index, MT_INT64); /* a fresh contiguous tensor */
  if (st != MT_OK) return st;
  const int64_t *v = (const int64_t *)mt_data(c);
  int64_t n = mt_numel(c);
  /* one branch-free (vectorised) pass; unsigned compare catches negative indices too */
  bool bad = false;
  for (int64_t i = 0; i < n; i++) bad |= (uint64_t)v[i] >= (uint64_t)limit;
  if (MT_UNLIKELY(bad)) {
    int64_t i = 0;
    while ((uint64_t)v[i] < (uint64_t)limit) i++;
    st = mt_fail(MT_EINDEX, "index %lld is out of range for dim %lld of size %lld", MT_SHOW(v[i]), MT_SHOW(dim),
                 (long long)limit);
    mt_tensor_release(c);
    return st;
  }
  *held = c;
  *vals = v;
  return MT_OK;
}


/* t as dtype dt without autograd (the op records its own node): t itself when it already is. */
static mt_status converted(mt_tensor **out, const mt_tensor *t, mt_dtype dt) {
  if (t->dtype == dt) {
    mt_tensor_retain((mt_tensor *)t);
    *out = (mt_tensor *)t;
    return MT_OK;
  }
  mt_tensor *c;
  mt_status st = mt_empty_like(&c, t, dt);
  if (st == MT_OK && (st = mt_copy_into(c, t)) != MT_OK) mt_tensor_release(c);
  if (st == MT_OK) *out = c;
  return st;
}

/* r[p with p[d] = ix[p]] (+)= s[p] for p over held's shape (the loaded index); s has r's dtype
 * and fits held's shape. Callers skip an empty index. */
static void scatter_run(mt_tensor *r, int d, const mt_tensor *held, const int64_t *ix, const mt_tensor *s,
                        bool accumulate) {
  int64_t es = (int64_t)mt_dtype_size(r->dtype);
  walk w = {.nd = ne_ndim(r), .dst = mt_data(r), .src = mt_data(s), .idx = ix};
  for (int k = 0; k < w.nd; k++) {
    w.sizes[k] = ne_size(held, k);
    w.dst_st[k] = k == d ? 0 : ne_stride(r, k) * es;
    w.src_st[k] = ne_stride(s, k) * es;
    w.idx_st[k] = ne_stride(held, k);
  }
  w.dxs = ne_stride(r, d) * es;
  walk_run(&w, accumulate ? add_kernel(r->dtype) : copy_kernel((size_t)es));
}

/* ---- autograd ---------------------------------------------------------------------------- */

typedef struct index_node {
  mt_node base;
  int dim;
  mt_saved index;
} index_node;

static void index_release(mt_node *n) { mt_saved_release(&((index_node *)n)->index); }

/* Gives the fresh result `*res` its node when an input takes part in autograd (and the result
 * can carry gradients); on failure releases *res. */
static mt_status record_index(mt_tensor **res, const char *name, mt_backward_fn backward, int n,
                              const mt_tensor *const *ins, int dim, const mt_tensor *index) {
  if (!mt_grad_needed(n, ins) || !mt_dtype_is_float((*res)->dtype)) return MT_OK;
  index_node *node = (index_node *)mt_node_new(sizeof *node, name, backward, index_release, n, ins, 1);
  mt_status st = node ? mt_save_tensor(&node->index, index) : MT_ENOMEM;
  if (st == MT_OK) {
    node->dim = dim;
    mt_node_set_output(&node->base, *res, 0);
  }
  mt_node_release(node ? &node->base : NULL);
  if (st != MT_OK) {
    mt_tensor_release(*res);
    *res = NULL;
  }
  return st;
}

/* Zeros in the shape of input i of n, in g's dtype. */
static mt_status zeros_for(mt_tensor **out, const mt_node *n, int i, const mt_tensor *g) {
  return mt_zeros(out, g->dtype, n->next[i].ndim, n->next[i].sizes);
}

static mt_status index_select_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  index_node *in = (index_node *)n;
  mt_tensor *g = gout[0], *index, *z;
  mt_status st;
  if (!g) return MT_OK;
  if ((st = mt_saved_get(&in->index, n, &index)) != MT_OK || (st = zeros_for(&z, n, 0, g)) != MT_OK) return st;
  if ((st = mt_index_add_(z, in->dim, index, g)) != MT_OK) {
    mt_tensor_release(z);
    return st;
  }
  gin[0] = z;
  return MT_OK;
}

static mt_status gather_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  index_node *in = (index_node *)n;
  mt_tensor *g = gout[0], *index, *z, *held = NULL;
  const int64_t *ix;
  mt_status st;
  if (!g) return MT_OK;
  if ((st = mt_saved_get(&in->index, n, &index)) != MT_OK || (st = zeros_for(&z, n, 0, g)) != MT_OK) return st;
  if (mt_numel(index) > 0) {
    if ((st = load_index(index, ne_size(z, in->dim), in->dim, false, &held, &ix)) != MT_OK) {
      mt_tensor_release(z);
      return st;
    }
    scatter_run(z, in->dim, held, ix, g, true);
    mt_tensor_release(held);
  }
  gin[0] = z;
  return MT_OK;
}

/* src's gradient: g gathered at index, padded with zeros to src's shape where src reaches
 * beyond index (those elements never reached the output). */
static mt_status scatter_src_grad(mt_tensor **out, const mt_node *n, const mt_tensor *g, int dim,
                                  const mt_tensor *index) {
  const mt_edge *e = &n->next[1];
  mt_tensor *gg, *z, *part;
  mt_status st = mt_gather(&gg, g, dim, index);
  if (st != MT_OK) return st;
  if (gg->ndim == e->ndim && !memcmp(gg->sizes, e->sizes, sizeof(int64_t) * (size_t)e->ndim)) {
    *out = gg;
    return MT_OK;
  }
  if ((st = zeros_for(&z, n, 1, g)) == MT_OK && mt_numel(gg) > 0) {
    int64_t sizes[MT_MAX_DIMS]; /* the leading corner of z that index covers */
    for (int k = 0; k < z->ndim; k++) sizes[k] = ne_size(gg, k);
    if ((st = mt_make_view(&part, z, z->offset, z->ndim, sizes, z->strides)) == MT_OK) {
      st = mt_copy_into(part, gg);
      mt_tensor_release(part);
    }
    if (st != MT_OK) mt_tensor_release(z);
  }
  mt_tensor_release(gg);
  if (st == MT_OK) *out = z;
  return st;
}

/* self: g with the scattered positions zeroed (scatter) or g itself (scatter_add). */
static mt_status scatter_backward_impl(mt_node *n, mt_tensor *const *gout, mt_tensor **gin, bool accumulate) {
  index_node *in = (index_node *)n;
  mt_tensor *g = gout[0], *index, *r = NULL, *zero = NULL, *held = NULL;
  const int64_t *ix;
  mt_status st;
  if (!g) return MT_OK;
  if ((st = mt_saved_get(&in->index, n, &index)) != MT_OK) return st;
  if (mt_edge_live(&n->next[0])) {
    if (accumulate || mt_numel(index) == 0) {
      mt_tensor_retain(g);
      r = g;
    } else {
      if ((st = mt_clone(&r, g)) != MT_OK || (st = mt_zeros(&zero, g->dtype, index->ndim, index->sizes)) != MT_OK ||
          (st = load_index(index, ne_size(r, in->dim), in->dim, false, &held, &ix)) != MT_OK)
        goto fail;
      scatter_run(r, in->dim, held, ix, zero, false);
    }
  }
  if (mt_edge_live(&n->next[1]) && (st = scatter_src_grad(&gin[1], n, g, in->dim, index)) != MT_OK) goto fail;
  gin[0] = r;
  mt_tensor_release(zero);
  mt_tensor_release(held);
  return MT_OK;
fail:
  mt_tensor_release(r);
  mt_tensor_release(zero);
  mt_tensor_release(held);
  return st;
}

static mt_status scatter_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  return scatter_backward_impl(n, gout, gin, false);
}

static mt_status scatter_add_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  return scatter_backward_impl(n, gout, gin, true);
}

/* ---- index_select ------------------------------------------------------------------------ */

/* While tracing, an indexing op that succeeded records itself (src may be NULL: no such input). */
static void traced(const char *op, const mt_tensor *t, const mt_tensor *index, const mt_tensor *src, mt_tensor **out,
                   int64_t dim) {
  if (!mt_tracing()) return;
  const mt_tensor *ins[3] = {t, index, src};
  mt_trace_record(op, src ? 3 : 2, ins, 1, out, "dim=i", dim);
}

MT_API mt_status mt_index_select(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st != MT_OK) return st;
  if (index->ndim > 1) {
    char b[MT_SHAPE_STRLEN];
    return mt_fail(MT_ESHAPE, "index must be 0-D or 1-D, got shape %s", shape_of(b, index));
  }
  int64_t n = mt_numel(index);
  if (t->ndim == 0 && n != 1)
    return mt_fail(MT_ESHAPE, "a 0-dim tensor takes exactly one index, got %lld", (long long)n);
  mt_tensor *held;
  const int64_t *ix;
  if ((st = load_index(index, ne_size(t, d), d, false, &held, &ix)) != MT_OK) return st;

  int64_t sizes[MT_MAX_DIMS];
  memcpy(sizes, t->sizes, sizeof(int64_t) * (size_t)t->ndim);
  if (t->ndim > 0) sizes[d] = n;
  mt_tensor *r;
  if ((st = mt_empty(&r, t->dtype, t->ndim, sizes)) != MT_OK) {
    mt_tensor_release(held);
    return st;
  }
  if (mt_numel(r) > 0) {
    /* walk r's shape: r[.., i, ..] = t[.., ix[i], ..] */
    int64_t es = (int64_t)mt_dtype_size(t->dtype);
    walk w = {.nd = ne_ndim(t), .dst = mt_data(r), .src = mt_data(t), .idx = ix};
    for (int k = 0; k < w.nd; k++) {
      w.sizes[k] = ne_size(r, k);
      w.dst_st[k] = ne_stride(r, k) * es;
      w.src_st[k] = k == d ? 0 : ne_stride(t, k) * es;
      w.idx_st[k] = k == d ? 1 : 0;
    }
    w.sxs = ne_stride(t, d) * es;
    walk_run(&w, copy_kernel((size_t)es));
  }
  mt_tensor_release(held);
  if ((st = record_index(&r, "IndexSelectBackward0", index_select_backward, 1, &t, d, index)) != MT_OK) return st;
  *out = r;
  traced("index_select", t, index, NULL, out, dim);
  return MT_OK;
}

/* ---- gather / scatter shape rules -------------------------------------------------------- */

/* index.size(k) <= t.size(k) for k != dim, and the same number of dims (0-dim counts as 1-D). */
static mt_status check_fits(const mt_tensor *index, const mt_tensor *t, int dim, const char *what, bool all_dims) {
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  if (ne_ndim(index) != ne_ndim(t))
    return mt_fail(MT_ESHAPE, "index shape %s and %s shape %s must have the same number of dims", shape_of(a, index),
                   what, shape_of(b, t));
  for (int k = 0; k < ne_ndim(t); k++) {
    if ((all_dims || k != dim) && ne_size(index, k) > ne_size(t, k)) {
      if (all_dims)
        return mt_fail(MT_ESHAPE, "index shape %s must not exceed %s shape %s", shape_of(a, index), what,
                       shape_of(b, t));
      return mt_fail(MT_ESHAPE, "index shape %s must not exceed %s shape %s except in dim %lld", shape_of(a, index),
                     what, shape_of(b, t), MT_SHOW(dim));
    }
  }
  return MT_OK;
}

MT_API mt_status mt_gather(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st != MT_OK) return st;
  if (index->dtype != MT_INT64 && index->dtype != MT_INT32)
    return mt_fail(MT_EDTYPE, "index must be an int64 or int32 tensor, got %s", mt_dtype_name(index->dtype));
  bool empty = mt_numel(index) == 0; /* PyTorch checks no shapes then */
  if (!empty && (st = check_fits(index, t, d, "tensor", false)) != MT_OK) return st;

  mt_tensor *held = NULL;
  const int64_t *ix = NULL;
  if (!empty && (st = load_index(index, ne_size(t, d), d, false, &held, &ix)) != MT_OK) return st;
  mt_tensor *r;
  if ((st = mt_empty(&r, t->dtype, index->ndim, index->sizes)) != MT_OK) {
    mt_tensor_release(held);
    return st;
  }
  if (!empty) {
    /* walk index's shape: r[p] = t[p with p[dim] = ix[p]] */
    int64_t es = (int64_t)mt_dtype_size(t->dtype);
    walk w = {.nd = ne_ndim(t), .dst = mt_data(r), .src = mt_data(t), .idx = ix};
    for (int k = 0; k < w.nd; k++) {
      w.sizes[k] = ne_size(held, k);
      w.dst_st[k] = ne_stride(r, k) * es;
      w.src_st[k] = k == d ? 0 : ne_stride(t, k) * es;
      w.idx_st[k] = ne_stride(held, k);
    }
    w.sxs = ne_stride(t, d) * es;
    walk_run(&w, copy_kernel((size_t)es));
  }
  mt_tensor_release(held);
  if ((st = record_index(&r, "GatherBackward0", gather_backward, 1, &t, d, index)) != MT_OK) return st;
  *out = r;
  traced("gather", t, index, NULL, out, dim);
  return MT_OK;
}

/* out = clone of t; out[p with p[dim] = index[p]] (+)= src[p] for p over index's shape. */
static mt_status scatter_impl(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index,
                              const mt_tensor *src, bool accumulate) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st != MT_OK) return st;
  if (index->dtype != MT_INT64 && index->dtype != MT_INT32)
    return mt_fail(MT_EDTYPE, "index must be an int64 or int32 tensor, got %s", mt_dtype_name(index->dtype));
  bool empty = mt_numel(index) == 0;
  if (!empty) {
    char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
    if (ne_ndim(src) != ne_ndim(index))
      return mt_fail(MT_ESHAPE, "index shape %s and src shape %s must have the same number of dims",
                     shape_of(a, index), shape_of(b, src));
    if ((st = check_fits(index, t, d, "tensor", false)) != MT_OK) return st;
    if ((st = check_fits(index, src, d, "src", true)) != MT_OK) return st;
  }

  mt_tensor *held = NULL, *s = NULL, *r = NULL;
  const int64_t *ix = NULL;
  const mt_tensor *ins[2] = {t, src};
  if (!empty && (st = load_index(index, ne_size(t, d), d, false, &held, &ix)) != MT_OK) goto done;
  if (!empty && (st = converted(&s, src, t->dtype)) != MT_OK) goto done;
  if ((st = mt_empty_like(&r, t, t->dtype)) != MT_OK) goto done;
  if ((st = mt_copy_into(r, t)) != MT_OK) goto done;
  if (!empty) scatter_run(r, d, held, ix, s, accumulate);
  st = record_index(&r, accumulate ? "ScatterAddBackward0" : "ScatterBackward0",
                    accumulate ? scatter_add_backward : scatter_backward, 2, ins, d, index);
done:
  mt_tensor_release(held);
  mt_tensor_release(s);
  if (st != MT_OK) {
    mt_tensor_release(r);
    return st;
  }
  *out = r;
  traced(accumulate ? "scatter_add" : "scatter", t, index, src, out, dim);
  return MT_OK;
}

MT_API mt_status mt_scatter(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index,
                            const mt_tensor *src) {
  return scatter_impl(out, t, dim, index, src, false);
}

MT_API mt_status mt_scatter_add(mt_tensor **out, const mt_tensor *t, int64_t dim, const mt_tensor *index,
                                const mt_tensor *src) {
  return scatter_impl(out, t, dim, index, src, true);
}

/* ---- index_add_ -------------------------------------------------------------------------- */

/* t[.., index[i], ..] += src[.., i, ..]; src has t's shape except n = index.numel() along dim. */
MT_API mt_status mt_index_add_(mt_tensor *t, int64_t dim, const mt_tensor *index, const mt_tensor *src) {
  int d;
  mt_status st = mt_wrap_dim(dim, t->ndim, &d);
  if (st != MT_OK) return st;
  if (index->ndim > 1) {
    char b[MT_SHAPE_STRLEN];
    return mt_fail(MT_ESHAPE, "index must be 0-D or 1-D, got shape %s", shape_of(b, index));
  }
  if (index->dtype != MT_INT64 && index->dtype != MT_INT32)
    return mt_fail(MT_EDTYPE, "index must be an int64 or int32 tensor, got %s", mt_dtype_name(index->dtype));
  int64_t n = mt_numel(index);
  /* src's shape must be t's with n along dim (0-dim t and src count as [1]) */
  {
    char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
    bool ok = ne_ndim(src) == ne_ndim(t);
    for (int k = 0; ok && k < ne_ndim(t); k++) ok = ne_size(src, k) == (k == d ? n : ne_size(t, k));
    if (!ok)
      return mt_fail(MT_ESHAPE, "source shape %s does not fit tensor shape %s with %lld indices along dim %lld",
                     shape_of(a, src), shape_of(b, t), (long long)n, MT_SHOW(d));
  }
  const mt_tensor *others[2] = {index, src};
  mt_status chk = mt_inplace_begin(t, 2, others);
  if (chk) return chk;
  if (n == 0 || mt_numel(src) == 0) return MT_OK;

  mt_tensor *held = NULL, *s = NULL, *tmp = NULL;
  const int64_t *ix;
  /* inputs that share t's memory are copied first: t changes under them */
  if ((st = load_index(index, ne_size(t, d), d, index->storage == t->storage, &held, &ix)) != MT_OK) return st;
  if (src->storage == t->storage) {
    if ((st = mt_clone(&tmp, src)) != MT_OK) goto done;
    src = tmp;
  }
  if ((st = mt_to_dtype(&s, src, t->dtype)) != MT_OK) goto done;
  int64_t es = (int64_t)mt_dtype_size(t->dtype);
  walk w = {.nd = ne_ndim(t), .dst = mt_data(t), .src = mt_data(s), .idx = ix};
  for (int k = 0; k < w.nd; k++) {
    w.sizes[k] = ne_size(s, k);
    w.dst_st[k] = k == d ? 0 : ne_stride(t, k) * es;
    w.src_st[k] = ne_stride(s, k) * es;
    w.idx_st[k] = k == d ? 1 : 0;
  }
  w.dxs = ne_stride(t, d) * es;
  walk_run(&w, add_kernel(t->dtype));
done:
  mt_tensor_release(held);
  mt_tensor_release(tmp);
  mt_tensor_release(s);
  return st;
}
