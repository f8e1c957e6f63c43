import { applyColorOps, blend, BlurScratch, boxRadiusForGaussian, boxWeights, ColorScratch, gaussianBlurPil, JitterOp, luma, MultiCropRenderer, resolveAugmentConfig, shiftHue, writeNormalizedChw, type ColorJitterParams } from "../src";
import { instantiateColorKernels, type ColorKernels } from "../src/simd-color";
import { SimdCropPixels } from "../src/simd-crop-pixels";
import { instantiateNormalize } from "../src/simd-normalize";
import { instantiateTranspose } from "../src/simd-transpose";
import { noise } from "./fixtures";

/**
 * The WebAssembly SIMD kernels against the scalar reference (color-ops.ts, normalize.ts)
 * on random pixels, the edge values 0 and 255, and sizes that are not multiples of the
 * kernels' step, so their tail handling is exercised too.
 */

const SRC = 64;
const DST = 1 << 16;

function kernels(pages = 8): { k: ColorKernels; bytes: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: pages });
  const k = instantiateColorKernels(memory);
  if (!k) throw new Error("WebAssembly SIMD unavailable"); // Node 20 has it: a null here is a bug
  return { k, bytes: new Uint8Array(memory.buffer) };
}

/** Random samples with runs of 0, 255 and gray pixels mixed in. */
function pixels(count: number, seed: number): Uint8Array {
  const px = new Uint8Array(noise(count, 1, 3, seed));
  for (let i = 0; i < count; i++) {
    const kind = (i * 7 + seed) % 11;
    if (kind === 0) px.fill(0, 3 * i, 3 * i + 3);
    else if (kind === 1) px.fill(255, 3 * i, 3 * i + 3);
    else if (kind === 2) px[3 * i + (i % 3)] = 255;
    else if (kind === 3) px[3 * i + (i % 3)] = 0;
    else if (kind === 4) px.fill(px[3 * i], 3 * i, 3 * i + 3);
  }
  return px;
}

function scalarPerPixel(px: Uint8Array, fn: (r: number, g: number, b: number, out: Uint8Array, o: number) => void): Uint8Array {
  const out = new Uint8Array(px.length);
  for (let o = 0; o < px.length; o += 3) fn(px[o], px[o + 1], px[o + 2], out, o);
  return out;
}

