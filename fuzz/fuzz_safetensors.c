/* libFuzzer harness: the safetensors reader, which takes a path: the input goes to a memfd
 * (memory-backed, no disk) read through /proc/self/fd, loaded once read and once mapped. */
#define _GNU_SOURCE
#include "fuzz_common.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static int st_fd = -1;
static char st_path[64];

/* Returns the first failure of the two loads (read, then mapped), or MT_OK. */
static mt_status fuzz_safetensors(const uint8_t *data, size_t size) {
  if (st_fd < 0) {
    st_fd = memfd_create("fuzz.safetensors", 0);
    if (st_fd < 0) return MT_OK; /* no memfd: nothing was tested, nothing to report */
    snprintf(st_path, sizeof st_path, "/proc/self/fd/%d", st_fd);
  }
  if (ftruncate(st_fd, 0) != 0 || pwrite(st_fd, data, size, 0) != (ssize_t)size) return MT_OK;
  mt_status first = MT_OK;
  for (int m = 0; m < 2; m++) {
    mt_load_opts opts = {.mmap = m == 1};
    mt_value *t = NULL, *meta = NULL;
    mt_status st = mt_safetensors_load(&t, &meta, st_path, &opts);
    if (st == MT_OK) {
      mt_value_free(t);
      mt_value_free(meta);
    } else {
      fuzz_require_message(st); /* checked per load: the second may overwrite the first's */
      if (first == MT_OK) first = st;
    }
  }
  return first;
}

FUZZ_ENTRY(fuzz_safetensors)
