/*
 * zip_read.c — reading the zip container of PyTorch checkpoints (writing: zip_write.c).
 *
 * libzip 1.7.3 does not say where an entry's data lies (zip_stat has no offset), and mmap
 * needs exactly that. So the end record, central directory and local headers are parsed here,
 * every field bounds-checked, and the result is cross-checked entry by entry against libzip's
 * zip_stat. Deflated records are read through libzip (inflating, checking CRCs); stored ones,
 * all of ours and PyTorch's tensors, straight into the caller's buffer and checksummed here
 * (mt_zip_read).
 */
#include "mt_internal.h"
#include "zip_format.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

/* Deflate cannot expand more than 1032:1 (a 258-byte match per 2-bit code): a record that
 * claims more is a lie, refused before any memory is sized by it. */
#define MAX_INFLATE_RATIO 1032u
#define READ_SLICE (1u << 19) /* records are read in slices this big: see mt_zip_read */

/* ============================================================================================
 * Reading
 */

typedef struct entry {
  mt_zip_record rec; /* first: mt_zip_read turns a record back into its entry */
  uint64_t header;   /* offset of the local header */
  uint32_t crc;      /* from the central directory, which libzip checks against the local header */
} entry;

struct mt_zip_reader {
  const char *label;
  const uint8_t *mem; /* memory archive, or NULL */
  int fd;             /* file archive, or -1 */
  uint64_t size;
  zip_t *za;
  entry *entries;   /* central directory order */
  size_t n;
  entry **by_name;  /* sorted by name, for lookups */
  char *names;      /* every name, NUL-terminated, back to back */
  char *top;        /* "<top folder>/" */
  char *label_copy;
};

/* An entry name fit for a message: printable ASCII, others escaped, long ones cut. */
static const char *shown(char out[160], const char *name, size_t len) {
  size_t o = 0;
  for (size_t i = 0; i < len && o < 150; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c >= 0x20 && c < 0x7f) out[o++] = (char)c;
    else o += (size_t)snprintf(out + o, 160 - o, "\\x%02x", c);
  }
  if (o >= 150) o = 150, memcpy(out + o, "...", 3), o += 3;
  out[o] = '\0';
  return out;
}

static mt_status bad(const mt_zip_reader *r, const char *fmt, ...) MT_PRINTF(2, 3);
static mt_status bad(const mt_zip_reader *r, const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return mt_fail(MT_EFORMAT, "%s: %s", r->label, what);
}

/* Reads n bytes at off; a range past the end is a format error (a truncated file). */
static mt_status read_at(const mt_zip_reader *r, uint64_t off, void *buf, size_t n, const char *what) {
  if (off > r->size || n > r->size - off)
    return bad(r, "%s at offset %llu lies past the end of the %llu-byte archive (truncated?)", what,
               (unsigned long long)off, (unsigned long long)r->size);
  if (r->mem) {
    if (n) memcpy(buf, r->mem + off, n);
    return MT_OK;
  }
  for (size_t done = 0; done < n;) {
    ssize_t k = pread(r->fd, (uint8_t *)buf + done, n - done, (off_t)(off + done));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return mt_fail(MT_EIO, "%s: cannot read: %s", r->label, strerror(errno));
    if (k == 0) return mt_fail(MT_EIO, "%s: the file shrank while being read", r->label);
    done += (size_t)k;
  }
  return MT_OK;
}

/* NULL when a name is safe to use as a path inside the archive, else why not. */
static const char *unsafe_name(const char *name, size_t len) {
  if (len == 0) return "it is empty";
  if (memchr(name, '\0', len)) return "it contains a NUL byte";
  if (name[0] == '/') return "it is an absolute path";
  if (memchr(name, '\\', len)) return "it contains a backslash";
  for (size_t i = 0; i < len;) {
    size_t j = i;
    while (j < len && name[j] != '/') j++;
    if (j - i == 2 && name[i] == '.' && name[i + 1] == '.') return "it contains a '..' component";
    i = j + 1;
  }
  return NULL;
}

/* Finds the end of central directory record: the last "PK\5\6" whose comment runs exactly to
 * the end of the file. Sets the directory's place and entry count. */
