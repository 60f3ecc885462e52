/* test_safetensors.c — safetensors files: the reference writer's exact bytes, round trips of
 * every dtype (0-dim, empty, views, shared storages), mmap loading, metadata, and a table of
 * broken files that must each fail with a clear message, read and mapped alike. */
#include "mt_test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Literals for shapes and values. */
#define SIZES(...) (int64_t[]){__VA_ARGS__}
#define VALUES(...) (mt_scalar[]){__VA_ARGS__}
#define I(v) mt_scalar_int(v)
#define F(v) mt_scalar_float(v)
#define B(v) mt_scalar_bool(v)

static char dir[64];

static const char *tmp_path(const char *name) {
  static char buf[320];
  snprintf(buf, sizeof buf, "%.63s/%.200s", dir, name);
  return buf;
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) abort();
}

static uint8_t *read_bytes(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *p = malloc(*n + 1);
  if (!p || fread(p, 1, *n, f) != *n) abort();
  fclose(f);
  return p;
}

static bool contains(const uint8_t *p, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (!memcmp(p + i, needle, k)) return true;
  return false;
}

/* A file from a header text (length prefix = `declared`, or its real length when
 * UINT64_MAX) and `ndata` data bytes (`data`, or zeros when NULL). */
static void write_st(const char *path, const char *header, size_t hlen, uint64_t declared, const void *data,
                     size_t ndata) {
  uint64_t n = declared == UINT64_MAX ? hlen : declared;
  uint8_t *buf = calloc(1, 8 + hlen + ndata);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
  memcpy(buf + 8, header, hlen);
  if (data) memcpy(buf + 8 + hlen, data, ndata);
  write_bytes(path, buf, 8 + hlen + ndata);
  free(buf);
}

static mt_tensor *tensor_of(mt_dtype dt, int ndim, const int64_t *sizes, const mt_scalar *vals) {
  mt_tensor *t;
  if (mt_empty(&t, dt, ndim, sizes)) abort();
  for (int64_t i = 0; i < mt_numel(t); i++)
    if (mt_set_flat(t, i, vals[i])) abort();
  return t;
}

static mt_tensor *arange(mt_dtype dt, int ndim, const int64_t *sizes) {
  mt_tensor *a, *v, *c;
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= sizes[d];
  if (mt_arange(&a, MT_FLOAT64, 0, (double)n, 1) || mt_view(&v, a, ndim, sizes) || mt_to_dtype(&c, v, dt)) abort();
  mt_tensor_release(a);
  mt_tensor_release(v);
  return c;
}

/* Same dtype, shape and elements (bytewise, so -0.0 and NaN payloads count). */
static bool same_tensor(const mt_tensor *a, const mt_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->sizes[d] != b->sizes[d]) return false;
  mt_tensor *ca, *cb;
  if (mt_contiguous(&ca, a) || mt_contiguous(&cb, b)) abort();
  bool eq = !memcmp(mt_data(ca), mt_data(cb), (size_t)mt_numel(a) * mt_dtype_info(a->dtype)->size);
  mt_tensor_release(ca);
  mt_tensor_release(cb);
  return eq;
}

static void put(mt_value *d, const char *key, mt_value *v) {
  if (mt_value_dict_set(d, mt_value_str(key, strlen(key)), v)) abort();
}

static void put_tensor(mt_value *d, const char *key, mt_tensor *t) {
  put(d, key, mt_value_tensor(t));
  mt_tensor_release(t);
}

static const mt_tensor *get_tensor(const mt_value *d, const char *key) {
  const mt_value *v = mt_value_dict_get(d, key);
  return v && v->kind == MT_VAL_TENSOR ? v->u.tensor : NULL;
}

static const mt_load_opts read_opts = {false}, map_opts = {true};
static const mt_load_opts *const modes[] = {&read_opts, &map_opts};

/* ---- the reference writer's bytes --------------------------------------------------------- */

