/* mt_test_io.h — file helpers for the C tests that write files. The test defines its
 * directory, `static char dir[]` (a mkdtemp template, filled in by main), before including it. */
#ifndef MT_TEST_IO_H
#define MT_TEST_IO_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* A path in the test directory, good until a few more calls; PATH() makes one that lasts. */
static char *path_in(const char *name) {
  static char buf[4][512];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}
#define PATH(var, name)                                                                          \
  char var[512];                                                                                 \
  snprintf(var, sizeof var, "%s/%s", dir, name)

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) abort();
  fclose(f);
  *len = (size_t)n;
  return b;
}

static void spit(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n) abort();
  fclose(f);
}

#endif
