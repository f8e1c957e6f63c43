/*
 * Baseline and progressive JPEG decoding to interleaved 8-bit RGB with libjpeg(-turbo), on
 * libuv's thread pool (N-API async work). sharp spends ~4.7 ms of CPU per ImageNet-sized
 * image (0.24 Mpx) in libvips' pipeline, thread hand-offs and option handling, around a
 * decode that libjpeg-turbo does in ~0.9 ms; this helper is that decode alone.
 *
 * It takes the images whose pixels it is certain to get as PIL's `convert("RGB")` does:
 * 8-bit YCbCr, grayscale, CMYK and YCCK JPEGs that decode without a single libjpeg warning,
 * within sharp's default pixel limit, with libjpeg's defaults (ISLOW IDCT, fancy
 * upsampling), which PIL and libvips use too. Anything else (corrupt or truncated data,
 * 12-bit samples, other formats) resolves with a reason instead, and the caller decodes with
 * sharp, whose rules for those cases it already follows.
 *
 * decode(bytes: Uint8Array): Promise<{ data: Buffer, width, height } | string>
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>
#include "promise_work.h"

/* sharp's default limitInputPixels (0x3FFF squared): beyond it sharp refuses the image. */
#define MAX_PIXELS (16383.0 * 16383.0)

typedef struct {
  struct jpeg_error_mgr manager;
  jmp_buf escape;
  volatile int warned; /* set before escaping from a warning: read after the longjmp */
} ErrorState;

typedef struct {
  ByteJob input;
  unsigned char* pixels;
  unsigned width;
  unsigned height;
  char reason[JMSG_LENGTH_MAX + 64];
} DecodeJob;

static void on_error(j_common_ptr decoder) {
  ErrorState* state = (ErrorState*)decoder->err;
  longjmp(state->escape, 1);
}

/*
 * Level −1 is a warning about the data (corrupt or truncated): stop at the first one, as
 * sharp hands the image on anyway (and a corrupt frame header can claim 268 M pixels that
 * libjpeg would otherwise go on filling). Higher levels are traces.
 */
static void on_message(j_common_ptr decoder, int level) {
  if (level < 0) {
    ErrorState* state = (ErrorState*)decoder->err;
    state->warned = 1;
    longjmp(state->escape, 1);
  }
}

/* PIL reads every 4-component JPEG as inverted CMYK ("CMYK;I", Adobe's convention): its
 * samples are 255 − the file's. Its cmyk2rgb is channel = nk − MULDIV255(C, nk) with
 * nk = 255 − K, so on the file's samples nk is K itself and C is 255 − the file's C. */
static void inverted_cmyk_to_rgb(const JSAMPLE* cmyk, unsigned char* rgb, unsigned width) {
  for (unsigned x = 0; x < width; x++, cmyk += 4, rgb += 3) {
    const int nk = cmyk[3];
    for (int c = 0; c < 3; c++) {
      const int t = (255 - cmyk[c]) * nk + 128;
      rgb[c] = (unsigned char)(nk - (((t >> 8) + t) >> 8));
    }
  }
}

static int supported(const struct jpeg_decompress_struct* decoder) {
  switch (decoder->num_components) {
    case 1: return decoder->jpeg_color_space == JCS_GRAYSCALE;
    case 3: return decoder->jpeg_color_space == JCS_YCbCr;
    case 4: return decoder->jpeg_color_space == JCS_CMYK || decoder->jpeg_color_space == JCS_YCCK;
    default: return 0;
  }
}

