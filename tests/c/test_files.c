/* test_files.c — the file layer under checkpoints: atomic replacement (kills, concurrent
 * saves, unwritable places, file-size limits), mapped files, and the zip container (layout,
 * alignment, and a catalogue of broken and hostile archives). */
#include "mt_internal.h"
#include "mt_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zip.h>

static char dir[] = "/tmp/mt_files_XXXXXX";

#include "mt_test_io.h"

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Files in the test directory other than `keep` (temporaries included). */
static int count_files(void) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static void clear_dir(void) {
  DIR *d = opendir(dir);
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(path_in(e->d_name));
  closedir(d);
}

/* ---- a zip archive of numbered records whose contents check themselves ------------------ */

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) x = x * 1103515245u + 12345u, p[i] = (uint8_t)(x >> 16);
}

static const size_t record_sizes[] = {0, 1, 63, 64, 65, 1000, 4096, 100003};
#define NREC (sizeof record_sizes / sizeof record_sizes[0])

/* Writes records "r0".."r7" (content from `seed`) to fd, or to memory when fd < 0. */
static mt_status write_archive(int fd, uint32_t seed, size_t scale, void **data, size_t *len) {
  uint8_t *bufs[NREC];
  mt_zip_writer *w;
  mt_status st = mt_zip_writer_new(&w, fd, "test.zip");
  for (size_t i = 0; i < NREC; i++) {
    size_t n = record_sizes[i] * scale;
    bufs[i] = malloc(n + 1);
    fill(bufs[i], n, seed + (uint32_t)i);
    char name[16];
    snprintf(name, sizeof name, "r%zu", i);
    if (st == MT_OK) st = mt_zip_writer_add(w, name, bufs[i], n);
  }
  if (st == MT_OK) st = mt_zip_writer_finish(w, data, len);
  else mt_zip_writer_discard(w);
  for (size_t i = 0; i < NREC; i++) free(bufs[i]);
  return st;
}

/* Opens and reads every record, checking contents; returns the seed, or -1 if not valid. */
static long check_archive(mt_zip_reader *r, size_t scale) {
  long seed = -1;
  for (size_t i = 0; i < NREC; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%zu", i);
    const mt_zip_record *rec = mt_zip_find(r, name);
    size_t n = record_sizes[i] * scale;
    if (!rec || rec->size != n || !rec->stored || rec->data_offset % 64) return -1;
    uint8_t *got = malloc(n + 1), *want = malloc(n + 1);
    if (mt_zip_read(r, rec, got) != MT_OK) {
      free(got), free(want);
      return -1;
    }
    if (i == NREC - 1) { /* the largest record tells which seed wrote it */
      for (uint32_t s = 0; s < 1000 && seed < 0; s++) {
        fill(want, 16, s + (uint32_t)i);
        if (memcmp(want, got, 16) == 0) seed = s;
      }
    }
    bool ok = seed >= 0 || i < NREC - 1;
    if (ok && i == NREC - 1) {
      fill(want, n, (uint32_t)seed + (uint32_t)i);
      ok = memcmp(want, got, n) == 0;
    }
    free(got), free(want);
    if (!ok) return -1;
  }
  return seed;
}

static long check_file(const char *path, size_t scale) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  mt_zip_reader *r;
  long seed = mt_zip_reader_open_fd(&r, fd, path) == MT_OK ? check_archive(r, scale) : -1;
  if (seed >= 0) mt_zip_reader_close(r);
  close(fd);
  return seed;
}

/* ---- zip: layout ------------------------------------------------------------------------ */

