/*
 * mapfile.c — a whole file mapped into memory, for loading tensors without copying them.
 *
 * The mapping is private and writable: tensors over it can be written like any other, and the
 * kernel copies a page on its first write, so nothing reaches the file. Storages over the
 * mapping each hold a reference; the mapping goes when the last one does, however long the
 * value tree that came with them lives. Our saves replace files by rename, so a mapped file
 * is never rewritten under us; a program that truncates it in place would make the pages
 * vanish (SIGBUS), as with any mmap.
 */
#include "mt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct mt_mapfile {
  uint8_t *data; /* NULL for an empty file */
  size_t size;
  atomic_int refs;
};

mt_status mt_mapfile_open(mt_mapfile **out, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return mt_fail(MT_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  mt_status st = MT_OK;
  if (fstat(fd, &sb) < 0) st = mt_fail(MT_EIO, "%s: cannot stat: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode)) st = mt_fail(MT_EIO, "%s: not a regular file", path);
  else if ((uint64_t)sb.st_size > SIZE_MAX) st = mt_fail(MT_ENOMEM, "%s: too large to map", path);
  mt_mapfile *m = st == MT_OK ? calloc(1, sizeof *m) : NULL;
  if (st == MT_OK && !m) st = mt_fail(MT_ENOMEM, "out of memory");
  if (st == MT_OK && sb.st_size > 0) {
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) st = mt_fail(MT_EIO, "%s: cannot map: %s", path, strerror(errno));
    else m->data = p, m->size = (size_t)sb.st_size;
  }
  close(fd); /* the mapping keeps the file */
  if (st != MT_OK) {
    free(m);
    return st;
  }
  atomic_init(&m->refs, 1);
  *out = m;
  return MT_OK;
}

const uint8_t *mt_mapfile_data(const mt_mapfile *m) { return m->data; }
size_t mt_mapfile_size(const mt_mapfile *m) { return m->size; }

void mt_mapfile_release(mt_mapfile *m) {
  if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1) return;
  if (m->data) munmap(m->data, m->size);
  free(m);
}

static void release_storage(void *ctx, void *data, size_t nbytes) {
  (void)data;
  (void)nbytes;
  mt_mapfile_release(ctx);
}

mt_status mt_mapfile_storage(mt_storage **out, mt_mapfile *m, size_t offset, size_t nbytes) {
  if (offset > m->size || nbytes > m->size - offset)
    return mt_fail(MT_EARG, "bytes [%zu, %zu + %zu) lie outside the %zu-byte mapping", offset, offset, nbytes,
                   m->size);
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  mt_status st = mt_storage_wrap(out, m->size ? m->data + offset : NULL, nbytes, release_storage, m);
  if (st != MT_OK) mt_mapfile_release(m); /* wrap failed: it will not call us back */
  return st;
}
