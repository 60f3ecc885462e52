/* test_zipfile.c — the zip layer's own code against the libraries it replaced: mt_crc32 gives
 * zlib's crc32 bit for bit (every length to 2 KB, longer random ones, every alignment, chained
 * calls), and the archive writer gives, byte for byte, what libzip 1.7.3 wrote for the same
 * records (the writer used libzip before; spec/21 checks that PyTorch reads the result), in
 * memory and to a file, and the reader reads it back with its CRCs checked. */
#include "mt_internal.h"
#include "mt_test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

static uint32_t rnd_state = 12345;
static uint32_t rnd(void) { return rnd_state = rnd_state * 1103515245u + 12345u; }

static void test_crc32(void) {
  size_t cap = (3u << 20) + 64;
  uint8_t *b = malloc(cap);
  for (size_t i = 0; i < cap; i++) b[i] = (uint8_t)(rnd() >> 16);
  int bad = 0;
  for (size_t len = 0; len <= 2048; len++)
    for (size_t off = 0; off < 64; off += 7) {
      uint32_t init = (uint32_t)(len * 2654435761u);
      bad += mt_crc32(init, b + off, len) != (uint32_t)crc32(init, b + off, (uInt)len);
    }
  for (int t = 0; t < 300; t++) {
    size_t len = rnd() % (3u << 20), off = rnd() % 64;
    bad += mt_crc32(t, b + off, len) != (uint32_t)crc32((uLong)t, b + off, (uInt)len);
  }
  CHECK(bad == 0);
  /* pieces chained give the whole's */
  uint32_t c = 0;
  for (size_t at = 0, n = 1; at < cap; at += n, n = n * 3 + 1) c = mt_crc32(c, b + at, at + n > cap ? cap - at : n);
  CHECK(c == (uint32_t)crc32(0, b, (uInt)cap));
  CHECK(mt_crc32(0, b, 0) == 0);
  CHECK(mt_crc32(0, "123456789", 9) == 0xcbf43926u); /* the CRC-32 check value */
  free(b);
}

typedef struct record {
  char name[64];
  uint8_t *data;
  size_t len;
} record;

/* What the writer did through libzip before: every record stored, dated 1980-01-01, an 'FB'
 * local field padding its data to 64 bytes. Returns the archive (malloc'ed). */
static uint8_t *libzip_archive(const record *r, size_t n, size_t *len) {
  static const uint8_t pad[64] = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &err);
  zip_source_keep(src);
  zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  struct tm tm = {.tm_year = 80, .tm_mon = 0, .tm_mday = 1, .tm_isdst = -1};
  time_t mtime = mktime(&tm);
  uint64_t next = 0;
  for (size_t i = 0; i < n; i++) {
    char full[80];
    snprintf(full, sizeof full, "archive/%s", r[i].name);
    zip_int64_t idx = zip_file_add(za, full, zip_source_buffer(za, r[i].data, r[i].len, 0), 0);
    uint64_t start = next + 30 + strlen(full) + 4; /* no Zip64 field at these sizes */
    uint16_t p = (uint16_t)((64 - start % 64) % 64);
    zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    zip_file_set_mtime(za, (zip_uint64_t)idx, mtime, 0);
    zip_file_extra_field_set(za, (zip_uint64_t)idx, 0x4246, ZIP_EXTRA_FIELD_NEW, pad, p, ZIP_FL_LOCAL);
    next = start + p + r[i].len;
  }
  CHECK(zip_close(za) == 0);
  zip_source_open(src);
  zip_source_seek(src, 0, SEEK_END);
  *len = (size_t)zip_source_tell(src);
  zip_source_seek(src, 0, SEEK_SET);
  uint8_t *out = malloc(*len);
  CHECK(zip_source_read(src, out, *len) == (zip_int64_t)*len);
  zip_source_close(src);
  zip_source_free(src);
  return out;
}

static uint8_t *our_archive(const record *r, size_t n, int fd, size_t *len) {
  mt_zip_writer *w = NULL;
  void *data = NULL;
  OK(mt_zip_writer_new(&w, fd, "test"));
  for (size_t i = 0; i < n; i++) OK(mt_zip_writer_add(w, r[i].name, r[i].data, r[i].len));
  OK(mt_zip_writer_finish(w, fd >= 0 ? NULL : &data, fd >= 0 ? NULL : len));
  return data;
}