static void test_zip_layout(void) {
  void *mem;
  size_t len;
  OK(write_archive(-1, 7, 1, &mem, &len));
  mt_zip_reader *r;
  OK(mt_zip_reader_open_memory(&r, mem, len, "test.zip"));
  CHECK(strcmp(mt_zip_top(r), "archive/") == 0);
  CHECK(check_archive(r, 1) == 7);
  CHECK(mt_zip_find(r, "r8") == NULL && mt_zip_find(r, "archive/r0") == NULL && mt_zip_find(r, "") == NULL);
  /* local headers carry the 'FB' padding field, and records follow in the order added */
  const mt_zip_record *a = mt_zip_find(r, "r0"), *b = mt_zip_find(r, "r1");
  CHECK(a && b && a->data_offset < b->data_offset);
  CHECK(memcmp((uint8_t *)mem + 30 + strlen("archive/r0"), "FB", 2) == 0);
  mt_zip_reader_close(r);

  /* the same archive through a file descriptor, byte for byte (a fixed date: reproducible) */
  int fd = open(path_in("a.zip"), O_RDWR | O_CREAT | O_TRUNC, 0644);
  OK(write_archive(fd, 7, 1, NULL, NULL));
  close(fd);
  size_t flen;
  uint8_t *file = slurp(path_in("a.zip"), &flen);
  CHECK(flen == len && memcmp(file, mem, len) == 0);
  CHECK(check_file(path_in("a.zip"), 1) == 7);
  /* records larger than the sink's 1 MiB write buffer go around it */
  fd = open(path_in("b.zip"), O_RDWR | O_CREAT | O_TRUNC, 0644);
  OK(write_archive(fd, 9, 40, NULL, NULL));
  close(fd);
  CHECK(check_file(path_in("b.zip"), 40) == 9);
  free(file);
  free(mem);
}

/* ---- zip: hostile archives -------------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* The central directory entry for `name`, and the local header it points to. */
static uint8_t *central(uint8_t *z, size_t len, const char *name) {
  size_t nl = strlen(name);
  for (size_t i = 0; i + 46 <= len; i++)
    if (rd32(z + i) == 0x02014b50u && rd16(z + i + 28) == nl && memcmp(z + i + 46, name, nl) == 0) return z + i;
  abort();
}
static uint8_t *local(uint8_t *z, uint8_t *c) { return z + rd32(c + 42); }

static void replace_all(uint8_t *z, size_t len, const char *from, const char *to) {
  size_t n = strlen(from);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(z + i, from, n) == 0) memcpy(z + i, to, n);
}

/* An archive written by libzip itself: `deflate` picks the method of every entry. */
static uint8_t *libzip_archive(const char *const *names, const char *const *texts, int n, bool deflate, size_t *len) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &err);
  zip_source_keep(src);
  zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  for (int i = 0; i < n; i++) {
    zip_int64_t idx = zip_file_add(za, names[i], zip_source_buffer(za, texts[i], strlen(texts[i]), 0), 0);
    zip_set_file_compression(za, (zip_uint64_t)idx, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 9);
  }
  if (zip_close(za) < 0) abort();
  zip_source_open(src);
  zip_source_seek(src, 0, SEEK_END);
  *len = (size_t)zip_source_tell(src);
  zip_source_seek(src, 0, SEEK_SET);
  uint8_t *out = malloc(*len);
  if (zip_source_read(src, out, *len) != (zip_int64_t)*len) abort();
  zip_source_close(src);
  zip_source_free(src);
  return out;
}

/* Opens the archive and reads every record; MT_OK only if all of that worked. */
static mt_status open_and_read_all(const uint8_t *z, size_t len) {
  mt_zip_reader *r;
  mt_status st = mt_zip_reader_open_memory(&r, z, len, "bad.zip");
  if (st != MT_OK) return st;
  for (size_t i = 0; i < NREC && st == MT_OK; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%zu", i);
    const mt_zip_record *rec = mt_zip_find(r, name);
    if (!rec) continue;
    uint8_t *buf = malloc(rec->size + 1);
    st = mt_zip_read(r, rec, buf);
    free(buf);
  }
  mt_zip_reader_close(r);
  return st;
}

