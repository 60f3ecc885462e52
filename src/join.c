/*
 * join.c — cat and stack.
 *
 * cat copies each input as one block into its slice of a fresh contiguous result: an input
 * that is contiguous and already of the result dtype moves with one memcpy per outer index
 * (one memcpy in all when joining along dim 0); anything else goes through mt_copy_ into a
 * narrowed view, which handles strides and dtype conversion.
 *
 * Autograd: each input's gradient is its slice of the result's gradient (a narrow for cat, a
 * select for stack), a view without a copy.
 */
#include "mt_internal.h"

#include <stdlib.h>

/* PyTorch's legacy rule: 1-D tensors of shape [0] are skipped, whatever the others' shape. */
static bool legacy_empty(const mt_tensor *t) { return t->ndim == 1 && t->sizes[0] == 0; }

static mt_status copy_into(mt_tensor *r, const mt_tensor *t, int dim, int64_t start) {
  int64_t len = t->sizes[dim];
  if (t->dtype == r->dtype && mt_is_contiguous(t)) {
    int64_t es = (int64_t)mt_dtype_size(t->dtype), outer = 1, inner = es;
    for (int k = 0; k < dim; k++) outer *= t->sizes[k];
    for (int k = dim + 1; k < t->ndim; k++) inner *= t->sizes[k];
    const char *s = mt_data(t);
    char *d = (char *)mt_data(r) + start * inner;
    int64_t chunk = len * inner, pitch = r->sizes[dim] * inner;
    for (int64_t o = 0; o < outer; o++) memcpy(d + o * pitch, s + o * chunk, (size_t)chunk);
    return MT_OK;
  }
  mt_tensor *slice;
  mt_status st = mt_narrow(&slice, r, dim, start, len);
  if (st != MT_OK) return st;
  st = mt_copy_into(slice, t);
  mt_tensor_release(slice);
  return st;
}

/* ---- autograd ------------------------------------------------------------------------------ */

typedef struct join_node {
  mt_node base;
  int dim;
  int64_t starts[]; /* cat: each input's offset along dim, -1 for a skipped legacy-empty one */
} join_node;

static mt_status cat_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const join_node *j = (const join_node *)n;
  mt_tensor *g = gout[0];
  mt_status st = MT_OK;
  if (!g) return MT_OK;
  for (int i = 0; i < n->ninputs && st == MT_OK; i++) {
    const mt_edge *e = &n->next[i];
    if (!mt_edge_live(e)) continue;
    if (j->starts[i] < 0) st = mt_zeros(&gin[i], g->dtype, e->ndim, e->sizes); /* [0]: empty, as PyTorch */
    else st = mt_narrow(&gin[i], g, j->dim, j->starts[i], e->sizes[j->dim]);
  }
  return st; /* the engine releases what was set, also on failure */
}

static mt_status stack_backward(mt_node *n, mt_tensor *const *gout, mt_tensor **gin) {
  const join_node *j = (const join_node *)n;
  mt_tensor *g = gout[0];
  mt_status st = MT_OK;
  if (!g) return MT_OK;
  for (int i = 0; i < n->ninputs && st == MT_OK; i++)
    if (mt_edge_live(&n->next[i])) st = mt_select(&gin[i], g, j->dim, i);
  return st;
}

/* Gives the fresh result `*res` its node when an input takes part in autograd; on failure
 * releases *res. `starts` is NULL for stack. */
static mt_status record_join(mt_tensor **res, const char *name, mt_backward_fn backward, int n,
                             const mt_tensor *const *ts, int dim, const int64_t *starts) {
  if (!mt_grad_needed(n, ts)) return MT_OK;
  size_t extra = starts ? (size_t)n * sizeof(int64_t) : 0;
  join_node *j = (join_node *)mt_node_new(sizeof *j + extra, name, backward, NULL, n, ts, 1);
  if (!j) {
    mt_tensor_release(*res);
    *res = NULL;
    return MT_ENOMEM;
  }
  j->dim = dim;
  if (starts) memcpy(j->starts, starts, extra);
  mt_node_set_output(&j->base, *res, 0);
  mt_node_release(&j->base);
  return MT_OK;
}

/* ---- cat and stack ------------------------------------------------------------------------- */

/* The concatenation without autograd; *dim_out is the wrapped dim (0 when every input is
 * legacy-empty). */
