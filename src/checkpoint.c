/*
 * checkpoint.c — PyTorch's checkpoint files: a zip archive (zip_write.c, zip_read.c) holding the pickle of
 * the value tree (pickle_*.c) as data.pkl and each storage as data/<key>, in files (atomic
 * saves, optional mmap loads) or in memory.
 *
 * Records, in PyTorch's order: data.pkl, byteorder ("little"), data/0, data/1, ..., version
 * ("3\n"). Loading needs only data.pkl and the data/ records the pickle names; a version, if
 * present, must be 1 to 3, and a byteorder, if present, "little". Each storage's record must
 * hold exactly numel × element size bytes. With mmap, stored records whose data is aligned to
 * the element size become storages over the mapping; others are read into memory.
 */
#include "mt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define IN_MEMORY "serialized data"
#define HUGE_PAGE ((uintptr_t)2 << 20)

/* Asks for transparent huge pages under a fresh storage about to be filled from the file.
 * glibc gives big blocks back to the kernel when they are freed, so each load of a big
 * checkpoint faults all of its memory in again: 100,000 faults for 400 MB, ~200 ms of CPU
 * here, four times the reading itself; with 2 MB pages ~75 ms (load_400MB in `make bench`).
 * On this VM a huge page the host has not backed yet costs more to fault than 512 small
 * ones, so a process's first big load can be slower than without the hint; loads after it
 * reuse recently freed pages. Only whole 2 MB pages inside the buffer; a hint, so a kernel
 * without THP changes nothing. */
