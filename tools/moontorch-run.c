/*
 * moontorch-run — runs a traced model file on tensors from a checkpoint file, with no Lua.
 *
 *     moontorch-run MODEL INPUTS OUTPUTS
 *
 * MODEL is a file written by traced:save(path) (torch.jit.trace in Lua) or mt_graph_save.
 * INPUTS is a checkpoint file (torch.save / mt_save) holding one tensor, or a list of tensors
 * for a model with several inputs. The outputs are saved to OUTPUTS the same way: a model with
 * one output gives a file holding that tensor, one with several a file holding their list.
 * torch.load in Lua and in PyTorch reads both files.
 *
 * Exit status: 0 on success, 1 when the model, the inputs or the run fail (the message names
 * the file and the problem), 2 on a usage error.
 */
#include <moontorch.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "moontorch-run"

enum { EXIT_USAGE = 2 };

#define USAGE "usage: " PROG " [--help] MODEL INPUTS OUTPUTS\n"

static void help(void) {
  printf(USAGE
         "\n"
         "Runs the traced model MODEL (saved by traced:save in Lua, or mt_graph_save) on the\n"
         "tensors in the checkpoint file INPUTS and saves its outputs to OUTPUTS.\n"
         "\n"
         "  INPUTS   a file written by torch.save (or mt_save) holding one tensor, or a list\n"
         "           of tensors in the order of the model's inputs\n"
         "  OUTPUTS  written the same way: the output tensor itself when the model has one\n"
         "           output, else the list of its outputs (torch.load reads it, in Lua and in\n"
         "           PyTorch); an existing file is replaced atomically\n"
         "\n"
         "Options:\n"
         "  -h, --help  show this help and exit\n"
         "\n"
         "Exit status: 0 on success, 1 when loading, running or saving fails, 2 on a usage\n"
         "error.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, PROG ": ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n" USAGE "Run '" PROG " --help' for more.\n");
  va_end(ap);
  return EXIT_USAGE;
}

static int fail(const char *what) {
  fprintf(stderr, PROG ": %s\n", what);
  return EXIT_FAILURE;
}

/* Prints the core's last error, prefixed by what was being done (may be NULL). */
static int fail_core(const char *doing) {
  if (doing) fprintf(stderr, PROG ": %s: %s\n", doing, mt_last_error());
  else fprintf(stderr, PROG ": %s\n", mt_last_error());
  return EXIT_FAILURE;
}

static const char *kind_name(mt_value_kind k) {
  switch (k) {
  case MT_VAL_NONE: return "None";
  case MT_VAL_BOOL: return "a bool";
  case MT_VAL_INT: return "an int";
  case MT_VAL_FLOAT: return "a float";
  case MT_VAL_STR: return "a str";
  case MT_VAL_BYTES: return "bytes";
  case MT_VAL_LIST: return "a list";
  case MT_VAL_TUPLE: return "a tuple";
  case MT_VAL_DICT: return "a dict";
  case MT_VAL_TENSOR: return "a tensor";
  }
  return "an unknown value";
}

/* The tensors of the INPUTS value (borrowed from it): a tensor, or a list/tuple of tensors. */
static int collect_inputs(const char *path, const mt_value *v, int want, mt_tensor **ins) {
  char msg[512];
  if (v->kind == MT_VAL_TENSOR) {
    if (want != 1) {
      snprintf(msg, sizeof msg, "%s holds one tensor, but the model takes %d inputs (save a list of %d tensors)", path,
               want, want);
      return fail(msg);
    }
    ins[0] = v->u.tensor;
    return EXIT_SUCCESS;
  }
  if (v->kind != MT_VAL_LIST && v->kind != MT_VAL_TUPLE) {
    snprintf(msg, sizeof msg, "%s holds %s; expected a tensor or a list of tensors", path, kind_name(v->kind));
    return fail(msg);
  }
  if (v->u.seq.len != (size_t)want) {
    snprintf(msg, sizeof msg, "%s holds a %s of %zu tensor%s, but the model takes %d input%s", path,
             v->kind == MT_VAL_LIST ? "list" : "tuple", v->u.seq.len, v->u.seq.len == 1 ? "" : "s", want,
             want == 1 ? "" : "s");
    return fail(msg);
  }
  for (size_t i = 0; i < v->u.seq.len; i++) {
    const mt_value *item = v->u.seq.items[i];
    if (item->kind != MT_VAL_TENSOR) {
      snprintf(msg, sizeof msg, "%s: item %zu of the %s is %s, not a tensor", path, i + 1,
               v->kind == MT_VAL_LIST ? "list" : "tuple", kind_name(item->kind));
      return fail(msg);
    }
    ins[i] = item->u.tensor;
  }
  return EXIT_SUCCESS;
}

/* The outputs as the value to save: the tensor itself, or a list of them. */
static mt_value *outputs_value(int n, mt_tensor *const *outs) {
  if (n == 1) return mt_value_tensor(outs[0]);
  mt_value *list = mt_value_list();
  if (!list) return NULL;
  for (int i = 0; i < n; i++) {
    mt_value *t = mt_value_tensor(outs[i]);
    if (!t || mt_value_append(list, t)) {
      mt_value_free(list);
      return NULL;
    }
  }
  return list;
}

int main(int argc, char **argv) {
  const char *args[3];
  int nargs = 0;
  bool options_done = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!options_done && a[0] == '-' && a[1] != '\0') {
      if (!strcmp(a, "--")) {
        options_done = true;
        continue;
      }
      if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
        help();
        return EXIT_SUCCESS;
      }
      return usage_error("unknown option '%s'", a);
    }
    if (nargs == 3) return usage_error("too many arguments, from '%s' on", a);
    args[nargs++] = a;
  }
  if (nargs < 3)
    return usage_error("missing %s", nargs == 0 ? "MODEL, INPUTS and OUTPUTS" : nargs == 1 ? "INPUTS and OUTPUTS" : "OUTPUTS");
  const char *model_path = args[0], *inputs_path = args[1], *outputs_path = args[2];

  mt_graph *g = NULL;
  mt_value *inputs = NULL, *result = NULL;
  mt_tensor **ins = NULL, **outs = NULL;
  int rc = EXIT_FAILURE, nout = 0;
  char doing[512];

  if (mt_graph_load(&g, model_path)) {
    rc = fail_core(NULL); /* the message names the file */
    goto done;
  }
  if (mt_load(&inputs, inputs_path, NULL)) {
    rc = fail_core(NULL);
    goto done;
  }
  const int nin = mt_graph_num_inputs(g);
  nout = mt_graph_num_outputs(g);
  ins = calloc((size_t)nin + 1, sizeof *ins);
  outs = calloc((size_t)nout + 1, sizeof *outs);
  if (!ins || !outs) {
    rc = fail("out of memory");
    goto done;
  }
  if ((rc = collect_inputs(inputs_path, inputs, nin, ins))) goto done;
  if (mt_graph_run(g, ins, outs)) {
    snprintf(doing, sizeof doing, "running %s on %s", model_path, inputs_path);
    rc = fail_core(doing);
    goto done;
  }
  if (!(result = outputs_value(nout, outs))) {
    rc = fail_core(NULL);
    goto done;
  }
  if (mt_save(result, outputs_path)) {
    rc = fail_core(NULL); /* names the file */
    goto done;
  }
  rc = EXIT_SUCCESS;
done:
  mt_value_free(result);
  if (outs)
    for (int i = 0; i < nout; i++) mt_tensor_release(outs[i]);
  free(outs);
  free(ins); /* borrowed from `inputs` */
  mt_value_free(inputs);
  mt_graph_free(g);
  return rc;
}