describe("WebAssembly SIMD colour kernels equal the scalar reference", () => {
  it("blend: every sample value for brightness- and contrast-like constants and factors", () => {
    const { k, bytes } = kernels();
    const samples = Uint8Array.from({ length: 256 * 3 + 5 }, (_, i) => i & 255);
    for (const constant of [0, 1, 77, 128, 254, 255]) {
      for (const alpha of [0.6, 0.6000001, 0.999, 1, 1.0001, 1.3, 1.4, 2.5, 0]) {
        bytes.set(samples, SRC);
        k.blend(SRC, samples.length, constant, alpha);
        const expected = samples.map((x) => blend(constant, x, Math.fround(alpha)));
        expect(Array.from(bytes.subarray(SRC, SRC + samples.length))).toEqual(Array.from(expected));
      }
    }
  });

  it("lumaSum: PIL luma summed over exactly the given pixels", () => {
    const { k, bytes } = kernels();
    for (const count of [1, 2, 3, 4, 5, 13, 97, 1000]) {
      const px = pixels(count, count);
      bytes.fill(255, SRC, SRC + 3 * count + 64); // slack bytes must not count
      bytes.set(px, SRC);
      let expected = 0;
      for (let o = 0; o < px.length; o += 3) expected += luma(px[o], px[o + 1], px[o + 2]);
      expect(k.lumaSum(SRC, count)).toBe(expected);
    }
  });

  it("saturation and gray: ImageEnhance.Color and convert('L') per pixel", () => {
    const { k, bytes } = kernels();
    for (const count of [1, 6, 301, 4096]) {
      const px = pixels(count, 11 + count);
      for (const alpha of [0.8, 1.2, 0.95, 1, 0]) {
        bytes.set(px, SRC);
        k.saturation(SRC, DST, count, alpha);
        const a = Math.fround(alpha);
        const expected = scalarPerPixel(px, (r, g, b, out, o) => {
          const l = luma(r, g, b);
          out[o] = blend(l, r, a);
          out[o + 1] = blend(l, g, a);
          out[o + 2] = blend(l, b, a);
        });
        expect(Array.from(bytes.subarray(DST, DST + px.length))).toEqual(Array.from(expected));
      }
      bytes.set(px, SRC);
      k.gray(SRC, DST, count);
      expect(Array.from(bytes.subarray(DST, DST + px.length))).toEqual(Array.from(scalarPerPixel(px, (r, g, b, out, o) => out.fill(luma(r, g, b), o, o + 3))));
    }
  });

  it("hsv2rgb's p, q and t in float32, rounded half to even (the hue kernel's way), equal PIL's double arithmetic for every (S, V, H)", () => {
    const { fround: f32, floor, round } = Math; // local aliases: the test realm's Math calls are slow in this hot loop
    const rounded = (y: number) => f32(f32(y + 2 ** 23) - 2 ** 23);
    // The kernel's fs and f: integers times float32(1/255), where PIL divides by 255.
    const inverse255 = f32(1 / 255);
    let mismatches = 0;
    let checked = 0;
    for (let s = 0; s < 256; s++) {
      const fs = f32(s / 255.0);
      const fsKernel = f32(s * inverse255);
      for (let v = 0; v < 256; v++) if (rounded(f32(v * f32(1 - fsKernel))) !== round(v * (1.0 - fs))) mismatches++;
      for (let h = 0; h < 256; h++) {
        const h6 = (h * 6.0) / 255.0;
        const f = f32(h6 - floor(h6));
        const fKernel = f32((6 * h - 255 * floor(h6)) * inverse255);
        const odd = (floor(h6) % 6) & 1;
        const pil = 1.0 - fs * (odd ? f : 1.0 - f);
        const kernel = f32(1 - f32(fsKernel * (odd ? fKernel : f32(1 - fKernel))));
        for (let v = 0; v < 256; v++, checked++) if (rounded(f32(v * kernel)) !== round(v * pil)) mismatches++;
      }
    }
    expect(checked).toBe(1 << 24);
    expect(mismatches).toBe(0);
  });

  it("hue: shiftHue on every hue-table entry, grays, black and white, for shifts across the byte range", () => {
    // Colours with one channel 0 and the others every (a, b) pair reach every 8-bit hue and saturation
    // path of rgb2hsv; the others vary the minimum too.
    const colours: number[] = [];
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) colours.push(a, b, 0, a, 0, b, 0, a, b);
    for (let r = 0; r < 256; r += 17) for (let g = 3; g < 256; g += 19) for (let b = 5; b < 256; b += 23) colours.push(r, g, b, 255 - r, b, g);
    // (v, v − c, v − c) reaches every (cr, max) pair, so every 8-bit saturation rgb2hsv computes.
    for (let v = 0; v < 256; v++) for (let c = 0; c <= v; c++) colours.push(v, v - c, v - c);
    colours.push(0, 0, 0, 255, 255, 255, 128, 128, 128, 255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 0, 0);
    const px = Uint8Array.from(colours);
    const count = px.length / 3;
    const { k, bytes } = kernels(Math.ceil((2 * px.length + 256) / 65536));
    const dst = SRC + px.length + 64;
    for (const shift of [0, 1, 25, 128, 231, 255]) {
      bytes.set(px, SRC);
      k.hue(SRC, dst, count, shift);
      const expected = scalarPerPixel(px, (r, g, b, out, o) => shiftHue(r, g, b, shift, out, o));
      let mismatches = 0;
      for (let i = 0; i < px.length; i++) if (bytes[dst + i] !== expected[i]) mismatches++;
      expect(mismatches).toBe(0);
      if (shift !== 0) expect(Buffer.from(expected).equals(Buffer.from(px))).toBe(false); // the shift changed colours
    }
  });
});

/** PIL's box blur per line and channel with clamped indices, 3 passes along x then 3 along y. */
function naiveBlur(px: Uint8Array, W: number, H: number, sigma: number): void {
  const { radius: r, ww, fw } = boxWeights(boxRadiusForGaussian(sigma));
  const line = (read: (i: number) => number, n: number, write: (i: number, v: number) => void) => {
    const at = (i: number) => read(Math.min(Math.max(i, 0), n - 1));
    const values = Array.from({ length: n }, (_, x) => {
      let s = 0;
      for (let k = -r; k <= r; k++) s += at(x + k);
      return Math.floor((s * ww + (at(x - r - 1) + at(x + r + 1)) * fw + 2 ** 23) / 2 ** 24);
    });
    values.forEach((v, i) => write(i, v));
  };
  for (let pass = 0; pass < 3; pass++) for (let y = 0; y < H; y++) for (let c = 0; c < 3; c++) line((x) => px[(y * W + x) * 3 + c], W, (x, v) => (px[(y * W + x) * 3 + c] = v));
  for (let pass = 0; pass < 3; pass++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) line((y) => px[(y * W + x) * 3 + c], H, (y, v) => (px[(y * W + x) * 3 + c] = v));
}