static void decode_on_pool_thread(napi_env env, void* data) {
  (void)env;
  DecodeJob* job = (DecodeJob*)data;
  struct jpeg_decompress_struct decoder;
  ErrorState state;
  /* volatile: read after longjmp, assigned after setjmp */
  JSAMPLE* volatile cmyk_row = NULL;
  decoder.err = jpeg_std_error(&state.manager);
  state.manager.error_exit = on_error;
  state.manager.emit_message = on_message;
  state.warned = 0;
  if (setjmp(state.escape)) {
    char message[JMSG_LENGTH_MAX];
    state.manager.format_message((j_common_ptr)&decoder, message);
    snprintf(job->reason, sizeof job->reason, "libjpeg %s: %s", state.warned ? "warning" : "error", message);
    jpeg_destroy_decompress(&decoder);
    free(cmyk_row);
    free(job->pixels);
    job->pixels = NULL;
    return;
  }
  jpeg_create_decompress(&decoder);
  jpeg_mem_src(&decoder, job->input.bytes, (unsigned long)job->input.length);
  jpeg_read_header(&decoder, TRUE);
  if (!supported(&decoder) || decoder.data_precision != 8) {
    snprintf(job->reason, sizeof job->reason, "%d components in colour space %d, %d bits", decoder.num_components,
             (int)decoder.jpeg_color_space, decoder.data_precision);
  } else if ((double)decoder.image_width * decoder.image_height > MAX_PIXELS) {
    snprintf(job->reason, sizeof job->reason, "%ux%u exceeds the pixel limit", decoder.image_width, decoder.image_height);
  } else {
    const int four = decoder.num_components == 4;
    decoder.out_color_space = four ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&decoder);
    const size_t stride = (size_t)decoder.output_width * 3;
    job->pixels = malloc(stride * decoder.output_height);
    if (four) cmyk_row = malloc((size_t)decoder.output_width * 4);
    if (!job->pixels || (four && !cmyk_row)) {
      snprintf(job->reason, sizeof job->reason, "out of memory for %ux%u pixels", decoder.output_width, decoder.output_height);
      free(job->pixels);
      job->pixels = NULL;
    } else {
      while (decoder.output_scanline < decoder.output_height) {
        unsigned char* rgb = job->pixels + stride * decoder.output_scanline;
        JSAMPROW row = four ? cmyk_row : rgb;
        jpeg_read_scanlines(&decoder, &row, 1);
        if (four) inverted_cmyk_to_rgb(cmyk_row, rgb, decoder.output_width);
      }
      jpeg_finish_decompress(&decoder);
      job->width = decoder.output_width;
      job->height = decoder.output_height;
    }
  }
  free(cmyk_row);
  jpeg_destroy_decompress(&decoder);
}

/* The pixels' size is reported to V8 while a Buffer holds them, so that its collector counts them. */
static void free_pixels(napi_env env, void* pixels, void* length) {
  int64_t ignored;
  napi_adjust_external_memory(env, -(int64_t)(uintptr_t)length, &ignored);
  free(pixels);
}

static napi_value image_object(napi_env env, DecodeJob* job) {
  napi_value image, data, width, height;
  const size_t length = (size_t)job->width * job->height * 3;
  int64_t ignored;
  if (napi_create_external_buffer(env, length, job->pixels, free_pixels, (void*)(uintptr_t)length, &data) != napi_ok) return NULL;
  job->pixels = NULL; /* the Buffer owns them now */
  napi_adjust_external_memory(env, (int64_t)length, &ignored);
  if (napi_create_object(env, &image) != napi_ok || napi_create_uint32(env, job->width, &width) != napi_ok ||
      napi_create_uint32(env, job->height, &height) != napi_ok || napi_set_named_property(env, image, "data", data) != napi_ok ||
      napi_set_named_property(env, image, "width", width) != napi_ok || napi_set_named_property(env, image, "height", height) != napi_ok) {
    return NULL;
  }
  return image;
}

static void settle_on_js_thread(napi_env env, napi_status status, void* data) {
  DecodeJob* job = (DecodeJob*)data;
  napi_value result = NULL;
  if (status != napi_ok) snprintf(job->reason, sizeof job->reason, "decode cancelled");
  if (job->pixels) result = image_object(env, job);
  if (!result) {
    if (!job->reason[0]) snprintf(job->reason, sizeof job->reason, "could not hand the pixels to JavaScript");
    napi_create_string_utf8(env, job->reason, NAPI_AUTO_LENGTH, &result);
  }
  finish_promise_work(env, &job->input.work, result);
  free(job->pixels);
  free(job);
}

static napi_value decode(napi_env env, napi_callback_info info) {
  return queue_byte_job(env, info, "decode(bytes) takes one Uint8Array", sizeof(DecodeJob), "jpegDecode", decode_on_pool_thread, settle_on_js_thread);
}

NAPI_MODULE_INIT() {
  return export_function(env, exports, "decode", decode) ? exports : NULL;
}
