import { bicubicFilter, CropResampler, ResampleCoefficients, ResampleScratch, resizeCropBicubic } from "../src/pil-resample";
import { noise } from "./fixtures";

/**
 * PIL's ImagingResample (8 bpc, BICUBIC) written the slow, obvious way from Resample.c:
 * double coefficients per output position, normalised over the taps inside the input,
 * rounded away from zero to 22-bit fixed point; horizontal pass over every row into an
 * 8-bit image, then the vertical pass; passes whose size does not change are skipped.
 */
function naivePilResize(src: Uint8Array, W: number, H: number, outW: number, outH: number): Uint8Array {
  const coeffs = (inSize: number, outSize: number) => {
    const scale = inSize / outSize;
    const filterscale = Math.max(scale, 1);
    const support = 2 * filterscale;
    return Array.from({ length: outSize }, (_, xx) => {
      const center = (xx + 0.5) * scale;
      const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
      const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
      const w: number[] = [];
      for (let x = xmin; x < xmax; x++) w.push(bicubicFilter((x - center + 0.5) / filterscale));
      const total = w.reduce((a, b) => a + b, 0);
      const fixed = w.map((k) => (total !== 0 ? k / total : k)).map((k) => (k < 0 ? Math.trunc(-0.5 + k * 2 ** 22) : Math.trunc(0.5 + k * 2 ** 22)));
      return { xmin, fixed };
    });
  };
  const clip8 = (s: number) => Math.min(255, Math.max(0, Math.floor(s / 2 ** 22)));
  let img = src;
  let w = W;
  if (outW !== W) {
    const cs = coeffs(W, outW);
    const next = new Uint8Array(outW * H * 3);
    for (let y = 0; y < H; y++) {
      for (let xx = 0; xx < outW; xx++) {
        for (let c = 0; c < 3; c++) {
          let s = 2 ** 21;
          cs[xx].fixed.forEach((k, i) => (s += img[(y * w + cs[xx].xmin + i) * 3 + c] * k));
          next[(y * outW + xx) * 3 + c] = clip8(s);
        }
      }
    }
    img = next;
    w = outW;
  }
  if (outH !== H) {
    const cs = coeffs(H, outH);
    const next = new Uint8Array(w * outH * 3);
    for (let yy = 0; yy < outH; yy++) {
      for (let x = 0; x < w * 3; x++) {
        let s = 2 ** 21;
        cs[yy].fixed.forEach((k, i) => (s += img[(cs[yy].xmin + i) * w * 3 + x] * k));
        next[yy * w * 3 + x] = clip8(s);
      }
    }
    img = next;
  }
  return img;
}

function crop(src: Uint8Array, W: number, left: number, top: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) out.set(src.subarray(((top + y) * W + left) * 3, ((top + y) * W + left + w) * 3), y * w * 3);
  return out;
}

