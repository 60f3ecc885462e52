/* test_idx.c — mt_read_idx: every element type, plain and gzip (one and several members),
 * empty dims, and a catalogue of broken and hostile files (each refused with a message that
 * names the file and the problem, without allocating what a lying header declares). */
#include "mt_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[] = "/tmp/mt_idx_XXXXXX";

static const char *path_in(const char *name) {
  static char buf[4][512];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static void write_plain(const char *path, const void *data, size_t n, const char *mode) {
  FILE *f = fopen(path, mode);
  if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
}

/* One gzip member holding data; mode "wb" starts the file, "ab" appends another member. */
static void write_gz(const char *path, const void *data, size_t n, const char *mode) {
  gzFile g = gzopen(path, mode);
  if (!g || (n && gzwrite(g, data, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(2);
  }
}

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) exit(2);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) exit(2);
  fclose(f);
  *len = (size_t)n;
  return b;
}

/* An IDX header for `type` with the given dims into buf; returns its length. */
static size_t header(uint8_t *buf, uint8_t type, int ndim, const uint32_t *dims) {
  buf[0] = 0, buf[1] = 0, buf[2] = type, buf[3] = (uint8_t)ndim;
  for (int d = 0; d < ndim; d++) {
    buf[4 + 4 * d] = (uint8_t)(dims[d] >> 24);
    buf[5 + 4 * d] = (uint8_t)(dims[d] >> 16);
    buf[6 + 4 * d] = (uint8_t)(dims[d] >> 8);
    buf[7 + 4 * d] = (uint8_t)dims[d];
  }
  return 4 + 4 * (size_t)ndim;
}

/* Element k of each type's test pattern, as a double, and stored big-endian. */
static double pattern(mt_dtype dt, int k) {
  switch (dt) {
  case MT_UINT8: return (k * 37) % 256;
  case MT_INT8: return (k * 37) % 256 - 128;
  case MT_INT16: return k * 1111 - 30000;
  case MT_INT32: return (double)k * 123456789.0 - 2000000000.0;
  case MT_FLOAT32: return (k - 5) * 0.375;
  default: return (k - 5) * 1e-300 + k * 1.5;
  }
}

static size_t put_be(uint8_t *p, mt_dtype dt, double v) {
  uint64_t bits = 0;
  size_t n = mt_dtype_info(dt)->size;
  switch (dt) {
  case MT_UINT8: bits = (uint8_t)v; break;
  case MT_INT8: bits = (uint8_t)(int8_t)v; break;
  case MT_INT16: bits = (uint16_t)(int16_t)v; break;
  case MT_INT32: bits = (uint32_t)(int32_t)v; break;
  case MT_FLOAT32: {
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    bits = u;
    break;
  }
  default: memcpy(&bits, &v, 8); break;
  }
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(bits >> (8 * (n - 1 - i)));
  return n;
}

/* Every element type, 2-D [3, 4], plain and gzip: values, shape, dtype, contiguity. */
static void test_types(void) {
  static const struct {
    uint8_t code;
    mt_dtype dt;
  } types[] = {{0x08, MT_UINT8}, {0x09, MT_INT8},    {0x0B, MT_INT16},
               {0x0C, MT_INT32}, {0x0D, MT_FLOAT32}, {0x0E, MT_FLOAT64}};
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    uint8_t buf[256];
    uint32_t dims[2] = {3, 4};
    size_t n = header(buf, types[t].code, 2, dims);
    for (int k = 0; k < 12; k++) n += put_be(buf + n, types[t].dt, pattern(types[t].dt, k));
    for (int gz = 0; gz < 2; gz++) {
      const char *p = path_in(gz ? "types.gz" : "types");
      if (gz)
        write_gz(p, buf, n, "wb");
      else
        write_plain(p, buf, n, "wb");
      mt_tensor *x = NULL;
      OK(mt_read_idx(&x, p));
      if (!x) continue;
      CHECK(x->dtype == types[t].dt);
      CHECK(x->ndim == 2 && x->sizes[0] == 3 && x->sizes[1] == 4);
      CHECK(mt_is_contiguous(x));
      int bad = 0;
      for (int k = 0; k < 12; k++) {
        mt_scalar v;
        OK(mt_get_flat(x, k, &v));
        double want = pattern(types[t].dt, k);
        if (types[t].dt == MT_FLOAT32) want = (float)want;
        if (mt_scalar_to_f64(v) != want) bad++;
      }
      CHECK(bad == 0);
      mt_tensor_release(x);
    }
  }
}

