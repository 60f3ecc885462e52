/*
 * atomic.c — replacing a file so that a crash or kill at any moment leaves the old file or
 * the new one, never a torn one.
 *
 * The new contents go to a temporary with a fixed name beside the target, `.<name>.tmp`, which
 * is then fsynced and renamed over the target, and the directory fsynced. The name is fixed
 * so that a killed save leaves at most one stale temporary, which the next save reuses. Two
 * saves to one path take turns through flock() on the temporary: it is opened without
 * truncation (a concurrent saver's data is not wiped before it has the lock), locked, and then
 * checked to still be the file at the temporary's path — a saver that held the lock before us
 * may have renamed it away, in which case we open the new one and try again.
 *
 * Writes past `ulimit -f` raise SIGXFSZ, whose default action kills the process. The signal
 * is blocked in the saving thread while the temporary is open and drained afterwards, so the
 * write fails with EFBIG and the save reports it like any other I/O error.
 *
 * The file a save replaces is freed on a helper thread. Freeing a big file is slow (on this
 * ext4, mounted with `discard`, ~80 ms for 400 MB, waiting on the disk to trim its blocks), and
 * it would happen inside rename(). So the old file is opened before the rename, which leaves
 * it unlinked but alive, and that descriptor is closed on a helper thread: the last close
 * frees it there. The save is complete (new file durable, directory synced) before that;
 * only the old file's space comes back a little later. One helper at a time: the next save
 * (or the library's unloading, or exit) joins the previous one first.
 */
#include "mt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LOCK_TRIES 1000 /* each retry means another saver finished: not a livelock */
#define RELEASE_LATER_BYTES (4 << 20) /* smaller replaced files are freed in the rename itself */

struct mt_atomic_file {
  int fd;
  char *label; /* the path as given, for messages */
  char *path;  /* the file replaced: label, or where the symlink at label points */
  char *tmp;  /* <dir>/.<name>.tmp */
  char *dir;  /* for fsync after the rename */
  sigset_t old_mask;
  bool xfsz_pending_before;
};

mt_status mt_write_all(int fd, const void *buf, size_t n, const char *path) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return mt_fail(MT_EIO, "%s: cannot write: %s", path, strerror(errno));
    if (k == 0) return mt_fail(MT_EIO, "%s: cannot write: the device accepts no more data", path);
    p += k;
    n -= (size_t)k;
  }
  return MT_OK;
}

static void block_xfsz(mt_atomic_file *f) {
  sigset_t set, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGXFSZ);
  pthread_sigmask(SIG_BLOCK, &set, &f->old_mask);
  f->xfsz_pending_before = sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ);
}

/* Takes back a SIGXFSZ our writes raised, then restores the caller's signal mask. */
static void unblock_xfsz(mt_atomic_file *f) {
  sigset_t set, pending;
  sigemptyset(&set);
  sigaddset(&set, SIGXFSZ);
  if (!f->xfsz_pending_before && sigpending(&pending) == 0 && sigismember(&pending, SIGXFSZ)) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &f->old_mask, NULL);
}

static void free_file(mt_atomic_file *f) {
  free(f->label);
  free(f->path);
  free(f->tmp);
  free(f->dir);
  free(f);
}

/* Splits path into its directory and the temporary's path. */
/* Works out the file to replace (through a symlink, as open() would write through it), its
 * directory and the temporary's name. */
static mt_status make_names(mt_atomic_file *f, const char *path) {
  struct stat sb;
  char *resolved = lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) ? realpath(path, NULL) : NULL;
  const char *target = resolved ? resolved : path;
  const char *slash = strrchr(target, '/');
  const char *base = slash ? slash + 1 : target;
  size_t dlen = slash ? (size_t)(slash - target) : 0, tlen = strlen(target);
  if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
    free(resolved);
    return mt_fail(MT_EIO, "%s: not a file name", path);
  }
  f->label = malloc(strlen(path) + 1);
  f->path = malloc(tlen + 1);
  f->tmp = malloc(tlen + 7);
  f->dir = malloc(dlen + 2);
  if (f->label) strcpy(f->label, path);
  if (f->path) memcpy(f->path, target, tlen + 1);
  if (f->tmp) snprintf(f->tmp, tlen + 7, "%.*s.%s.tmp", (int)(base - target), target, base);
  if (f->dir) snprintf(f->dir, dlen + 2, "%.*s", (int)dlen, target);
  if (f->dir && !slash) strcpy(f->dir, ".");
  else if (f->dir && dlen == 0) strcpy(f->dir, "/");
  free(resolved);
  if (!f->label || !f->path || !f->tmp || !f->dir) return mt_fail(MT_ENOMEM, "out of memory");
  return MT_OK;
}

