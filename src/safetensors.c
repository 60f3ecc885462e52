/*
 * safetensors.c — Hugging Face's safetensors format, both ways.
 *
 * A file is a u64 little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (byte
 * offsets into the buffer; data little-endian, row-major, contiguous) and may hold
 * "__metadata__", a str -> str map.
 *
 * Reading follows the reference reader (SafeTensors::read_metadata, Metadata::validate): header
 * length <= 100,000,000 and inside the file, UTF-8 JSON, offsets that tile the buffer exactly
 * once sorted, byte sizes equal to dtype size x shape product (overflow checked). We refuse a
 * little more, so that a header can mean one thing only: duplicate keys (cJSON keeps them),
 * unknown fields, and numbers that are not plain non-negative integers.
 *
 * Writing follows the reference writer, byte for byte: tensors sorted by dtype alignment
 * (descending, in the reference's Dtype order) then name, compact JSON with "__metadata__"
 * first, padded with spaces to a multiple of 8 so that the buffer starts 8-byte aligned.
 */
#include "mt_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes tensor memory as it is: it assumes a little-endian host"
#endif

#define ST_MAX_HEADER 100000000u
/* cJSON spends ~80 bytes per JSON value: a cap on their count bounds the parse's memory
 * (~170 MB at worst) whatever a hostile 100 MB header holds. A tensor takes ~8 values, so
 * this still allows some 250,000 tensors in one file. */
#define ST_MAX_VALUES (1u << 21)
/* cJSON keeps numbers as doubles, exact only below 2^53: larger offsets or dims are refused
 * (no file is 9 PB long, and no tensor dim needs them). */
#define ST_MAX_INT 9007199254740992.0
/* Names are shown in messages up to this many bytes. */
#define ST_SHOWN 200
#define NAME(s) (int)(strlen(s) < ST_SHOWN ? strlen(s) : ST_SHOWN), (s)

/* Our dtypes in the reference's Dtype order (increasing alignment); the writer sorts by the
 * index in this table, descending, as the reference sorts by its enum. */
static const struct { const char *name; mt_dtype dt; } st_dtypes[] = {
    {"BOOL", MT_BOOL}, {"U8", MT_UINT8},      {"I8", MT_INT8},   {"I16", MT_INT16},   {"F16", MT_FLOAT16},
    {"BF16", MT_BFLOAT16}, {"I32", MT_INT32}, {"F32", MT_FLOAT32}, {"F64", MT_FLOAT64}, {"I64", MT_INT64},
};
#define ST_NDTYPES (sizeof st_dtypes / sizeof st_dtypes[0])
/* Dtypes the format has that moontorch has no tensors for. */
static const char *const st_foreign[] = {"U16", "U32", "U64", "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                         "F4", "F6_E2M3", "F6_E3M2", "C64"};

static int st_rank(mt_dtype dt) {
  for (size_t i = 0; i < ST_NDTYPES; i++)
    if (st_dtypes[i].dt == dt) return (int)i;
  return -1;
}

/* Offset of the first byte that breaks UTF-8 (overlongs, surrogates, > U+10FFFF), or n. */
static size_t utf8_prefix(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF; /* bounds of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return i;
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; k++)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return n;
}

static bool is_json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* ---- reading ------------------------------------------------------------------------------- */

/* A lexical pass before cJSON sees the header, for what cJSON lets through or cannot report:
 * control characters (cJSON skips any byte <= 32 as whitespace), "\u0000" in strings (cJSON's
 * C strings would cut the name short), numbers that are not plain integers (cJSON turns "1.0"
 * and "1e3" into the same double as "1"), and more values than ST_MAX_VALUES. */
static mt_status scan_header(const char *path, const char *s, size_t n) {
  size_t values = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '"') {
      for (i++; i < n && s[i] != '"'; i++) {
        if ((unsigned char)s[i] < 0x20)
          return mt_fail(MT_EFORMAT, "%s: header is not valid JSON (control character in a string at byte %zu)",
                         path, i);
        if (s[i] == '\\' && ++i < n && s[i] == 'u' && n - i > 4 && !memcmp(s + i + 1, "0000", 4))
          return mt_fail(MT_EFORMAT, "%s: header holds a string with a NUL character (\\u0000)", path);
      }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t j = i;
      bool digits = true;
      for (; j < n && s[j] && strchr("0123456789+-.eE", s[j]); j++) digits = digits && s[j] >= '0' && s[j] <= '9';
      if (!digits || (s[i] == '0' && j - i > 1))
        return mt_fail(MT_EFORMAT, "%s: header number '%.*s' is not a non-negative integer", path,
                       (int)(j - i < 40 ? j - i : 40), s + i);
      i = j - 1;
    } else if ((unsigned char)c < 0x20 && !is_json_ws(c)) {
      return mt_fail(MT_EFORMAT, "%s: header is not valid JSON (control character at byte %zu)", path, i);
    } else if (c != '{' && c != '[' && c != 't' && c != 'f' && c != 'n') {
      continue; /* punctuation, whitespace: not a value */
    }
    if (++values > ST_MAX_VALUES)
      return mt_fail(MT_EFORMAT, "%s: header holds more than %u JSON values", path, ST_MAX_VALUES);
  }
  return MT_OK;
}