/* MNIST-like uint8 images [N, 28, 28] in two concatenated gzip members, and empty dims. */
static void test_shapes(void) {
  enum { N = 5 };
  uint8_t *buf = malloc(16 + N * 784);
  uint32_t dims[3] = {N, 28, 28};
  size_t h = header(buf, 0x08, 3, dims);
  for (int i = 0; i < N * 784; i++) buf[h + (size_t)i] = (uint8_t)(i * 7 + 3);
  const char *p = path_in("images.gz");
  write_gz(p, buf, h + 1000, "wb");
  write_gz(p, buf + h + 1000, (size_t)N * 784 - 1000, "ab");
  mt_tensor *x = NULL;
  OK(mt_read_idx(&x, p));
  if (x) {
    CHECK(x->dtype == MT_UINT8 && x->ndim == 3 && x->sizes[0] == N && x->sizes[1] == 28 && x->sizes[2] == 28);
    CHECK(memcmp(mt_data(x), buf + h, (size_t)N * 784) == 0);
    mt_tensor_release(x);
  }
  free(buf);

  uint8_t e[32];
  uint32_t edims[2] = {0, 9};
  size_t n = header(e, 0x0D, 2, edims);
  write_plain(path_in("empty_dim"), e, n, "wb");
  x = NULL;
  OK(mt_read_idx(&x, path_in("empty_dim")));
  if (x) {
    CHECK(x->dtype == MT_FLOAT32 && x->ndim == 2 && x->sizes[0] == 0 && x->sizes[1] == 9 && mt_numel(x) == 0);
    mt_tensor_release(x);
  }
}

/* Larger than the first buffer, so that the reader grows it: 3 MiB of int16 in gzip. */
static void test_growth(void) {
  uint32_t dims[2] = {1536, 1024};
  size_t nbytes = (size_t)1536 * 1024 * 2;
  uint8_t *buf = malloc(12 + nbytes);
  size_t h = header(buf, 0x0B, 2, dims);
  for (size_t i = 0; i < nbytes / 2; i++) {
    buf[h + 2 * i] = (uint8_t)(i >> 8);
    buf[h + 2 * i + 1] = (uint8_t)i;
  }
  write_gz(path_in("big.gz"), buf, h + nbytes, "wb");
  mt_tensor *x = NULL;
  OK(mt_read_idx(&x, path_in("big.gz")));
  if (x) {
    const int16_t *d = mt_data(x);
    int bad = 0;
    for (size_t i = 0; i < nbytes / 2; i++) bad += d[i] != (int16_t)(uint16_t)i;
    CHECK(bad == 0);
    mt_tensor_release(x);
  }
  free(buf);
}

typedef struct bad_case {
  const char *name;
  const uint8_t *bytes;
  size_t len;
  int gz; /* 1: the bytes are gzip'ed as one member */
  mt_status status;
  const char *needle;
} bad_case;

