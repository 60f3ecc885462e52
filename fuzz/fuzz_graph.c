/* libFuzzer harness: the traced-model reader. An input starting with "PK" is a whole file:
 * mt_deserialize, then mt_graph_from_value. Any other input is taken as the file's pickle
 * alone (storages handed out zeroed, capped), because mutated zip files almost always fail
 * their CRC checks before the graph validator sees them. When the graph validates, it runs
 * once on small fixed inputs (a float32 [2, 4] tensor of ones for each input): run errors
 * (shape mismatches) are fine, crashes are not. */
#include "mt_internal.h"

#include "fuzz_common.h"

#include <stdlib.h>

#define FUZZ_GRAPH_MAX_STORAGE_BYTES (64u << 20)

static mt_status graph_storage(void *ctx, const char *key, mt_dtype dt, int64_t numel, mt_storage **out) {
  (void)ctx;
  (void)key;
  size_t esz = mt_dtype_size(dt);
  if (numel < 0 || (uint64_t)numel > FUZZ_GRAPH_MAX_STORAGE_BYTES / esz)
    return mt_fail(MT_EFORMAT, "storage too large for the fuzzer");
  return mt_storage_new(out, (size_t)numel * esz);
}

/* Returns the status of reading and validating (not of running: a run may fail on shapes). */
static mt_status fuzz_graph(const uint8_t *data, size_t size) {
  mt_value *v = NULL;
  mt_status st = size >= 2 && data[0] == 'P' && data[1] == 'K' ? mt_deserialize(&v, data, size)
                                                               : mt_pickle_read(data, size, graph_storage, NULL, &v);
  if (st != MT_OK) return st;
  mt_graph *g = NULL;
  st = mt_graph_from_value(&g, v);
  mt_value_free(v);
  if (st != MT_OK) return st;
  int nin = mt_graph_num_inputs(g), nout = mt_graph_num_outputs(g);
  mt_tensor **in = calloc((size_t)nin + 1, sizeof *in), **out = calloc((size_t)nout + 1, sizeof *out);
  static const int64_t sizes[2] = {2, 4};
  int ok = in && out;
  for (int i = 0; ok && i < nin; i++) ok = mt_full(&in[i], MT_FLOAT32, 2, sizes, mt_scalar_float(1.0)) == MT_OK;
  if (ok) {
    mt_status run = mt_graph_run(g, in, out);
    fuzz_require_message(run);
    if (run == MT_OK)
      for (int i = 0; i < nout; i++) mt_tensor_release(out[i]);
  }
  for (int i = 0; in && i < nin; i++) mt_tensor_release(in[i]);
  free(in);
  free(out);
  mt_graph_free(g);
  return MT_OK;
}

FUZZ_ENTRY(fuzz_graph)
