/* Replays every kept fuzz input through the harness it belongs to, in `make test` (and, built
 * with the sanitizers, in `make test-sanitize`): fuzz/regressions/<harness>/ holds hand-made
 * hostile inputs, fuzz/crashes/<harness>/ whatever libFuzzer ever found (fuzz/run.sh copies
 * findings there). The harness code itself is included, so an input goes through exactly what
 * the fuzzer ran. Each input must load or fail with a message, within 10 s (the fuzzer's
 * -timeout), and must not crash: a crash kills this test after it has named the file. */
#define _GNU_SOURCE
#define MT_FUZZ_NO_MAIN
#include "../../fuzz/fuzz_checkpoint.c"
#include "../../fuzz/fuzz_graph.c"
#include "../../fuzz/fuzz_pickle.c"
#include "../../fuzz/fuzz_safetensors.c"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mt_test.h"

/* The whole file, or NULL. */
static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  uint8_t *b = NULL;
  long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
      fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = n > 0 ? (size_t)n : 0;
  return b;
}

typedef mt_status (*harness_fn)(const uint8_t *, size_t);

static const struct {
  const char *name;
  harness_fn fn;
} harnesses[] = {
    {"pickle", fuzz_pickle},
    {"checkpoint", fuzz_checkpoint},
    {"safetensors", fuzz_safetensors},
    {"graph", fuzz_graph},
};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs every file of `path` (sorted; dotfiles skipped) through fn; returns how many ran. */
static int replay(const char *harness, harness_fn fn, const char *path) {
  DIR *d = opendir(path);
  if (!d) return 0; /* fuzz/crashes/<h>/ exists only once something was found */
  char *names[4096];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 4096)
    if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], by_name);
  for (int i = 0; i < n; i++) {
    char file[1024];
    snprintf(file, sizeof file, "%s/%s", path, names[i]);
    printf("%s: %s ... ", harness, file);
    fflush(stdout); /* a crash below leaves this line as the culprit */
    size_t len = 0;
    uint8_t *bytes = slurp(file, &len);
    CHECK(bytes != NULL);
    if (!bytes) continue;
    double t0 = now();
    mt_status st = fn(bytes, len);
    double dt = now() - t0;
    const char *msg = st == MT_OK ? "" : mt_last_error();
    printf("%s%s%s (%zu bytes, %.3f s)\n", mt_status_name(st), st == MT_OK ? "" : ": ", msg, len, dt);
    CHECK(st == MT_OK || (msg && strlen(msg) > 8)); /* a failure says what is wrong */
    CHECK(dt < 10.0);
    free(bytes);
    free(names[i]);
  }
  return n;
}

int main(void) {
  mt_set_index_base(0);
  int total = 0;
  for (size_t h = 0; h < sizeof harnesses / sizeof harnesses[0]; h++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/regressions/%s", MT_SOURCE_DIR, harnesses[h].name);
    int kept = replay(harnesses[h].name, harnesses[h].fn, path);
    /* Every harness has kept cases: an empty directory would make this test pass vacuously. */
    if (kept == 0) fprintf(stderr, "no regression inputs in %s\n", path);
    CHECK(kept > 0);
    snprintf(path, sizeof path, "%s/fuzz/crashes/%s", MT_SOURCE_DIR, harnesses[h].name);
    total += kept + replay(harnesses[h].name, harnesses[h].fn, path);
  }
  printf("replayed %d inputs\n", total);
  return mt_test_finish("test_fuzz_regressions");
}