static void test_bad_files(void) {
  /* A valid uint8 [2, 3] file to break in various ways. */
  uint8_t good[64];
  uint32_t d23[2] = {2, 3};
  size_t g = header(good, 0x08, 2, d23);
  for (int i = 0; i < 6; i++) good[g++] = (uint8_t)(10 + i);

  uint8_t trailing[64];
  memcpy(trailing, good, g);
  trailing[g] = 0x55;

  uint8_t bad_magic[64];
  memcpy(bad_magic, good, g);
  bad_magic[0] = 0x50, bad_magic[1] = 0x4b;

  uint8_t bad_type[64];
  memcpy(bad_type, good, g);
  bad_type[2] = 0x0A;

  uint8_t zero_dims[4] = {0, 0, 0x08, 0};
  uint8_t nine_dims[4] = {0, 0, 0x08, 9};
  uint8_t short_dims[6] = {0, 0, 0x08, 2, 0, 0};

  /* Declares 2^32-1 x 2^32-1 x 2^32-1 (overflows) and 60000 x 28 x 28 x 1000 (47 GB) with
   * 6 bytes of data. */
  uint8_t overflow[64];
  uint32_t dover[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu};
  size_t no = header(overflow, 0x0E, 3, dover);
  uint8_t huge[64];
  uint32_t dhuge[4] = {60000, 28, 28, 1000};
  size_t nh = header(huge, 0x08, 4, dhuge);
  memcpy(huge + nh, good + 12, 6);
  nh += 6;

  /* Wrong dims: [2, 4] over 6 bytes (too few), [1, 3] over 6 (too many). */
  uint8_t wrong_dims_more[64], wrong_dims_less[64];
  uint32_t d24[2] = {2, 4}, d13[2] = {1, 3};
  size_t nm = header(wrong_dims_more, 0x08, 2, d24), nl = header(wrong_dims_less, 0x08, 2, d13);
  memcpy(wrong_dims_more + nm, good + 12, 6);
  memcpy(wrong_dims_less + nl, good + 12, 6);
  nm += 6, nl += 6;

  const bad_case cases[] = {
      {"empty", (const uint8_t *)"", 0, 0, MT_EFORMAT, "empty"},
      {"empty_gz", (const uint8_t *)"", 0, 1, MT_EFORMAT, "empty"},
      {"short_magic", good, 3, 0, MT_EFORMAT, "truncated header"},
      {"bad_magic", bad_magic, g, 0, MT_EFORMAT, "not an IDX file (it starts with bytes 50 4b 08 02"},
      {"bad_magic_gz", bad_magic, g, 1, MT_EFORMAT, "not an IDX file"},
      {"bad_type", bad_type, g, 0, MT_EFORMAT, "unknown IDX element type 0x0a"},
      {"zero_dims", zero_dims, 4, 0, MT_EFORMAT, "declares 0 dimensions"},
      {"nine_dims", nine_dims, 4, 0, MT_EFORMAT, "declares 9 dimensions; 1 to 8 are supported"},
      {"short_dims", short_dims, 6, 0, MT_EFORMAT, "truncated header: 2 of the 8 bytes of its dimension sizes"},
      {"truncated", good, g - 2, 0, MT_EFORMAT, "truncated: its header declares [2, 3] uint8 (6 bytes of data) but it holds 4"},
      {"truncated_gz", good, g - 1, 1, MT_EFORMAT, "but it holds 5"},
      {"trailing", trailing, g + 1, 0, MT_EFORMAT, "trailing data after the 6 bytes of data"},
      {"trailing_gz", trailing, g + 1, 1, MT_EFORMAT, "trailing data after the 6 bytes of data"},
      {"overflow", overflow, no, 0, MT_EFORMAT, "declares [4294967295, 4294967295, 4294967295] float64, which is too large"},
      {"huge", huge, nh, 1, MT_EFORMAT, "declares [60000, 28, 28, 1000] uint8 (47040000000 bytes of data) but it holds 6"},
      {"dims_more", wrong_dims_more, nm, 0, MT_EFORMAT, "declares [2, 4] uint8 (8 bytes of data) but it holds 6"},
      {"dims_less", wrong_dims_less, nl, 1, MT_EFORMAT, "trailing data after the 3 bytes"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const bad_case *c = &cases[i];
    const char *p = path_in(c->name);
    if (c->gz)
      write_gz(p, c->bytes, c->len, "wb");
    else
      write_plain(p, c->bytes, c->len, "wb");
    uint64_t before = mt_storage_bytes_allocated();
    mt_tensor *x = NULL;
    mt_status st = mt_read_idx(&x, p);
    CHECK(x == NULL);
    CHECK(mt_storage_bytes_allocated() - before <= ((uint64_t)1 << 21)); /* never what the header says */
    if (st != c->status || !strstr(mt_last_error(), c->needle) || !strstr(mt_last_error(), p)) {
      mt_test_failures++;
      fprintf(stderr, "case %s: %s (\"%s\"), expected %s with \"%s\" and the path\n", c->name, mt_status_name(st),
                      mt_last_error(), mt_status_name(c->status), c->needle);
    }
    mt_test_checks++;
  }
}

/* Damage to the gzip layer itself, and the operating system's refusals. */
static void test_bad_gzip(void) {
  uint8_t buf[4096];
  uint32_t dims[1] = {4000};
  size_t n = header(buf, 0x08, 1, dims);
  for (int i = 0; i < 4000; i++) buf[n++] = (uint8_t)((i * i) >> 3);
  const char *p = path_in("gz_src.gz");
  write_gz(p, buf, n, "wb");
  size_t len;
  uint8_t *z = slurp(p, &len);

  /* Cut inside the deflate data, and just before the 8-byte trailer (CRC + size). */
  write_plain(path_in("gz_cut"), z, len / 2, "wb");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("gz_cut")), MT_EFORMAT, "gzip stream is truncated");
  write_plain(path_in("gz_notrailer"), z, len - 8, "wb");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("gz_notrailer")), MT_EFORMAT, "gzip stream is truncated");

  /* A wrong CRC, then garbage in place of the deflate data. */
  uint8_t *bad = malloc(len);
  memcpy(bad, z, len);
  bad[len - 8] ^= 0xff;
  write_plain(path_in("gz_crc"), bad, len, "wb");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("gz_crc")), MT_EFORMAT, "corrupt gzip data (incorrect data check)");
  memcpy(bad, z, len);
  memset(bad + 10, 0xff, 16);
  write_plain(path_in("gz_garbage"), bad, len, "wb");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("gz_garbage")), MT_EFORMAT, "corrupt gzip data");

  /* Bytes after the gzip stream that are not another member (gzread would skip them). */
  write_plain(path_in("gz_junk"), z, len, "wb");
  write_plain(path_in("gz_junk"), "junk", 4, "ab");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("gz_junk")), MT_EFORMAT, "trailing data after the gzip stream");
  write_plain(path_in("gz_zero"), z, len, "wb");
  write_plain(path_in("gz_zero"), "\0", 1, "ab");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("gz_zero")), MT_EFORMAT, "trailing data after the gzip stream");
  free(bad);
  free(z);

  /* Missing, a directory, unreadable; NULL arguments. */
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("nothing-here.gz")), MT_EIO, "nothing-here.gz: no such file");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, dir), MT_EIO, "is a directory");
  write_plain(path_in("secret"), buf, n, "wb");
  chmod(path_in("secret"), 0);
  if (geteuid() != 0) FAILS(mt_read_idx(&(mt_tensor *){NULL}, path_in("secret")), MT_EIO, "cannot open (Permission denied)");
  FAILS(mt_read_idx(NULL, path_in("secret")), MT_EARG, "NULL");
  FAILS(mt_read_idx(&(mt_tensor *){NULL}, NULL), MT_EARG, "NULL");
}

