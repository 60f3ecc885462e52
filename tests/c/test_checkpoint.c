/* test_checkpoint.c — mt_save / mt_load / mt_serialize / mt_deserialize: round trips of every
 * value kind and dtype (files, memory, mmap), mapped tensors, files written by the real PyTorch
 * and files it reads back (when /usr/bin/python3 has torch), broken and hostile checkpoints,
 * and saves that are killed, run out of room or cannot be written. */
#define _GNU_SOURCE /* memmem */
#include "mt_internal.h"
#include "mt_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

static char dir[] = "/tmp/mt_ckpt_XXXXXX";
static bool have_torch;

#include "mt_test_io.h"

static mt_value *S(const char *s) { return mt_value_str(s, strlen(s)); }
static void set(mt_value *d, const char *k, mt_value *v) { if (mt_value_dict_set(d, S(k), v)) abort(); }
static void add(mt_value *l, mt_value *v) { if (mt_value_append(l, v)) abort(); }
static mt_value *get(const mt_value *d, const char *k) {
  mt_value *v = d && d->kind == MT_VAL_DICT ? mt_value_dict_get(d, k) : NULL;
  if (!v) fprintf(stderr, "missing key '%s'\n", k);
  return v;
}
static mt_tensor *T(const mt_value *d, const char *k) {
  mt_value *v = get(d, k);
  return v && v->kind == MT_VAL_TENSOR ? v->u.tensor : NULL;
}

/* ---- a tree with every kind of value ------------------------------------------------------ */

/* The value at flat index i of the dtype tensors (the Python checker uses the same rule). */
static mt_scalar pattern(mt_dtype dt, int64_t i) {
  if (dt == MT_BOOL) return mt_scalar_bool(i % 2);
  if (dt == MT_UINT8) return mt_scalar_int(i * 40);
  if (mt_dtype_is_float(dt)) return mt_scalar_float((double)i * 0.5 - 1);
  return mt_scalar_int(i * 3 - 5);
}

static mt_tensor *pattern_tensor(mt_dtype dt, int ndim, const int64_t *sizes) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) abort();
  for (int64_t i = 0; i < mt_numel(t); i++)
    if (mt_set_flat(t, i, pattern(dt, i))) abort();
  return t;
}

static const int64_t test_ints[] = {0, 1, -1, 255, 256, 65535, 65536, -2147483647 - 1, 2147483647, 2147483648,
                                    INT64_MIN, INT64_MAX};

/* With floats outside tensors and bytes only when `floats`: PyTorch 1.13's weights_only reader
 * has no BINFLOAT and refuses _codecs.encode. */
static mt_value *make_tree(bool floats) {
  mt_value *d = mt_value_dict(true);
  set(d, "none", mt_value_none());
  set(d, "t", mt_value_bool(true));
  set(d, "f", mt_value_bool(false));
  mt_value *ints = mt_value_list();
  for (size_t i = 0; i < sizeof test_ints / sizeof test_ints[0]; i++) add(ints, mt_value_int(test_ints[i]));
  set(d, "ints", ints);
  if (floats) {
    mt_value *fl = mt_value_list();
    const double f[] = {1.0, -0.0, 0.1, 1e300, INFINITY, -INFINITY, NAN};
    for (int i = 0; i < 7; i++) add(fl, mt_value_float(f[i]));
    set(d, "floats", fl);
  }
  set(d, "str", S("h\xc3\xa9llo \xe2\x9c\x93"));
  if (floats) set(d, "bytes", mt_value_bytes("\xff\0abc", 5)); /* _codecs.encode: also not there */
  mt_value *tup = mt_value_tuple(), *inner = mt_value_tuple();
  add(tup, mt_value_int(1));
  add(tup, S("two"));
  add(inner, mt_value_int(3));
  add(tup, inner);
  set(d, "tuple", tup);
  mt_value *plain = mt_value_dict(false);
  set(plain, "a", mt_value_int(1));
  if (mt_value_dict_set(plain, mt_value_int(2), S("b"))) abort();
  set(d, "dict", plain);
  set(d, "empty_list", mt_value_list());
  mt_value *ts = mt_value_dict(false);
  int64_t six = 6;
  for (int dt = 0; dt < MT_NUM_DTYPES; dt++) {
    mt_tensor *t = pattern_tensor((mt_dtype)dt, 1, &six);
    set(ts, mt_dtype_name((mt_dtype)dt), mt_value_tensor(t));
    mt_tensor_release(t);
  }
  set(d, "tensors", ts);
  mt_tensor *t, *w, *v;
  if (mt_scalar_tensor(&t, MT_FLOAT32, mt_scalar_float(3.5))) abort();
  set(d, "scalar", mt_value_tensor(t));
  mt_tensor_release(t);
  int64_t e[2] = {0, 3}, ws[2] = {4, 3};
  if (mt_empty(&t, MT_FLOAT32, 2, e)) abort();
  set(d, "empty", mt_value_tensor(t));
  mt_tensor_release(t);
  if (mt_arange(&t, MT_FLOAT32, 0, 12, 1) || mt_view(&w, t, 2, ws)) abort();
  mt_tensor_release(t);
  set(d, "w", mt_value_tensor(w));
  if (mt_transpose(&v, w, 0, 1)) abort();
  set(d, "wt", mt_value_tensor(v));
  mt_tensor_release(v);
  if (mt_select(&v, w, 0, 2)) abort();
  set(d, "row", mt_value_tensor(v));
  mt_tensor_release(v);
  if (mt_narrow(&v, w, 1, 1, 2)) abort();
  set(d, "nar", mt_value_tensor(v));
  mt_tensor_release(v);
  set(d, "w_again", mt_value_tensor(w)); /* the same tensor twice: tied weights */
  mt_tensor_release(w);
  return d;
}

