import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import { cmykToRgb, decodeRgb, UnreadableImageError } from "../src/decode-image";
import { nativeJpegDecoder, nativeJpegDecoderStatus, type DecodeJpeg, type NativeJpegImage } from "../src/native-jpeg-decoder";
import { noise, removeTempDirs, tempDir } from "./fixtures";

/** Where libjpeg's headers are, the package build compiles the helper. */
const HEADERS_INSTALLED = existsSync("/usr/include/jpeglib.h");

const raw = (width: number, height: number, channels: 1 | 3 | 4, seed: number) => sharp(noise(width, height, channels, seed), { raw: { width, height, channels } });

/** A smooth image: noise alone makes every JPEG block alike, gradients exercise the upsampling. */
function gradient(width: number, height: number): sharp.Sharp {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = (y * width + x) * 3;
      data[at] = (x * 255) / Math.max(1, width - 1);
      data[at + 1] = (y * 255) / Math.max(1, height - 1);
      data[at + 2] = ((x + y) * 7) & 255;
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } });
}

/** The same JPEG without its APP14 Adobe segment (sharp always writes one with CMYK). */
function withoutAdobeMarker(jpeg: Buffer): Buffer {
  for (let i = 2; i + 4 < jpeg.length; ) {
    const length = jpeg.readUInt16BE(i + 2);
    if (jpeg[i + 1] === 0xee) return Buffer.concat([jpeg.subarray(0, i), jpeg.subarray(i + 2 + length)]);
    if (jpeg[i + 1] === 0xda) break;
    i += 2 + length;
  }
  throw new Error("no Adobe segment");
}

/** The JPEG with its frame header claiming width × height. */
function withFrameSize(jpeg: Buffer, width: number, height: number): Buffer {
  const copy = Buffer.from(jpeg);
  for (let i = 2; i + 9 < copy.length; ) {
    const marker = copy[i + 1];
    if (marker === 0xc0 || marker === 0xc2) {
      copy.writeUInt16BE(height, i + 5);
      copy.writeUInt16BE(width, i + 7);
      return copy;
    }
    i += 2 + copy.readUInt16BE(i + 2);
  }
  throw new Error("no frame header");
}

async function writeJpegs(): Promise<Record<string, string>> {
  const dir = tempDir("native-jpeg");
  const images: Record<string, Buffer> = {
    "4:2:0 quality 75": await gradient(203, 97).jpeg({ quality: 75 }).toBuffer(),
    "4:4:4 quality 95": await raw(64, 48, 3, 3).jpeg({ quality: 95, chromaSubsampling: "4:4:4" }).toBuffer(),
    progressive: await gradient(120, 81).jpeg({ progressive: true }).toBuffer(),
    "optimised Huffman tables": await gradient(33, 17).jpeg({ optimiseCoding: true }).toBuffer(),
    "1x1": await raw(1, 1, 3, 4).jpeg().toBuffer(),
    grayscale: await raw(45, 31, 1, 5).toColourspace("b-w").jpeg().toBuffer(),
    "CMYK (Adobe marker)": await raw(50, 36, 3, 6).toColourspace("cmyk").jpeg().toBuffer(),
  };
  images["CMYK without Adobe marker"] = withoutAdobeMarker(images["CMYK (Adobe marker)"]);
  const files: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(images)) {
    files[name] = path.join(dir, `${name.replace(/[^a-z0-9]+/gi, "_")}.jpg`);
    writeFileSync(files[name], bytes);
  }
  return files;
}

/** decodeRgb through sharp alone, as where the helper is not built. */
async function decodeWithSharpOnly(file: string) {
  process.env.DINO_AUGMENT_NATIVE_JPEG = "0";
  nativeJpegDecoder(true);
  try {
    return await decodeRgb(file);
  } finally {
    delete process.env.DINO_AUGMENT_NATIVE_JPEG;
    nativeJpegDecoder(true);
  }
}