/* Debian's dataset-fashion-mnist, when installed: shapes and the first labels. */
static void test_fashion_mnist(void) {
  const char *root = "/usr/share/datasets/fashion-mnist";
  char p[256];
  snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", root);
  if (access(p, R_OK) != 0) {
    printf("test_idx: %s not installed; skipping the real files\n", root);
    return;
  }
  mt_tensor *y = NULL, *x = NULL;
  OK(mt_read_idx(&y, p));
  snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte.gz", root);
  OK(mt_read_idx(&x, p));
  if (y) {
    CHECK(y->dtype == MT_UINT8 && y->ndim == 1 && y->sizes[0] == 60000);
    const uint8_t *l = mt_data(y);
    CHECK(l[0] == 9 && l[1] == 0 && l[2] == 0 && l[3] == 3); /* ankle boot, T-shirt, T-shirt, dress */
  }
  if (x) CHECK(x->dtype == MT_UINT8 && x->ndim == 3 && x->sizes[0] == 10000 && x->sizes[1] == 28 && x->sizes[2] == 28);
  mt_tensor_release(x);
  mt_tensor_release(y);
}

int main(void) {
  if (!mkdtemp(dir)) return 2;
  test_types();
  test_shapes();
  test_growth();
  test_bad_files();
  test_bad_gzip();
  test_fashion_mnist();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return mt_test_finish("test_idx");
}
