/*
 * zip_write.c — writing the zip container of PyTorch checkpoints (reading: zip_read.c).
 *
 * Every record is stored, and a local-header extra field 'FB' pads it so that its data starts
 * on a 64-byte boundary, as PyTorch's writer does: that is what lets a loader map tensor data
 * straight from the file. The layout is the one libzip 1.7.3 produced, byte for byte
 * (tests/c/test_zipfile.c builds the same archives with libzip and compares).
 */
#define _GNU_SOURCE /* sync_file_range */
#include "mt_internal.h"
#include "zip_format.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ALIGN 64
#define PAD_FIELD_ID 0x4246 /* "FB" read as a little-endian u16, PyTorch's padding field */
#define STORED 0 /* compression method: none */
#define WRITE_BUFFER (1u << 20)

/* ============================================================================================
 * Writing
 *
 * The layout is exactly what libzip 1.7.3 wrote for us before (and PyTorch reads): local
 * header with version 1.0 (4.5 for Zip64), no flags, stored, dated 1980-01-01 00:00, CRC and
 * sizes in the header (no data descriptor); then the name, a Zip64 field when a size reaches
 * 0xFFFFFFFF (libzip's rule: both sizes when one exceeds it, empty when one equals it), and
 * the 'FB' padding field. The central directory repeats each entry (made by Unix 6.3,
 * attributes -rw-rw-rw-, Zip64 field for sizes or offset reaching 0xFFFFFFFF), followed by
 * the Zip64 end record and locator when an entry needed Zip64, the directory starts past
 * 0xFFFFFFFF or there are more than 65535 entries, then the end record.
 *
 * Writing it ourselves rather than through libzip: libzip copies each record through an
 * 8 KB buffer into its sink, with zlib's CRC on the way, which was most of a save's CPU.
 * Here a file's big records go from the tensors' memory straight to write(2), in slices
 * that are checksummed (mt_crc32) just before, while they are in cache; the CRC is patched
 * into the local header after the record (pwrite). Small records and headers gather in a
 * buffer. Writeback of what is written is started as we go (sync_file_range), so that the
 * fsync that commits the file (atomic.c) waits for the last few megabytes only.
 */

#define U32_LIMIT 0xFFFFFFFFu /* a size or offset that reaches it needs Zip64 */
#define BIG_RECORD (64u << 10) /* records from this size are written from their own memory */
#define WRITE_SLICE (1u << 20)
#define WRITEBACK_STEP (8u << 20) /* start writeback each time this much more is written */

typedef struct wentry {
  char *name; /* archive/<name> */
  size_t nlen;
  const uint8_t *data;
  uint64_t len;
  uint64_t offset; /* of the local header */
  uint16_t pad;    /* bytes of 'FB' payload */
  uint32_t crc;
} wentry;

struct mt_zip_writer {
  int fd; /* -1: memory */
  const char *label;
  wentry *e;
  size_t n, cap;
  uint64_t next;      /* offset of the next entry's local header */
  /* finishing */
  uint8_t *buf;       /* memory: the archive; file: pending bytes */
  size_t buf_cap, buf_len;
  uint64_t pos;       /* bytes of the archive produced so far */
  uint64_t synced;    /* file: bytes handed to writeback */
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v), put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v), put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t clip32(uint64_t v) { return v >= U32_LIMIT ? U32_LIMIT : (uint32_t)v; }

/* Bytes of the Zip64 field in a local header for a record of `size` bytes (see above). */
static size_t zip64_local_extra(uint64_t size) { return size < U32_LIMIT ? 0 : size > U32_LIMIT ? 20 : 4; }

mt_status mt_zip_writer_new(mt_zip_writer **out, int fd, const char *label) {
  mt_zip_writer *w = calloc(1, sizeof *w);
  if (!w) return mt_fail(MT_ENOMEM, "out of memory");
  w->fd = fd;
  w->label = label;
  *out = w;
  return MT_OK;
}