/* The expected bytes of the reference implementation's own serialization tests. */
static void test_reference_bytes(void) {
  static const uint8_t attn[] =
      "\x40\0\0\0\0\0\0\0{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}"
      "\0\0\0\0\0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\x40\0\0\xa0\x40";
  static const uint8_t empty[] = "\x08\0\0\0\0\0\0\0{}      ";
  static const uint8_t meta[] = "\x28\0\0\0\0\0\0\0{\"__metadata__\":{\"framework\":\"pt\"}}     ";
  const char *path = tmp_path("ref.safetensors");
  size_t n;
  uint8_t *got;

  mt_value *d = mt_value_dict(false);
  put_tensor(d, "attn.0", arange(MT_FLOAT32, 3, SIZES(1, 2, 3)));
  OK(mt_safetensors_save(d, NULL, path));
  got = read_bytes(path, &n);
  CHECK(got && n == sizeof attn - 1 && !memcmp(got, attn, n));
  free(got);
  mt_value_free(d);

  d = mt_value_dict(false);
  OK(mt_safetensors_save(d, NULL, path));
  got = read_bytes(path, &n);
  CHECK(got && n == sizeof empty - 1 && !memcmp(got, empty, n));
  free(got);

  mt_value *m = mt_value_dict(false);
  put(m, "framework", mt_value_str("pt", 2));
  OK(mt_safetensors_save(d, m, path));
  got = read_bytes(path, &n);
  CHECK(got && n == sizeof meta - 1 && !memcmp(got, meta, n));
  free(got);
  mt_value_free(d);
  mt_value_free(m);
  unlink(path);
}

/* Every dtype, a 0-dim and an empty tensor and metadata, as written by an independent writer
 * (Python: torch tensors' bytes, json.dumps, the reference's sort order and padding). */
static const char golden_header[] =
    "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"\xc3\xa9\\n\"},"
    "\"i64\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
    "\"f64\":{\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[16,48]},"
    "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[48,48]},"
    "\"f32\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]},"
    "\"i32\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[60,64]},"
    "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[64,68]},"
    "\"f16\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[68,72]},"
    "\"i16\":{\"dtype\":\"I16\",\"shape\":[2,1],\"data_offsets\":[72,76]},"
    "\"i8\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[76,79]},"
    "\"u8\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[79,81]},"
    "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[81,84]}} ";
static const uint8_t golden_data[] =
    "\x00\x00\x00\x00\x00\x00\x00\x80\xff\xff\xff\xff\xff\xff\xff\x7f"
    "\x00\x00\x00\x00\x00\x00\xf8\x3f\x00\x00\x00\x00\x00\x00\x02\xc0"
    "\x9c\x75\x00\x88\x3c\xe4\x37\x7e\x00\x00\x00\x00\x00\x00\x00\x80"
    "\xcd\xcc\xcc\x3d\x00\x00\x80\xbf\x00\x00\x80\x7f\xf9\xff\xff\xff"
    "\x80\x3f\x49\xc0\x00\x38\xff\xfb\x00\x80\xff\x7f\x80\x00\x7f\x00"
    "\xff\x01\x00\x01";

/* The tensors of the golden file, named as there, in its data order. */
static mt_value *golden_tensors(void) {
  mt_value *d = mt_value_dict(true);
  put_tensor(d, "i64", tensor_of(MT_INT64, 1, SIZES(2), VALUES(I(INT64_MIN), I(INT64_MAX))));
  put_tensor(d, "f64", tensor_of(MT_FLOAT64, 2, SIZES(2, 2), VALUES(F(1.5), F(-2.25), F(1e300), F(-0.0))));
  put_tensor(d, "empty", tensor_of(MT_FLOAT32, 2, SIZES(0, 3), NULL));
  put_tensor(d, "f32", tensor_of(MT_FLOAT32, 1, SIZES(3), VALUES(F(0.1), F(-1), F(INFINITY))));
  put_tensor(d, "i32", tensor_of(MT_INT32, 0, NULL, VALUES(I(-7))));
  put_tensor(d, "bf16", tensor_of(MT_BFLOAT16, 1, SIZES(2), VALUES(F(1), F(-3.140625))));
  put_tensor(d, "f16", tensor_of(MT_FLOAT16, 1, SIZES(2), VALUES(F(0.5), F(-65504))));
  put_tensor(d, "i16", tensor_of(MT_INT16, 2, SIZES(2, 1), VALUES(I(-32768), I(32767))));
  put_tensor(d, "i8", tensor_of(MT_INT8, 1, SIZES(3), VALUES(I(-128), I(0), I(127))));
  put_tensor(d, "u8", tensor_of(MT_UINT8, 1, SIZES(2), VALUES(I(0), I(255))));
  put_tensor(d, "bool", tensor_of(MT_BOOL, 1, SIZES(3), VALUES(B(true), B(false), B(true))));
  return d;
}