/* A JSON number that is a non-negative integer below 2^53 (scan_header refused other forms). */
static bool json_uint(const cJSON *j, uint64_t *out) {
  if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0) || j->valuedouble >= ST_MAX_INT) return false;
  *out = (uint64_t)j->valuedouble;
  return (double)*out == j->valuedouble;
}

typedef struct st_entry {
  const char *name; /* owned by the cJSON tree */
  size_t index;     /* position in the header: empty tensors at one offset keep header order */
  mt_dtype dt;
  int ndim;
  int64_t sizes[MT_MAX_DIMS];
  uint64_t begin, end;
} st_entry;

typedef struct st_header {
  cJSON *root;
  st_entry *entries;
  size_t count;
  const cJSON *metadata; /* the "__metadata__" object; NULL when absent or null */
} st_header;

static mt_status parse_dtype(const char *path, const char *name, const cJSON *j, mt_dtype *dt) {
  if (!cJSON_IsString(j)) return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': dtype is not a string", path, NAME(name));
  for (size_t i = 0; i < ST_NDTYPES; i++)
    if (!strcmp(j->valuestring, st_dtypes[i].name)) return *dt = st_dtypes[i].dt, MT_OK;
  for (size_t i = 0; i < sizeof st_foreign / sizeof st_foreign[0]; i++)
    if (!strcmp(j->valuestring, st_foreign[i]))
      return mt_fail(MT_EFORMAT, "%s: unsupported dtype '%s' for tensor '%.*s'", path, st_foreign[i], NAME(name));
  return mt_fail(MT_EFORMAT, "%s: unknown dtype '%.*s' for tensor '%.*s'", path, NAME(j->valuestring), NAME(name));
}