static mt_status cat_plain(mt_tensor **out, int *dim_out, int n, const mt_tensor *const *ts, int64_t dim) {
  if (n <= 0) return mt_fail(MT_EARG, "expected a non-empty list of tensors");
  const mt_tensor *ref = NULL; /* the first tensor that is not legacy-empty: it sets the shape */
  int refpos = 0;
  mt_dtype dt = ts[0] ? ts[0]->dtype : MT_FLOAT32;
  for (int i = 0; i < n; i++) {
    if (!ts[i]) return mt_fail(MT_EARG, "tensor %lld is missing (NULL)", MT_SHOW(i));
    if (ts[i]->ndim == 0)
      return mt_fail(MT_ESHAPE, "zero-dimensional tensor (at position %lld) cannot be concatenated", MT_SHOW(i));
    dt = mt_promote_types(dt, ts[i]->dtype);
    if (!ref && !legacy_empty(ts[i])) {
      ref = ts[i];
      refpos = i;
    }
  }
  if (!ref) { /* all are [0]: so is the result, whatever dim says (as PyTorch) */
    int64_t zero = 0;
    *dim_out = 0;
    return mt_empty(out, dt, 1, &zero);
  }

  int d;
  mt_status st = mt_wrap_dim(dim, ref->ndim, &d);
  if (st != MT_OK) return st;

  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    const mt_tensor *t = ts[i];
    if (legacy_empty(t)) continue;
    char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
    if (t->ndim != ref->ndim)
      return mt_fail(MT_ESHAPE, "tensor %lld has shape %s but tensor %lld has shape %s: the number of dims must match",
                     MT_SHOW(i), mt_shape_str(a, sizeof a, t->ndim, t->sizes), MT_SHOW(refpos), mt_shape_str(b, sizeof b, ref->ndim, ref->sizes));
    for (int k = 0; k < t->ndim; k++)
      if (k != d && t->sizes[k] != ref->sizes[k])
        return mt_fail(MT_ESHAPE, "tensor %lld has shape %s but tensor %lld has shape %s: sizes must match except in dim %lld",
                       MT_SHOW(i), mt_shape_str(a, sizeof a, t->ndim, t->sizes), MT_SHOW(refpos),
                       mt_shape_str(b, sizeof b, ref->ndim, ref->sizes), MT_SHOW(d));
    if (mt_add_overflow(total, t->sizes[d], &total)) return mt_fail(MT_ENOMEM, "concatenated size overflows");
  }

  int64_t sizes[MT_MAX_DIMS];
  memcpy(sizes, ref->sizes, sizeof(int64_t) * (size_t)ref->ndim);
  sizes[d] = total;
  mt_tensor *r;
  if ((st = mt_empty(&r, dt, ref->ndim, sizes)) != MT_OK) return st;
  int64_t start = 0;
  for (int i = 0; i < n; i++) {
    const mt_tensor *t = ts[i];
    if (legacy_empty(t)) continue;
    if (mt_numel(t) > 0 && (st = copy_into(r, t, d, start)) != MT_OK) {
      mt_tensor_release(r);
      return st;
    }
    start += t->sizes[d];
  }
  *dim_out = d;
  *out = r;
  return MT_OK;
}

MT_API mt_status mt_cat(mt_tensor **out, int n, const mt_tensor *const *ts, int64_t dim) {
  mt_tensor *r;
  int d;
  mt_status st = cat_plain(&r, &d, n, ts, dim);
  if (st != MT_OK) return st;
  if (mt_grad_needed(n, ts)) {
    int64_t small[16], *starts = n <= 16 ? small : malloc((size_t)n * sizeof *starts);
    if (!starts) {
      mt_tensor_release(r);
      return mt_fail(MT_ENOMEM, "out of memory");
    }
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
      starts[i] = legacy_empty(ts[i]) ? -1 : start;
      if (!legacy_empty(ts[i])) start += ts[i]->sizes[d];
    }
    st = record_join(&r, "CatBackward0", cat_backward, n, ts, d, starts);
    if (starts != small) free(starts);
    if (st != MT_OK) return st;
  }
  *out = r;
  if (mt_tracing()) mt_trace_record("cat", n, ts, 1, out, "dim=i", dim);
  return MT_OK;
}

MT_API mt_status mt_stack(mt_tensor **out, int n, const mt_tensor *const *ts, int64_t dim) {
  if (n <= 0) return mt_fail(MT_EARG, "expected a non-empty list of tensors");
  for (int i = 0; i < n; i++)
    if (!ts[i]) return mt_fail(MT_EARG, "tensor %lld is missing (NULL)", MT_SHOW(i));
  const mt_tensor *t0 = ts[0];
  for (int i = 1; i < n; i++) {
    const mt_tensor *t = ts[i];
    bool same = t->ndim == t0->ndim;
    for (int k = 0; same && k < t->ndim; k++) same = t->sizes[k] == t0->sizes[k];
    if (!same) {
      char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
      return mt_fail(MT_ESHAPE, "all tensors must have the same shape, got %s at position %lld and %s at position %lld",
                     mt_shape_str(a, sizeof a, t0->ndim, t0->sizes), MT_SHOW(0), mt_shape_str(b, sizeof b, t->ndim, t->sizes),
                     MT_SHOW(i));
    }
  }
  if (t0->ndim >= MT_MAX_DIMS)
    return mt_fail(MT_EARG, "stacking %d-D tensors gives too many dims (at most %d)", t0->ndim, MT_MAX_DIMS);
  int d;
  mt_status st = mt_wrap_dim(dim, t0->ndim + 1, &d);
  if (st != MT_OK) return st;

  mt_tensor **views = calloc((size_t)n, sizeof *views), *r = NULL;
  if (!views) return mt_fail(MT_ENOMEM, "out of memory");
  /* the unsqueezed views are scaffolding: they record nothing, the result records one node */
  bool grad_mode = mt_is_grad_enabled();
  mt_set_grad_enabled(false);
  for (int i = 0; i < n && st == MT_OK; i++) st = mt_unsqueeze(&views[i], ts[i], d);
  mt_set_grad_enabled(grad_mode);
  int cd;
  /* the unsqueezed inputs are never legacy-empty ([0] becomes 2-D), so cat checks nothing new */
  if (st == MT_OK) st = cat_plain(&r, &cd, n, (const mt_tensor *const *)views, d);
  for (int i = 0; i < n; i++) mt_tensor_release(views[i]);
  free(views);
  if (st == MT_OK) st = record_join(&r, "StackBackward0", stack_backward, n, ts, d, NULL);
  if (st == MT_OK) {
    *out = r;
    if (mt_tracing()) mt_trace_record("stack", n, ts, 1, out, "dim=i", dim);
  }
  return st;
}