static bool tensor_equal(const mt_tensor *a, const mt_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++)
    if (a->sizes[i] != b->sizes[i]) return false;
  size_t es = mt_dtype_size(a->dtype);
  for (int64_t i = 0; i < mt_numel(a); i++)
    if (memcmp(mt_elem_ptr(a, i), mt_elem_ptr(b, i), es) != 0) return false;
  return true;
}

static bool value_equal(const mt_value *a, const mt_value *b) {
  if (a->kind != b->kind) return false;
  switch (a->kind) {
  case MT_VAL_NONE: return true;
  case MT_VAL_BOOL: return a->u.b == b->u.b;
  case MT_VAL_INT: return a->u.i == b->u.i;
  case MT_VAL_FLOAT: return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
  case MT_VAL_STR:
  case MT_VAL_BYTES: return a->u.str.len == b->u.str.len && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
  case MT_VAL_LIST:
  case MT_VAL_TUPLE:
    if (a->u.seq.len != b->u.seq.len) return false;
    for (size_t i = 0; i < a->u.seq.len; i++)
      if (!value_equal(a->u.seq.items[i], b->u.seq.items[i])) return false;
    return true;
  case MT_VAL_DICT:
    if (a->u.dict.len != b->u.dict.len || a->u.dict.ordered != b->u.dict.ordered) return false;
    for (size_t i = 0; i < a->u.dict.len; i++)
      if (!value_equal(a->u.dict.keys[i], b->u.dict.keys[i]) || !value_equal(a->u.dict.vals[i], b->u.dict.vals[i]))
        return false;
    return true;
  case MT_VAL_TENSOR: return tensor_equal(a->u.tensor, b->u.tensor);
  }
  return false;
}

/* Views of one storage come back sharing one storage, the same tensor as the same tensor. */
static bool sharing_kept(const mt_value *d) {
  mt_tensor *w = T(d, "w");
  return w && T(d, "wt") && T(d, "row") && T(d, "nar") && T(d, "wt")->storage == w->storage &&
         T(d, "row")->storage == w->storage && T(d, "nar")->storage == w->storage && T(d, "row")->offset == 6 &&
         T(d, "nar")->offset == 1 && T(d, "w_again") == w && mt_storage_nbytes(w->storage) == 48;
}

/* Whether p lies in a mapping of `path` (from /proc/self/maps). */
static bool in_mapping_of(const void *p, const char *path) {
  char real[512], line[1024];
  if (!realpath(path, real)) return false;
  FILE *f = fopen("/proc/self/maps", "r");
  bool found = false;
  while (f && !found && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char *name = strchr(line, '/');
    if (!name || sscanf(line, "%lx-%lx", &lo, &hi) != 2) continue;
    name[strcspn(name, "\n")] = '\0';
    found = strcmp(name, real) == 0 && (uintptr_t)p >= lo && (uintptr_t)p < hi;
  }
  if (f) fclose(f);
  return found;
}