mt_status mt_zip_writer_add(mt_zip_writer *w, const char *name, const void *data, size_t len) {
  char full[256];
  int n = snprintf(full, sizeof full, "archive/%s", name);
  if (n < 0 || (size_t)n >= sizeof full) return mt_fail(MT_EARG, "record name '%s' is too long", name);
  if (w->n == w->cap) {
    size_t cap = w->cap ? w->cap * 2 : 16;
    wentry *e = realloc(w->e, cap * sizeof *e);
    if (!e) return mt_fail(MT_ENOMEM, "out of memory");
    w->e = e;
    w->cap = cap;
  }
  wentry *e = &w->e[w->n];
  if (!(e->name = dup_str(full))) return mt_fail(MT_ENOMEM, "out of memory");
  w->n++;
  e->nlen = (size_t)n;
  e->data = data;
  e->len = len;
  e->offset = w->next;
  /* data starts after the 30-byte header, the name, any Zip64 field and our field's 4-byte
   * header; the field's payload pads that to the next multiple of 64 */
  uint64_t start = w->next + 30 + (uint64_t)n + zip64_local_extra(len) + 4;
  e->pad = (uint16_t)((ALIGN - start % ALIGN) % ALIGN);
  w->next = start + e->pad + len;
  return MT_OK;
}

/* The local header, name and extra fields of e into p (room for 30 + 255 + 20 + 4 + 63);
 * the CRC is e->crc as it stands. Returns the bytes written. */
static size_t local_header(const wentry *e, uint8_t *p) {
  size_t x = zip64_local_extra(e->len);
  put32(p, SIG_LOCAL);
  put16(p + 4, x ? 45 : 10);
  put16(p + 6, 0);
  put16(p + 8, STORED);
  put16(p + 10, 0);           /* 00:00 */
  put16(p + 12, 1 << 5 | 1);  /* 1980-01-01 */
  put32(p + 14, e->crc);
  put32(p + 18, x == 20 ? U32_LIMIT : clip32(e->len));
  put32(p + 22, x == 20 ? U32_LIMIT : clip32(e->len));
  put16(p + 26, (uint16_t)e->nlen);
  put16(p + 28, (uint16_t)(x + 4 + e->pad));
  memcpy(p + 30, e->name, e->nlen);
  uint8_t *q = p + 30 + e->nlen;
  if (x) {
    put16(q, 0x0001);
    put16(q + 2, (uint16_t)(x - 4));
    if (x == 20) put64(q + 4, e->len), put64(q + 12, e->len);
    q += x;
  }
  put16(q, PAD_FIELD_ID);
  put16(q + 2, e->pad);
  memset(q + 4, 'Z', e->pad);
  return (size_t)(q + 4 + e->pad - p);
}

static bool central_zip64(const wentry *e) { return e->len >= U32_LIMIT || e->offset >= U32_LIMIT; }

/* Bytes of e's central directory entry. */
static size_t central_size(const wentry *e) {
  size_t x = 0;
  if (central_zip64(e)) {
    x = 4;
    if (e->len > U32_LIMIT || e->offset > U32_LIMIT) /* libzip: only then the values */
      x += (e->len >= U32_LIMIT ? 16 : 0) + (e->offset >= U32_LIMIT ? 8 : 0);
  }
  return 46 + e->nlen + x;
}

/* The whole archive's size, known before any of it is written. */
static uint64_t archive_size(const mt_zip_writer *w) {
  uint64_t cd = 0;
  bool zip64 = w->next > U32_LIMIT || w->n > 0xFFFF;
  for (size_t i = 0; i < w->n; i++) {
    cd += central_size(&w->e[i]);
    zip64 = zip64 || central_zip64(&w->e[i]);
  }
  return w->next + cd + (zip64 ? 56 + 20 : 0) + 22;
}