describe("WebAssembly SIMD box blur along the rows", () => {
  it("equals PIL's formula on random images, widths 1 to 224, every radius the SIMD kernels take", () => {
    const scratch = new BlurScratch(224);
    expect(scratch.passesRows(1)).toBe(true);
    for (const [W, H] of [[1, 3], [2, 2], [5, 7], [6, 1], [17, 9], [48, 40], [224, 5]]) {
      for (const sigma of [0.1, 0.6, 1.0, 1.7, 2.0]) {
        const px = pixels(W * H, W * 31 + H);
        const expected = px.slice();
        naiveBlur(expected, W, H, sigma);
        gaussianBlurPil(px, W, H, sigma, scratch);
        expect(Buffer.from(px).equals(Buffer.from(expected))).toBe(true);
      }
    }
  });
});

describe("WebAssembly SIMD layout kernels of the resample (simd-transpose.ts)", () => {
  function layoutKernels() {
    const memory = new WebAssembly.Memory({ initial: 64 });
    const k = instantiateTranspose(memory);
    if (!k) throw new Error("WebAssembly SIMD unavailable");
    return { k, bytes: new Uint8Array(memory.buffer) };
  }
  const align16 = (n: number) => (n + 15) & ~15;
  const SIZES: Array<[number, number]> = [[1, 1], [16, 16], [17, 3], [5, 33], [31, 16], [40, 29]];

  it("transpose: dst[c·dstStride + r] = src[r·srcStride + c] for sizes around the 16 × 16 block", () => {
    const { k, bytes } = layoutKernels();
    for (const [rows, columns] of SIZES) {
      const srcStride = align16(columns) + 16;
      const dstStride = align16(rows) + 32;
      const src = pixels(srcStride * align16(rows), rows * columns);
      const dst = 1 << 20;
      bytes.set(src.subarray(0, srcStride * align16(rows)), SRC);
      k.transpose(SRC, srcStride, rows, dst, dstStride, columns);
      for (let c = 0; c < columns; c++) {
        const expected = Array.from({ length: rows }, (_, r) => src[r * srcStride + c]);
        expect(Array.from(bytes.subarray(dst + c * dstStride, dst + c * dstStride + rows))).toEqual(expected);
      }
    }
  });

  it("interleave: three planes to RGB rows of exactly width pixels (each row's spill is rewritten)", () => {
    const { k, bytes } = layoutKernels();
    for (const [width, rows] of SIZES) {
      const srcStride = width + 5;
      const planeStride = srcStride * rows + 64;
      const planes = pixels(planeStride, width * rows + 1);
      const dst = 1 << 20;
      bytes.set(planes.subarray(0, 3 * planeStride), SRC);
      bytes.fill(7, dst, dst + width * rows * 3 + 64);
      k.interleave(SRC, srcStride, planeStride, width, rows, dst);
      const expected = Array.from({ length: width * rows * 3 }, (_, i) => {
        const pixel = Math.floor(i / 3);
        return planes[(i % 3) * planeStride + Math.floor(pixel / width) * srcStride + (pixel % width)];
      });
      expect(Array.from(bytes.subarray(dst, dst + width * rows * 3))).toEqual(expected);
    }
  });
});

