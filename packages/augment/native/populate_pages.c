/*
 * Faults in the pages of a fresh batch memory on libuv's thread pool (N-API async work).
 * A batch's tensors are ~2 MB per image of untouched memory, and the first write to each
 * 4 KiB page costs ~3 µs in the kernel (zeroing, cgroup accounting): ~1.5 ms per image on
 * the rendering thread, which is the pipeline's bottleneck with one thread, until batches
 * are recycled. madvise(MADV_POPULATE_WRITE) maps the pages writable without touching
 * their contents, so it is safe while the workers already write into the memory.
 *
 * populate(view: Uint8Array): Promise<boolean>, false where the kernel lacks
 * MADV_POPULATE_WRITE (before Linux 5.14) or refuses it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "promise_work.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct {
  ByteJob view;
  int populated;
} PopulateJob;

static void populate_on_pool_thread(napi_env env, void* data) {
  (void)env;
  PopulateJob* job = (PopulateJob*)data;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t start = ((uintptr_t)job->view.bytes + page - 1) & ~(page - 1);
  const uintptr_t end = ((uintptr_t)job->view.bytes + job->view.length) & ~(page - 1);
  job->populated = end <= start || madvise((void*)start, end - start, MADV_POPULATE_WRITE) == 0;
}

static void settle_on_js_thread(napi_env env, napi_status status, void* data) {
  PopulateJob* job = (PopulateJob*)data;
  napi_value result;
  napi_get_boolean(env, status == napi_ok && job->populated, &result);
  finish_promise_work(env, &job->view.work, result);
  free(job);
}

static napi_value populate(napi_env env, napi_callback_info info) {
  return queue_byte_job(env, info, "populate(view) takes one Uint8Array", sizeof(PopulateJob), "populatePages", populate_on_pool_thread, settle_on_js_thread);
}

NAPI_MODULE_INIT() {
  return export_function(env, exports, "populate", populate) ? exports : NULL;
}