static void test_round_trips(void) {
  mt_value *d = make_tree(true), *back = NULL;
  PATH(p, "tree.pt");
  OK(mt_save(d, p));
  OK(mt_load(&back, p, NULL));
  CHECK(back && value_equal(d, back) && sharing_kept(back));
  mt_value_free(back);
  back = NULL;
  mt_load_opts mm = {.mmap = true};
  OK(mt_load(&back, p, &mm));
  CHECK(back && value_equal(d, back) && sharing_kept(back));
  CHECK(back && in_mapping_of(mt_data(T(back, "w")), p));
  mt_value_free(back);
  back = NULL;
  void *mem;
  size_t len, flen;
  OK(mt_serialize(d, &mem, &len));
  uint8_t *file = slurp(p, &flen);
  CHECK(flen == len && memcmp(file, mem, len) == 0); /* one format, byte for byte */
  OK(mt_deserialize(&back, mem, len));
  CHECK(back && value_equal(d, back) && sharing_kept(back));
  mt_value_free(back);
  /* a bare tensor, a bare list, an empty dict, a huge-ish tensor */
  mt_value *small[4] = {mt_value_tensor(T(d, "scalar")), mt_value_list(), mt_value_dict(false), NULL};
  int64_t big = 3 << 20;
  mt_tensor *bt = pattern_tensor(MT_FLOAT64, 1, &big);
  small[3] = mt_value_tensor(bt);
  mt_tensor_release(bt);
  for (int i = 0; i < 4; i++) {
    back = NULL;
    OK(mt_save(small[i], p));
    OK(mt_load(&back, p, NULL));
    CHECK(back && value_equal(small[i], back));
    mt_value_free(back);
    mt_value_free(small[i]);
  }
  free(mem);
  free(file);
  mt_value_free(d);
}

/* ---- mmap --------------------------------------------------------------------------------- */

