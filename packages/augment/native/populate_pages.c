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
#include <node_api.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref view;
  uint8_t* bytes;
  size_t length;
  int populated;
} PopulateJob;

static void populate_on_pool_thread(napi_env env, void* data) {
  (void)env;
  PopulateJob* job = (PopulateJob*)data;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t start = ((uintptr_t)job->bytes + page - 1) & ~(page - 1);
  const uintptr_t end = ((uintptr_t)job->bytes + job->length) & ~(page - 1);
  job->populated = end <= start || madvise((void*)start, end - start, MADV_POPULATE_WRITE) == 0;
}

static void settle_on_js_thread(napi_env env, napi_status status, void* data) {
  PopulateJob* job = (PopulateJob*)data;
  napi_value result;
  napi_get_boolean(env, status == napi_ok && job->populated, &result);
  napi_resolve_deferred(env, job->deferred, result);
  napi_delete_reference(env, job->view);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value populate(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], promise, name, arraybuffer;
  napi_typedarray_type type;
  size_t length, offset;
  void* bytes;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &bytes, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "populate(view) takes one Uint8Array");
    return NULL;
  }
  PopulateJob* job = calloc(1, sizeof *job);
  if (!job) {
    napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
    return NULL;
  }
  job->bytes = bytes;
  job->length = length;
  /* The reference keeps the memory alive (and mapped) until the work settles. */
  if (napi_create_reference(env, argv[0], 1, &job->view) != napi_ok) {
    free(job);
    napi_throw_error(env, "ERR_ASYNC_WORK", "could not hold the view");
    return NULL;
  }
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok || napi_create_string_utf8(env, "populatePages", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, populate_on_pool_thread, settle_on_js_thread, job, &job->work) != napi_ok) {
    napi_delete_reference(env, job->view);
    free(job);
    napi_throw_error(env, "ERR_ASYNC_WORK", "could not create the work");
    return NULL;
  }
  if (napi_queue_async_work(env, job->work) != napi_ok) {
    napi_delete_async_work(env, job->work);
    napi_delete_reference(env, job->view);
    free(job);
    napi_throw_error(env, "ERR_ASYNC_WORK", "could not queue the work");
    return NULL;
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value function;
  if (napi_create_function(env, "populate", NAPI_AUTO_LENGTH, populate, NULL, &function) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "populate", function) != napi_ok) return NULL;
  return exports;
}
