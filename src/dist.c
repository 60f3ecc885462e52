/*
 * dist.c — torch.distributed's collectives on MPI (Open MPI). Not part of libmoontorch: built
 * only into the Lua module and the programs that ask for it (CMakeLists.txt), with MT_HAVE_MPI
 * when MPI was found; without it every function fails with a clear message.
 *
 * Threads: MPI is initialised with MPI_THREAD_SERIALIZED; every MPI call here holds one mutex,
 * so the DDP reducer's communication thread and the caller's thread never call MPI at once.
 */
#define _GNU_SOURCE /* dladdr */
#include "mt_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define NOT_INIT "not initialized; call init_process_group first"

#ifndef MT_HAVE_MPI

#define NO_MPI "this build has no MPI support (rebuild moontorch with libopenmpi-dev installed)"
MT_API bool mt_dist_available(void) { return false; }
MT_API mt_status mt_dist_init(void) { return mt_fail(MT_ESTATE, NO_MPI); }
MT_API bool mt_dist_is_initialized(void) { return false; }
MT_API mt_status mt_dist_rank(int *rank) { (void)rank; return mt_fail(MT_ESTATE, NO_MPI); }
MT_API mt_status mt_dist_world_size(int *size) { (void)size; return mt_fail(MT_ESTATE, NO_MPI); }
MT_API mt_status mt_dist_all_reduce(mt_tensor *t, mt_reduce_op op) { (void)t, (void)op; return mt_fail(MT_ESTATE, NO_MPI); }
MT_API mt_status mt_dist_broadcast(mt_tensor *t, int src) { (void)t, (void)src; return mt_fail(MT_ESTATE, NO_MPI); }
MT_API mt_status mt_dist_barrier(void) { return mt_fail(MT_ESTATE, NO_MPI); }
MT_API mt_status mt_dist_finalize(void) { return MT_OK; }
bool mt_dist_threads_ok(void) { return false; }

#else

#include <dlfcn.h>
#include <mpi.h>
#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialized, finalized, threads_ok, owns_mpi; /* owns: MPI_Init was ours */
static int my_rank, world_size;

MT_API bool mt_dist_available(void) { return true; }

/* The message of an MPI error code, as mt_status. Call with `lock` held or without MPI running. */
static mt_status mpi_fail(int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = snprintf(msg, sizeof msg, "MPI error %d", rc);
  msg[len < 0 ? 0 : len > MPI_MAX_ERROR_STRING ? MPI_MAX_ERROR_STRING : len] = '\0';
  return mt_fail(MT_EIO, "%s failed: %s", what, msg);
}

/* At exit, a rank that succeeded finalizes; a rank that failed (non-zero status: a Lua error,
 * os.exit(1)) aborts the job, since MPI_Finalize would wait for peers that may be blocked in a
 * collective this rank will never join, and mpirun would hang instead of failing. */
#ifdef __GLIBC__
static void finish_at_exit(int status, void *unused) {
  (void)unused;
  if (status != 0 && initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, status);
  mt_dist_finalize();
}
#else
static void finish_at_exit(void) { mt_dist_finalize(); }
#endif

/* A singleton MPI_Init (no mpirun) would try to start its own runtime daemon, or hang; the
 * launchers Open MPI, MPICH and PMIx-based ones use leave one of these in the environment. */
