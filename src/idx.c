/*
 * idx.c — IDX files, the format of MNIST and Fashion-MNIST: two zero bytes, an element-type
 * byte, a dimension-count byte, one big-endian u32 per dimension, then the elements in
 * row-major order, big-endian. Files are read plain or gzip-compressed (the distributions ship
 * them as .gz).
 *
 * The gzip stream is inflated here with zlib's inflate rather than gzread: gzread quietly
 * drops bytes that follow the last gzip member, and a reader of files from elsewhere should
 * account for every byte. Concatenated members (a valid gzip file) are read as one stream.
 *
 * Hostile headers: the header is never trusted for an allocation. The data buffer starts at
 * 1 MiB (or the declared size, when smaller) and grows fourfold, up to the declared size, only
 * when decompressed bytes keep arriving; so a 100-byte file that declares 2^40 elements costs
 * 1 MiB before it is refused as truncated, and an honest file costs at most one extra copy of
 * a quarter of its data.
 */
#include "mt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_IN_CHUNK (256u * 1024u)       /* compressed bytes read per read() */
#define IDX_FIRST_CAP ((size_t)1 << 20) /* first data buffer, when the header declares more */

/* ---- a byte source: the plain file, or its inflated gzip stream ---------------------------- */

typedef struct idx_src {
  const char *path;
  int fd;
  bool gzip;
  bool raw_eof;     /* read() has returned 0 */
  bool member_done; /* inflate reached the end of a gzip member */
  bool z_live;      /* inflateInit2 succeeded: inflateEnd is owed */
  z_stream z;
  uint8_t *in; /* IDX_IN_CHUNK bytes; z.next_in / z.avail_in point into it */
} idx_src;

/* One read() of up to n bytes, retrying EINTR. */
static mt_status raw_read(idx_src *s, uint8_t *buf, size_t n, size_t *got) {
  for (;;) {
    ssize_t r = read(s->fd, buf, n);
    if (r >= 0) {
      *got = (size_t)r;
      if (r == 0) s->raw_eof = true;
      return MT_OK;
    }
    if (errno != EINTR) return mt_fail(MT_EIO, "%s: read failed (%s)", s->path, strerror(errno));
  }
}

/* Tops up the compressed input so that at least `want` bytes (want <= IDX_IN_CHUNK) are
 * buffered, or the file has ended. */
static mt_status refill(idx_src *s, size_t want) {
  if (s->z.avail_in > 0 && s->z.next_in != s->in) memmove(s->in, s->z.next_in, s->z.avail_in);
  s->z.next_in = s->in;
  while (s->z.avail_in < want && !s->raw_eof) {
    size_t got;
    mt_status st = raw_read(s, s->in + s->z.avail_in, IDX_IN_CHUNK - s->z.avail_in, &got);
    if (st) return st;
    s->z.avail_in += (uInt)got;
  }
  return MT_OK;
}