static mt_status parse_entry(const char *path, const cJSON *item, st_entry *e) {
  const char *name = item->string;
  if (!cJSON_IsObject(item)) return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': entry is not an object", path, NAME(name));
  const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
  for (const cJSON *f = item->child; f; f = f->next) {
    const cJSON **slot = !strcmp(f->string, "dtype") ? &dtype
                         : !strcmp(f->string, "shape") ? &shape
                         : !strcmp(f->string, "data_offsets") ? &offsets : NULL;
    if (!slot) return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': unknown field '%.*s'", path, NAME(name), NAME(f->string));
    if (*slot) return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': duplicate field '%s'", path, NAME(name), f->string);
    *slot = f;
  }
  const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
  if (missing) return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': missing '%s'", path, NAME(name), missing);

  mt_status st = parse_dtype(path, name, dtype, &e->dt);
  if (st) return st;
  if (!cJSON_IsArray(shape))
    return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': shape is not an array", path, NAME(name));
  e->ndim = 0;
  for (const cJSON *d = shape->child; d; d = d->next) {
    uint64_t v;
    if (e->ndim == MT_MAX_DIMS)
      return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': shape has %d dims, at most %d are supported", path, NAME(name),
                     cJSON_GetArraySize(shape), MT_MAX_DIMS);
    if (!json_uint(d, &v))
      return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': shape entries must be non-negative integers below 2^53", path,
                     NAME(name));
    e->sizes[e->ndim++] = (int64_t)v;
  }
  if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || !json_uint(offsets->child, &e->begin) ||
      !json_uint(offsets->child->next, &e->end))
    return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': data_offsets must be two non-negative integers below 2^53", path,
                   NAME(name));

  char shp[MT_SHAPE_STRLEN];
  int64_t numel = 1, nbytes;
  for (int d = 0; d < e->ndim; d++)
    if (mt_mul_overflow(numel, e->sizes[d], &numel))
      return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': shape %s overflows", path, NAME(name),
                     mt_shape_str(shp, sizeof shp, e->ndim, e->sizes));
  if (mt_mul_overflow(numel, (int64_t)mt_dtype_size(e->dt), &nbytes))
    return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': %s %s overflows", path, NAME(name), dtype->valuestring,
                   mt_shape_str(shp, sizeof shp, e->ndim, e->sizes));
  if (e->end < e->begin)
    return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': data_offsets [%llu, %llu] end before they begin", path,
                   NAME(name), (unsigned long long)e->begin, (unsigned long long)e->end);
  if (e->end - e->begin != (uint64_t)nbytes)
    return mt_fail(MT_EFORMAT, "%s: tensor '%.*s': data_offsets [%llu, %llu] hold %llu bytes, expected %lld for %s %s",
                   path, NAME(name), (unsigned long long)e->begin, (unsigned long long)e->end,
                   (unsigned long long)(e->end - e->begin), (long long)nbytes, dtype->valuestring,
                   mt_shape_str(shp, sizeof shp, e->ndim, e->sizes));
  return MT_OK;
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* The first key that appears twice among `n` keys, or NULL (sorts `keys`). */
static const char *find_duplicate(const char **keys, size_t n) {
  qsort(keys, n, sizeof *keys, cmp_cstr);
  for (size_t i = 1; i < n; i++)
    if (!strcmp(keys[i - 1], keys[i])) return keys[i];
  return NULL;
}

static mt_status parse_metadata(const char *path, const cJSON *m, st_header *h) {
  if (cJSON_IsNull(m)) return MT_OK; /* the reference reads null as "no metadata" */
  if (!cJSON_IsObject(m)) return mt_fail(MT_EFORMAT, "%s: '__metadata__' is not an object", path);
  size_t n = 0;
  for (const cJSON *kv = m->child; kv; kv = kv->next, n++)
    if (!cJSON_IsString(kv))
      return mt_fail(MT_EFORMAT, "%s: metadata value for '%.*s' is not a string", path, NAME(kv->string));
  const char **keys = malloc((n ? n : 1) * sizeof *keys);
  if (!keys) return mt_fail(MT_ENOMEM, "out of memory");
  n = 0;
  for (const cJSON *kv = m->child; kv; kv = kv->next) keys[n++] = kv->string;
  const char *dup = find_duplicate(keys, n);
  mt_status st = dup ? mt_fail(MT_EFORMAT, "%s: duplicate metadata key '%.*s'", path, NAME(dup)) : MT_OK;
  free(keys);
  h->metadata = m;
  return st;
}

static void header_free(st_header *h) {
  cJSON_Delete(h->root);
  free(h->entries);
}

static mt_status parse_header(const char *path, const char *text, size_t n, st_header *h) {
  size_t bad = utf8_prefix((const uint8_t *)text, n), i = 0;
  if (bad < n) return mt_fail(MT_EFORMAT, "%s: header is not valid UTF-8 (byte %zu)", path, bad);
  while (i < n && is_json_ws(text[i])) i++;
  if (i == n || text[i] != '{') return mt_fail(MT_EFORMAT, "%s: header is not a JSON object", path);
  mt_status st = scan_header(path, text, n);
  if (st) return st;

  const char *end = NULL;
  h->root = cJSON_ParseWithLengthOpts(text, n, &end, false);
  size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
  if (!h->root) return mt_fail(MT_EFORMAT, "%s: header is not valid JSON (error near byte %zu)", path, at);
  for (i = at; i < n; i++)
    if (!is_json_ws(text[i]))
      return mt_fail(MT_EFORMAT, "%s: header has data after its JSON object (byte %zu)", path, i);

  /* Entries grow as they pass validation, so that a header of junk children cannot make us
   * allocate per child before refusing it. */
  size_t cap = 0;
  bool seen_metadata = false;
  for (const cJSON *c = h->root->child; c && !st; c = c->next) {
    if (!strcmp(c->string, "__metadata__")) {
      st = seen_metadata ? mt_fail(MT_EFORMAT, "%s: duplicate '__metadata__'", path) : parse_metadata(path, c, h);
      seen_metadata = true;
      continue;
    }
    if (h->count == cap) {
      st_entry *grown = realloc(h->entries, (cap = cap ? 2 * cap : 16) * sizeof *grown);
      if (!grown) return mt_fail(MT_ENOMEM, "out of memory parsing a header of %zu bytes", n);
      h->entries = grown;
    }
    st_entry *e = &h->entries[h->count];
    e->name = c->string;
    e->index = h->count++;
    st = parse_entry(path, c, e);
  }
  if (st) return st;
  const char **names = malloc((h->count ? h->count : 1) * sizeof *names);
  if (!names) return mt_fail(MT_ENOMEM, "out of memory parsing a header of %zu bytes", n);
  for (size_t k = 0; k < h->count; k++) names[k] = h->entries[k].name;
  const char *dup = find_duplicate(names, h->count);
  if (dup) st = mt_fail(MT_EFORMAT, "%s: duplicate tensor name '%.*s'", path, NAME(dup));
  free(names);
  return st;
}