static bool under_launcher(void) {
  return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

MT_API mt_status mt_dist_init(void) {
  pthread_mutex_lock(&lock);
  mt_status st = MT_OK;
  if (initialized && !finalized) goto done;
  if (finalized) {
    st = mt_fail(MT_ESTATE, "the process group was already destroyed (MPI cannot be initialized twice in a process)");
    goto done;
  }
  if (!under_launcher()) {
    st = mt_fail(MT_ESTATE, "this process was not started by mpirun (none of OMPI_COMM_WORLD_SIZE, PMIX_RANK, "
                            "PMI_RANK is set); run it as `mpirun -np N lua5.4 script.lua`");
    goto done;
  }
  /* The Lua module (and libmpi with it) is loaded RTLD_LOCAL and unloaded at lua_close. Open
   * MPI's plugins may need libmpi's symbols, and its threads and atexit work outlive the
   * module: make libmpi global and never unloaded. */
  Dl_info info;
  if (dladdr((void *)MPI_Init_thread, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD | RTLD_NODELETE);
  int already = 0, provided = 0, rc;
  MPI_Initialized(&already);
  if (!already && (rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided)) != MPI_SUCCESS) {
    st = mpi_fail(rc, "MPI_Init_thread");
    goto done;
  }
  if (already) MPI_Query_thread(&provided);
  /* Errors come back as codes (turned into mt_status) instead of aborting the job. */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if ((rc = MPI_Comm_rank(MPI_COMM_WORLD, &my_rank)) != MPI_SUCCESS ||
      (rc = MPI_Comm_size(MPI_COMM_WORLD, &world_size)) != MPI_SUCCESS) {
    st = mpi_fail(rc, "MPI_Comm_rank/size");
    goto done;
  }
  threads_ok = provided >= MPI_THREAD_SERIALIZED;
  initialized = true;
  owns_mpi = !already;
  /* mpirun takes a rank that exits without MPI_Finalize for a crash and tears the job down. An
   * embedder that called MPI_Init itself finalizes itself. The handler runs at process exit,
   * after lua_close has run the reducers' __gc (core.so is linked -z nodelete, so it is still
   * mapped then). */
#ifdef __GLIBC__
  if (owns_mpi) on_exit(finish_at_exit, NULL);
#else
  if (owns_mpi) atexit(finish_at_exit);
#endif
done:
  pthread_mutex_unlock(&lock);
  return st;
}

MT_API bool mt_dist_is_initialized(void) { return initialized && !finalized; }
bool mt_dist_threads_ok(void) { return threads_ok; }

static mt_status check_init(void) {
  return mt_dist_is_initialized() ? MT_OK : mt_fail(MT_ESTATE, NOT_INIT);
}

MT_API mt_status mt_dist_rank(int *rank) {
  mt_status st = check_init();
  if (!st) *rank = my_rank;
  return st;
}

MT_API mt_status mt_dist_world_size(int *size) {
  mt_status st = check_init();
  if (!st) *size = world_size;
  return st;
}

MT_API mt_status mt_dist_barrier(void) {
  mt_status st = check_init();
  if (st) return st;
  pthread_mutex_lock(&lock);
  int rc = MPI_Barrier(MPI_COMM_WORLD);
  if (rc != MPI_SUCCESS) st = mpi_fail(rc, "MPI_Barrier");
  pthread_mutex_unlock(&lock);
  return st;
}

MT_API mt_status mt_dist_finalize(void) {
  pthread_mutex_lock(&lock);
  mt_status st = MT_OK;
  if (initialized && !finalized) {
    finalized = true;
    int rc = owns_mpi ? MPI_Finalize() : MPI_SUCCESS;
    if (rc != MPI_SUCCESS) st = mpi_fail(rc, "MPI_Finalize");
  }
  pthread_mutex_unlock(&lock);
  return st;
}

/* The MPI type a dtype is reduced in (float16/bfloat16 go through float32). */
static MPI_Datatype mpi_type(mt_dtype dt) {
  switch (dt) {
  case MT_FLOAT32: return MPI_FLOAT;
  case MT_FLOAT64: return MPI_DOUBLE;
  case MT_INT64: return MPI_INT64_T;
  case MT_INT32: return MPI_INT32_T;
  case MT_INT16: return MPI_INT16_T;
  case MT_INT8: return MPI_INT8_T;
  case MT_UINT8: return MPI_UINT8_T;
  default: return MPI_DATATYPE_NULL;
  }
}

/* MPI counts are ints: larger buffers go in pieces. */
#define CHUNK ((int64_t)1 << 30)

/* A contiguous tensor holding t's values in dtype `work` (t itself when it already is one). */
static mt_status working_copy(mt_tensor **out, mt_tensor *t, mt_dtype work) {
  if (t->dtype == work && mt_is_contiguous(t)) {
    mt_tensor_retain(t);
    *out = t;
    return MT_OK;
  }
  mt_status st = mt_empty(out, work, t->ndim, t->sizes);
  if (!st && (st = mt_copy_into(*out, t))) mt_tensor_release(*out);
  return st;
}

/* Writes the working copy back into t when it is a separate tensor; bumps t's version. */
static mt_status write_back(mt_tensor *t, mt_tensor *w) {
  mt_status st = w == t ? MT_OK : mt_copy_into(t, w);
  if (!st) mt_bump_version(t);
  return st;
}

MT_API mt_status mt_dist_all_reduce(mt_tensor *t, mt_reduce_op op) {
  mt_status st = check_init();
  if (st) return st;
  if (op < MT_REDUCE_SUM || op > MT_REDUCE_MIN) return mt_fail(MT_EARG, "unknown reduce op %d", (int)op);
  if (t->dtype == MT_BOOL) return mt_fail(MT_EDTYPE, "all_reduce is not defined for bool tensors");
  if (op == MT_REDUCE_AVG && !mt_dtype_is_float(t->dtype))
    return mt_fail(MT_EDTYPE, "op avg needs a floating point tensor, got %s (use sum and divide)",
                   mt_dtype_name(t->dtype));
  if ((st = mt_check_writable(t))) return st;
  mt_dtype work = t->dtype == MT_FLOAT16 || t->dtype == MT_BFLOAT16 ? MT_FLOAT32 : t->dtype;
  mt_tensor *w;
  if ((st = working_copy(&w, t, work))) return st;
  MPI_Op mop = op == MT_REDUCE_MAX ? MPI_MAX : op == MT_REDUCE_MIN ? MPI_MIN : MPI_SUM;
  int64_t n = mt_numel(w);
  size_t esize = mt_dtype_size(work);
  char *p = mt_data(w);
  pthread_mutex_lock(&lock);
  for (int64_t done = 0; done < n && !st; done += CHUNK) {
    int count = (int)(n - done < CHUNK ? n - done : CHUNK);
    int rc = MPI_Allreduce(MPI_IN_PLACE, p + done * (int64_t)esize, count, mpi_type(work), mop, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) st = mpi_fail(rc, "MPI_Allreduce");
  }
  pthread_mutex_unlock(&lock);
  if (!st && op == MT_REDUCE_AVG) {
    if (work == MT_FLOAT64)
      for (int64_t i = 0; i < n; i++) ((double *)p)[i] /= world_size;
    else
      for (int64_t i = 0; i < n; i++) ((float *)p)[i] /= (float)world_size;
  }
  if (!st) st = write_back(t, w);
  mt_tensor_release(w);
  return st;
}

MT_API mt_status mt_dist_broadcast(mt_tensor *t, int src) {
  mt_status st = check_init();
  if (st) return st;
  if (src < 0 || src >= world_size)
    return mt_fail(MT_EINDEX, "src rank %d is out of range for a world of size %d (ranks are 0..%d)", src, world_size,
                   world_size - 1);
  if ((st = mt_check_writable(t))) return st;
  mt_tensor *w;
  if ((st = working_copy(&w, t, t->dtype))) return st;
  int64_t nbytes = mt_numel(w) * (int64_t)mt_dtype_size(w->dtype);
  char *p = mt_data(w);
  pthread_mutex_lock(&lock);
  for (int64_t done = 0; done < nbytes && !st; done += CHUNK) {
    int count = (int)(nbytes - done < CHUNK ? nbytes - done : CHUNK);
    int rc = MPI_Bcast(p + done, count, MPI_BYTE, src, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) st = mpi_fail(rc, "MPI_Bcast");
  }
  pthread_mutex_unlock(&lock);
  if (!st) st = write_back(t, w);
  mt_tensor_release(w);
  return st;
}

#endif /* MT_HAVE_MPI */