static void test_zip_bad(void) {
  mt_zip_reader *r;
  FAILS(mt_zip_reader_open_memory(&r, NULL, 0, "bad.zip"), MT_EFORMAT, "bad.zip: empty (0 bytes)");
  FAILS(mt_zip_reader_open_memory(&r, "hello, world, this is not a zip", 31, "bad.zip"), MT_EFORMAT,
        "bad.zip: not a zip archive");
  FAILS(mt_zip_reader_open_memory(&r, "\x80\x02\x8a\x0a", 4, "bad.zip"), MT_EFORMAT, "bad.zip: a legacy PyTorch file");
  FAILS(mt_zip_reader_open_memory(&r, "PK\3\4", 4, "bad.zip"), MT_EFORMAT, "not a zip archive");

  void *mem;
  size_t len;
  OK(write_archive(-1, 3, 1, &mem, &len));
  uint8_t *good = mem, *z = malloc(len);

  /* truncated anywhere: the end record goes first, so every cut is refused */
  int truncated_ok = 0;
  for (size_t cut = 0; cut < len; cut++) {
    mt_status st = mt_zip_reader_open_memory(&r, good, cut, "bad.zip");
    if (st == MT_OK) mt_zip_reader_close(r), truncated_ok++;
    else if (st != MT_EFORMAT || strncmp(mt_last_error(), "bad.zip: ", 9) != 0) truncated_ok++;
  }
  CHECK(truncated_ok == 0);

  /* single-bit flips all over the headers and directory: each refused cleanly or harmless
   * (a date, a padding byte); flips in record data are the CRC's business, below */
  bool *in_data = calloc(len, 1);
  OK(mt_zip_reader_open_memory(&r, good, len, "bad.zip"));
  for (size_t i = 0; i < NREC; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%zu", i);
    const mt_zip_record *d = mt_zip_find(r, name);
    memset(in_data + d->data_offset, 1, d->size);
  }
  mt_zip_reader_close(r);
  int flips = 0, refused = 0, weird = 0;
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8 && !in_data[i]; bit += 3) {
      memcpy(z, good, len);
      z[i] ^= (uint8_t)(1u << bit);
      mt_status st = open_and_read_all(z, len);
      flips++;
      if (st == MT_OK) continue;
      refused++;
      if (st != MT_EFORMAT || strncmp(mt_last_error(), "bad.zip: ", 9) != 0) {
        if (weird++ < 5) fprintf(stderr, "flip %zu.%d: %s %s\n", i, bit, mt_status_name(st), mt_last_error());
      }
    }
  }
  CHECK(weird == 0 && refused > flips / 2);
  fprintf(stderr, "bit flips: %d of %d refused\n", refused, flips);
  free(in_data);
  memcpy(z, good, len);
  OK(mt_zip_reader_open_memory(&r, z, len, "bad.zip"));
  const mt_zip_record *rec = mt_zip_find(r, "r5");
  z[rec->data_offset + 500] ^= 1;
  uint8_t buf[1000];
  FAILS(mt_zip_read(r, rec, buf), MT_EFORMAT, "bad.zip: r5: CRC mismatch");
  mt_zip_reader_close(r);

  /* duplicate names, unsafe names */
  static const struct { const char *from, *to, *needle; } names[] = {
      {"archive/r1", "archive/r0", "duplicate entry 'archive/r0'"},
      {"archive/r1", "archive/..", "has an unsafe name: it contains a '..' component"},
      {"archive/r1", "../../etc1", "'../../etc1' has an unsafe name"},
      {"archive/r1", "/etc/passw", "it is an absolute path"},
      {"archive/r1", "archive\\r1", "it contains a backslash"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    memcpy(z, good, len);
    replace_all(z, len, names[i].from, names[i].to);
    FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, names[i].needle);
  }
  memcpy(z, good, len);
  replace_all(z, len, "archive/r0", "archive_r0");
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "first entry 'archive_r0' is not inside a folder");

  /* directory fields that lie */
  memcpy(z, good, len);
  uint8_t *c = central(z, len, "archive/r5");
  wr16(c + 8, 1); /* encrypted */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "entry 'archive/r5' is encrypted");
  memcpy(z, good, len);
  c = central(z, len, "archive/r5");
  wr16(c + 10, 12), wr16(local(z, c) + 8, 12); /* bzip2 */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "uses compression method 12");
  memcpy(z, good, len);
  c = central(z, len, "archive/r5");
  wr32(c + 20, 1000 + 200), wr32(c + 24, 1000 + 200); /* runs into the next entry */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "entries 'archive/r5' and 'archive/r6' overlap");
  memcpy(z, good, len);
  c = central(z, len, "archive/r7");
  wr32(c + 20, 0x7fffffff), wr32(c + 24, 0x7fffffff);
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "run past the archive's data");
  memcpy(z, good, len);
  c = central(z, len, "archive/r5");
  wr32(c + 42, rd32(central(z, len, "archive/r4") + 42)); /* points at another entry's header */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "local header");
  memcpy(z, good, len);
  wr16(z + len - 22 + 10, 60000), wr16(z + len - 22 + 8, 60000); /* entry count */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "claims 60000 entries");
  memcpy(z, good, len);
  wr32(z + len - 22 + 16, rd32(z + len - 22 + 16) - 1); /* directory offset */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "bad.zip"), MT_EFORMAT, "does not end where the end record starts");
  free(z);
  free(mem);

  /* deflated records: good ones read; lying sizes are caught */
  static const char *const dn[] = {"top/r0", "top/r1"};
  const char *text = "the quick brown fox jumps over the lazy dog, the quick brown fox jumps over the lazy dog";
  const char *const dt[] = {text, "short"};
  size_t zl;
  z = libzip_archive(dn, dt, 2, true, &zl);
  OK(mt_zip_reader_open_memory(&r, z, zl, "bad.zip"));
  rec = mt_zip_find(r, "r0");
  CHECK(strcmp(mt_zip_top(r), "top/") == 0 && rec && !rec->stored && rec->size == strlen(text) &&
        rec->comp_size < rec->size);
  char out[200] = {0};
  OK(mt_zip_read(r, rec, out));
  CHECK(strcmp(out, text) == 0);
  mt_zip_reader_close(r);
  c = central(z, zl, "top/r0");
  wr32(c + 24, 40), wr32(local(z, c) + 22, 40); /* declares fewer bytes than it inflates to */
  OK(mt_zip_reader_open_memory(&r, z, zl, "bad.zip"));
  FAILS(mt_zip_read(r, mt_zip_find(r, "r0"), out), MT_EFORMAT, "bad.zip: r0: record inflates past its declared 40 bytes");
  mt_zip_reader_close(r);
  wr32(c + 24, 80), wr32(local(z, c) + 22, 80);
  OK(mt_zip_reader_open_memory(&r, z, zl, "bad.zip"));
  FAILS(mt_zip_read(r, mt_zip_find(r, "r0"), out), MT_EFORMAT, "bad.zip: r0: record");
  mt_zip_reader_close(r);
  wr32(c + 24, 0xF0000000u), wr32(local(z, c) + 22, 0xF0000000u); /* a bomb: 4 GB from 40 bytes */
  FAILS(mt_zip_reader_open_memory(&r, z, zl, "bad.zip"), MT_EFORMAT, "more than its");
  free(z);
}