static mt_value *golden_metadata(void) {
  mt_value *m = mt_value_dict(false);
  put(m, "format", mt_value_str("pt", 2));
  put(m, "note", mt_value_str("\xc3\xa9\n", 3));
  return m;
}

static void test_golden(void) {
  const char *path = tmp_path("golden.safetensors");
  mt_value *want = golden_tensors(), *meta = golden_metadata();
  size_t hlen = sizeof golden_header - 1, dlen = sizeof golden_data - 1, n;
  CHECK(hlen % 8 == 0);

  /* writing: the same bytes, whatever order the dict is in */
  mt_value *shuffled = mt_value_dict(false);
  for (size_t i = want->u.dict.len; i-- > 0;)
    put(shuffled, want->u.dict.keys[i]->u.str.ptr, mt_value_tensor(want->u.dict.vals[i]->u.tensor));
  OK(mt_safetensors_save(shuffled, meta, path));
  uint8_t *got = read_bytes(path, &n);
  CHECK(got && n == 8 + hlen + dlen && got[0] == (uint8_t)hlen && got[1] == (uint8_t)(hlen >> 8) &&
        !memcmp(got + 8, golden_header, hlen) && !memcmp(got + 8 + hlen, golden_data, dlen));
  free(got);
  mt_value_free(shuffled);

  /* reading: the values, in data order, and the metadata in header order */
  write_st(path, golden_header, hlen, UINT64_MAX, golden_data, dlen);
  for (int m = 0; m < 2; m++) {
    mt_value *t = NULL, *md = NULL;
    OK(mt_safetensors_load(&t, &md, path, modes[m]));
    if (!t) continue;
    CHECK(t->kind == MT_VAL_DICT && t->u.dict.ordered && t->u.dict.len == want->u.dict.len);
    for (size_t i = 0; i < t->u.dict.len && i < want->u.dict.len; i++) {
      CHECK(!strcmp(t->u.dict.keys[i]->u.str.ptr, want->u.dict.keys[i]->u.str.ptr));
      const mt_value *got = t->u.dict.vals[i];
      CHECK(got->kind == MT_VAL_TENSOR && same_tensor(got->u.tensor, want->u.dict.vals[i]->u.tensor));
      CHECK(mt_is_contiguous(t->u.dict.vals[i]->u.tensor));
    }
    CHECK(md && md->kind == MT_VAL_DICT && md->u.dict.len == 2 && !strcmp(md->u.dict.keys[0]->u.str.ptr, "format") &&
          !strcmp(md->u.dict.vals[1]->u.str.ptr, "\xc3\xa9\n"));
    mt_value_free(t);
    mt_value_free(md);
  }
  mt_value_free(want);
  mt_value_free(meta);
  unlink(path);
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_round_trip(void) {
  static const mt_dtype dts[] = {MT_FLOAT32, MT_FLOAT64, MT_FLOAT16, MT_BFLOAT16, MT_INT64,
                                 MT_INT32,   MT_INT16,   MT_INT8,    MT_UINT8,    MT_BOOL};
  const char *path = tmp_path("rt.safetensors");
  mt_value *d = mt_value_dict(false);
  for (size_t i = 0; i < sizeof dts / sizeof dts[0]; i++) {
    char name[64];
    const char *dn = mt_dtype_info(dts[i])->name;
    snprintf(name, sizeof name, "%s.matrix", dn);
    put_tensor(d, name, arange(dts[i], 2, SIZES(3, 4)));
    snprintf(name, sizeof name, "%s.scalar", dn);
    put_tensor(d, name, arange(dts[i], 0, NULL));
    snprintf(name, sizeof name, "%s.empty", dn);
    put_tensor(d, name, arange(dts[i], 3, SIZES(2, 0, 5)));
  }
  /* views of one storage: each is written as its own contiguous bytes */
  mt_tensor *base = arange(MT_FLOAT32, 2, SIZES(4, 6)), *tr, *nar, *row, *ex;
  if (mt_transpose(&tr, base, 0, 1) || mt_narrow(&nar, tr, 1, 1, 2) || mt_select(&row, base, 0, 2) ||
      mt_expand(&ex, row, 2, SIZES(3, 6)))
    abort();
  put_tensor(d, "view.base", base);
  put_tensor(d, "view.transposed", tr);
  put_tensor(d, "view.narrowed", nar);
  put_tensor(d, "view.row", row);
  put_tensor(d, "view.expanded", ex);
  /* names JSON must escape, and UTF-8 */
  put_tensor(d, "q\"b\\s\n\x01 \xc3\xa9 \xf0\x9f\x98\x80", arange(MT_INT8, 1, SIZES(2)));

  OK(mt_safetensors_save(d, NULL, path));
  size_t n;
  uint8_t *file = read_bytes(path, &n);
  CHECK(file && contains(file, n, "\"q\\\"b\\\\s\\n\\u0001 \xc3\xa9 \xf0\x9f\x98\x80\":"));
  free(file);

  for (int m = 0; m < 2; m++) {
    mt_value *t = NULL, *md = (mt_value *)1;
    OK(mt_safetensors_load(&t, &md, path, modes[m]));
    if (!t) continue;
    CHECK(md == NULL);
    CHECK(t->u.dict.len == d->u.dict.len);
    for (size_t i = 0; i < d->u.dict.len; i++) {
      const mt_tensor *a = get_tensor(t, d->u.dict.keys[i]->u.str.ptr);
      CHECK(a && same_tensor(a, d->u.dict.vals[i]->u.tensor) && mt_is_contiguous(a));
    }
    /* loaded in data order: alignment descending, then name */
    if (t->u.dict.len == d->u.dict.len) {
      CHECK(!strcmp(t->u.dict.keys[0]->u.str.ptr, "int64.empty"));
      CHECK(!strcmp(t->u.dict.keys[t->u.dict.len - 1]->u.str.ptr, "bool.scalar"));
    }
    const mt_tensor *b = get_tensor(t, "view.base"), *r = get_tensor(t, "view.row");
    CHECK(b && r && b->storage != r->storage && mt_storage_nbytes(r->storage) == 6 * 4);
    mt_value_free(t);
  }
  mt_value_free(d);
  unlink(path);
}

/* Metadata: absent gives NULL, null too, {} an empty dict; values keep header order. */
static void test_metadata(void) {
  const char *path = tmp_path("meta.safetensors");
  static const struct { const char *header; int len; } rows[] = {
      {"{}", -1},
      {"{\"__metadata__\":null}", -1},
      {"{\"__metadata__\":{}}", 0},
      {"{\"__metadata__\":{\"z\":\"1\",\"a\":\"\\u00e9\\\"\"}}", 2},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    write_st(path, rows[i].header, strlen(rows[i].header), UINT64_MAX, NULL, 0);
    mt_value *t = NULL, *md = NULL;
    OK(mt_safetensors_load(&t, &md, path, NULL));
    CHECK(t && t->u.dict.len == 0);
    CHECK(rows[i].len < 0 ? md == NULL : md && (int)md->u.dict.len == rows[i].len);
    if (rows[i].len == 2 && md)
      CHECK(!strcmp(md->u.dict.keys[0]->u.str.ptr, "z") && !strcmp(md->u.dict.vals[1]->u.str.ptr, "\xc3\xa9\""));
    mt_value_free(t);
    mt_value_free(md);
    OK(mt_safetensors_load(&t, NULL, path, NULL)); /* metadata not wanted */
    mt_value_free(t);
  }
  unlink(path);
}

/* Offsets out of header order, empty tensors sharing an offset, a huge dim next to a zero. */
static void test_layouts(void) {
  const char *path = tmp_path("layout.safetensors");
  const char *h = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                  "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                  "\"y\":{\"dtype\":\"I64\",\"shape\":[0,9007199254740991],\"data_offsets\":[0,0]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1,2],\"data_offsets\":[0,2]}}";
  write_st(path, h, strlen(h), UINT64_MAX, "\x01\x02\x03\x04", 4);
  for (int m = 0; m < 2; m++) {
    mt_value *t = NULL;
    OK(mt_safetensors_load(&t, NULL, path, modes[m]));
    if (!t) continue;
    const char *order[] = {"z", "y", "a", "b"};
    CHECK(t->u.dict.len == 4);
    for (size_t i = 0; i < 4 && i < t->u.dict.len; i++) CHECK(!strcmp(t->u.dict.keys[i]->u.str.ptr, order[i]));
    const mt_tensor *y = get_tensor(t, "y"), *b = get_tensor(t, "b");
    CHECK(y && y->ndim == 2 && y->sizes[1] == 9007199254740991LL && mt_numel(y) == 0);
    CHECK(b && ((uint8_t *)mt_data(b))[0] == 3 && ((uint8_t *)mt_data(b))[1] == 4);
    mt_value_free(t);
  }
  unlink(path);
}

/* ---- mmap ------------------------------------------------------------------------------------ */

static void test_mmap(void) {
  const char *path = tmp_path("map.safetensors");
  mt_value *d = mt_value_dict(false);
  put_tensor(d, "w", arange(MT_FLOAT32, 2, SIZES(8, 8)));
  OK(mt_safetensors_save(d, NULL, path));
  size_t n0, n1;
  uint8_t *before = read_bytes(path, &n0);

  mt_value *t = NULL;
  OK(mt_safetensors_load(&t, NULL, path, &map_opts));
  mt_tensor *w = t ? (mt_tensor *)get_tensor(t, "w") : NULL;
  CHECK(w && same_tensor(w, d->u.dict.vals[0]->u.tensor));
  if (w) {
    mt_tensor_retain(w);
    mt_value_free(t); /* the tensor keeps the mapping alive */
    unlink(path);     /* and so does the mapping keep the data */
    OK(mt_set_flat(w, 5, mt_scalar_float(-1)));
    mt_scalar s;
    OK(mt_get_flat(w, 5, &s));
    CHECK(s.f == -1);
    OK(mt_get_flat(w, 63, &s));
    CHECK(s.f == 63);
    mt_tensor_release(w);
  }
  /* copy-on-write: a write to a mapped tensor never reaches the file */
  write_bytes(path, before, n0);
  OK(mt_safetensors_load(&t, NULL, path, &map_opts));
  if (t) OK(mt_fill_((mt_tensor *)get_tensor(t, "w"), mt_scalar_float(7)));
  mt_value_free(t);
  uint8_t *after = read_bytes(path, &n1);
  CHECK(after && n0 == n1 && !memcmp(before, after, n0));
  free(before);
  free(after);
  mt_value_free(d);

  /* an F32 tensor at a data offset of 3: mapped data would be misaligned, so it is copied */
  const char *h = "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                  "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]}}     ";
  CHECK((8 + strlen(h) + 3) % 4 != 0);
  write_st(path, h, strlen(h), UINT64_MAX, "\x07\x08\x09\x00\x00\xc0\x3f\x00\x00\x20\xc0", 11);
  for (int m = 0; m < 2; m++) {
    OK(mt_safetensors_load(&t, NULL, path, modes[m]));
    const mt_tensor *f = t ? get_tensor(t, "f") : NULL;
    CHECK(f && (uintptr_t)mt_data(f) % 4 == 0 && ((float *)mt_data(f))[0] == 1.5f && ((float *)mt_data(f))[1] == -2.5f);
    mt_value_free(t);
  }

  /* bool bytes other than 0 and 1 read as true (a C bool must hold 0 or 1) */
  h = "{\"b\":{\"dtype\":\"BOOL\",\"shape\":[5],\"data_offsets\":[0,5]}}";
  write_st(path, h, strlen(h), UINT64_MAX, "\x00\x01\x02\xff\x00", 5);
  for (int m = 0; m < 2; m++) {
    OK(mt_safetensors_load(&t, NULL, path, modes[m]));
    const mt_tensor *b = t ? get_tensor(t, "b") : NULL;
    CHECK(b && !memcmp(mt_data(b), "\x00\x01\x01\x01\x00", 5));
    mt_value_free(t);
  }
  unlink(path);
}