static mt_status find_directory(mt_zip_reader *r, uint64_t *cd_off, uint64_t *cd_size, uint64_t *count,
                                uint64_t *cd_end) {
  size_t tail = (size_t)(r->size < 22 + 65535 ? r->size : 22 + 65535);
  uint8_t *t = malloc(tail);
  if (!t) return mt_fail(MT_ENOMEM, "out of memory");
  uint64_t base = r->size - tail;
  mt_status st = read_at(r, base, t, tail, "end record");
  size_t at = SIZE_MAX;
  for (size_t i = tail - 22 + 1; st == MT_OK && i-- > 0;)
    if (rd32(t + i) == SIG_EOCD && i + 22 + rd16(t + i + 20) == tail) {
      at = i;
      break;
    }
  if (st == MT_OK && at == SIZE_MAX)
    st = bad(r, "no end of central directory record: not a zip archive, or truncated");
  if (st != MT_OK) {
    free(t);
    return st;
  }
  const uint8_t *e = t + at;
  uint64_t eocd = base + at;
  *count = rd16(e + 10);
  *cd_size = rd32(e + 12);
  *cd_off = rd32(e + 16);
  *cd_end = eocd;
  bool multi = rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10);
  /* Zip64: a locator right before the end record points at the Zip64 end record */
  if (at >= 20 && rd32(e - 20) == SIG_LOCATOR64) {
    uint64_t rec64 = rd64(e - 20 + 8);
    uint8_t z[56];
    multi = rd32(e - 20 + 4) != 0 || rd32(e - 20 + 16) > 1;
    st = multi ? MT_OK : read_at(r, rec64, z, sizeof z, "Zip64 end record");
    if (st == MT_OK && !multi) {
      if (rd32(z) != SIG_EOCD64 || rec64 + 56 > eocd - 20)
        st = bad(r, "Zip64 end record at offset %llu is missing or corrupt", (unsigned long long)rec64);
      multi = rd32(z + 16) != 0 || rd32(z + 20) != 0 || rd64(z + 24) != rd64(z + 32);
      *count = rd64(z + 32);
      *cd_size = rd64(z + 40);
      *cd_off = rd64(z + 48);
      *cd_end = rec64;
    }
  }
  free(t);
  if (st != MT_OK) return st;
  if (multi) return bad(r, "multi-part zip archives are not supported");
  if (*cd_off > *cd_end || *cd_size != *cd_end - *cd_off)
    return bad(r, "the central directory (%llu bytes at offset %llu) does not end where the end record "
                  "starts (offset %llu): truncated or corrupt",
               (unsigned long long)*cd_size, (unsigned long long)*cd_off, (unsigned long long)*cd_end);
  if (*count == 0) return bad(r, "the archive has no entries");
  if (*count > *cd_size / 46)
    return bad(r, "the end record claims %llu entries, more than its %llu-byte directory can hold",
               (unsigned long long)*count, (unsigned long long)*cd_size);
  return MT_OK;
}

/* Reads the 64-bit sizes and offset that a central entry moved into its Zip64 extra field. */
static bool zip64_fields(const uint8_t *ex, size_t exlen, entry *e) {
  for (size_t i = 0; i + 4 <= exlen;) {
    uint16_t id = rd16(ex + i), n = rd16(ex + i + 2);
    if (i + 4 + n > exlen) return false;
    if (id == 0x0001) {
      const uint8_t *p = ex + i + 4, *end = p + n;
      uint64_t *fields[3] = {&e->rec.size, &e->rec.comp_size, &e->header};
      for (int f = 0; f < 3; f++) {
        if (*fields[f] != 0xFFFFFFFFu) continue;
        if (p + 8 > end) return false;
        *fields[f] = rd64(p);
        p += 8;
      }
      return true;
    }
    i += 4 + (size_t)n;
  }
  return e->rec.size != 0xFFFFFFFFu && e->rec.comp_size != 0xFFFFFFFFu && e->header != 0xFFFFFFFFu;
}