/* More than 65535 entries: libzip writes Zip64 end records, which the reader follows. */
static void test_zip64(void) {
  enum { N = 70000 };
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &err);
  zip_source_keep(src);
  zip_t *za = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "top/e%d", i);
    char *text = strdup(name); /* each entry holds its own name; libzip frees it */
    zip_int64_t idx = zip_file_add(za, name, zip_source_buffer(za, text, strlen(text), 1), 0);
    zip_set_file_compression(za, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
  }
  if (zip_close(za) < 0) abort();
  zip_source_open(src);
  zip_source_seek(src, 0, SEEK_END);
  size_t len = (size_t)zip_source_tell(src);
  zip_source_seek(src, 0, SEEK_SET);
  uint8_t *z = malloc(len);
  if (zip_source_read(src, z, len) != (zip_int64_t)len) abort();
  zip_source_close(src);
  zip_source_free(src);
  CHECK(rd32(z + len - 22) == 0x06054b50u && rd16(z + len - 22 + 10) == 0xFFFF && rd32(z + len - 42) == 0x07064b50u);
  mt_zip_reader *r;
  OK(mt_zip_reader_open_memory(&r, z, len, "big.zip"));
  const mt_zip_record *rec = mt_zip_find(r, "e12345");
  char buf[32] = {0};
  CHECK(rec && rec->size == 10 && mt_zip_read(r, rec, buf) == MT_OK && strcmp(buf, "top/e12345") == 0);
  rec = mt_zip_find(r, "e69999");
  CHECK(rec && rec->size == 10 && mt_zip_read(r, rec, buf) == MT_OK && strcmp(buf, "top/e69999") == 0);
  mt_zip_reader_close(r);
  /* the Zip64 end record's count must fit its directory too */
  uint8_t *z64 = z + rd32(z + len - 42 + 8);
  z64[24 + 3] = z64[32 + 3] = 0x40; /* entries on this disk, and in all */
  FAILS(mt_zip_reader_open_memory(&r, z, len, "big.zip"), MT_EFORMAT, "big.zip: the end record claims");
  free(z);
}