/* ---- broken files ----------------------------------------------------------------------------- */

#define ENTRY(name, dt, shape, offs) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const struct bad_file {
  const char *header;  /* header text, or the whole file when raw */
  size_t raw;          /* > 0: the file is the first raw - 1 bytes of `header`, nothing else */
  uint64_t declared;   /* header length written in the prefix; 0: the real one */
  size_t ndata;        /* zero bytes after the header */
  const char *needle;  /* expected in the message */
} bad_files[] = {
    {"", 1, 0, 0, "file is 0 bytes, too short for a safetensors header"},
    {"\x08\0\0\0\0", 6, 0, 0, "file is 5 bytes, too short"},
    {"{}", 0, 200000000, 0, "header length 200000000 exceeds 100000000"},
    {"{}", 0, UINT64_MAX - 1, 0, "header length 18446744073709551614 exceeds 100000000"},
    {"{}", 0, 100, 0, "header length 100 runs past the end of the file (10 bytes)"},
    {"{\"a\xff\":{}}", 0, 0, 0, "header is not valid UTF-8 (byte 3)"},
    {"{\"\xc0\xaf\":{}}", 0, 0, 0, "not valid UTF-8"},           /* overlong '/' */
    {"{\"\xed\xa0\x80\":{}}", 0, 0, 0, "not valid UTF-8"},       /* a surrogate */
    {"{\"a\": {", 0, 0, 0, "header is not valid JSON"},
    {"{\"a\":1,}", 0, 0, 0, "header is not valid JSON"},
    {"[1, 2]", 0, 0, 0, "header is not a JSON object"},
    {"\xef\xbb\xbf{}", 0, 0, 0, "header is not a JSON object"}, /* a BOM */
    {"", 0, 0, 0, "header is not a JSON object"},
    {"{} {}", 0, 0, 0, "header has data after its JSON object"},
    {"{}\x01", 0, 0, 0, "control character"},
    {"{\"a\x01\":{}}", 0, 0, 0, "control character in a string"},
    {"{\"a\\u0000b\":{}}", 0, 0, 0, "NUL character"},
    {"{\"a\":5}", 0, 0, 0, "tensor 'a': entry is not an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, 0, 4, "tensor 'a': missing 'data_offsets'"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 0, 4, "tensor 'a': missing 'dtype'"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "}", 0, 0, 4, NULL}, /* the control: valid */
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 0, 4,
     "tensor 'a': duplicate field 'dtype'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 0, 0, 4,
     "tensor 'a': unknown field 'extra'"},
    {"{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 0, 4, "tensor 'a': dtype is not a string"},
    {"{" ENTRY("a", "F32", "\"1\"", "[0,4]") "}", 0, 0, 4, "tensor 'a': shape is not an array"},
    {"{" ENTRY("a", "F32", "[\"1\"]", "[0,4]") "}", 0, 0, 4, "tensor 'a': shape entries must be non-negative integers"},
    {"{" ENTRY("a", "F32", "[1]", "[4]") "}", 0, 0, 4, "tensor 'a': data_offsets must be two non-negative integers"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4,8]") "}", 0, 0, 4, "data_offsets must be two"},
    {"{" ENTRY("a", "F32", "[1]", "{}") "}", 0, 0, 4, "data_offsets must be two"},
    {"{" ENTRY("a", "F32", "[1]", "[-4,0]") "}", 0, 0, 4, "header number '-4' is not a non-negative integer"},
    {"{" ENTRY("a", "F32", "[1]", "[0.0,4]") "}", 0, 0, 4, "header number '0.0' is not a non-negative integer"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4e0]") "}", 0, 0, 4, "header number '4e0'"},
    {"{" ENTRY("a", "F32", "[01]", "[0,4]") "}", 0, 0, 4, "header number '01'"},
    {"{" ENTRY("a", "F32", "[1]", "[0,18446744073709551620]") "}", 0, 0, 4, "below 2^53"},
    {"{" ENTRY("a", "F32", "[1]", "[8,4]") "}", 0, 0, 4, "tensor 'a': data_offsets [8, 4] end before they begin"},
    {"{" ENTRY("w", "F32", "[2,3]", "[0,12]") "}", 0, 0, 12,
     "tensor 'w': data_offsets [0, 12] hold 12 bytes, expected 24 for F32 [2, 3]"},
    {"{" ENTRY("w", "F32", "[4503599627370496,4503599627370496]", "[0,0]") "}", 0, 0, 0,
     "tensor 'w': shape [4503599627370496, 4503599627370496] overflows"},
    {"{" ENTRY("w", "I64", "[4503599627370496,512]", "[0,0]") "}", 0, 0, 0,
     "tensor 'w': I64 [4503599627370496, 512] overflows"},
    {"{" ENTRY("w", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 0, 0, 1, "shape has 9 dims, at most 8 are supported"},
    {"{" ENTRY("x", "F8_E4M3", "[1]", "[0,1]") "}", 0, 0, 1, "unsupported dtype 'F8_E4M3' for tensor 'x'"},
    {"{" ENTRY("x", "U16", "[1]", "[0,2]") "}", 0, 0, 2, "unsupported dtype 'U16' for tensor 'x'"},
    {"{" ENTRY("x", "F128", "[1]", "[0,16]") "}", 0, 0, 16, "unknown dtype 'F128' for tensor 'x'"},
    {"{" ENTRY("x", "f32", "[1]", "[0,4]") "}", 0, 0, 4, "unknown dtype 'f32'"},
    {"{" ENTRY("a", "F32", "[2]", "[0,8]") "," ENTRY("b", "F32", "[2]", "[4,12]") "}", 0, 0, 12,
     "tensors 'a' and 'b' overlap"},
    {"{" ENTRY("b", "F32", "[2]", "[0,8]") "," ENTRY("a", "F32", "[0]", "[4,4]") "}", 0, 0, 8,
     "tensors 'b' and 'a' overlap"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("b", "F32", "[1]", "[8,12]") "}", 0, 0, 12,
     "gap before tensor 'b'"},
    {"{" ENTRY("a", "F32", "[1]", "[4,8]") "}", 0, 0, 8, "gap before tensor 'a'"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("b", "F32", "[1]", "[0,4]") "}", 0, 0, 4,
     "tensors 'a' and 'b' overlap"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "}", 0, 0, 11, "file has 7 trailing bytes"},
    {"{}", 0, 0, 3, "file has 3 trailing bytes"},
    {"{" ENTRY("a", "F32", "[4]", "[0,16]") "}", 0, 0, 10,
     "file is truncated: the tensors need 16 data bytes, it holds 10"},
    {"{" ENTRY("a", "F32", "[1]", "[0,4]") "," ENTRY("a", "F32", "[1]", "[4,8]") "}", 0, 0, 8,
     "duplicate tensor name 'a'"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, 0, 0, "duplicate '__metadata__'"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, 0, 0, "duplicate metadata key 'k'"},
    {"{\"__metadata__\":{\"k\":1}}", 0, 0, 0, "metadata value for 'k' is not a string"},
    {"{\"__metadata__\":{\"k\":[\"v\"]}}", 0, 0, 0, "metadata value for 'k' is not a string"},
    {"{\"__metadata__\":[]}", 0, 0, 0, "'__metadata__' is not an object"},
};