static int cmp_offsets(const void *pa, const void *pb) {
  const st_entry *a = pa, *b = pb;
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* Sorts the entries by offset and checks that they tile [0, data_len) with no gap or overlap. */
static mt_status check_layout(const char *path, st_entry *e, size_t n, uint64_t data_len) {
  if (n > 1) qsort(e, n, sizeof *e, cmp_offsets);
  uint64_t start = 0;
  const st_entry *owner = NULL; /* the tensor whose data ends at `start` */
  for (size_t i = 0; i < n; i++) {
    if (e[i].begin > start)
      return mt_fail(MT_EFORMAT, "%s: gap before tensor '%.*s' (its data begins at %llu, the data before ends at %llu)",
                     path, NAME(e[i].name), (unsigned long long)e[i].begin, (unsigned long long)start);
    if (e[i].begin < start)
      return mt_fail(MT_EFORMAT, "%s: tensors '%.*s' and '%.*s' overlap", path, NAME(owner->name), NAME(e[i].name));
    if (e[i].end > start) start = e[i].end, owner = &e[i];
  }
  if (data_len > start)
    return mt_fail(MT_EFORMAT, "%s: file has %llu trailing bytes", path, (unsigned long long)(data_len - start));
  if (data_len < start)
    return mt_fail(MT_EFORMAT, "%s: file is truncated: the tensors need %llu data bytes, it holds %llu", path,
                   (unsigned long long)start, (unsigned long long)data_len);
  return MT_OK;
}

/* The file being read: mapped (opts.mmap) or read with pread. */
typedef struct st_file {
  const char *path;
  int fd;
  mt_mapfile *map;
  uint64_t size;
} st_file;

static mt_status file_open(st_file *f, const char *path, bool map) {
  f->path = path;
  f->fd = -1;
  f->map = NULL;
  if (map) {
    mt_status st = mt_mapfile_open(&f->map, path);
    if (!st) f->size = mt_mapfile_size(f->map);
    return st;
  }
  struct stat sb;
  if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return mt_fail(MT_EIO, "%s: cannot open: %s", path, strerror(errno));
  mt_status st = fstat(f->fd, &sb) ? mt_fail(MT_EIO, "%s: cannot stat: %s", path, strerror(errno))
                 : !S_ISREG(sb.st_mode) ? mt_fail(MT_EIO, "%s: not a regular file", path) : MT_OK;
  if (st) {
    close(f->fd);
    return st;
  }
  f->size = (uint64_t)sb.st_size;
  return MT_OK;
}

static void file_close(st_file *f) {
  if (f->fd >= 0) close(f->fd);
  mt_mapfile_release(f->map);
}

static mt_status file_read(const st_file *f, uint64_t off, void *dst, size_t n) {
  if (f->map) return memcpy(dst, mt_mapfile_data(f->map) + off, n), MT_OK;
  for (char *p = dst; n;) {
    ssize_t r = pread(f->fd, p, n < (1u << 30) ? n : (1u << 30), (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return mt_fail(MT_EIO, "%s: cannot read: %s", f->path, strerror(errno));
    if (r == 0)
      return mt_fail(MT_EIO, "%s: cannot read: the file ends at byte %llu (it changed while being read)", f->path,
                     (unsigned long long)off);
    p += r, off += (uint64_t)r, n -= (size_t)r;
  }
  return MT_OK;
}

/* A bool tensor must hold only 0 and 1 (other bytes are not valid C bools): nonzero is true. */
static bool bools_canonical(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++) acc |= p[i];
  return acc <= 1;
}

static mt_status make_tensor(const st_file *f, uint64_t off, const st_entry *e, mt_tensor **out) {
  size_t nbytes = (size_t)(e->end - e->begin);
  mt_storage *s = NULL;
  mt_status st;
  const uint8_t *src = f->map ? mt_mapfile_data(f->map) + off : NULL;
  /* Mapped data is used in place when aligned for its dtype (the buffer is only 8-byte aligned
   * relative to its start, and foreign writers may not even keep that). */
  if (src && nbytes && (uintptr_t)src % mt_dtype_size(e->dt) == 0 &&
      (e->dt != MT_BOOL || bools_canonical(src, nbytes))) {
    st = mt_mapfile_storage(&s, f->map, (size_t)off, nbytes);
  } else {
    st = mt_storage_alloc(&s, nbytes, false);
    if (!st) st = file_read(f, off, mt_storage_data(s), nbytes);
    if (!st && e->dt == MT_BOOL)
      for (uint8_t *p = mt_storage_data(s), *q = p + nbytes; p < q; p++) *p = *p != 0;
  }
  if (!st) {
    int64_t strides[MT_MAX_DIMS];
    mt_contiguous_strides(e->ndim, e->sizes, strides);
    st = mt_from_storage(out, s, e->dt, 0, e->ndim, e->sizes, strides);
  }
  mt_storage_release(s); /* the tensor holds its own reference */
  return st;
}

static mt_status dict_put(mt_value *dict, const char *key, mt_value *val) {
  mt_value *k = mt_value_str(key, strlen(key));
  if (!k || !val) {
    mt_value_free(k);
    mt_value_free(val);
    return mt_fail(MT_ENOMEM, "out of memory");
  }
  return mt_value_dict_set(dict, k, val);
}

static mt_status build_values(const st_file *f, uint64_t data_start, const st_header *h, mt_value **tensors,
                              mt_value **metadata) {
  mt_value *dict = mt_value_dict(true), *meta = NULL;
  mt_status st = dict ? MT_OK : mt_fail(MT_ENOMEM, "out of memory");
  for (size_t i = 0; i < h->count && !st; i++) {
    mt_tensor *t;
    if (!(st = make_tensor(f, data_start + h->entries[i].begin, &h->entries[i], &t))) {
      st = dict_put(dict, h->entries[i].name, mt_value_tensor(t));
      mt_tensor_release(t);
    }
  }
  if (!st && metadata && h->metadata) {
    if (!(meta = mt_value_dict(false))) st = mt_fail(MT_ENOMEM, "out of memory");
    for (const cJSON *kv = h->metadata->child; kv && !st; kv = kv->next)
      st = dict_put(meta, kv->string, mt_value_str(kv->valuestring, strlen(kv->valuestring)));
  }
  if (st) {
    mt_value_free(dict);
    mt_value_free(meta);
    return st;
  }
  *tensors = dict;
  if (metadata) *metadata = meta;
  return MT_OK;
}

MT_API mt_status mt_safetensors_load(mt_value **tensors, mt_value **metadata, const char *path,
                                     const mt_load_opts *opts) {
  if (!tensors || !path) return mt_fail(MT_EARG, "no output or no path given");
  st_file f;
  mt_status st = file_open(&f, path, opts && opts->mmap);
  if (st) return st;
  st_header h = {0};
  char *header = NULL;
  uint8_t len8[8];
  uint64_t n = 0;
  if (f.size < 8) {
    st = mt_fail(MT_EFORMAT, "%s: file is %llu bytes, too short for a safetensors header", path,
                 (unsigned long long)f.size);
    goto done;
  }
  if ((st = file_read(&f, 0, len8, 8))) goto done;
  for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
  if (n > ST_MAX_HEADER) {
    st = mt_fail(MT_EFORMAT, "%s: header length %llu exceeds %u", path, (unsigned long long)n, ST_MAX_HEADER);
    goto done;
  }
  if (n > f.size - 8) {
    st = mt_fail(MT_EFORMAT, "%s: header length %llu runs past the end of the file (%llu bytes)", path,
                 (unsigned long long)n, (unsigned long long)f.size);
    goto done;
  }
  /* Mapped: parse in place. Read: n is bounded by the file size and ST_MAX_HEADER. */
  const char *text;
  if (f.map) {
    text = (const char *)mt_mapfile_data(f.map) + 8;
  } else {
    if (!(header = malloc(n ? n : 1))) {
      st = mt_fail(MT_ENOMEM, "out of memory reading a header of %llu bytes", (unsigned long long)n);
      goto done;
    }
    if ((st = file_read(&f, 8, header, n))) goto done;
    text = header;
  }
  if ((st = parse_header(path, text, n, &h)) || (st = check_layout(path, h.entries, h.count, f.size - 8 - n)))
    goto done;
  st = build_values(&f, 8 + n, &h, tensors, metadata);
done:
  header_free(&h);
  free(header);
  file_close(&f); /* storages that point into the mapping keep it alive */
  return st;
}

/* ---- writing ------------------------------------------------------------------------------- */

typedef struct st_item {
  const char *name;
  size_t len;
  const mt_tensor *t;
  int rank;
} st_item;

/* The reference's order: dtype alignment descending, then name (bytewise). */
static int cmp_write_order(const void *pa, const void *pb) {
  const st_item *a = pa, *b = pb;
  if (a->rank != b->rank) return b->rank - a->rank;
  int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* A string the header can hold and the reader gives back unchanged: UTF-8 without NUL. */
static bool header_string(const mt_value *v) {
  return v && v->kind == MT_VAL_STR && utf8_prefix((const uint8_t *)v->u.str.ptr, v->u.str.len) == v->u.str.len &&
         !memchr(v->u.str.ptr, 0, v->u.str.len);
}

/* JSON text into a buffer; the first failure sticks, so callers check once at the end. */
typedef struct st_json {
  mt_buffer b;
  mt_status st;
} st_json;

static void put(st_json *w, const void *p, size_t n) {
  if (!w->st) w->st = mt_buffer_append(&w->b, p, n);
}

static void put_u64(st_json *w, uint64_t v) {
  char buf[24];
  put(w, buf, (size_t)snprintf(buf, sizeof buf, "%llu", (unsigned long long)v));
}

/* Escaped as serde_json does: \" \\ \b \f \n \r \t, other control characters as \u00xx. */
static void put_string(st_json *w, const char *s, size_t n) {
  put(w, "\"", 1);
  size_t run = 0; /* bytes copied as they are, flushed before each escape */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    put(w, s + run, i - run);
    run = i + 1;
    char esc[8];
    const char *short_form = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b" : c == '\f' ? "\\f"
                           : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
    if (short_form) put(w, short_form, 2);
    else put(w, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", c));
  }
  put(w, s + run, n - run);
  put(w, "\"", 1);
}

static mt_status check_inputs(const char *path, const mt_value *tensors, const mt_value *metadata) {
  if (!tensors || tensors->kind != MT_VAL_DICT)
    return mt_fail(MT_EARG, "%s: tensors must be a dict of name -> tensor", path);
  for (size_t i = 0; i < tensors->u.dict.len; i++) {
    const mt_value *k = tensors->u.dict.keys[i], *v = tensors->u.dict.vals[i];
    if (!header_string(k)) return mt_fail(MT_EARG, "%s: tensor names must be UTF-8 strings without NUL", path);
    if (!strcmp(k->u.str.ptr, "__metadata__"))
      return mt_fail(MT_EARG, "%s: '__metadata__' is reserved and cannot name a tensor", path);
    if (!v || v->kind != MT_VAL_TENSOR)
      return mt_fail(MT_EARG, "%s: value of '%.*s' is not a tensor", path, NAME(k->u.str.ptr));
    if (st_rank(v->u.tensor->dtype) < 0)
      return mt_fail(MT_EDTYPE, "%s: tensor '%.*s' has a dtype safetensors cannot hold", path, NAME(k->u.str.ptr));
  }
  if (!metadata) return MT_OK;
  if (metadata->kind != MT_VAL_DICT) return mt_fail(MT_EARG, "%s: metadata must be a dict of str -> str", path);
  for (size_t i = 0; i < metadata->u.dict.len; i++) {
    if (!header_string(metadata->u.dict.keys[i]))
      return mt_fail(MT_EARG, "%s: metadata keys must be UTF-8 strings without NUL", path);
    if (!header_string(metadata->u.dict.vals[i]))
      return mt_fail(MT_EARG, "%s: metadata value for '%.*s' is not a UTF-8 string without NUL", path,
                     NAME(metadata->u.dict.keys[i]->u.str.ptr));
  }
  return MT_OK;
}

/* The 8-byte length, the header and its padding, for items already in write order. */
static mt_status build_header(st_json *w, const st_item *items, size_t n, const mt_value *metadata) {
  put(w, "\0\0\0\0\0\0\0\0{", 9);
  bool first = true;
  if (metadata) {
    put(w, "\"__metadata__\":{", 16);
    for (size_t i = 0; i < metadata->u.dict.len; i++) {
      if (i) put(w, ",", 1);
      put_string(w, metadata->u.dict.keys[i]->u.str.ptr, metadata->u.dict.keys[i]->u.str.len);
      put(w, ":", 1);
      put_string(w, metadata->u.dict.vals[i]->u.str.ptr, metadata->u.dict.vals[i]->u.str.len);
    }
    put(w, "}", 1);
    first = false;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < n; i++, first = false) {
    const mt_tensor *t = items[i].t;
    if (!first) put(w, ",", 1);
    put_string(w, items[i].name, items[i].len);
    put(w, ":{\"dtype\":\"", 11);
    put(w, st_dtypes[items[i].rank].name, strlen(st_dtypes[items[i].rank].name));
    put(w, "\",\"shape\":[", 11);
    for (int d = 0; d < t->ndim; d++) {
      if (d) put(w, ",", 1);
      put_u64(w, (uint64_t)t->sizes[d]);
    }
    put(w, "],\"data_offsets\":[", 18);
    put_u64(w, offset);
    put(w, ",", 1);
    offset += (uint64_t)mt_numel(t) * mt_dtype_size(t->dtype);
    put_u64(w, offset);
    put(w, "]}", 2);
  }
  put(w, "}", 1);
  while (!w->st && (w->b.len - 8) % 8) put(w, " ", 1);
  if (w->st) return w->st;
  for (size_t i = 0, len = w->b.len - 8; i < 8; i++, len >>= 8) w->b.data[i] = (uint8_t)len;
  return MT_OK;
}

/* Tensor data, row-major: views are written as if contiguous, each tensor its own bytes. */
static mt_status write_tensor(int fd, const mt_tensor *t, const char *path) {
  size_t nbytes = (size_t)mt_numel(t) * mt_dtype_size(t->dtype);
  if (!nbytes) return MT_OK;
  if (mt_is_contiguous(t)) return mt_write_all(fd, mt_data(t), nbytes, path);
  mt_tensor *c = NULL;
  mt_status st = mt_contiguous(&c, t);
  if (!st) st = mt_write_all(fd, mt_data(c), nbytes, path);
  mt_tensor_release(c);
  return st;
}

MT_API mt_status mt_safetensors_save(const mt_value *tensors, const mt_value *metadata, const char *path) {
  if (!path) return mt_fail(MT_EARG, "no path given");
  mt_status st = check_inputs(path, tensors, metadata);
  if (st) return st;
  size_t n = tensors->u.dict.len;
  st_item *items = malloc((n ? n : 1) * sizeof *items);
  if (!items) return mt_fail(MT_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const mt_value *k = tensors->u.dict.keys[i];
    const mt_tensor *t = tensors->u.dict.vals[i]->u.tensor;
    items[i] = (st_item){k->u.str.ptr, k->u.str.len, t, st_rank(t->dtype)};
  }
  qsort(items, n, sizeof *items, cmp_write_order);

  st_json w = {{NULL, 0, 0}, MT_OK};
  mt_atomic_file *af = NULL;
  if (!(st = build_header(&w, items, n, metadata)) && !(st = mt_atomic_open(&af, path))) {
    int fd = mt_atomic_fd(af);
    st = mt_write_all(fd, w.b.data, w.b.len, path);
    for (size_t i = 0; i < n && !st; i++) st = write_tensor(fd, items[i].t, path);
    if (st) mt_atomic_abort(af);
    else st = mt_atomic_commit(af);
  }
  free(w.b.data);
  free(items);
  return st;
}