/* ---- atomic replacement ----------------------------------------------------------------- */

static mt_status atomic_write(const char *path, const char *text) {
  mt_atomic_file *f;
  mt_status st = mt_atomic_open(&f, path);
  if (st != MT_OK) return st;
  st = mt_write_all(mt_atomic_fd(f), text, strlen(text), path);
  if (st != MT_OK) {
    mt_atomic_abort(f);
    return st;
  }
  return mt_atomic_commit(f);
}

static bool has_text(const char *path, const char *text) {
  size_t n;
  uint8_t *b = slurp(path, &n);
  bool ok = b && n == strlen(text) && memcmp(b, text, n) == 0;
  free(b);
  return ok;
}

static void test_atomic_basics(void) {
  clear_dir();
  PATH(p, "t.bin");
  PATH(tmp, ".t.bin.tmp");
  OK(atomic_write(p, "first"));
  CHECK(has_text(p, "first") && !exists(tmp) && count_files() == 1);
  chmod(p, 0600);
  OK(atomic_write(p, "second"));
  struct stat sb;
  CHECK(has_text(p, "second") && !exists(tmp) && stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
  /* a stale temporary (a killed save) is reused and goes with the next save */
  spit(tmp, "stale junk, longer than what comes next", 39);
  OK(atomic_write(p, "third"));
  CHECK(has_text(p, "third") && !exists(tmp) && count_files() == 1);
  /* abort leaves the old file alone */
  mt_atomic_file *f;
  OK(mt_atomic_open(&f, p));
  OK(mt_write_all(mt_atomic_fd(f), "partial", 7, p));
  mt_atomic_abort(f);
  CHECK(has_text(p, "third") && !exists(tmp));
  /* relative paths: the temporary goes beside the target in the current directory */
  char cwd[512];
  if (getcwd(cwd, sizeof cwd) && chdir(dir) == 0) {
    OK(atomic_write("rel.bin", "relative"));
    CHECK(has_text("rel.bin", "relative") && !exists(".rel.bin.tmp"));
    if (chdir(cwd) != 0) abort();
  }
  /* places that cannot be written */
  FAILS(atomic_write("/nonexistent-mt-dir/x.pt", "x"), MT_EIO,
        "/nonexistent-mt-dir/x.pt: cannot create the temporary file /nonexistent-mt-dir/.x.pt.tmp: No such file");
  FAILS(atomic_write("/proc/mt-test.pt", "x"), MT_EIO, "/proc/mt-test.pt: cannot create the temporary file");
  FAILS(atomic_write(path_in(""), "x"), MT_EIO, "not a file name");
  if (geteuid() != 0) { /* chmod binds only non-root users */
    mkdir(path_in("ro"), 0555);
    FAILS(atomic_write(path_in("ro/x.pt"), "x"), MT_EIO, "Permission denied");
    rmdir(path_in("ro"));
  }
  /* a directory in the way of the rename: the temporary is cleaned up */
  mkdir(path_in("d"), 0755);
  FAILS(atomic_write(path_in("d"), "x"), MT_EIO, "cannot rename the temporary file");
  CHECK(!exists(path_in(".d.tmp")));
  rmdir(path_in("d"));
  /* a save through a symlink replaces the file it points to, and keeps the link */
  spit(path_in("real.bin"), "old", 3);
  if (symlink("real.bin", path_in("link.bin")) == 0) {
    OK(atomic_write(path_in("link.bin"), "new through the link"));
    struct stat lb;
    CHECK(lstat(path_in("link.bin"), &lb) == 0 && S_ISLNK(lb.st_mode) && has_text(path_in("real.bin"), "new through the link"));
    CHECK(!exists(path_in(".real.bin.tmp")) && !exists(path_in(".link.bin.tmp")));
  }
  /* a symlink planted at the temporary's name is not followed */
  spit(path_in("victim"), "precious", 8);
  if (symlink(path_in("victim"), path_in(".s.bin.tmp")) == 0) {
    FAILS(atomic_write(path_in("s.bin"), "x"), MT_EIO, "cannot create the temporary file");
    CHECK(has_text(path_in("victim"), "precious"));
  }
  clear_dir();
}

/* A write past `ulimit -f` fails with EFBIG instead of killing the process with SIGXFSZ. */
static void test_atomic_file_size_limit(void) {
  clear_dir();
  PATH(p, "big.bin");
  OK(atomic_write(p, "old contents"));
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit rl = {65536, 65536};
    setrlimit(RLIMIT_FSIZE, &rl);
    size_t n = 1 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    mt_atomic_file *f;
    if (mt_atomic_open(&f, p) != MT_OK) _exit(2);
    mt_status st = mt_write_all(mt_atomic_fd(f), big, n, p);
    bool ok = st == MT_EIO && strstr(mt_last_error(), "big.bin: cannot write: File too large");
    mt_atomic_abort(f);
    /* and the whole zip writer path, into a fresh temporary */
    int fd = open(path_in("other.zip"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    st = write_archive(fd, 1, 40, NULL, NULL);
    ok = ok && st == MT_EIO && strstr(mt_last_error(), "test.zip: cannot write: File too large");
    _exit(ok ? 0 : 1);
  }
  int status;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(has_text(p, "old contents") && !exists(path_in(".big.bin.tmp")));
  clear_dir();
}

/* SIGKILL at random moments of large saves: the target is always the old or the new archive
 * and reads back whole; at most the one fixed temporary is left, and the next save takes it. */
static void test_atomic_kill(void) {
  clear_dir();
  PATH(p, "k.zip");
  PATH(tmp, ".k.zip.tmp");
  int fd;
  mt_atomic_file *f;
  OK(mt_atomic_open(&f, p));
  OK(write_archive(mt_atomic_fd(f), 0, 40, NULL, NULL));
  OK(mt_atomic_commit(f));
  srand(12345);
  long last = 0;
  int bad = 0, stale = 0, killed_mid = 0;
  for (int round = 1; round <= 40; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      for (int g = 0;; g++) { /* save new generations until killed */
        if (mt_atomic_open(&f, p) != MT_OK) _exit(1);
        if (write_archive(mt_atomic_fd(f), (uint32_t)(round * 10 + g % 10), 40, NULL, NULL) != MT_OK) _exit(1);
        if (mt_atomic_commit(f) != MT_OK) _exit(1);
      }
    }
    usleep((useconds_t)(rand() % 30000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) bad++;
    long seed = check_file(p, 40);
    if (seed < 0 || (seed != last && seed / 10 != round)) bad++;
    last = seed;
    if (exists(tmp)) stale++, killed_mid += check_file(tmp, 40) < 0;
    if (count_files() > 2) bad++;
  }
  CHECK(bad == 0);
  CHECK(stale > 0 && killed_mid > 0); /* the kills did land mid-save */
  fprintf(stderr, "kill test: %d of 40 kills left a temporary, %d of them torn\n", stale, killed_mid);
  OK(mt_atomic_open(&f, p));
  OK(write_archive(mt_atomic_fd(f), 999, 1, NULL, NULL));
  OK(mt_atomic_commit(f));
  CHECK(check_file(p, 1) == 999 && !exists(tmp) && count_files() == 1);
  (void)fd;
  clear_dir();
}

/* Several processes saving one path at once: every save succeeds, and a reader watching the
 * path all along only ever sees whole archives. */
static void test_atomic_concurrent(void) {
  clear_dir();
  PATH(p, "c.zip");
  mt_atomic_file *f;
  OK(mt_atomic_open(&f, p));
  OK(write_archive(mt_atomic_fd(f), 0, 10, NULL, NULL));
  OK(mt_atomic_commit(f));
  enum { WRITERS = 4, SAVES = 15 };
  pid_t pids[WRITERS];
  for (int w = 0; w < WRITERS; w++) {
    if ((pids[w] = fork()) == 0) {
      for (int s = 0; s < SAVES; s++) {
        if (mt_atomic_open(&f, p) != MT_OK) _exit(1);
        if (write_archive(mt_atomic_fd(f), (uint32_t)(100 * (w + 1) + s), 10, NULL, NULL) != MT_OK) _exit(2);
        if (mt_atomic_commit(f) != MT_OK) _exit(3);
      }
      _exit(0);
    }
  }
  int reads = 0, torn = 0, alive = WRITERS, failed = 0;
  while (alive > 0) {
    reads++;
    if (check_file(p, 10) < 0) torn++;
    int status;
    pid_t done = waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      alive--;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
    }
  }
  long seed = check_file(p, 10);
  CHECK(failed == 0 && torn == 0 && reads > 1);
  CHECK(seed >= 100 && seed % 100 == SAVES - 1); /* someone's last save */
  CHECK(!exists(path_in(".c.zip.tmp")) && count_files() == 1);
  clear_dir();
}

/* ---- mapped files ----------------------------------------------------------------------- */

static void test_mapfile(void) {
  clear_dir();
  PATH(p, "m.bin");
  char text[8192];
  for (size_t i = 0; i < sizeof text; i++) text[i] = (char)('a' + i % 26);
  spit(p, text, sizeof text);
  mt_mapfile *m;
  OK(mt_mapfile_open(&m, p));
  CHECK(mt_mapfile_size(m) == sizeof text && memcmp(mt_mapfile_data(m), text, sizeof text) == 0);
  mt_storage *s;
  OK(mt_mapfile_storage(&s, m, 4096, 100));
  CHECK((uint8_t *)mt_storage_data(s) == mt_mapfile_data(m) + 4096 && mt_storage_nbytes(s) == 100);
  FAILS(mt_mapfile_storage(&s, m, 8000, 200), MT_EARG, "lie outside the 8192-byte mapping");
  FAILS(mt_mapfile_storage(&s, m, SIZE_MAX, 2), MT_EARG, "outside");
  mt_mapfile_release(m); /* the storage keeps the mapping */
  uint8_t *d = mt_storage_data(s);
  CHECK(d[0] == text[4096] && d[99] == text[4195]);
  d[0] = 'Z'; /* copy-on-write: the file does not change */
  CHECK(d[0] == 'Z');
  size_t n;
  uint8_t *back = slurp(p, &n);
  CHECK(n == sizeof text && memcmp(back, text, n) == 0);
  free(back);
  mt_storage_release(s);

  spit(path_in("empty"), "", 0);
  OK(mt_mapfile_open(&m, path_in("empty")));
  CHECK(mt_mapfile_size(m) == 0);
  mt_mapfile_release(m);
  FAILS(mt_mapfile_open(&m, path_in("missing")), MT_EIO, "missing: cannot open: No such file or directory");
  FAILS(mt_mapfile_open(&m, dir), MT_EIO, "not a regular file");
  clear_dir();
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  test_zip_layout();
  test_zip_bad();
  test_zip64();
  test_mapfile();
  test_atomic_basics();
  test_atomic_file_size_limit();
  test_atomic_kill();
  test_atomic_concurrent();
  clear_dir();
  rmdir(dir);
  return mt_test_finish("files");
}