static mt_status parse_central(mt_zip_reader *r, const uint8_t *cd, uint64_t cd_size, uint64_t count) {
  char nm[160];
  r->entries = calloc((size_t)count, sizeof *r->entries);
  r->names = malloc((size_t)cd_size + 1); /* names are parts of the directory: this is enough */
  if (!r->entries || !r->names) return mt_fail(MT_ENOMEM, "out of memory");
  r->n = (size_t)count;
  size_t pos = 0, npos = 0;
  for (size_t i = 0; i < r->n; i++) {
    entry *e = &r->entries[i];
    if (cd_size - pos < 46 || rd32(cd + pos) != SIG_CENTRAL)
      return bad(r, "central directory entry %zu is corrupt", i);
    const uint8_t *h = cd + pos;
    size_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
    if (46 + nlen + xlen + clen > cd_size - pos) return bad(r, "central directory entry %zu is truncated", i);
    const char *name = (const char *)h + 46;
    const char *why = unsafe_name(name, nlen);
    if (why) return bad(r, "entry '%s' has an unsafe name: %s", shown(nm, name, nlen), why);
    memcpy(r->names + npos, name, nlen);
    r->names[npos + nlen] = '\0';
    e->rec.name = r->names + npos;
    npos += nlen + 1;
    uint16_t flags = rd16(h + 8), method = rd16(h + 10);
    e->crc = rd32(h + 16);
    e->rec.comp_size = rd32(h + 20);
    e->rec.size = rd32(h + 24);
    e->header = rd32(h + 42);
    if (!zip64_fields(h + 46 + nlen, xlen, e)) return bad(r, "entry '%s': corrupt Zip64 extra field", e->rec.name);
    if (flags & 0x41) return bad(r, "entry '%s' is encrypted", e->rec.name);
    if (method != ZIP_CM_STORE && method != ZIP_CM_DEFLATE)
      return bad(r, "entry '%s' uses compression method %u (only stored and deflated records are read)",
                 e->rec.name, method);
    e->rec.stored = method == ZIP_CM_STORE;
    e->rec.index = i;
    if (e->rec.stored && e->rec.size != e->rec.comp_size)
      return bad(r, "entry '%s' is stored but declares %llu bytes in %llu", e->rec.name,
                 (unsigned long long)e->rec.size, (unsigned long long)e->rec.comp_size);
    if (!e->rec.stored && e->rec.size / MAX_INFLATE_RATIO > e->rec.comp_size + 1)
      return bad(r, "entry '%s' declares %llu bytes, more than its %llu compressed bytes can inflate to "
                    "(a zip bomb?)",
                 e->rec.name, (unsigned long long)e->rec.size, (unsigned long long)e->rec.comp_size);
    pos += 46 + nlen + xlen + clen;
  }
  if (pos != cd_size)
    return bad(r, "central directory has %llu stray bytes after its %zu entries",
               (unsigned long long)(cd_size - pos), r->n);
  return MT_OK;
}

/* Checks each entry's local header against the directory and finds where its data starts. */
static mt_status parse_local(mt_zip_reader *r, uint64_t cd_off) {
  char *name = malloc(65536);
  if (!name) return mt_fail(MT_ENOMEM, "out of memory");
  mt_status st = MT_OK;
  for (size_t i = 0; i < r->n && st == MT_OK; i++) {
    entry *e = &r->entries[i];
    uint8_t h[30];
    if (e->header > cd_off || cd_off - e->header < 30) {
      st = bad(r, "entry '%s': local header offset %llu lies outside the archive's data", e->rec.name,
               (unsigned long long)e->header);
      break;
    }
    if ((st = read_at(r, e->header, h, 30, "local header")) != MT_OK) break;
    size_t nlen = rd16(h + 26), xlen = rd16(h + 28);
    if (rd32(h) != SIG_LOCAL || rd16(h + 8) != (e->rec.stored ? ZIP_CM_STORE : ZIP_CM_DEFLATE) ||
        nlen != strlen(e->rec.name)) {
      st = bad(r, "entry '%s': local header disagrees with the central directory", e->rec.name);
      break;
    }
    if ((st = read_at(r, e->header + 30, name, nlen, "local header")) != MT_OK) break;
    if (memcmp(name, e->rec.name, nlen) != 0) {
      st = bad(r, "entry '%s': local header names another file", e->rec.name);
      break;
    }
    e->rec.data_offset = e->header + 30 + nlen + xlen;
    if (e->rec.data_offset > cd_off || e->rec.comp_size > cd_off - e->rec.data_offset)
      st = bad(r, "entry '%s': its %llu bytes at offset %llu run past the archive's data (truncated?)",
               e->rec.name, (unsigned long long)e->rec.comp_size, (unsigned long long)e->rec.data_offset);
  }
  free(name);
  return st;
}

static int by_header(const void *a, const void *b) {
  uint64_t x = (*(entry *const *)a)->header, y = (*(entry *const *)b)->header;
  return (x > y) - (x < y);
}
static int by_name(const void *a, const void *b) {
  return strcmp((*(entry *const *)a)->rec.name, (*(entry *const *)b)->rec.name);
}