/* Rewrites a checkpoint with libzip: every record deflated, or stored without any padding. */
static void rewrite_with_libzip(const char *from, const char *to, bool deflate) {
  size_t len;
  uint8_t *src = slurp(from, &len);
  int err;
  zip_t *in = zip_open(from, ZIP_RDONLY, &err), *out = zip_open(to, ZIP_CREATE | ZIP_TRUNCATE, &err);
  zip_int64_t n = zip_get_num_entries(in, 0);
  void **bufs = calloc((size_t)n, sizeof *bufs);
  for (zip_int64_t i = 0; i < n; i++) {
    zip_stat_t st;
    zip_stat_index(in, (zip_uint64_t)i, 0, &st);
    bufs[i] = malloc(st.size + 1);
    zip_file_t *f = zip_fopen_index(in, (zip_uint64_t)i, 0);
    if (zip_fread(f, bufs[i], st.size) != (zip_int64_t)st.size) abort();
    zip_fclose(f);
    zip_int64_t idx = zip_file_add(out, st.name, zip_source_buffer(out, bufs[i], st.size, 0), 0);
    zip_set_file_compression(out, (zip_uint64_t)idx, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  if (zip_close(out) < 0) abort();
  zip_discard(in);
  for (zip_int64_t i = 0; i < n; i++) free(bufs[i]);
  free(bufs);
  free(src);
}

static void test_mmap(void) {
  mt_value *d = make_tree(false), *back = NULL;
  PATH(p, "m.pt");
  OK(mt_save(d, p));
  size_t len0, len1;
  uint8_t *before = slurp(p, &len0);
  mt_load_opts mm = {.mmap = true};
  OK(mt_load(&back, p, &mm));
  mt_tensor *w = back ? T(back, "w") : NULL, *f64 = back ? T(get(back, "tensors"), "float64") : NULL;
  CHECK(w && f64 && in_mapping_of(mt_data(w), p) && in_mapping_of(mt_data(f64), p));
  if (!w || !f64) return;
  CHECK(in_mapping_of(mt_data(T(back, "wt")), p) && T(back, "wt")->storage == w->storage);
  /* writes land in private pages, not in the file */
  OK(mt_set_flat(w, 0, mt_scalar_float(42)));
  mt_scalar s;
  OK(mt_get_flat(T(back, "wt"), 0, &s));
  CHECK(s.f == 42);
  uint8_t *after = slurp(p, &len1);
  CHECK(len0 == len1 && memcmp(before, after, len0) == 0);
  free(after);
  /* the mapping outlives the value tree while a tensor lives */
  mt_tensor_retain(f64);
  mt_value_free(back);
  CHECK(in_mapping_of(mt_data(f64), p));
  OK(mt_get_flat(f64, 5, &s));
  CHECK(s.f == 1.5);
  const void *addr = mt_data(f64);
  mt_tensor_release(f64);
  CHECK(!in_mapping_of(addr, p)); /* and goes with the last one */
  /* saving over a mapped file replaces it by rename: the mapped tensors keep their data */
  back = NULL;
  OK(mt_load(&back, p, &mm));
  mt_value *other = make_tree(true);
  OK(mt_save(other, p));
  CHECK(back && value_equal(back, d));
  mt_value_free(other);
  mt_value_free(back);

  /* deflated records are inflated into ordinary storages */
  OK(mt_save(d, p));
  rewrite_with_libzip(p, path_in("deflated.pt"), true);
  back = NULL;
  OK(mt_load(&back, path_in("deflated.pt"), &mm));
  CHECK(back && value_equal(back, d) && sharing_kept(back) && !in_mapping_of(mt_data(T(back, "w")), path_in("deflated.pt")));
  mt_value_free(back);
  /* stored but unpadded: records aligned to their element size are mapped, others copied */
  PATH(un, "unaligned.pt");
  rewrite_with_libzip(p, un, false);
  back = NULL;
  OK(mt_load(&back, un, &mm));
  CHECK(back && value_equal(back, d) && sharing_kept(back));
  int mapped = 0, copied = 0, wrong = 0;
  mt_value *ts = back ? get(back, "tensors") : NULL;
  for (size_t i = 0; ts && i < ts->u.dict.len; i++) {
    mt_tensor *t = ts->u.dict.vals[i]->u.tensor;
    bool aligned = (uintptr_t)mt_data(t) % mt_dtype_size(t->dtype) == 0, m = in_mapping_of(mt_data(t), un);
    mapped += m, copied += !m, wrong += !aligned;
  }
  CHECK(mapped > 0 && copied > 0 && wrong == 0);
  mt_value_free(back);
  free(before);
  mt_value_free(d);
}

/* ---- the real PyTorch ------------------------------------------------------------------- */

static const char *py_check_ours =
    "import torch, collections, math, sys\n"
    "path, wo = sys.argv[1], sys.argv[2] == '1'\n"
    "d = torch.load(path, weights_only=wo)\n"
    "assert type(d) is collections.OrderedDict, type(d)\n"
    "assert d['none'] is None and d['t'] is True and d['f'] is False\n"
    "assert d['ints'] == [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, -2**63, 2**63 - 1]\n"
    "if not wo:\n"
    "    f = d['floats']\n"
    "    assert f[:4] == [1.0, -0.0, 0.1, 1e300] and math.copysign(1, f[1]) < 0, f\n"
    "    assert f[4] == math.inf and f[5] == -math.inf and math.isnan(f[6])\n"
    "assert d['str'] == 'h\\u00e9llo \\u2713' and (wo or d['bytes'] == b'\\xff\\x00abc')\n"
    "assert d['tuple'] == (1, 'two', (3,)) and d['dict'] == {'a': 1, 2: 'b'} and d['empty_list'] == []\n"
    "names = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']\n"
    "for n in names:\n"
    "    t, dt = d['tensors'][n], getattr(torch, n)\n"
    "    i = torch.arange(6)\n"
    "    want = i % 2 if n == 'bool' else i * 40 if n == 'uint8' else i * 0.5 - 1 if dt.is_floating_point else i * 3 - 5\n"
    "    assert t.dtype == dt and t.shape == (6,) and torch.equal(t, want.to(dt)), (n, t)\n"
    "assert d['scalar'].shape == () and d['scalar'].item() == 3.5\n"
    "assert d['empty'].shape == (0, 3) and d['empty'].dtype == torch.float32\n"
    "w = d['w']\n"
    "assert torch.equal(w, torch.arange(12.).reshape(4, 3)) and d['w_again'] is w\n"
    "for k in ['wt', 'row', 'nar']:\n"
    "    assert d[k].storage().data_ptr() == w.storage().data_ptr(), k\n"
    "assert torch.equal(d['wt'], w.t()) and torch.equal(d['row'], w[2]) and torch.equal(d['nar'], w[:, 1:3])\n"
    "assert d['row'].storage_offset() == 6 and d['nar'].stride() == (3, 1)\n";

static const char *py_write_files =
    "import torch, torch.nn as nn, collections, copy, sys, torch.serialization as ser\n"
    "out = sys.argv[1]\n"
    "torch.manual_seed(0)\n"
    "net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 2))\n"
    "with torch.no_grad():\n"
    "    for t in net.state_dict().values():\n"
    "        if t.is_floating_point(): t.copy_(torch.arange(t.numel()).reshape(t.shape) * 0.25)\n"
    "        else: t.fill_(7)\n"
    "sd = copy.deepcopy(net.state_dict())  # the weights before the step below\n"
    "torch.save(sd, out + '/sd.pt')\n"
    "opt = torch.optim.Adam(net.parameters(), lr=0.001)\n"
    "net(torch.ones(1, 1, 4, 4)).sum().backward()\n"
    "opt.step()\n"
    "torch.save({'epoch': 5, 'model_state_dict': sd, 'optimizer_state_dict': opt.state_dict(), 'loss': 0.31},\n"
    "           out + '/ckpt.pt')\n"
    "names = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']\n"
    "d = collections.OrderedDict()\n"
    "for n in names:\n"
    "    i, dt = torch.arange(6), getattr(torch, n)\n"
    "    d[n] = (i % 2 if n == 'bool' else i * 40 if n == 'uint8' else i * 0.5 - 1 if dt.is_floating_point else i * 3 - 5).to(dt)\n"
    "w = torch.arange(12.).reshape(4, 3)\n"
    "d['w'], d['wt'], d['row'], d['nar'] = w, w.t(), w[2], w[:, 1:3]\n"
    "torch.save(d, out + '/dtypes.pt')\n"
    "ser.location_tag = lambda storage: 'cuda:0'\n"
    "torch.save(d, out + '/cuda.pt')\n";

static int run_python(const char *script, const char *arg1, const char *arg2) {
  PATH(sp, "script.py");
  spit(sp, script, strlen(script));
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s", sp, arg1, arg2 ? arg2 : "");
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static double at(const mt_tensor *t, int64_t i) {
  mt_scalar s;
  if (!t || mt_get_flat(t, i, &s)) return NAN;
  return mt_scalar_to_f64(s);
}

static void check_pytorch_dtypes(const mt_value *d, const char *path, bool mmap) {
  CHECK(d && d->kind == MT_VAL_DICT && d->u.dict.ordered && d->u.dict.len == 14);
  if (!d || d->kind != MT_VAL_DICT) return;
  int bad = 0;
  for (int dt = 0; dt < MT_NUM_DTYPES; dt++) {
    mt_tensor *t = T(d, mt_dtype_name((mt_dtype)dt));
    if (!t || t->dtype != (mt_dtype)dt || t->ndim != 1 || t->sizes[0] != 6) {
      bad++;
      continue;
    }
    for (int64_t i = 0; i < 6; i++) bad += at(t, i) != mt_scalar_to_f64(pattern((mt_dtype)dt, i));
    if (mmap) bad += !in_mapping_of(mt_data(t), path);
  }
  CHECK(bad == 0);
  CHECK(T(d, "wt") && T(d, "w") && T(d, "wt")->storage == T(d, "w")->storage &&
        T(d, "nar")->offset == 1 && T(d, "row")->offset == 6 && at(T(d, "wt"), 1) == 3 && at(T(d, "nar"), 3) == 5);
}

static void test_pytorch(void) {
  if (!have_torch) {
    fprintf(stderr, "test_checkpoint: /usr/bin/python3 has no torch: PyTorch checks skipped\n");
    return;
  }
  /* ours, read by PyTorch: with weights_only (no floats outside tensors: 1.13 lacks them
   * there), and everything with the plain loader */
  mt_value *d = make_tree(false);
  OK(mt_save(d, path_in("ours.pt")));
  CHECK(run_python(py_check_ours, path_in("ours.pt"), "1") == 0);
  mt_value_free(d);
  d = make_tree(true);
  OK(mt_save(d, path_in("ours_floats.pt")));
  CHECK(run_python(py_check_ours, path_in("ours_floats.pt"), "0") == 0);
  mt_value_free(d);

  /* PyTorch's, read by us */
  CHECK(run_python(py_write_files, dir, NULL) == 0);
  mt_load_opts mm = {.mmap = true};
  for (int m = 0; m < 2; m++) {
    mt_value *v = NULL;
    OK(mt_load(&v, path_in("dtypes.pt"), m ? &mm : NULL));
    check_pytorch_dtypes(v, path_in("dtypes.pt"), m);
    mt_value_free(v);
    v = NULL;
    OK(mt_load(&v, path_in("cuda.pt"), m ? &mm : NULL));
    check_pytorch_dtypes(v, path_in("cuda.pt"), m);
    mt_value_free(v);
  }
  size_t n;
  uint8_t *raw = slurp(path_in("cuda.pt"), &n);
  CHECK(raw && memmem(raw, n, "cuda:0", 6) != NULL); /* the file really says so */
  free(raw);

  mt_value *sd = NULL;
  OK(mt_load(&sd, path_in("sd.pt"), NULL));
  static const char *const keys[] = {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                     "1.num_batches_tracked", "3.weight", "3.bias"};
  CHECK(sd && sd->kind == MT_VAL_DICT && sd->u.dict.ordered && sd->u.dict.len == 9);
  for (size_t i = 0; sd && sd->kind == MT_VAL_DICT && i < 9 && i < sd->u.dict.len; i++) {
    const mt_value *k = sd->u.dict.keys[i];
    CHECK(k->kind == MT_VAL_STR && strcmp(k->u.str.ptr, keys[i]) == 0);
  }
  mt_tensor *cw = T(sd, "0.weight"), *nbt = T(sd, "1.num_batches_tracked"), *lw = T(sd, "3.weight");
  CHECK(cw && cw->ndim == 4 && cw->sizes[0] == 2 && cw->sizes[1] == 1 && cw->sizes[2] == 3 && at(cw, 17) == 17 * 0.25);
  CHECK(nbt && nbt->dtype == MT_INT64 && nbt->ndim == 0 && at(nbt, 0) == 7);
  CHECK(lw && lw->sizes[0] == 2 && lw->sizes[1] == 8 && at(lw, 15) == 15 * 0.25);

  mt_value *ck = NULL;
  OK(mt_load(&ck, path_in("ckpt.pt"), NULL));
  mt_value *epoch = get(ck, "epoch"), *loss = get(ck, "loss"), *opt = get(ck, "optimizer_state_dict");
  CHECK(epoch && epoch->kind == MT_VAL_INT && epoch->u.i == 5 && loss && loss->kind == MT_VAL_FLOAT && loss->u.f == 0.31);
  CHECK(ck && sd && value_equal(get(ck, "model_state_dict"), sd));
  mt_value *state = get(opt, "state"), *groups = get(opt, "param_groups");
  CHECK(state && state->kind == MT_VAL_DICT && state->u.dict.len == 6);
  if (state && state->kind == MT_VAL_DICT && state->u.dict.len == 6) {
    mt_value *s0 = state->u.dict.vals[0];
    CHECK(state->u.dict.keys[0]->kind == MT_VAL_INT && state->u.dict.keys[0]->u.i == 0);
    CHECK(T(s0, "step") && T(s0, "exp_avg") && T(s0, "exp_avg_sq"));
    CHECK(T(s0, "exp_avg") && T(s0, "exp_avg")->ndim == 4 && at(T(s0, "step"), 0) == 1);
  }
  mt_value *g0 = groups && groups->kind == MT_VAL_LIST && groups->u.seq.len == 1 ? groups->u.seq.items[0] : NULL;
  CHECK(g0 && get(g0, "lr") && get(g0, "lr")->u.f == 0.001 && get(g0, "params") && get(g0, "params")->u.seq.len == 6);
  mt_value_free(ck);
  mt_value_free(sd);
}

/* ---- broken and hostile checkpoints ----------------------------------------------------- */

/* A copy of a checkpoint in memory with one record left out or replaced (data NULL: left out). */
static void rebuild(const void *src, size_t len, const char *name, const void *data, size_t dlen, void **out,
                    size_t *olen) {
  mt_zip_reader *r;
  mt_zip_writer *w;
  if (mt_zip_reader_open_memory(&r, src, len, "src") || mt_zip_writer_new(&w, -1, "dst")) abort();
  static const char *const names[] = {"data.pkl", "byteorder", "data/0", "data/1", "version"};
  void *bufs[5] = {0};
  for (int i = 0; i < 5; i++) {
    const mt_zip_record *rec = mt_zip_find(r, names[i]);
    if (strcmp(names[i], name) == 0) {
      if (data && mt_zip_writer_add(w, names[i], data, dlen)) abort();
      continue;
    }
    if (!rec) continue;
    bufs[i] = malloc(rec->size + 1);
    if (mt_zip_read(r, rec, bufs[i]) || mt_zip_writer_add(w, names[i], bufs[i], rec->size)) abort();
  }
  if (mt_zip_writer_finish(w, out, olen)) abort();
  for (int i = 0; i < 5; i++) free(bufs[i]);
  mt_zip_reader_close(r);
}

static void test_bad_files(void) {
  mt_value *v = NULL;
  PATH(p, "bad.pt");
  FAILS(mt_load(&v, path_in("missing.pt"), NULL), MT_EIO, "missing.pt: cannot open: No such file or directory");
  spit(p, "", 0);
  FAILS(mt_load(&v, p, NULL), MT_EFORMAT, "bad.pt: empty (0 bytes), not a checkpoint");
  mt_load_opts mm = {.mmap = true};
  FAILS(mt_load(&v, p, &mm), MT_EFORMAT, "bad.pt: empty (0 bytes)");
  spit(p, "just some text, not a checkpoint", 32);
  FAILS(mt_load(&v, p, NULL), MT_EFORMAT, "bad.pt: not a zip archive");
  FAILS(mt_load(&v, dir, NULL), MT_EIO, "not a regular file");
  FAILS(mt_deserialize(&v, "", 0), MT_EFORMAT, "serialized data: empty");

  /* a small, complete checkpoint to break: two tensors of 6 float32 and 4 int64 */
  mt_value *d = mt_value_dict(true);
  int64_t six = 6, four = 4;
  mt_tensor *a = pattern_tensor(MT_FLOAT32, 1, &six), *b = pattern_tensor(MT_INT64, 1, &four);
  set(d, "a", mt_value_tensor(a));
  set(d, "b", mt_value_tensor(b));
  mt_tensor_release(a), mt_tensor_release(b);
  void *good, *z;
  size_t len, zl;
  OK(mt_serialize(d, &good, &len));
  OK(mt_save(d, path_in("good.pt")));
  mt_value_free(d);

  static const struct { const char *record; const char *data; size_t len; const char *needle; } cases[] = {
      {"data.pkl", NULL, 0, "bad.pt: no data.pkl record in folder 'archive': not a PyTorch checkpoint"},
      {"data/0", NULL, 0, "bad.pt: data/0: record is missing"},
      {"data/1", "0123456789012345678901234", 25, "bad.pt: data/1: record is 25 bytes, expected 32 (4 int64 elements)"},
      {"data/0", "", 0, "bad.pt: data/0: record is 0 bytes, expected 24"},
      {"data/0", "0123456789012345678901234567", 28, "bad.pt: data/0: record is 28 bytes, expected 24"},
      {"version", "9\n", 2, "bad.pt: version: format version '9' is not supported"},
      {"version", "three", 5, "format version 'three' is not supported"},
      {"version", NULL, 0, NULL}, /* optional */
      {"byteorder", "big", 3, "bad.pt: byteorder: big-endian checkpoints are not supported"},
      {"byteorder", "middle", 6, "bad.pt: byteorder: unknown byte order 'middle'"},
      {"byteorder", NULL, 0, NULL}, /* optional: little */
      {"data.pkl", "\x80\x02" "cos\nsystem\n" "X\x02\0\0\0ls\x85R.", 21,
       "bad.pt: data.pkl: offset 2: global 'os.system' is not allowed"},
      {"data.pkl", "\x80\x02" "cbuiltins\neval\n" "X\x01\0\0\0" "1\x85R.", 24, "global 'builtins.eval' is not allowed"},
      {"data.pkl", "\x80\x02}q\x00.", 6, NULL}, /* an empty dict and nothing else: fine */
      {"data.pkl", "", 0, "bad.pt: data.pkl: "},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rebuild(good, len, cases[i].record, cases[i].data, cases[i].len, &z, &zl);
    spit(p, z, zl);
    v = NULL;
    if (cases[i].needle) {
      FAILS(mt_load(&v, p, NULL), MT_EFORMAT, cases[i].needle);
      FAILS(mt_load(&v, p, &mm), MT_EFORMAT, cases[i].needle);
      FAILS(mt_deserialize(&v, z, zl), MT_EFORMAT, "serialized data: ");
    } else {
      OK(mt_load(&v, p, NULL));
      mt_value_free(v);
    }
    free(z);
  }

  /* truncated at every offset, through a file and through a mapping */
  size_t truncated_ok = 0;
  for (size_t cut = 0; cut < len; cut += 7) {
    spit(p, good, cut);
    mt_status s1 = mt_load(&v, p, NULL), s2 = mt_load(&v, p, &mm), s3 = mt_deserialize(&v, good, cut);
    truncated_ok += s1 != MT_EFORMAT || s2 != MT_EFORMAT || s3 != MT_EFORMAT;
  }
  CHECK(truncated_ok == 0);
  /* every bit flip: refused with a clear error or harmless; never a crash or a wrong tensor
   * (flips in data are caught by CRCs) */
  uint8_t *flipped = malloc(len);
  int refused = 0, accepted_wrong = 0, weird = 0, total = 0;
  mt_value *ref = NULL;
  OK(mt_deserialize(&ref, good, len));
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(flipped, good, len);
      flipped[i] ^= (uint8_t)(1u << bit);
      v = NULL;
      mt_status st = mt_deserialize(&v, flipped, len);
      total++;
      if (st == MT_OK) {
        accepted_wrong += !value_equal(v, ref);
        mt_value_free(v);
      } else {
        refused++;
        if (st != MT_EFORMAT || strncmp(mt_last_error(), "serialized data: ", 17) != 0)
          if (weird++ < 5) fprintf(stderr, "flip %zu.%d: %s: %s\n", i, bit, mt_status_name(st), mt_last_error());
      }
    }
  }
  CHECK(weird == 0 && accepted_wrong == 0 && refused > total / 2);
  fprintf(stderr, "checkpoint bit flips: %d of %d refused, the rest harmless\n", refused, total);
  mt_value_free(ref);
  free(flipped);
  free(good);
}

/* ---- saves that are killed or fail ------------------------------------------------------ */

/* A checkpoint whose every element is its generation: a torn or mixed file cannot pass. */
static mt_value *generation(int g, int64_t n) {
  mt_tensor *t;
  if (mt_full(&t, MT_INT32, 1, &n, mt_scalar_int(g))) abort();
  mt_value *d = mt_value_dict(true);
  set(d, "gen", mt_value_int(g));
  set(d, "data", mt_value_tensor(t));
  mt_tensor_release(t);
  return d;
}

static int loaded_generation(const char *path, int64_t n) {
  mt_value *v = NULL;
  if (mt_load(&v, path, NULL) != MT_OK) return -1;
  mt_value *g = get(v, "gen");
  mt_tensor *t = T(v, "data");
  int gen = g && g->kind == MT_VAL_INT && t && mt_numel(t) == n ? (int)g->u.i : -1;
  const int32_t *x = t ? mt_data(t) : NULL;
  for (int64_t i = 0; gen >= 0 && i < n; i++)
    if (x[i] != gen) gen = -1;
  mt_value_free(v);
  return gen;
}

static void test_kills(void) {
  PATH(p, "k.pt");
  PATH(tmp, ".k.pt.tmp");
  const int64_t n = 4 << 20; /* 16 MB */
  mt_value *g0 = generation(0, n);
  OK(mt_save(g0, p));
  mt_value_free(g0);
  srand(777);
  int bad = 0, last = 0, torn_tmp = 0;
  for (int round = 1; round <= 15; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      for (int g = round * 100;; g++) {
        mt_value *v = generation(g, n);
        if (mt_save(v, p) != MT_OK) _exit(1);
        mt_value_free(v);
      }
    }
    usleep((useconds_t)(rand() % 60000));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int gen = loaded_generation(p, n);
    if (gen < last) bad++, fprintf(stderr, "round %d: generation %d after %d\n", round, gen, last);
    last = gen;
    torn_tmp += access(tmp, F_OK) == 0;
  }
  CHECK(bad == 0 && torn_tmp > 0);
  mt_value *v = generation(1, 10);
  OK(mt_save(v, p));
  CHECK(loaded_generation(p, 10) == 1 && access(tmp, F_OK) != 0);
  mt_value_free(v);
}