describe("native JPEG decoder", () => {
  let files: Record<string, string>;
  let decode: DecodeJpeg;
  const decodeFile = (file: string) => decode(readFileSync(file));

  beforeAll(async () => {
    files = await writeJpegs();
    decode = nativeJpegDecoder() as DecodeJpeg;
  });
  afterAll(removeTempDirs);

  it("is built where libjpeg's headers are installed", () => {
    expect(nativeJpegDecoderStatus()).toBe(HEADERS_INSTALLED ? "loaded" : expect.not.stringMatching(/^loaded$/));
  });

  const withDecoder = HEADERS_INSTALLED ? it : it.skip;

  withDecoder("gives sharp's pixels for every JPEG it takes: subsampled, progressive, optimised, tiny, gray, CMYK", async () => {
    for (const [name, file] of Object.entries(files)) {
      const native = await decodeFile(file);
      expect({ name, native: typeof native }).toEqual({ name, native: "object" });
      const viaSharp = await decodeWithSharpOnly(file);
      const image = native as NativeJpegImage;
      expect({ name, width: image.width, height: image.height }).toEqual({ name, width: viaSharp.width, height: viaSharp.height });
      expect({ name, equal: image.data.equals(viaSharp.data) }).toEqual({ name, equal: true });
      expect(await decodeRgb(file)).toEqual({ data: image.data, width: image.width, height: image.height });
    }
  });

  it("reads CMYK as PIL does: inverted whatever the Adobe marker says, then cmyk2rgb", async () => {
    const withMarker = await decodeRgb(files["CMYK (Adobe marker)"]);
    const withoutMarker = await decodeRgb(files["CMYK without Adobe marker"]);
    expect(withoutMarker.data.equals(withMarker.data)).toBe(true);
    expect((await decodeWithSharpOnly(files["CMYK without Adobe marker"])).data.equals(withMarker.data)).toBe(true);
    // libvips inverts the marked file's samples; cmyk2rgb of those is the expected image.
    const inverted = await sharp(files["CMYK (Adobe marker)"]).pipelineColourspace("cmyk").toColourspace("cmyk").raw().toBuffer({ resolveWithObject: true });
    expect(withMarker.data.equals(cmykToRgb(inverted.data, inverted.info.width * inverted.info.height))).toBe(true);
  });

  withDecoder("hands truncated, corrupt, oversized and foreign data back with a reason, and decodeRgb then follows sharp", async () => {
    const jpeg = await gradient(160, 120).jpeg().toBuffer();
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    expect(await decode(truncated)).toMatch(/warning/);
    const corrupt = Buffer.from(jpeg);
    corrupt.fill(0xff, 200, 260);
    expect(typeof (await decode(corrupt))).toBe("string");
    expect(await decode(withFrameSize(jpeg, 20000, 20000))).toMatch(/exceeds the pixel limit/);
    // Within the limit, the data runs out at once: handed back at the first warning.
    expect(await decode(withFrameSize(jpeg, 16000, 16000))).toMatch(/^libjpeg warning/);
    expect(await decode(await raw(8, 8, 3, 1).png().toBuffer())).toMatch(/libjpeg error/);

    const dir = tempDir("native-jpeg-bad");
    const truncatedFile = path.join(dir, "truncated.jpg");
    writeFileSync(truncatedFile, truncated);
    await expect(decodeRgb(truncatedFile)).rejects.toBeInstanceOf(UnreadableImageError);
    const hugeFile = path.join(dir, "huge.jpg");
    writeFileSync(hugeFile, withFrameSize(jpeg, 20000, 20000));
    await expect(decodeRgb(hugeFile)).rejects.toThrow(/pixel limit/);
  });

  withDecoder("survives corrupted JPEGs: every variant decodes or comes back with a reason, and decodeRgb never crashes", async () => {
    const sources = [await gradient(96, 64).jpeg({ quality: 80 }).toBuffer(), await raw(40, 30, 3, 12).toColourspace("cmyk").jpeg().toBuffer(), await gradient(50, 40).jpeg({ progressive: true }).toBuffer()];
    const dir = tempDir("native-jpeg-fuzz");
    let random = 12345;
    const next = () => (random = (Math.imul(random, 1103515245) + 12345) >>> 0);
    const outcomes = { decoded: 0, handedBack: 0 };
    for (let variant = 0; variant < 300; variant++) {
      const bytes = Buffer.from(sources[variant % sources.length]);
      // Headers are where a bad length or size would do damage: most hits land in the first 600 bytes.
      for (let hit = 0; hit < 1 + (next() % 6); hit++) bytes[next() % Math.min(bytes.length, next() % 2 ? 600 : bytes.length)] = next() & 255;
      const result = await decode(bytes);
      if (typeof result === "string") outcomes.handedBack++;
      else {
        outcomes.decoded++;
        expect(result.data.length).toBe(result.width * result.height * 3);
      }
      const file = path.join(dir, `${variant}.jpg`);
      writeFileSync(file, bytes);
      await decodeRgb(file).catch((err: unknown) => expect(err).toBeInstanceOf(UnreadableImageError));
    }
    expect(outcomes.decoded).toBeGreaterThan(0);
    expect(outcomes.handedBack).toBeGreaterThan(0);
  });

  withDecoder("decodes many images at once on the thread pool, each to its own pixels", async () => {
    const names = Object.keys(files);
    const bytes = names.map((name) => readFileSync(files[name]));
    const expected = await Promise.all(bytes.map((b) => decode(b)));
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => decode(bytes[i % bytes.length])));
    results.forEach((result, i) => expect((result as NativeJpegImage).data.equals((expected[i % bytes.length] as NativeJpegImage).data)).toBe(true));
  });

  withDecoder("refuses anything but one Uint8Array", () => {
    expect(() => (decode as unknown as (x: unknown) => unknown)("not bytes")).toThrow(/one Uint8Array/);
    expect(() => (decode as unknown as (x: unknown) => unknown)(new Float32Array(4))).toThrow(/one Uint8Array/);
  });
});