/* Opens and locks the temporary, making sure the locked file is the one at its path. */
static mt_status open_locked(mt_atomic_file *f) {
  for (int tries = 0; tries < MAX_LOCK_TRIES; tries++) {
    int fd = open(f->tmp, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (fd < 0)
      return mt_fail(MT_EIO, "%s: cannot create the temporary file %s: %s", f->label, f->tmp, strerror(errno));
    int r;
    while ((r = flock(fd, LOCK_EX)) < 0 && errno == EINTR) {
    }
    struct stat mine, there;
    if (r < 0 || fstat(fd, &mine) < 0) {
      int e = errno;
      close(fd);
      return mt_fail(MT_EIO, "%s: cannot lock the temporary file %s: %s", f->label, f->tmp, strerror(e));
    }
    if (lstat(f->tmp, &there) == 0 && there.st_dev == mine.st_dev && there.st_ino == mine.st_ino) {
      f->fd = fd;
      return MT_OK;
    }
    close(fd); /* another saver renamed or removed it while we waited: start over */
  }
  return mt_fail(MT_EIO, "%s: cannot get hold of the temporary file %s (other saves keep replacing it)",
                 f->label, f->tmp);
}

mt_status mt_atomic_open(mt_atomic_file **out, const char *path) {
  mt_atomic_file *f = calloc(1, sizeof *f);
  if (!f) return mt_fail(MT_ENOMEM, "out of memory");
  f->fd = -1;
  mt_status st = make_names(f, path);
  if (st == MT_OK) st = open_locked(f);
  if (st != MT_OK) {
    free_file(f);
    return st;
  }
  if (ftruncate(f->fd, 0) < 0) {
    st = mt_fail(MT_EIO, "%s: cannot truncate the temporary file %s: %s", path, f->tmp, strerror(errno));
    unlink(f->tmp);
    close(f->fd);
    free_file(f);
    return st;
  }
  struct stat target; /* a replaced file keeps its permissions */
  if (stat(f->path, &target) == 0 && S_ISREG(target.st_mode)) (void)fchmod(f->fd, target.st_mode & 07777);
  block_xfsz(f);
  *out = f;
  return MT_OK;
}

int mt_atomic_fd(const mt_atomic_file *f) { return f->fd; }

static struct {
  pthread_mutex_t lock;
  pthread_t thread;
  bool running;
  pid_t pid; /* a forked child has no such thread to join */
} closer = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *close_old(void *arg) {
  close((int)(intptr_t)arg);
  return NULL;
}

static void join_closer(void) { /* closer.lock held */
  if (closer.running && closer.pid == getpid()) pthread_join(closer.thread, NULL);
  closer.running = false;
}

/* The library's code must outlive the helper (a Lua state unloads the module at exit). */
__attribute__((destructor)) static void wait_for_closer(void) {
  pthread_mutex_lock(&closer.lock);
  join_closer();
  pthread_mutex_unlock(&closer.lock);
}

/* A descriptor on the big regular file at f->path, to be freed after the rename; -1 if none. */
static int hold_replaced(const mt_atomic_file *f) {
  struct stat a, b;
  if (lstat(f->path, &a) < 0 || !S_ISREG(a.st_mode) || a.st_size < RELEASE_LATER_BYTES) return -1;
  int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd >= 0 && (fstat(fd, &b) < 0 || b.st_ino != a.st_ino || b.st_dev != a.st_dev)) {
    close(fd);
    fd = -1;
  }
  return fd;
}

static void release_later(int fd) {
  if (fd < 0) return;
  pthread_mutex_lock(&closer.lock);
  join_closer(); /* the previous save's: long done, normally */
  sigset_t all, old; /* the helper takes no signals: they stay with the caller's threads */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&closer.thread, NULL, close_old, (void *)(intptr_t)fd) == 0) {
    closer.running = true;
    closer.pid = getpid();
  } else {
    close(fd);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_mutex_unlock(&closer.lock);
}

/* Removes the temporary while still holding its lock, so it is ours that goes. */
void mt_atomic_abort(mt_atomic_file *f) {
  if (!f) return;
  unlink(f->tmp);
  close(f->fd);
  unblock_xfsz(f);
  free_file(f);
}

mt_status mt_atomic_commit(mt_atomic_file *f) {
  mt_status st = MT_OK;
  int replaced = -1;
  if (fsync(f->fd) < 0) {
    st = mt_fail(MT_EIO, "%s: cannot flush the temporary file %s to disk: %s", f->label, f->tmp, strerror(errno));
  } else if ((replaced = hold_replaced(f)), rename(f->tmp, f->path) < 0) {
    st = mt_fail(MT_EIO, "%s: cannot rename the temporary file %s over it: %s", f->label, f->tmp, strerror(errno));
  }
  if (st != MT_OK) {
    if (replaced >= 0) close(replaced);
    mt_atomic_abort(f);
    return st;
  }
  /* the rename itself must reach the disk, or a crash could bring back the old file */
  int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || (fsync(dfd) < 0 && errno != EINVAL && errno != ENOTSUP))
    st = mt_fail(MT_EIO, "%s: written, but syncing its directory %s failed: %s", f->label, f->dir, strerror(errno));
  if (dfd >= 0) close(dfd);
  close(f->fd); /* releases the lock: a waiting saver goes on with a fresh temporary */
  unblock_xfsz(f);
  free_file(f);
  release_later(replaced);
  return st;
}