/* Overlapping entries are how small zip bombs multiply one stream; duplicate names are how
 * an archive shows one reader a file and another a different one. */
static mt_status check_layout(mt_zip_reader *r) {
  if (!(r->by_name = malloc(r->n * sizeof *r->by_name))) return mt_fail(MT_ENOMEM, "out of memory");
  for (size_t i = 0; i < r->n; i++) r->by_name[i] = &r->entries[i];
  qsort(r->by_name, r->n, sizeof *r->by_name, by_header);
  for (size_t i = 0; i + 1 < r->n; i++) {
    const entry *a = r->by_name[i], *b = r->by_name[i + 1];
    if (a->rec.data_offset + a->rec.comp_size > b->header)
      return bad(r, "entries '%s' and '%s' overlap", a->rec.name, b->rec.name);
  }
  qsort(r->by_name, r->n, sizeof *r->by_name, by_name);
  for (size_t i = 0; i + 1 < r->n; i++)
    if (strcmp(r->by_name[i]->rec.name, r->by_name[i + 1]->rec.name) == 0)
      return bad(r, "duplicate entry '%s'", r->by_name[i]->rec.name);
  /* PyTorch's reader takes the top folder from the first entry */
  const char *first = r->entries[0].rec.name, *slash = strchr(first, '/');
  if (!slash) return bad(r, "first entry '%s' is not inside a folder, as checkpoint records are", first);
  size_t tl = (size_t)(slash - first) + 1;
  if (!(r->top = malloc(tl + 1))) return mt_fail(MT_ENOMEM, "out of memory");
  memcpy(r->top, first, tl);
  r->top[tl] = '\0';
  return MT_OK;
}

/* libzip must see the same entries we do; it also checks local headers (ZIP_CHECKCONS). */
static mt_status open_libzip(mt_zip_reader *r) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t *src = NULL;
  if (r->mem) {
    src = zip_source_buffer_create(r->mem, (zip_uint64_t)r->size, 0, &err);
  } else {
    int fd2 = dup(r->fd);
    FILE *fp = fd2 >= 0 ? fdopen(fd2, "rb") : NULL;
    if (!fp) {
      if (fd2 >= 0) close(fd2);
      return mt_fail(MT_EIO, "%s: cannot open: %s", r->label, strerror(errno));
    }
    if (!(src = zip_source_filep_create(fp, 0, -1, &err))) fclose(fp);
  }
  if (src && !(r->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err))) zip_source_free(src);
  if (!r->za) {
    mt_status st = bad(r, "not a valid zip archive: %s", zip_error_strerror(&err));
    zip_error_fini(&err);
    return st;
  }
  if (zip_get_num_entries(r->za, 0) != (zip_int64_t)r->n)
    return bad(r, "libzip finds %lld entries, the central directory %zu", (long long)zip_get_num_entries(r->za, 0),
               r->n);
  for (size_t i = 0; i < r->n; i++) {
    const mt_zip_record *rec = &r->entries[i].rec;
    zip_stat_t zs;
    if (zip_stat_index(r->za, i, ZIP_FL_ENC_RAW, &zs) < 0 || !(zs.valid & ZIP_STAT_NAME) ||
        strcmp(zs.name, rec->name) != 0 || zs.size != rec->size || zs.comp_size != rec->comp_size ||
        zs.comp_method != (rec->stored ? ZIP_CM_STORE : ZIP_CM_DEFLATE))
      return bad(r, "entry '%s': libzip reads its directory entry differently (corrupt)", rec->name);
  }
  return MT_OK;
}

/* The first bytes tell whether this can be a checkpoint at all. */
static mt_status check_start(const mt_zip_reader *r) {
  uint8_t magic[4] = {0};
  if (r->size == 0) return bad(r, "empty (0 bytes), not a checkpoint");
  mt_status st = read_at(r, 0, magic, r->size < 4 ? (size_t)r->size : 4, "start");
  if (st != MT_OK) return st;
  if (magic[0] == 0x80 && magic[1] == 0x02)
    return bad(r, "a legacy PyTorch file (torch.save with _use_new_zipfile_serialization=False); only the "
                  "zip format is read");
  if (memcmp(magic, "PK\3\4", 4) != 0 || r->size < 30 + 22)
    return bad(r, "not a zip archive (PyTorch checkpoints are zip files starting with PK\\3\\4)");
  return MT_OK;
}