static void check_fails(const char *path, const char *what, const char *needle) {
  size_t plen = strlen(path);
  for (int m = 0; m < 2; m++) {
    mt_value *t = (mt_value *)1, *md = (mt_value *)1;
    mt_status st = mt_safetensors_load(&t, &md, path, modes[m]);
    const char *msg = mt_last_error();
    bool ok = st == MT_EFORMAT && !strncmp(msg, path, plen) && !strncmp(msg + plen, ": ", 2) && strstr(msg, needle);
    CHECK(ok && t == (mt_value *)1 && md == (mt_value *)1); /* outputs untouched on failure */
    if (!ok)
      fprintf(stderr, "  %s (%s): got %s \"%s\", expected \"%s\"\n", what, m ? "mmap" : "read", mt_status_name(st),
              mt_last_error(), needle);
  }
}

static void test_bad_files(void) {
  const char *path = tmp_path("bad.safetensors");
  for (size_t i = 0; i < sizeof bad_files / sizeof bad_files[0]; i++) {
    const struct bad_file *b = &bad_files[i];
    if (b->raw) write_bytes(path, b->header, b->raw - 1);
    else write_st(path, b->header, strlen(b->header), b->declared ? b->declared : UINT64_MAX, NULL, b->ndata);
    if (b->needle) {
      check_fails(path, b->header, b->needle);
    } else {
      mt_value *t = NULL;
      OK(mt_safetensors_load(&t, NULL, path, NULL));
      mt_value_free(t);
    }
  }

  /* nesting past cJSON's limit, and more JSON values than the parse may hold */
  size_t depth = 5000, len = 0;
  char *h = malloc(2 * depth + 16);
  len += (size_t)sprintf(h, "{\"a\":");
  for (size_t i = 0; i < depth; i++) h[len++] = '[';
  for (size_t i = 0; i < depth; i++) h[len++] = ']';
  h[len++] = '}';
  write_st(path, h, len, UINT64_MAX, NULL, 0);
  check_fails(path, "deep nesting", "header is not valid JSON");
  free(h);
  size_t values = (1u << 21) + 1;
  h = malloc(2 * values + 16);
  len = (size_t)sprintf(h, "{\"a\":[");
  for (size_t i = 0; i < values; i++) h[len++] = '0', h[len++] = ',';
  h[len - 1] = ']';
  h[len++] = '}';
  write_st(path, h, len, UINT64_MAX, NULL, 0);
  check_fails(path, "many values", "header holds more than 2097152 JSON values");
  free(h);
  unlink(path);

  /* operating-system errors */
  for (int m = 0; m < 2; m++) {
    mt_value *t = NULL;
    FAILS(mt_safetensors_load(&t, NULL, tmp_path("missing.safetensors"), modes[m]), MT_EIO, "missing.safetensors");
  }
  for (int m = 0; m < 2; m++) {
    mt_value *t = NULL;
    FAILS(mt_safetensors_load(&t, NULL, dir, modes[m]), MT_EIO, "not a regular file");
  }
}