/* Out of room: `ulimit -f` (any user), and a full or read-only tmpfs (root only). */
static void test_failed_saves(void) {
  PATH(p, "f.pt");
  mt_value *old = generation(5, 1000), *big = generation(6, 1 << 20);
  OK(mt_save(old, p));
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit rl = {1 << 20, 1 << 20};
    setrlimit(RLIMIT_FSIZE, &rl);
    mt_status st = mt_save(big, p);
    _exit(st == MT_EIO && strstr(mt_last_error(), "f.pt: cannot write: File too large") ? 0 : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(loaded_generation(p, 1000) == 5 && access(path_in(".f.pt.tmp"), F_OK) != 0);

  FAILS(mt_save(old, "/nonexistent-mt-dir/f.pt"), MT_EIO, "/nonexistent-mt-dir/f.pt: cannot create the temporary file");
  PATH(mnt, "mnt");
  mkdir(mnt, 0755);
  if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k") == 0) {
    char fp[600];
    snprintf(fp, sizeof fp, "%s/f.pt", mnt);
    OK(mt_save(old, fp));
    FAILS(mt_save(big, fp), MT_EIO, "f.pt: cannot write: No space left on device");
    CHECK(loaded_generation(fp, 1000) == 5);
    snprintf(fp, sizeof fp, "%s/.f.pt.tmp", mnt);
    CHECK(access(fp, F_OK) != 0);
    OK(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT | MS_RDONLY, "size=256k"));
    snprintf(fp, sizeof fp, "%s/f.pt", mnt);
    FAILS(mt_save(old, fp), MT_EIO, "Read-only file system");
    CHECK(loaded_generation(fp, 1000) == 5);
    umount2(mnt, MNT_DETACH);
  } else {
    fprintf(stderr, "test_checkpoint: cannot mount a tmpfs (%s): full-disk checks skipped\n", strerror(errno));
  }
  rmdir(mnt);
  mt_value_free(old);
  mt_value_free(big);
}

static void remove_all(void) {
  DIR *d = opendir(dir);
  for (struct dirent *e; d && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(path_in(e->d_name));
  if (d) closedir(d);
  rmdir(dir);
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  have_torch = system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") == 0;
  test_round_trips();
  test_mmap();
  test_pytorch();
  test_bad_files();
  test_kills();
  test_failed_saves();
  remove_all();
  return mt_test_finish("checkpoint");
}