/* e's central directory entry into p (room for 46 + 255 + 28). Sets *zip64 if it needed one. */
static size_t central_header(const wentry *e, uint8_t *p, bool *zip64) {
  bool needs = central_zip64(e);
  put32(p, SIG_CENTRAL);
  put16(p + 4, 0x0300 | 63); /* made by: Unix, zip 6.3 */
  put16(p + 6, needs ? 45 : 10);
  put16(p + 8, 0);
  put16(p + 10, STORED);
  put16(p + 12, 0);
  put16(p + 14, 1 << 5 | 1);
  put32(p + 16, e->crc);
  put32(p + 20, clip32(e->len));
  put32(p + 24, clip32(e->len));
  put16(p + 28, (uint16_t)e->nlen);
  put16(p + 32, 0);                   /* comment */
  put16(p + 34, 0);                   /* disk */
  put16(p + 36, 0);                   /* internal attributes */
  put32(p + 38, (uint32_t)0100666 << 16); /* external: a regular file, rw-rw-rw- */
  put32(p + 42, clip32(e->offset));
  memcpy(p + 46, e->name, e->nlen);
  uint8_t *q = p + 46 + e->nlen, *f = q + 4;
  if (needs) {
    if (e->len > U32_LIMIT || e->offset > U32_LIMIT) { /* libzip: only then the values */
      if (e->len >= U32_LIMIT) put64(f, e->len), put64(f + 8, e->len), f += 16;
      if (e->offset >= U32_LIMIT) put64(f, e->offset), f += 8;
    }
    put16(q, 0x0001);
    put16(q + 2, (uint16_t)(f - q - 4));
    q = f;
    *zip64 = true;
  }
  put16(p + 30, (uint16_t)(q - p - 46 - e->nlen));
  return (size_t)(q - p);
}

static mt_status write_at(mt_zip_writer *w, const void *p, size_t n, uint64_t off) {
  const uint8_t *b = p;
  while (n > 0) {
    ssize_t k = pwrite(w->fd, b, n, (off_t)off);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return mt_fail(MT_EIO, "%s: cannot write: %s", w->label, strerror(errno));
    if (k == 0) return mt_fail(MT_EIO, "%s: cannot write: the device accepts no more data", w->label);
    b += k, n -= (size_t)k, off += (uint64_t)k;
  }
  return MT_OK;
}

/* Starts writeback of what is written (not waiting for it); a hint, so errors are left to
 * the fsync that commits the file. */
static void start_writeback(mt_zip_writer *w, bool all) {
#ifdef SYNC_FILE_RANGE_WRITE
  if (w->pos - w->synced >= WRITEBACK_STEP || (all && w->pos > w->synced)) {
    (void)sync_file_range(w->fd, (off_t)w->synced, (off_t)(w->pos - w->synced), SYNC_FILE_RANGE_WRITE);
    w->synced = w->pos;
  }
#else
  (void)w, (void)all;
#endif
}

static mt_status flush(mt_zip_writer *w) {
  if (w->fd < 0 || !w->buf_len) return MT_OK;
  mt_status st = write_at(w, w->buf, w->buf_len, w->pos);
  w->pos += w->buf_len;
  w->buf_len = 0;
  return st;
}

/* Appends n bytes: to the archive in memory, or to the file's pending buffer. */
static mt_status emit(mt_zip_writer *w, const void *p, size_t n) {
  if (w->buf_len + n > w->buf_cap) {
    if (w->fd < 0) return mt_fail(MT_ESTATE, "%s: internal error: the archive outgrew its computed size", w->label);
    mt_status st = flush(w);
    if (st != MT_OK) return st;
  }
  memcpy(w->buf + w->buf_len, p, n);
  w->buf_len += n;
  return MT_OK;
}

/* A record's bytes, checksummed on the way (e->crc). */
static mt_status emit_data(mt_zip_writer *w, wentry *e) {
  e->crc = 0;
  if (w->fd < 0 || e->len < BIG_RECORD) {
    for (uint64_t done = 0; done < e->len;) { /* slices: the copy is checksummed in cache */
      size_t n = (size_t)min_u64(e->len - done, WRITE_SLICE);
      mt_status st = emit(w, e->data + done, n);
      if (st != MT_OK) return st;
      e->crc = mt_crc32(e->crc, w->buf + w->buf_len - n, n);
      done += n;
    }
    return MT_OK;
  }
  mt_status st = flush(w);
  for (uint64_t done = 0; st == MT_OK && done < e->len;) {
    size_t n = (size_t)min_u64(e->len - done, WRITE_SLICE);
    e->crc = mt_crc32(e->crc, e->data + done, n); /* then write(2) copies it from cache */
    st = write_at(w, e->data + done, n, w->pos);
    w->pos += n;
    done += n;
    start_writeback(w, false);
  }
  return st;
}

