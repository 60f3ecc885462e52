/*
 * iter.c — the N-d walk under every elementwise kernel. Operand 0 fixes the shape; the others
 * broadcast to it (stride 0 on broadcast dims). Dims are ordered innermost-first by operand
 * 0's strides and merged where all operands are contiguous across them, so a kernel sees the
 * longest possible 1-D runs: a contiguous tensor of any shape is a single run.
 */
#include "mt_internal.h"

mt_status mt_iter_init(mt_iter *it, int nops, const mt_tensor *const *ops) {
  const mt_tensor *out = ops[0];
  int nd = out->ndim;
  it->nops = nops;
  it->numel = mt_numel(out);

  /* byte strides, dim 0 = innermost */
  int64_t sizes[MT_MAX_DIMS], strides[MT_ITER_MAX_OPS][MT_MAX_DIMS];
  for (int k = 0; k < nops; k++) {
    const mt_tensor *op = ops[k];
    int64_t esize = (int64_t)mt_dtype_size(op->dtype);
    if (op->ndim > nd) goto mismatch;
    for (int d = 0; d < nd; d++) {
      int64_t size = out->sizes[nd - 1 - d];
      int kd = op->ndim - 1 - d;
      sizes[d] = size;
      if (kd < 0) strides[k][d] = 0;
      else if (op->sizes[kd] == size) strides[k][d] = size == 1 || it->numel == 0 ? 0 : op->strides[kd] * esize;
      else if (op->sizes[kd] == 1) strides[k][d] = 0;
      else goto mismatch;
    }
    it->data[k] = mt_data(op);
  }
  /* An empty walk visits nothing, and its strides may be huge (contiguous strides of an empty
   * tensor saturate): no byte strides or merged sizes, which could overflow. */
  if (it->numel == 0) {
    it->ndim = 0;
    return MT_OK;
  }

  /* Drop size-1 dims, then order by operand 0's stride (insertion sort: nd <= 8) so that an
   * output written through a transposed view is still walked in memory order. */
  int n = 0;
  int perm[MT_MAX_DIMS];
  for (int d = 0; d < nd; d++)
    if (sizes[d] != 1) perm[n++] = d;
  for (int i = 1; i < n; i++) {
    int p = perm[i], j = i;
    for (; j > 0; j--) {
      int q = perm[j - 1];
      bool swap = false;
      for (int k = 0; k < nops; k++) { /* first operand with distinct non-zero strides decides */
        int64_t a = strides[k][p], b = strides[k][q];
        if (a == 0 || b == 0 || a == b) continue;
        swap = a < b;
        break;
      }
      if (!swap) break;
      perm[j] = q;
    }
    perm[j] = p;
  }

  /* merge dim i+1 into dim i when every operand steps across them evenly */
  it->ndim = 0;
  for (int i = 0; i < n; i++) {
    int d = perm[i];
    if (it->ndim > 0) {
      int prev = it->ndim - 1;
      bool mergeable = true;
      for (int k = 0; k < nops && mergeable; k++)
        mergeable = strides[k][d] == it->strides[k][prev] * it->sizes[prev];
      if (mergeable) {
        it->sizes[prev] *= sizes[d];
        continue;
      }
    }
    it->sizes[it->ndim] = sizes[d];
    for (int k = 0; k < nops; k++) it->strides[k][it->ndim] = strides[k][d];
    it->ndim++;
  }
  return MT_OK;

mismatch:;
  char a[MT_SHAPE_STRLEN], b[MT_SHAPE_STRLEN];
  for (int k = 1; k < nops; k++) {
    const mt_tensor *op = ops[k];
    bool ok = op->ndim <= nd;
    for (int d = 0; ok && d < op->ndim; d++) {
      int64_t s = op->sizes[op->ndim - 1 - d], want = out->sizes[nd - 1 - d];
      ok = s == want || s == 1;
    }
    if (!ok)
      return mt_fail(MT_ESHAPE, "shape %s cannot be broadcast to %s", mt_shape_str(a, sizeof a, op->ndim, op->sizes),
                     mt_shape_str(b, sizeof b, nd, out->sizes));
  }
  return mt_fail(MT_ESHAPE, "shapes cannot be broadcast");
}

void mt_iter_run(const mt_iter *it, mt_loop_fn loop, void *ctx) {
  int nops = it->nops;
  int64_t inner_strides[MT_ITER_MAX_OPS] = {0};
  char *data[MT_ITER_MAX_OPS];
  for (int k = 0; k < nops; k++) data[k] = it->data[k];
  if (it->numel == 0) return;
  if (it->ndim == 0) {
    loop(data, inner_strides, 1, ctx);
    return;
  }
  for (int k = 0; k < nops; k++) inner_strides[k] = it->strides[k][0];
  int64_t inner = it->sizes[0];
  if (it->ndim == 1) {
    loop(data, inner_strides, inner, ctx);
    return;
  }
  /* odometer over the outer dims, moving each pointer incrementally */
  int64_t count[MT_MAX_DIMS] = {0};
  for (;;) {
    loop(data, inner_strides, inner, ctx);
    int d = 1;
    for (; d < it->ndim; d++) {
      for (int k = 0; k < nops; k++) data[k] += it->strides[k][d];
      if (++count[d] < it->sizes[d]) break;
      for (int k = 0; k < nops; k++) data[k] -= it->strides[k][d] * it->sizes[d];
      count[d] = 0;
    }
    if (d == it->ndim) return;
  }
}