static void test_save_errors(void) {
  const char *path = tmp_path("err.safetensors");
  mt_value *d = mt_value_dict(false), *m = mt_value_dict(false), *l = mt_value_list();
  FAILS(mt_safetensors_save(l, NULL, path), MT_EARG, "err.safetensors: tensors must be a dict of name -> tensor");
  FAILS(mt_safetensors_save(NULL, NULL, path), MT_EARG, "tensors must be a dict");

  put_tensor(d, "ok", arange(MT_FLOAT32, 1, SIZES(2)));
  put(m, "k", mt_value_int(1));
  FAILS(mt_safetensors_save(d, m, path), MT_EARG, "metadata value for 'k' is not a UTF-8 string");
  FAILS(mt_safetensors_save(d, l, path), MT_EARG, "metadata must be a dict of str -> str");
  put(m, "k", mt_value_str("\xff", 1));
  FAILS(mt_safetensors_save(d, m, path), MT_EARG, "metadata value for 'k' is not a UTF-8 string");
  mt_value_free(m);
  m = mt_value_dict(false);
  if (mt_value_dict_set(m, mt_value_int(3), mt_value_str("v", 1))) abort();
  FAILS(mt_safetensors_save(d, m, path), MT_EARG, "metadata keys must be UTF-8 strings");

  put(d, "x", mt_value_int(1));
  FAILS(mt_safetensors_save(d, NULL, path), MT_EARG, "value of 'x' is not a tensor");
  mt_value_free(d);
  d = mt_value_dict(false);
  put_tensor(d, "__metadata__", arange(MT_FLOAT32, 1, SIZES(2)));
  FAILS(mt_safetensors_save(d, NULL, path), MT_EARG, "'__metadata__' is reserved");
  mt_value_free(d);
  static const struct { const char *p; size_t n; bool bytes; } names[] = {
      {"a\0b", 3, false}, {"\xc3", 1, false}, {"ab", 2, true}};
  for (size_t i = 0; i < 3; i++) {
    d = mt_value_dict(false);
    mt_tensor *x = arange(MT_FLOAT32, 1, SIZES(2));
    mt_value *key = names[i].bytes ? mt_value_bytes(names[i].p, names[i].n) : mt_value_str(names[i].p, names[i].n);
    if (mt_value_dict_set(d, key, mt_value_tensor(x))) abort();
    mt_tensor_release(x);
    FAILS(mt_safetensors_save(d, NULL, path), MT_EARG, "tensor names must be UTF-8 strings without NUL");
    mt_value_free(d);
  }
  CHECK(access(path, F_OK) != 0); /* nothing was written */

  d = mt_value_dict(false);
  put_tensor(d, "ok", arange(MT_FLOAT32, 1, SIZES(2)));
  FAILS(mt_safetensors_save(d, NULL, tmp_path("no/such/dir.safetensors")), MT_EIO, "dir.safetensors");
  mt_value_free(d);
  mt_value_free(m);
  mt_value_free(l);
}

static void remove_dir(void) {
  DIR *dp = opendir(dir);
  for (struct dirent *e; dp && (e = readdir(dp));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
  if (dp) closedir(dp);
  rmdir(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/mt_safetensors_XXXXXX");
  if (!mkdtemp(dir)) return 1;
  test_reference_bytes();
  test_golden();
  test_round_trip();
  test_metadata();
  test_layouts();
  test_mmap();
  test_bad_files();
  test_save_errors();
  remove_dir();
  return mt_test_finish("safetensors");
}
