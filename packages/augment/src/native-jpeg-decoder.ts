/**
 * The optional native JPEG decoder (native/jpeg_decoder.c, compiled by the package build
 * against the system's libjpeg-turbo). sharp spends ~4.7 ms of CPU per ImageNet-sized
 * image, mostly in libvips' pipeline and thread hand-offs and in option handling on the
 * calling thread, around a ~0.9 ms decode; the helper is that decode alone, on libuv's
 * thread pool. It only takes JPEGs whose pixels it is certain to get as PIL does (8-bit
 * YCbCr, grayscale, CMYK or YCCK, decoded without a warning) and answers anything else
 * with a reason: the caller then decodes with sharp. Without the helper (not built, or
 * DINO_AUGMENT_NATIVE_JPEG=0) every image goes through sharp, with the same pixels.
 */
import { NativeAddon } from "./native-addon";

export interface NativeJpegImage {
  data: Buffer;
  width: number;
  height: number;
}

/** The decoded image, or why the helper left it to sharp. */
export type DecodeJpeg = (bytes: Uint8Array) => Promise<NativeJpegImage | string>;

const addon = new NativeAddon<{ decode: DecodeJpeg }>("jpeg_decoder.node", "DINO_AUGMENT_NATIVE_JPEG");

/** The helper's decode, or null when it is unavailable (`nativeJpegDecoderStatus()` says why). Decided once per thread, unless `reload` is set (tests). */
export function nativeJpegDecoder(reload = false): DecodeJpeg | null {
  return addon.get(reload)?.decode ?? null;
}

/** "loaded", or why JPEGs go through sharp. */
export function nativeJpegDecoderStatus(): string {
  return addon.status;
}
