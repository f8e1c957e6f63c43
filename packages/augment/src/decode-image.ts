import type sharp from "sharp";
import { nativeJpegDecoder } from "./native-jpeg-decoder";
import { readImageFile } from "./read-image-file";
import { loadSharp } from "./sharp-library";

/** A decoded image as interleaved 8-bit RGB (PIL's `img.convert("RGB")`). */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

/** The file could not be decoded as an image; the pool skips it and counts it. */
export class UnreadableImageError extends Error {
  override readonly name = "UnreadableImageError";
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`unreadable image ${path}: ${reason}`);
  }
}

/**
 * Decode any format libvips reads, sniffing the content (a PNG named .JPEG is fine), to
 * what PIL's `Image.open(f).convert("RGB")` gives:
 * - failOn 'error' rejects truncated or corrupt data (PIL raises on truncated files too)
 *   but accepts data that only warns, as PIL does;
 * - embedded ICC profiles are ignored (PIL does not apply them);
 * - alpha is dropped, not composited; gray and palette images expand to RGB;
 * - 4-component JPEGs are inverted CMYK, whatever their Adobe marker says, converted with
 *   PIL's cmyk2rgb formula, not colour-managed.
 * 16-bit images are scaled to 8 bits (PIL's own 16-bit to RGB conversion clips instead).
 * JPEGs go to the native decoder where it is built (native-jpeg-decoder.ts), which gives
 * the same pixels for the JPEGs it takes and hands the rest back.
 */
export async function decodeRgb(path: string): Promise<RgbImage> {
  let bytes: Buffer;
  try {
    bytes = await readImageFile(path);
  } catch (err) {
    throw new UnreadableImageError(path, (err as Error).message);
  }
  if (bytes.length === 0) throw new UnreadableImageError(path, "empty file");
  const decodeJpeg = nativeJpegDecoder();
  if (decodeJpeg && bytes[0] === 0xff && bytes[1] === 0xd8) {
    const image = await decodeJpeg(bytes);
    if (typeof image !== "string") return image;
  }
  return decodeWithSharp(path, bytes);
}

async function decodeWithSharp(path: string, bytes: Buffer): Promise<RgbImage> {
  const cmyk = isFourComponentJpeg(bytes);
  let decoded: { data: Buffer; info: sharp.OutputInfo };
  try {
    const input = loadSharp()(bytes, { failOn: "error", ignoreIcc: true, sequentialRead: true });
    // A CMYK pipeline keeps libvips from converting to sRGB and back through a CMYK profile
    // (150-300 ms per image, and not the file's values).
    const pipeline = cmyk ? input.pipelineColourspace("cmyk").toColourspace("cmyk") : input.removeAlpha().toColourspace("srgb");
    decoded = await pipeline.raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new UnreadableImageError(path, (err as Error).message);
  }
  const { data, info } = decoded;
  if (info.width < 1 || info.height < 1) throw new UnreadableImageError(path, "image has no pixels");
  const pixels = info.width * info.height;
  // libvips, like PIL, reads 4-component JPEGs as inverted CMYK, Adobe marker or not.
  if (cmyk && info.channels === 4) return { data: cmykToRgb(data, pixels), width: info.width, height: info.height };
  if (info.channels === 3) return { data, width: info.width, height: info.height };
  // libvips maps every other interpretation to 3-band sRGB; keep a guard for odd inputs.
  const rgb = Buffer.allocUnsafe(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = data[p * info.channels + Math.min(c, info.channels - 1)];
  }
  return { data: rgb, width: info.width, height: info.height };
}

/** PIL cmyk2rgb: channel = nk − MULDIV255(value, nk) with nk = 255 − K. */
export function cmykToRgb(cmyk: Uint8Array, pixels: number): Buffer {
  const rgb = Buffer.allocUnsafe(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    const nk = 255 - cmyk[p * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const t = cmyk[p * 4 + c] * nk + 128;
      rgb[p * 3 + c] = nk - (((t >> 8) + t) >> 8);
    }
  }
  return rgb;
}

/** True for a JPEG whose frame header declares 4 components (CMYK or YCCK). */
export function isFourComponentJpeg(bytes: Uint8Array): boolean {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return false;
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return false;
    const marker = bytes[i + 1];
    if (marker === 0xff) {
      i++;
      continue;
    }
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): byte 9 of the segment is the component count.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return bytes[i + 9] === 4;
    if (marker === 0xda || marker === 0xd9) return false;
    i += 2 + length;
  }
  return false;
}
