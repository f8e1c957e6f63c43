/*
 * The plumbing both helpers share: a JavaScript call that takes one Uint8Array, runs C on
 * libuv's thread pool, and settles a promise on the JavaScript thread. The Uint8Array is
 * held by a reference until then, so its bytes stay alive and in place while the pool
 * thread reads or maps them.
 */
#ifndef PROMISE_WORK_H
#define PROMISE_WORK_H

#include <stdlib.h>
#include <node_api.h>

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref held;
} PromiseWork;

/* What every job starts with: the promise's plumbing and the argument's bytes. */
typedef struct {
  PromiseWork work;
  unsigned char* bytes;
  size_t length;
} ByteJob;

/*
 * The native function: checks that its only argument is a Uint8Array (else throws a
 * TypeError with `usage`), allocates a zeroed job of `job_size` bytes (a struct whose first
 * member is a ByteJob), and queues `execute` then `complete` with it; `complete` ends with
 * finish_promise_work and frees the job. Returns the promise, or NULL after throwing.
 */
static inline napi_value queue_byte_job(napi_env env, napi_callback_info info, const char* usage, size_t job_size, const char* name,
                                        napi_async_execute_callback execute, napi_async_complete_callback complete) {
  size_t argc = 1, offset;
  napi_value argv[1], arraybuffer, promise, resource_name;
  napi_typedarray_type type;
  void* bytes;
  size_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &bytes, &arraybuffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", usage);
    return NULL;
  }
  ByteJob* job = calloc(1, job_size);
  if (!job) {
    napi_throw_error(env, "ERR_NO_MEMORY", "out of memory");
    return NULL;
  }
  job->bytes = bytes;
  job->length = length;
  PromiseWork* work = &job->work;
  if (napi_create_reference(env, argv[0], 1, &work->held) != napi_ok) {
    free(job);
    napi_throw_error(env, "ERR_ASYNC_WORK", "could not hold the argument");
    return NULL;
  }
  if (napi_create_promise(env, &work->deferred, &promise) != napi_ok || napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, execute, complete, job, &work->work) != napi_ok) {
    napi_delete_reference(env, work->held);
    free(job);
    napi_throw_error(env, "ERR_ASYNC_WORK", "could not create the work");
    return NULL;
  }
  if (napi_queue_async_work(env, work->work) != napi_ok) {
    napi_delete_async_work(env, work->work);
    napi_delete_reference(env, work->held);
    free(job);
    napi_throw_error(env, "ERR_ASYNC_WORK", "could not queue the work");
    return NULL;
  }
  return promise;
}

/* From `complete`: resolve with `result` and release the argument and the work. */
static inline void finish_promise_work(napi_env env, PromiseWork* work, napi_value result) {
  napi_resolve_deferred(env, work->deferred, result);
  napi_delete_reference(env, work->held);
  napi_delete_async_work(env, work->work);
}

/* Exports `function` as `name`; false if that fails. */
static inline int export_function(napi_env env, napi_value exports, const char* name, napi_callback function) {
  napi_value value;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, function, NULL, &value) == napi_ok && napi_set_named_property(env, exports, name, value) == napi_ok;
}

#endif
