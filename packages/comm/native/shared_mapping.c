/*
 * mmap for Node (N-API): maps a file descriptor into an ArrayBuffer. Node can only pread and
 * pwrite, and on tmpfs those kernel copies run at 4-5 GB/s on the reference machine (a page
 * cache lookup per 4 KiB page), half the speed of a user-space memcpy; the same-host
 * collectives copy each payload through shared memory several times per step.
 *
 * The mapping lives until the ArrayBuffer is garbage-collected. Mapping beyond the end of
 * the file, or truncating a mapped file, makes later accesses fault (SIGBUS): the caller
 * maps at most the file's current size and never shrinks the files it maps.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <node_api.h>

static void unmap(napi_env env, void* address, void* length) {
  (void)env;
  munmap(address, (size_t)(uintptr_t)length);
}

static napi_value throw_error(napi_env env, const char* code, const char* message) {
  napi_throw_error(env, code, message);
  return NULL;
}

/* map(fd: number, length: number, writable: boolean): ArrayBuffer */
static napi_value map_file(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) {
    return throw_error(env, "ERR_INVALID_ARG", "map(fd, length, writable) takes three arguments");
  }
  int32_t fd;
  int64_t length;
  bool writable;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &length) != napi_ok ||
      napi_get_value_bool(env, argv[2], &writable) != napi_ok || fd < 0 || length <= 0) {
    return throw_error(env, "ERR_INVALID_ARG", "map(fd, length, writable) needs a descriptor, a positive length and a boolean");
  }
  void* address = mmap(NULL, (size_t)length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) return throw_error(env, "ERR_MMAP", strerror(errno));
  napi_value buffer;
  if (napi_create_external_arraybuffer(env, address, (size_t)length, unmap, (void*)(uintptr_t)length, &buffer) != napi_ok) {
    munmap(address, (size_t)length);
    return throw_error(env, "ERR_MMAP", "could not wrap the mapping in an ArrayBuffer");
  }
  return buffer;
}

NAPI_MODULE_INIT() {
  napi_value map;
  if (napi_create_function(env, "map", NAPI_AUTO_LENGTH, map_file, NULL, &map) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "map", map) != napi_ok) return NULL;
  return exports;
}