describe("WebAssembly SIMD tensor write equals writeNormalizedChw", () => {
  it("every size up to 19 and the crop sizes, flipped or not, solarized or not; nothing outside the crop is written", () => {
    const memory = new WebAssembly.Memory({ initial: 16 });
    const normalize = instantiateNormalize(memory);
    if (!normalize) throw new Error("WebAssembly SIMD unavailable");
    const bytes = new Uint8Array(memory.buffer);
    const floats = new Float32Array(memory.buffer);
    for (const size of [...Array.from({ length: 19 }, (_, i) => i + 1), 96, 224]) {
      const px = pixels(size * size, size);
      const planeStride = (size * size * 4 + 64 + 63) & ~63;
      const dst = 256 * 1024;
      for (const flip of [false, true]) {
        for (const solarize of [false, true]) {
          bytes.set(px, SRC);
          const sentinel = 12345.5;
          floats.fill(sentinel, dst / 4, (dst + 3 * planeStride) / 4);
          normalize(SRC, size, flip ? 1 : 0, solarize ? 1 : 0, dst, planeStride);
          const expected = new Float32Array(3 * size * size);
          writeNormalizedChw(px, size, flip, solarize, expected, 0);
          for (let c = 0; c < 3; c++) {
            const plane = floats.subarray((dst + c * planeStride) / 4, (dst + c * planeStride) / 4 + size * size);
            expect(Buffer.from(plane.slice().buffer).equals(Buffer.from(expected.subarray(c * size * size, (c + 1) * size * size).slice().buffer))).toBe(true);
          }
          // The kernel may spill up to 3 floats past a plane, never further.
          expect(floats[(dst + 3 * planeStride) / 4 - 1]).toBe(sentinel);
        }
      }
    }
  });
});

describe("SimdCropPixels and the renderer's SIMD path equal the scalar path", () => {
  const ORDERS: JitterOp[][] = [];
  const permute = (prefix: JitterOp[], rest: JitterOp[]) => {
    if (rest.length === 0) ORDERS.push(prefix);
    rest.forEach((op, i) => permute([...prefix, op], [...rest.slice(0, i), ...rest.slice(i + 1)]));
  };
  permute([], [JitterOp.Brightness, JitterOp.Contrast, JitterOp.Saturation, JitterOp.Hue]);

  it("is available on this Node", () => {
    expect(SimdCropPixels.create(8)).not.toBeNull();
    expect(new MultiCropRenderer(resolveAugmentConfig(), 0).usesSimd).toBe(true);
    expect(new MultiCropRenderer(resolveAugmentConfig(), 0, { simd: false }).usesSimd).toBe(false);
  });

  it("applyColorOps: every jitter order with and without grayscale, odd sizes", () => {
    const simd = SimdCropPixels.create(31) as SimdCropPixels;
    const scratch = new ColorScratch();
    let seed = 3;
    for (const order of ORDERS) {
      for (const [brightness, contrast, saturation, hue] of [[1.3, 0.7, 1.15, 0.07], [0.6, 1.4, 0.8, -0.1], [1.02, 0.97, 1.2, 0.0999]]) {
        for (const grayscale of [false, true]) {
          const size = 5 + (seed % 27);
          const jitter: ColorJitterParams = { order, brightness, contrast, saturation, hue };
          const px = pixels(size * size, seed++);
          const expected = px.slice();
          applyColorOps(expected, size * size, jitter, grayscale, scratch);
          simd.load(px);
          simd.applyColorOps(size * size, jitter, grayscale);
          expect(Array.from(simd.pixels.subarray(0, px.length))).toEqual(Array.from(expected));
        }
      }
    }
  });

  it("MultiCropRenderer.render: whole images' crops bit for bit", () => {
    const config = resolveAugmentConfig({ globalSize: 40, localSize: 17, localCrops: 4 });
    const simd = new MultiCropRenderer(config, 9);
    const scalar = new MultiCropRenderer(config, 9, { simd: false });
    const floats = (n: number) => new Float32Array(n);
    for (let index = 0; index < 12; index++) {
      const width = 30 + index * 13;
      const height = 50 + ((index * 29) % 70);
      const image = { data: noise(width, height, 3, index + 1), width, height };
      const slots = [floats(2 * 3 * 40 * 40), floats(4 * 3 * 17 * 17)];
      const want = [floats(2 * 3 * 40 * 40), floats(4 * 3 * 17 * 17)];
      simd.render(image, 1, index, { slot: 0, batchSize: 1, globals: slots[0], locals: slots[1] });
      scalar.render(image, 1, index, { slot: 0, batchSize: 1, globals: want[0], locals: want[1] });
      expect(Buffer.from(slots[0].buffer).equals(Buffer.from(want[0].buffer))).toBe(true);
      expect(Buffer.from(slots[1].buffer).equals(Buffer.from(want[1].buffer))).toBe(true);
      expect(slots[0].some((x) => x !== 0)).toBe(true);
    }
  });
});