describe("PIL bicubic resample (Image.resize(size, BICUBIC), 8 bits per channel)", () => {
  it("uses PIL's bicubic_filter (a = -0.5)", () => {
    expect([0, 0.5, 1, 1.5, 2, 2.5].map((x) => bicubicFilter(x) + 0)).toEqual([1, 0.5625, 0, -0.0625, 0, 0]); // + 0: f(1) is −0 in C too
    expect(bicubicFilter(-0.5)).toBe(0.5625);
  });

  it("stretches the kernel by the reduction, renormalises it at the edges and quantises to 22 bits (hand-computed 4 → 2)", () => {
    // scale 2: support 4, ksize 9; output 0 centres at 1.0 and takes inputs 0..3 at filter((x − 0.5) / 2).
    const c = new ResampleCoefficients().compute(4, 2);
    expect(c.ksize).toBe(9);
    const raw = [0.8671875, 0.8671875, 0.2265625, -0.0703125]; // f(−0.25), f(0.25), f(0.75), f(1.25)
    const total = 1.890625;
    const fixed = raw.map((k) => k / total).map((k) => (k < 0 ? Math.trunc(-0.5 + k * 4194304) : Math.trunc(0.5 + k * 4194304)));
    expect(Array.from(c.bounds.subarray(0, 4))).toEqual([0, 4, 0, 4]);
    expect(Array.from(c.weights.subarray(0, 9))).toEqual([...fixed, 0, 0, 0, 0, 0]);
    expect(fixed).toEqual([1923834, 1923834, 502623, -155987]);
    // Output 1 (centre 3.0) is the mirror image.
    expect(Array.from(c.weights.subarray(9, 13))).toEqual([-155987, 502623, 1923834, 1923834]);
    // One row [10, 200, 30, 90] per channel: out0 = (2^21 + Σ v·k) >> 22.
    const row = Uint8Array.from([10, 10, 10, 200, 200, 200, 30, 30, 30, 90, 90, 90]);
    const out = new Uint8Array(6);
    resizeCropBicubic({ src: row, width: 4, left: 0, top: 0, cropWidth: 4, cropHeight: 1 }, 2, 1, out, new ResampleScratch());
    const expect0 = Math.floor((2 ** 21 + 10 * 1923834 + 200 * 1923834 + 30 * 502623 + 90 * -155987) / 2 ** 22);
    const expect1 = Math.floor((2 ** 21 + 10 * -155987 + 200 * 502623 + 30 * 1923834 + 90 * 1923834) / 2 ** 22);
    expect([expect0, expect1]).toEqual([97, 79]);
    expect(Array.from(out)).toEqual([97, 97, 97, 79, 79, 79]);
  });

  it("keeps an unchanged axis exact and clips overshoot to 0..255", () => {
    const scratch = new ResampleScratch();
    const img = noise(7, 5, 3, 3);
    const same = new Uint8Array(7 * 5 * 3);
    resizeCropBicubic({ src: img, width: 7, left: 0, top: 0, cropWidth: 7, cropHeight: 5 }, 7, 5, same, scratch);
    expect(Buffer.from(same).equals(img)).toBe(true);
    // A hard edge upsampled overshoots (negative lobes): PIL clips, it does not wrap.
    const edge = Uint8Array.from([0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
    const up = new Uint8Array(8 * 3);
    resizeCropBicubic({ src: edge, width: 4, left: 0, top: 0, cropWidth: 4, cropHeight: 1 }, 8, 1, up, scratch);
    expect(Array.from(up)).toEqual(Array.from(naivePilResize(edge, 4, 1, 8, 1)));
    expect(up[0]).toBe(0);
    expect(up[21]).toBe(255);
  });

  it("matches the plain algorithm bit for bit on crops, up- and downsampling, one axis or both (scalar and SIMD)", () => {
    const W = 61;
    const H = 47;
    const img = noise(W, H, 3, 7);
    const scratch = new ResampleScratch();
    const resampler = new CropResampler(40);
    expect(resampler.simd).toBe(true); // Node 20 has WebAssembly SIMD
    resampler.load(img, W, H);
    const cases: Array<[number, number, number, number, number]> = [
      [0, 0, W, H, 40], [3, 2, 50, 41, 16], [10, 5, 16, 30, 16], [7, 9, 30, 16, 16], [0, 0, 1, 1, 5],
      [5, 5, 3, 2, 9], [20, 11, 40, 36, 37], [1, 1, 13, 40, 40], [W - 9, H - 7, 9, 7, 33], [0, 0, 40, 40, 40], [2, 3, 57, 44, 1],
    ];
    for (const [left, top, w, h, size] of cases) {
      const expected = naivePilResize(crop(img, W, left, top, w, h), w, h, size, size);
      const scalar = new Uint8Array(size * size * 3);
      resizeCropBicubic({ src: img, width: W, left, top, cropWidth: w, cropHeight: h }, size, size, scalar, scratch);
      expect(Array.from(scalar)).toEqual(Array.from(expected));
      expect(Array.from(resampler.resize(left, top, w, h, size))).toEqual(Array.from(expected));
    }
    expect(() => resampler.resize(W - 5, 0, 6, 4, 8)).toThrow(RangeError);
  });

  it("enlarges tiny images a lot (coefficient tables sized for 5 taps per output)", () => {
    const resampler = new CropResampler(224);
    const img = noise(3, 2, 3, 5);
    resampler.load(img, 3, 2);
    for (const [left, top, w, h] of [[0, 0, 3, 2], [1, 0, 1, 2], [2, 1, 1, 1]]) {
      expect(Array.from(resampler.resize(left, top, w, h, 224))).toEqual(Array.from(naivePilResize(crop(img, 3, left, top, w, h), w, h, 224, 224)));
    }
  });

  it("reloads images of other sizes (memory growth) without stale views", () => {
    const resampler = new CropResampler(24);
    for (const [W, H] of [[30, 20], [400, 300], [25, 31], [6, 5]]) {
      const img = noise(W, H, 3, W);
      resampler.load(img, W, H);
      const expected = naivePilResize(crop(img, W, 2, 1, W - 4, H - 3), W - 4, H - 3, 24, 24);
      expect(Array.from(resampler.resize(2, 1, W - 4, H - 3, 24))).toEqual(Array.from(expected));
    }
  });
});