static void test_writer(size_t n_records) {
  record *r = calloc(n_records, sizeof *r);
  static const size_t sizes[] = {0, 1, 63, 64, 65, 4095, 65535, 65536, 65537, (1u << 20) + 3, 3u << 20};
  for (size_t i = 0; i < n_records; i++) {
    snprintf(r[i].name, sizeof r[i].name, i % 3 ? "data/%zu" : "a_longer_record_name_%zu", i);
    r[i].len = n_records > 100 ? i % 9 : sizes[i % (sizeof sizes / sizeof *sizes)];
    r[i].data = malloc(r[i].len + 1);
    for (size_t k = 0; k < r[i].len; k++) r[i].data[k] = (uint8_t)(rnd() >> 16);
  }
  size_t ref_len = 0, mem_len = 0;
  uint8_t *ref = libzip_archive(r, n_records, &ref_len);
  uint8_t *mem = our_archive(r, n_records, -1, &mem_len);
  CHECK(mem && mem_len == ref_len && memcmp(mem, ref, ref_len) == 0);

  char path[] = "/tmp/mt_zipfile_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  our_archive(r, n_records, fd, NULL);
  uint8_t *file = malloc(ref_len + 1);
  ssize_t got = pread(fd, file, ref_len + 1, 0);
  CHECK(got == (ssize_t)ref_len && memcmp(file, ref, ref_len) == 0);

  /* and it reads back, every record checksummed */
  mt_zip_reader *zr = NULL;
  OK(mt_zip_reader_open_fd(&zr, fd, path));
  for (size_t i = 0; zr && i < n_records; i += n_records > 100 ? 997 : 1) {
    const mt_zip_record *rec = mt_zip_find(zr, r[i].name);
    CHECK(rec && rec->size == r[i].len && rec->stored && rec->data_offset % 64 == 0);
    uint8_t *back = malloc(r[i].len + 1);
    if (rec) OK(mt_zip_read(zr, rec, back));
    CHECK(memcmp(back, r[i].data, r[i].len) == 0);
    free(back);
  }
  mt_zip_reader_close(zr);
  close(fd);
  unlink(path);
  for (size_t i = 0; i < n_records; i++) free(r[i].data);
  free(r);
  free(ref);
  free(mem);
  free(file);
}

/* A stored record read back whole, then with a flipped bit: a CRC error, wherever the bit
 * is (records of several 4 MB chunks are read on the thread pool, their CRCs combined). */
static void test_corruption(void) {
  static const size_t sizes[] = {100000, (10u << 20) + 17};
  for (int t = 0; t < 2; t++) {
    record r = {"data/0", malloc(sizes[t]), sizes[t]};
    for (size_t k = 0; k < r.len; k++) r.data[k] = (uint8_t)(k * 7 + k / 4096);
    size_t len = 0;
    uint8_t *a = our_archive(&r, 1, -1, &len);
    uint8_t *back = malloc(r.len);
    for (int flip = 0; flip < 3; flip++) {
      size_t at = flip == 0 ? 0 : flip == 1 ? r.len / 2 : r.len - 1;
      mt_zip_reader *zr = NULL;
      OK(mt_zip_reader_open_memory(&zr, a, len, "mem"));
      const mt_zip_record *rec = zr ? mt_zip_find(zr, "data/0") : NULL;
      CHECK(rec && rec->data_offset == 64); /* 30-byte header, 14-byte name, 4 + 16 of padding */
      if (rec && flip == 0) {
        OK(mt_zip_read(zr, rec, back));
        CHECK(memcmp(back, r.data, r.len) == 0);
      }
      a[64 + at] ^= 0x10;
      if (rec) FAILS(mt_zip_read(zr, rec, back), MT_EFORMAT, "mem: data/0: CRC mismatch, the record is corrupt");
      a[64 + at] ^= 0x10;
      mt_zip_reader_close(zr);
    }
    free(back);
    free(a);
    free(r.data);
  }
}

int main(void) {
  test_crc32();
  test_writer(11);
  test_writer(70000); /* more than 65535 entries: Zip64 end records */
  test_corruption();
  return mt_test_finish("test_zipfile");
}
