/*
 * run_traced.c — the smallest complete use of moontorch's C API: load a traced model, run it
 * on input tensors read from checkpoint files, print the outputs. No Lua anywhere.
 *
 *     run_traced MODEL INPUT...
 *
 * MODEL comes from torch.jit.trace(model, example):save("model.pt") in Lua; each INPUT is a
 * file holding one tensor (torch.save(x, "x.pt")), one per model input. Build it against an
 * installed moontorch with
 *
 *     cc run_traced.c $(pkg-config --cflags --libs moontorch) -o run_traced
 *
 * (or `pkg-config --static` to link libmoontorch.a). Each output prints as a line
 * "output N: DTYPE [SIZES]" followed by a line of its elements in row-major order (floats with
 * 9 significant digits, enough to give back a float32 exactly).
 */
#include <moontorch.h>

#include <stdio.h>
#include <stdlib.h>

/* Every call that can fail returns a status and leaves a message in mt_last_error(). */
#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != MT_OK) {                                                                         \
      fprintf(stderr, "run_traced: %s\n", mt_last_error());                                        \
      goto done;                                                                                   \
    }                                                                                              \
  } while (0)

static void print_tensor(int index, const mt_tensor *t) {
  printf("output %d: %s [", index, mt_dtype_info(t->dtype)->name);
  for (int d = 0; d < t->ndim; d++) printf(d ? ", %lld" : "%lld", (long long)t->sizes[d]);
  printf("]\n");
  const int64_t n = mt_numel(t);
  for (int64_t i = 0; i < n; i++) {
    mt_scalar v;
    if (mt_get_flat(t, i, &v) != MT_OK) break; /* cannot fail for i < numel */
    if (v.kind == MT_SCALAR_FLOAT) printf(i ? " %.9g" : "%.9g", v.f);
    else printf(i ? " %lld" : "%lld", (long long)v.i);
  }
  printf("\n");
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: run_traced MODEL INPUT...\n");
    return 2;
  }
  int status = 1, nin = 0, nout = 0;
  mt_graph *model = NULL;
  mt_value **files = calloc((size_t)argc, sizeof *files); /* the input files' contents */
  mt_tensor **inputs = calloc((size_t)argc, sizeof *inputs), **outputs = NULL;
  if (!files || !inputs) {
    fprintf(stderr, "run_traced: out of memory\n");
    goto done;
  }

  CHECK(mt_graph_load(&model, argv[1]));
  nin = mt_graph_num_inputs(model);
  nout = mt_graph_num_outputs(model);
  if (nin != argc - 2) {
    fprintf(stderr, "run_traced: %s takes %d input%s, %d given\n", argv[1], nin, nin == 1 ? "" : "s", argc - 2);
    goto done;
  }
  for (int i = 0; i < nin; i++) {
    CHECK(mt_load(&files[i], argv[i + 2], NULL));
    if (files[i]->kind != MT_VAL_TENSOR) {
      fprintf(stderr, "run_traced: %s does not hold a tensor\n", argv[i + 2]);
      goto done;
    }
    inputs[i] = files[i]->u.tensor; /* borrowed: files[i] owns it */
  }

  outputs = calloc((size_t)nout + 1, sizeof *outputs);
  if (!outputs) {
    fprintf(stderr, "run_traced: out of memory\n");
    goto done;
  }
  CHECK(mt_graph_run(model, inputs, outputs)); /* each output slot receives a new reference */
  for (int i = 0; i < nout; i++) print_tensor(i + 1, outputs[i]);
  status = 0;

done:
  if (outputs)
    for (int i = 0; i < nout; i++) mt_tensor_release(outputs[i]);
  free(outputs);
  if (files)
    for (int i = 0; i < argc; i++) mt_value_free(files[i]);
  free(files);
  free(inputs);
  mt_graph_free(model);
  return status;
}