static mt_status write_entries(mt_zip_writer *w) {
  uint8_t h[30 + 255 + 20 + 4 + ALIGN];
  for (size_t i = 0; i < w->n; i++) {
    wentry *e = &w->e[i];
    e->crc = 0;
    size_t hn = local_header(e, h);
    uint64_t at = w->pos + w->buf_len; /* where the header lands */
    mt_status st = emit(w, h, hn);
    if (st == MT_OK) st = emit_data(w, e);
    if (st != MT_OK) return st;
    uint8_t crc[4];
    put32(crc, e->crc);
    if (w->fd < 0 || at >= w->pos) /* still in the buffer */
      memcpy(w->buf + (at - w->pos) + 14, crc, 4);
    else if ((st = write_at(w, crc, 4, at + 14)) != MT_OK)
      return st;
  }
  return MT_OK;
}

static mt_status write_directory(mt_zip_writer *w) {
  uint8_t h[46 + 255 + 28], end[56 + 20 + 22];
  uint64_t cd_start = w->pos + w->buf_len;
  bool zip64 = false;
  for (size_t i = 0; i < w->n; i++) {
    mt_status st = emit(w, h, central_header(&w->e[i], h, &zip64));
    if (st != MT_OK) return st;
  }
  uint64_t cd_size = w->pos + w->buf_len - cd_start, count = w->n;
  if (cd_start > U32_LIMIT || count > 0xFFFF) zip64 = true;
  uint8_t *p = end;
  if (zip64) {
    put32(p, SIG_EOCD64);
    put64(p + 4, 56 - 12);
    put16(p + 12, 45);
    put16(p + 14, 45);
    put32(p + 16, 0);
    put32(p + 20, 0);
    put64(p + 24, count);
    put64(p + 32, count);
    put64(p + 40, cd_size);
    put64(p + 48, cd_start);
    put32(p + 56, SIG_LOCATOR64);
    put32(p + 60, 0);
    put64(p + 64, cd_start + cd_size);
    put32(p + 72, 1);
    p += 76;
  }
  put32(p, SIG_EOCD);
  put32(p + 4, 0);
  put16(p + 8, (uint16_t)(count >= 0xFFFF ? 0xFFFF : count));
  put16(p + 10, (uint16_t)(count >= 0xFFFF ? 0xFFFF : count));
  put32(p + 12, clip32(cd_size));
  put32(p + 16, clip32(cd_start));
  put16(p + 20, 0);
  return emit(w, end, (size_t)(p + 22 - end));
}

mt_status mt_zip_writer_finish(mt_zip_writer *w, void **data, size_t *len) {
  /* the size is known up front: one allocation of the final size in memory; in a file, the
   * blocks reserved at once (a hint: ext4 then skips its per-page delayed allocation, a
   * third of the writes' CPU; KEEP_SIZE, so a failure or a filesystem without it changes
   * nothing, and write errors are still reported by the writes) */
  uint64_t total = archive_size(w);
#ifdef FALLOC_FL_KEEP_SIZE
  if (w->fd >= 0 && total > BIG_RECORD) (void)fallocate(w->fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)total);
#endif
  mt_status st = MT_OK;
  w->buf_cap = w->fd >= 0 ? WRITE_BUFFER : total <= SIZE_MAX ? (size_t)total : 0;
  if (!w->buf_cap || !(w->buf = malloc(w->buf_cap)))
    st = mt_fail(MT_ENOMEM, "%s: out of memory for a %llu-byte archive", w->label,
                 (unsigned long long)(w->fd >= 0 ? WRITE_BUFFER : total));
  if (st == MT_OK) st = write_entries(w);
  if (st == MT_OK) st = write_directory(w);
  if (st == MT_OK) st = flush(w);
  if (st == MT_OK && w->fd >= 0) start_writeback(w, true);
  if (st == MT_OK && (w->fd >= 0 ? w->pos : w->buf_len) != total)
    st = mt_fail(MT_ESTATE, "%s: internal error: wrote %llu bytes, computed %llu", w->label,
                 (unsigned long long)(w->fd >= 0 ? w->pos : w->buf_len), (unsigned long long)total);
  if (st == MT_OK && w->fd < 0) {
    *data = w->buf;
    *len = w->buf_len;
    w->buf = NULL;
  }
  mt_zip_writer_discard(w);
  return st;
}

void mt_zip_writer_discard(mt_zip_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
  free(w->e);
  free(w->buf);
  free(w);
}