static mt_status src_open(idx_src *s, const char *path) {
  memset(s, 0, sizeof *s);
  s->path = path;
  s->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (s->fd < 0) {
    if (errno == ENOENT) return mt_fail(MT_EIO, "%s: no such file", path);
    return mt_fail(MT_EIO, "%s: cannot open (%s)", path, strerror(errno));
  }
  struct stat sb;
  if (fstat(s->fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    close(s->fd);
    return mt_fail(MT_EIO, "%s: is a directory, not a file", path);
  }
  s->in = malloc(IDX_IN_CHUNK);
  if (!s->in) {
    close(s->fd);
    return mt_fail(MT_ENOMEM, "out of memory");
  }
  mt_status st = refill(s, 2);
  if (st == MT_OK && s->z.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b) {
    s->gzip = true;
    /* inflateInit2 reads nothing yet; keep what refill buffered. */
    Bytef *next = s->z.next_in;
    uInt avail = s->z.avail_in;
    if (inflateInit2(&s->z, 15 + 16) != Z_OK) { /* 15 + 16: a gzip wrapper, the largest window */
      st = mt_fail(MT_ENOMEM, "out of memory (zlib)");
    } else {
      s->z_live = true;
      s->z.next_in = next;
      s->z.avail_in = avail;
    }
  }
  if (st) {
    free(s->in);
    close(s->fd);
  }
  return st;
}

static void src_close(idx_src *s) {
  if (s->z_live) inflateEnd(&s->z);
  free(s->in);
  close(s->fd);
}

/* Reads up to n bytes of content; *got < n only where the content ends. */
static mt_status src_read(idx_src *s, uint8_t *buf, size_t n, size_t *got) {
  size_t done = 0;
  mt_status st;
  if (!s->gzip) {
    /* Bytes refill buffered for the gzip sniff come first. */
    size_t k = s->z.avail_in < n ? s->z.avail_in : n;
    memcpy(buf, s->z.next_in, k);
    s->z.next_in += k;
    s->z.avail_in -= (uInt)k;
    done = k;
    while (done < n && !s->raw_eof) {
      size_t r;
      if ((st = raw_read(s, buf + done, n - done, &r))) return st;
      done += r;
    }
    *got = done;
    return MT_OK;
  }
  while (done < n) {
    if (s->member_done) {
      /* After a member: the file ends, or another member follows; anything else is junk. */
      if ((st = refill(s, 2))) return st;
      if (s->z.avail_in == 0) break;
      if (s->z.avail_in < 2 || s->z.next_in[0] != 0x1f || s->z.next_in[1] != 0x8b)
        return mt_fail(MT_EFORMAT, "%s: trailing data after the gzip stream", s->path);
      inflateReset(&s->z);
      s->member_done = false;
    }
    if (s->z.avail_in == 0) {
      if ((st = refill(s, 1))) return st;
      if (s->z.avail_in == 0) return mt_fail(MT_EFORMAT, "%s: the gzip stream is truncated", s->path);
    }
    size_t want = n - done;
    s->z.next_out = buf + done;
    s->z.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
    uInt before = s->z.avail_out;
    int r = inflate(&s->z, Z_NO_FLUSH);
    done += before - s->z.avail_out;
    if (r == Z_STREAM_END) {
      s->member_done = true;
    } else if (r == Z_BUF_ERROR) {
      /* No progress: inflate wants more input, which the next pass fetches. */
      if (s->z.avail_in > 0 && s->z.avail_out > 0)
        return mt_fail(MT_EFORMAT, "%s: corrupt gzip data (inflate made no progress)", s->path);
    } else if (r != Z_OK) {
      return mt_fail(MT_EFORMAT, "%s: corrupt gzip data (%s)", s->path, s->z.msg ? s->z.msg : zError(r));
    }
  }
  *got = done;
  return MT_OK;
}

/* ---- the format ---------------------------------------------------------------------------- */

static bool idx_dtype(uint8_t code, mt_dtype *dt) {
  switch (code) {
  case 0x08: *dt = MT_UINT8; return true;
  case 0x09: *dt = MT_INT8; return true;
  case 0x0B: *dt = MT_INT16; return true;
  case 0x0C: *dt = MT_INT32; return true;
  case 0x0D: *dt = MT_FLOAT32; return true;
  case 0x0E: *dt = MT_FLOAT64; return true;
  default: return false;
  }
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Big-endian elements to the host's order, in place (the loops vectorise to byte shuffles). */
static void from_big_endian(uint8_t *p, size_t nbytes, size_t esize) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  (void)p, (void)nbytes, (void)esize;
#else
  size_t n = nbytes / esize;
  if (esize == 2) {
    uint16_t *q = (uint16_t *)p;
    for (size_t i = 0; i < n; i++) q[i] = __builtin_bswap16(q[i]);
  } else if (esize == 4) {
    uint32_t *q = (uint32_t *)p;
    for (size_t i = 0; i < n; i++) q[i] = __builtin_bswap32(q[i]);
  } else if (esize == 8) {
    uint64_t *q = (uint64_t *)p;
    for (size_t i = 0; i < n; i++) q[i] = __builtin_bswap64(q[i]);
  }
#endif
}

/* Reads exactly n header bytes; `what` names them for the truncation message. */
static mt_status read_header_bytes(idx_src *s, uint8_t *buf, size_t n, size_t already, const char *what) {
  size_t got;
  mt_status st = src_read(s, buf, n, &got);
  if (st) return st;
  if (got == n) return MT_OK;
  if (already + got == 0) return mt_fail(MT_EFORMAT, "%s: the file is empty", s->path);
  return mt_fail(MT_EFORMAT, "%s: truncated header: %zu of the %zu bytes of its %s", s->path, got, n, what);
}

/* The data that follows the header: exactly nbytes, into a storage grown as bytes arrive. */
static mt_status read_data(idx_src *s, size_t nbytes, const char *decl, mt_storage **out) {
  size_t cap = nbytes < IDX_FIRST_CAP ? nbytes : IDX_FIRST_CAP, have = 0;
  mt_storage *buf = NULL;
  mt_status st = mt_storage_alloc(&buf, cap, false);
  if (st) return st;
  for (;;) {
    size_t got;
    if ((st = src_read(s, (uint8_t *)mt_storage_data(buf) + have, cap - have, &got))) goto fail;
    have += got;
    if (have < cap || cap == nbytes) break; /* the content ended, or all declared bytes are in */
    size_t next = cap > nbytes / 4 ? nbytes : cap * 4;
    mt_storage *bigger;
    if ((st = mt_storage_alloc(&bigger, next, false))) goto fail;
    memcpy(mt_storage_data(bigger), mt_storage_data(buf), have);
    mt_storage_release(buf);
    buf = bigger;
    cap = next;
  }
  if (have < nbytes) {
    st = mt_fail(MT_EFORMAT, "%s: truncated: its header declares %s (%zu bytes of data) but it holds %zu", s->path,
                 decl, nbytes, have);
    goto fail;
  }
  /* One more byte must not exist; for gzip this read also checks the stream's end and CRC. */
  uint8_t extra;
  size_t got;
  if ((st = src_read(s, &extra, 1, &got))) goto fail;
  if (got) {
    st = mt_fail(MT_EFORMAT, "%s: trailing data after the %zu bytes of data its header declares (%s)", s->path,
                 nbytes, decl);
    goto fail;
  }
  *out = buf;
  return MT_OK;
fail:
  mt_storage_release(buf);
  return st;
}

MT_API mt_status mt_read_idx(mt_tensor **out, const char *path) {
  if (!out || !path) return mt_fail(MT_EARG, "the output or the path is NULL");
  idx_src s;
  mt_status st = src_open(&s, path);
  if (st) return st;

  uint8_t magic[4], dimbuf[4 * 255];
  mt_dtype dt = MT_UINT8;
  int ndim = 0;
  int64_t sizes[MT_MAX_DIMS], strides[MT_MAX_DIMS], numel = 1, nbytes = 0;
  char decl[MT_SHAPE_STRLEN + 32];
  mt_storage *data = NULL;

  if ((st = read_header_bytes(&s, magic, 4, 0, "magic number"))) goto done;
  if (magic[0] != 0 || magic[1] != 0) {
    st = mt_fail(MT_EFORMAT,
                 "%s: not an IDX file (it starts with bytes %02x %02x %02x %02x; an IDX file starts with 00 00, "
                 "a type byte and a dimension count)",
                 path, magic[0], magic[1], magic[2], magic[3]);
    goto done;
  }
  if (!idx_dtype(magic[2], &dt)) {
    st = mt_fail(MT_EFORMAT,
                 "%s: unknown IDX element type 0x%02x (known: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, "
                 "0x0D float32, 0x0E float64)",
                 path, magic[2]);
    goto done;
  }
  ndim = magic[3];
  if (ndim == 0 || ndim > MT_MAX_DIMS) {
    st = mt_fail(MT_EFORMAT, "%s: the header declares %d dimensions; 1 to %d are supported", path, ndim, MT_MAX_DIMS);
    goto done;
  }
  if ((st = read_header_bytes(&s, dimbuf, 4 * (size_t)ndim, 4, "dimension sizes"))) goto done;
  bool overflow = false;
  for (int d = 0; d < ndim; d++) {
    sizes[d] = be32(dimbuf + 4 * d);
    overflow = overflow || mt_mul_overflow(numel, sizes[d], &numel);
  }
  char shape[MT_SHAPE_STRLEN];
  mt_shape_str(shape, sizeof shape, ndim, sizes);
  snprintf(decl, sizeof decl, "%s %s", shape, mt_dtype_name(dt));
  if (overflow || mt_mul_overflow(numel, (int64_t)mt_dtype_size(dt), &nbytes) || (uint64_t)nbytes > SIZE_MAX / 2) {
    st = mt_fail(MT_EFORMAT, "%s: the header declares %s, which is too large to hold", path, decl);
    goto done;
  }
  if ((st = read_data(&s, (size_t)nbytes, decl, &data))) goto done;
  from_big_endian(mt_storage_data(data), (size_t)nbytes, mt_dtype_size(dt));
  mt_contiguous_strides(ndim, sizes, strides);
  st = mt_from_storage(out, data, dt, 0, ndim, sizes, strides);
  mt_storage_release(data); /* the tensor holds its own reference */
done:
  src_close(&s);
  return st;
}