static void want_huge_pages(void *data, size_t nbytes) {
#ifdef MADV_HUGEPAGE
  uintptr_t lo = ((uintptr_t)data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t hi = ((uintptr_t)data + nbytes) & ~(HUGE_PAGE - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
  (void)data, (void)nbytes;
#endif
}

/* Prefixes the pending error (from the pickle layer, which knows no file names) with where. */
static mt_status fail_in(mt_status st, const char *label) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", mt_last_error());
  return mt_fail(st, "%s: %s", label, msg);
}

/* ---- saving ------------------------------------------------------------------------------ */

static mt_status write_records(mt_zip_writer *w, const mt_buffer *pkl, const mt_storage_table *tb) {
  static const char byteorder[] = "little", version[] = "3\n";
  mt_status st = mt_zip_writer_add(w, "data.pkl", pkl->data, pkl->len);
  if (st == MT_OK) st = mt_zip_writer_add(w, "byteorder", byteorder, sizeof byteorder - 1);
  for (size_t i = 0; i < tb->len && st == MT_OK; i++) {
    char name[32];
    snprintf(name, sizeof name, "data/%zu", i);
    st = mt_zip_writer_add(w, name, mt_storage_data(tb->items[i]), mt_storage_nbytes(tb->items[i]));
  }
  if (st == MT_OK) st = mt_zip_writer_add(w, "version", version, sizeof version - 1);
  return st;
}

/* The pickle and the storages it names; writes the archive to fd, or to memory if fd < 0. */
static mt_status write_checkpoint(const mt_value *v, int fd, const char *label, void **data, size_t *len) {
  mt_buffer pkl = {0};
  mt_storage_table tb = {0};
  mt_zip_writer *w = NULL;
  mt_status st = mt_pickle_write(v, &pkl, &tb);
  if (st != MT_OK) st = fail_in(st, label);
  if (st == MT_OK) st = mt_zip_writer_new(&w, fd, label);
  if (st == MT_OK) st = write_records(w, &pkl, &tb);
  if (st == MT_OK) st = mt_zip_writer_finish(w, data, len); /* frees w */
  else mt_zip_writer_discard(w);
  free(pkl.data);
  mt_storage_table_free(&tb);
  return st;
}

MT_API mt_status mt_save(const mt_value *v, const char *path) {
  if (!v || !path) return mt_fail(MT_EARG, "a value and a path are required");
  mt_atomic_file *f;
  mt_status st = mt_atomic_open(&f, path);
  if (st != MT_OK) return st;
  st = write_checkpoint(v, mt_atomic_fd(f), path, NULL, NULL);
  if (st != MT_OK) {
    mt_atomic_abort(f);
    return st;
  }
  return mt_atomic_commit(f);
}

MT_API mt_status mt_serialize(const mt_value *v, void **data, size_t *len) {
  if (!v || !data || !len) return mt_fail(MT_EARG, "a value and output pointers are required");
  return write_checkpoint(v, -1, IN_MEMORY, data, len);
}

/* ---- loading ----------------------------------------------------------------------------- */

typedef struct loader {
  mt_zip_reader *zip;
  mt_mapfile *map; /* the file mapped, when loading with mmap */
  const char *label;
  bool failed;     /* the error comes from load_storage: its message is complete */
  char msg[512];
} loader;

static mt_status loader_fail(loader *l, mt_status st) {
  l->failed = true;
  snprintf(l->msg, sizeof l->msg, "%s", mt_last_error());
  return st;
}

/* The pickle reader's callback: the storage behind `key`, from record data/<key>. */
static mt_status load_storage(void *ctx, const char *key, mt_dtype dt, int64_t numel, mt_storage **out) {
  loader *l = ctx;
  size_t klen = strlen(key);
  char *name = malloc(klen + 6);
  if (!name) return loader_fail(l, mt_fail(MT_ENOMEM, "out of memory"));
  memcpy(name, "data/", 5);
  memcpy(name + 5, key, klen + 1);
  const mt_zip_record *rec = mt_zip_find(l->zip, name);
  size_t esize = mt_dtype_size(dt);
  int64_t nbytes;
  mt_storage *s = NULL;
  mt_status st = MT_OK;
  if (!rec) {
    st = mt_fail(MT_EFORMAT, "%s: %.200s: record is missing", l->label, name);
  } else if (numel < 0 || mt_mul_overflow(numel, (int64_t)esize, &nbytes) || (uint64_t)nbytes > SIZE_MAX) {
    st = mt_fail(MT_EFORMAT, "%s: %.200s: a storage of %lld %s elements is impossibly large", l->label, name,
                 (long long)numel, mt_dtype_name(dt));
  } else if (rec->size != (uint64_t)nbytes) {
    st = mt_fail(MT_EFORMAT, "%s: %.200s: record is %llu bytes, expected %lld (%lld %s elements)", l->label, name,
                 (unsigned long long)rec->size, (long long)nbytes, (long long)numel, mt_dtype_name(dt));
  } else if (l->map && nbytes > 0 && rec->stored && rec->data_offset % esize == 0) {
    st = mt_mapfile_storage(&s, l->map, (size_t)rec->data_offset, (size_t)nbytes);
  } else if ((st = mt_storage_alloc(&s, (size_t)nbytes, false)) == MT_OK) {
    want_huge_pages(mt_storage_data(s), (size_t)nbytes);
    if ((st = mt_zip_read(l->zip, rec, mt_storage_data(s))) != MT_OK) mt_storage_release(s);
  }
  free(name);
  if (st != MT_OK) return loader_fail(l, st);
  *out = s;
  return MT_OK;
}

/* A small record (version, byteorder) as a string, or "" when absent. */
static mt_status read_small(loader *l, const char *name, char *buf, size_t cap) {
  const mt_zip_record *rec = mt_zip_find(l->zip, name);
  buf[0] = '\0';
  if (!rec) return MT_OK;
  if (rec->size >= cap)
    return mt_fail(MT_EFORMAT, "%s: %s: record is %llu bytes, too long for what it holds", l->label, name,
                   (unsigned long long)rec->size);
  mt_status st = mt_zip_read(l->zip, rec, buf);
  buf[st == MT_OK ? rec->size : 0] = '\0';
  return st;
}

static mt_status check_metadata(loader *l) {
  char text[32];
  mt_status st = read_small(l, "version", text, sizeof text);
  if (st != MT_OK) return st;
  size_t n = strlen(text);
  if (n && text[n - 1] == '\n') text[--n] = '\0';
  if (n && !(n == 1 && text[0] >= '1' && text[0] <= '3'))
    return mt_fail(MT_EFORMAT, "%s: version: format version '%.8s' is not supported (1 to 3 are)", l->label, text);
  if ((st = read_small(l, "byteorder", text, sizeof text)) != MT_OK) return st;
  if (strcmp(text, "big") == 0)
    return mt_fail(MT_EFORMAT, "%s: byteorder: big-endian checkpoints are not supported", l->label);
  if (text[0] && strcmp(text, "little") != 0)
    return mt_fail(MT_EFORMAT, "%s: byteorder: unknown byte order '%.16s'", l->label, text);
  return MT_OK;
}

static mt_status load_from(loader *l, mt_value **out) {
  const mt_zip_record *rec = mt_zip_find(l->zip, "data.pkl");
  if (!rec)
    return mt_fail(MT_EFORMAT, "%s: no data.pkl record in folder '%.*s': not a PyTorch checkpoint", l->label,
                   (int)strlen(mt_zip_top(l->zip)) - 1, mt_zip_top(l->zip));
  mt_status st = check_metadata(l);
  if (st != MT_OK) return st;
  /* rec->size is bounded by the archive's size (zip_read.c refuses impossible ratios) */
  uint8_t *pkl = rec->size < SIZE_MAX ? malloc((size_t)rec->size + 1) : NULL;
  if (!pkl) return mt_fail(MT_ENOMEM, "%s: out of memory reading data.pkl", l->label);
  st = mt_zip_read(l->zip, rec, pkl);
  if (st == MT_OK) {
    mt_value *v = NULL;
    st = mt_pickle_read(pkl, (size_t)rec->size, load_storage, l, &v);
    if (st == MT_OK) *out = v;
    else if (l->failed) mt_fail(st, "%s", l->msg);
    else fail_in(st, l->label); /* its messages start with "data.pkl: " */
  }
  free(pkl);
  return st;
}

MT_API mt_status mt_load(mt_value **out, const char *path, const mt_load_opts *opts) {
  if (!out || !path) return mt_fail(MT_EARG, "an output pointer and a path are required");
  loader l = {.label = path};
  mt_status st;
  int fd = -1;
  if (opts && opts->mmap) {
    if ((st = mt_mapfile_open(&l.map, path)) != MT_OK) return st;
    st = mt_zip_reader_open_memory(&l.zip, mt_mapfile_data(l.map), mt_mapfile_size(l.map), path);
  } else {
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) return mt_fail(MT_EIO, "%s: cannot open: %s", path, strerror(errno));
    st = mt_zip_reader_open_fd(&l.zip, fd, path);
  }
  if (st == MT_OK) st = load_from(&l, out);
  mt_zip_reader_close(l.zip);
  mt_mapfile_release(l.map); /* the storages over it keep their own references */
  if (fd >= 0) close(fd);
  return st;
}

MT_API mt_status mt_deserialize(mt_value **out, const void *data, size_t len) {
  if (!out || (!data && len)) return mt_fail(MT_EARG, "an output pointer and data are required");
  loader l = {.label = IN_MEMORY};
  mt_status st = mt_zip_reader_open_memory(&l.zip, data, len, IN_MEMORY);
  if (st == MT_OK) st = load_from(&l, out);
  mt_zip_reader_close(l.zip);
  return st;
}