static mt_status reader_open(mt_zip_reader **out, mt_zip_reader *r) {
  uint64_t cd_off = 0, cd_size = 0, count = 0, cd_end = 0;
  uint8_t *cd = NULL;
  mt_status st = check_start(r);
  if (st == MT_OK) st = find_directory(r, &cd_off, &cd_size, &count, &cd_end);
  if (st == MT_OK && !(cd = malloc((size_t)cd_size))) st = mt_fail(MT_ENOMEM, "out of memory");
  if (st == MT_OK) st = read_at(r, cd_off, cd, (size_t)cd_size, "central directory");
  if (st == MT_OK) st = parse_central(r, cd, cd_size, count);
  free(cd);
  if (st == MT_OK) st = parse_local(r, cd_off);
  if (st == MT_OK) st = check_layout(r);
  if (st == MT_OK) st = open_libzip(r);
  if (st != MT_OK) {
    mt_zip_reader_close(r);
    return st;
  }
  *out = r;
  return MT_OK;
}

static mt_zip_reader *reader_new(const char *label) {
  mt_zip_reader *r = calloc(1, sizeof *r);
  if (r && !(r->label_copy = dup_str(label))) {
    free(r);
    r = NULL;
  }
  if (!r) {
    mt_fail(MT_ENOMEM, "out of memory");
    return NULL;
  }
  r->label = r->label_copy;
  r->fd = -1;
  return r;
}

mt_status mt_zip_reader_open_fd(mt_zip_reader **out, int fd, const char *label) {
  struct stat sb;
  if (fstat(fd, &sb) < 0) return mt_fail(MT_EIO, "%s: cannot stat: %s", label, strerror(errno));
  if (!S_ISREG(sb.st_mode)) return mt_fail(MT_EIO, "%s: not a regular file", label);
  mt_zip_reader *r = reader_new(label);
  if (!r) return MT_ENOMEM;
  r->fd = fd;
  r->size = (uint64_t)sb.st_size;
  return reader_open(out, r);
}

mt_status mt_zip_reader_open_memory(mt_zip_reader **out, const void *data, size_t len, const char *label) {
  static const uint8_t nothing[1];
  mt_zip_reader *r = reader_new(label);
  if (!r) return MT_ENOMEM;
  r->mem = data ? data : nothing;
  r->size = data ? len : 0;
  return reader_open(out, r);
}

void mt_zip_reader_close(mt_zip_reader *r) {
  if (!r) return;
  if (r->za) zip_discard(r->za);
  free(r->entries);
  free(r->by_name);
  free(r->names);
  free(r->top);
  free(r->label_copy);
  free(r);
}

const char *mt_zip_top(const mt_zip_reader *r) { return r->top; }

const mt_zip_record *mt_zip_find(const mt_zip_reader *r, const char *name) {
  size_t tl = strlen(r->top), lo = 0, hi = r->n;
  while (lo < hi) { /* compare <top><name> with each entry's name without joining them */
    size_t mid = lo + (hi - lo) / 2;
    const char *full = r->by_name[mid]->rec.name;
    int c = strncmp(r->top, full, tl);
    if (c == 0) c = strcmp(name, full + tl);
    if (c == 0) return &r->by_name[mid]->rec;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

/* Reading a stored record: chunks of slices spread over the thread pool (the page-cache copy,
 * the page faults of fresh memory and the CRC all take CPU; on 2 cores a 400 MB load runs in
 * about half the time), each chunk's CRC combined in order afterwards (zlib's crc32_combine),
 * so the result does not depend on the threads. */
#define READ_CHUNK_SLICES 8 /* 4 MB per chunk */

typedef struct read_job {
  const mt_zip_reader *r;
  const entry *e;
  uint8_t *buf;
  uint32_t crc[MT_PARALLEL_MAX_CHUNKS];
  uint64_t len[MT_PARALLEL_MAX_CHUNKS];
  int err[MT_PARALLEL_MAX_CHUNKS]; /* errno, or -1: the file shrank */
} read_job;

static void read_chunk(void *ctx, int64_t begin, int64_t end, int chunk, int worker) {
  (void)worker;
  read_job *j = ctx;
  uint64_t from = (uint64_t)begin * READ_SLICE, to = min_u64((uint64_t)end * READ_SLICE, j->e->rec.size);
  uint32_t crc = 0;
  j->err[chunk] = 0;
  for (uint64_t at = from; at < to;) {
    size_t n = (size_t)min_u64(to - at, READ_SLICE);
    if (j->r->mem) {
      memcpy(j->buf + at, j->r->mem + j->e->rec.data_offset + at, n);
    } else {
      ssize_t k = pread(j->r->fd, j->buf + at, n, (off_t)(j->e->rec.data_offset + at));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        j->err[chunk] = k < 0 ? errno : -1;
        return;
      }
      n = (size_t)k;
    }
    crc = mt_crc32(crc, j->buf + at, n); /* while the slice is in cache */
    at += n;
  }
  j->crc[chunk] = crc;
  j->len[chunk] = to - from;
}

/* A stored record straight into buf: no staging copy, and mt_crc32 rather than libzip's zlib
 * CRC (a third of a load). The directory was validated at open (the data lies inside the
 * archive, libzip agrees on the entry and its local header): what is left is the CRC. */
static mt_status read_stored(mt_zip_reader *r, const entry *e, uint8_t *buf, const char *name) {
  read_job *j = malloc(sizeof *j);
  if (!j) return mt_fail(MT_ENOMEM, "out of memory");
  *j = (read_job){.r = r, .e = e, .buf = buf};
  int64_t slices = (int64_t)((e->rec.size + READ_SLICE - 1) / READ_SLICE);
  int chunks = mt_parallel_chunks(slices, READ_CHUNK_SLICES);
  mt_parallel_for(slices, READ_CHUNK_SLICES, read_chunk, j);
  mt_status st = MT_OK;
  uint32_t crc = 0;
  for (int c = 0; c < chunks && st == MT_OK; c++) {
    if (j->err[c] > 0)
      st = mt_fail(MT_EIO, "%s: %s: cannot read: %s", r->label, name, strerror(j->err[c]));
    else if (j->err[c] < 0)
      st = mt_fail(MT_EIO, "%s: %s: the file shrank while being read", r->label, name);
    else
      crc = c ? (uint32_t)crc32_combine(crc, j->crc[c], (z_off_t)j->len[c]) : j->crc[c];
  }
  free(j);
  if (st == MT_OK && crc != e->crc) st = bad(r, "%s: CRC mismatch, the record is corrupt", name);
  return st;
}

mt_status mt_zip_read(mt_zip_reader *r, const mt_zip_record *rec, void *buf) {
  size_t tl = strlen(r->top); /* messages name records without the top folder, as PyTorch does */
  const char *name = strncmp(rec->name, r->top, tl) == 0 ? rec->name + tl : rec->name;
  if (rec->stored) return read_stored(r, (const entry *)rec, buf, name);
  zip_file_t *zf = zip_fopen_index(r->za, rec->index, 0);
  if (!zf) return bad(r, "%s: cannot open the record: %s", name, zip_error_strerror(zip_get_error(r->za)));
  uint64_t got = 0;
  zip_int64_t k = 1;
  /* in slices, so that libzip checksums each while it is still in cache (a whole 400 MB
   * record at once is 1.5x slower to load) */
  while (got < rec->size && (k = zip_fread(zf, (uint8_t *)buf + got, min_u64(rec->size - got, READ_SLICE))) > 0)
    got += (uint64_t)k;
  uint8_t extra;
  /* one byte more: none must come, and reaching the end makes libzip check the CRC */
  if (k > 0) k = zip_fread(zf, &extra, 1);
  mt_status st = MT_OK;
  if (k < 0) {
    zip_error_t *e = zip_file_get_error(zf);
    if (zip_error_code_zip(e) == ZIP_ER_CRC)
      st = bad(r, "%s: CRC mismatch, the record is corrupt", name);
    else if (zip_error_code_zip(e) == ZIP_ER_READ && !r->mem)
      st = mt_fail(MT_EIO, "%s: %s: cannot read: %s", r->label, name, zip_error_strerror(e));
    else
      st = bad(r, "%s: cannot read the record: %s", name, zip_error_strerror(e));
  } else if (got < rec->size) {
    st = bad(r, "%s: record holds only %llu of its declared %llu bytes", name, (unsigned long long)got,
             (unsigned long long)rec->size);
  } else if (k > 0) {
    st = bad(r, "%s: record inflates past its declared %llu bytes", name, (unsigned long long)rec->size);
  }
  zip_fclose(zf);
  return st;
}
