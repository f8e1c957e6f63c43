import {
  applyColorOps,
  blend,
  boxRadiusForGaussian,
  boxWeights,
  ColorScratch,
  gaussianBlurPil,
  hueShift,
  JitterOp,
  luma,
  normalizeValue,
  randomResizedCropBox,
  roundHalfEven,
  shiftHue,
  solarize,
  writeNormalizedChw,
  CounterRandom,
} from "../src";
import { BlurScratch, cmykToRgb } from "../src";

/** PIL's box blur written the slow, obvious way: per line, per channel, clamped indices. */
function naivePilBlur(px: Uint8Array, W: number, H: number, sigma: number): void {
  const { radius: r, ww, fw } = boxWeights(boxRadiusForGaussian(sigma));
  const at = (line: number[], i: number) => line[Math.min(Math.max(i, 0), line.length - 1)];
  const pass = (get: (l: number, x: number, c: number) => number, set: (l: number, x: number, c: number, v: number) => void, n: number, lines: number) => {
    for (let l = 0; l < lines; l++) {
      for (let c = 0; c < 3; c++) {
        const line = Array.from({ length: n }, (_, x) => get(l, x, c));
        for (let x = 0; x < n; x++) {
          let s = 0;
          for (let k = -r; k <= r; k++) s += at(line, x + k);
          set(l, x, c, Math.floor((s * ww + (at(line, x - r - 1) + at(line, x + r + 1)) * fw + 2 ** 23) / 2 ** 24));
        }
      }
    }
  };
  for (let p = 0; p < 3; p++) pass((y, x, c) => px[(y * W + x) * 3 + c], (y, x, c, v) => (px[(y * W + x) * 3 + c] = v), W, H);
  for (let p = 0; p < 3; p++) pass((x, y, c) => px[(y * W + x) * 3 + c], (x, y, c, v) => (px[(y * W + x) * 3 + c] = v), H, W);
}

const f32 = Math.fround;

describe("deterministic pixel ops (PIL / torchvision semantics)", () => {
  it("normalizes like ToTensor + Normalize in float32", () => {
    expect(normalizeValue(0, 0)).toBe(f32(f32(-f32(0.485)) / f32(0.229)));
    expect(normalizeValue(255, 2)).toBe(f32(f32(1 - f32(0.406)) / f32(0.225)));
    expect(normalizeValue(128, 1)).toBeCloseTo((128 / 255 - 0.456) / 0.224, 6);
  });

  it("solarizes pixels >= 128 only", () => {
    expect([0, 127, 128, 200, 255].map(solarize)).toEqual([0, 127, 127, 55, 0]);
  });

  it("uses PIL's fixed-point ITU-R 601-2 luma", () => {
    expect(luma(255, 0, 0)).toBe(76);
    expect(luma(0, 255, 0)).toBe(150);
    expect(luma(0, 0, 255)).toBe(29);
    expect(luma(255, 255, 255)).toBe(255);
    expect(luma(10, 20, 30)).toBe(Math.floor(10 * 0.299 + 20 * 0.587 + 30 * 0.114 + 0.5));
  });

  it("blends in float32 and truncates like Image.blend", () => {
    expect(blend(0, 255, 0.5)).toBe(127); // 127.5 truncated
    expect(blend(0, 200, 1.4)).toBe(255);
    expect(blend(100, 0, 1.4)).toBe(0);
    expect(blend(100, 50, 0.6)).toBe(70);
  });

  it("applies grayscale, brightness and contrast to whole images", () => {
    const px = Uint8Array.from([255, 0, 0, 0, 0, 255]);
    applyColorOps(px, 2, null, true, new ColorScratch());
    expect(Array.from(px)).toEqual([76, 76, 76, 29, 29, 29]);
    const img = Uint8Array.from([100, 100, 100, 200, 200, 200]);
    // contrast first: mean luma = 150; blend(150, x, 0.5) → 125, 175; then brightness 2 → 250, 255 (clipped).
    applyColorOps(img, 2, { order: [JitterOp.Contrast, JitterOp.Brightness, JitterOp.Saturation, JitterOp.Hue], brightness: 2, contrast: 0.5, saturation: 1, hue: 0 }, false, new ColorScratch());
    expect(Array.from(img)).toEqual([250, 250, 250, 255, 255, 255]);
  });

  it("saturates against the pixel's PIL luma (ImageEnhance.Color)", () => {
    const px = Uint8Array.from([200, 100, 50]); // L = 124
    applyColorOps(px, 1, { order: [JitterOp.Saturation, JitterOp.Brightness, JitterOp.Contrast, JitterOp.Hue], brightness: 1, contrast: 1, saturation: 0.5, hue: 0 }, false, new ColorScratch());
    expect(Array.from(px)).toEqual([162, 112, 87]);
  });

  it("shifts hue through PIL's 8-bit HSV", () => {
    const out = new Uint8Array(3);
    shiftHue(255, 0, 0, 85, out, 0); // red + a third of a turn = green
    expect(Array.from(out)).toEqual([0, 255, 0]);
    shiftHue(90, 90, 90, 40, out, 0); // gray has no hue
    expect(Array.from(out)).toEqual([90, 90, 90]);
    expect(hueShift(0.1)).toBe(25);
    expect(hueShift(-0.1)).toBe(231); // np.uint8 wrap of -25
  });

  it("rounds halves to even like Python", () => {
    expect([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven)).toEqual([0, 2, 2, -0, 2, 3]);
  });

  it("falls back to torchvision's center crop when 10 attempts fail", () => {
    // A 1000 × 10 strip cannot hold any sampled box of scale >= 0.9 → fallback: h = 10, w = round(10 · 4/3) = 13.
    const box = randomResizedCropBox(new CounterRandom(1n), 1000, 10, [0.9, 1]);
    expect(box).toEqual({ left: Math.floor((1000 - 13) / 2), top: 0, width: 13, height: 10 });
    const tall = randomResizedCropBox(new CounterRandom(1n), 10, 1000, [0.9, 1]);
    expect(tall).toEqual({ left: 0, top: Math.floor((1000 - 13) / 2), width: 10, height: 13 });
  });

  it("derives PIL's box blur weights", () => {
    // sigma 2: sigma² / 3 = 4/3, L = sqrt(17) ≈ 4.123, l = 1, a = 3·(2 − 4)/(6·(4/3 − 4)) = 0.375
    expect(boxRadiusForGaussian(2)).toBeCloseTo(1.375, 5);
    const { radius, ww, fw } = boxWeights(1.375);
    expect(radius).toBe(1);
    expect(ww).toBe(Math.trunc(16777216 / 3.75));
    expect(fw).toBe(Math.floor((16777216 - 3 * ww) / 2));
  });

  it("blurs: constant images stay constant, an impulse spreads symmetrically and keeps its mass", () => {
    const size = 15;
    const flat = new Uint8Array(size * size * 3).fill(77);
    gaussianBlurPil(flat, size, size, 1.3, new BlurScratch(size));
    expect(flat.every((v) => v === 77)).toBe(true);
    const img = new Uint8Array(size * size * 3);
    const c = (7 * size + 7) * 3;
    img[c] = 255;
    gaussianBlurPil(img, size, size, 1.0, new BlurScratch(size));
    const at = (x: number, y: number) => img[(y * size + x) * 3];
    expect(at(7, 7)).toBeLessThan(255);
    expect(at(6, 7)).toBe(at(8, 7));
    expect(at(7, 5)).toBe(at(7, 9));
    expect(at(5, 7)).toBe(at(7, 5));
    let mass = 0;
    for (let i = 0; i < img.length; i += 3) mass += img[i];
    expect(Math.abs(mass - 255)).toBeLessThan(30); // per-pass rounding loses a little
    expect(img[c + 1]).toBe(0); // channels stay separate
  });

  it("matches the plain PIL box-blur formula bit for bit (all radii, odd shapes, SIMD and scalar passes)", () => {
    expect(new BlurScratch(4).simd).toBe(true); // Node 20 has WebAssembly SIMD; radii > 1 take the scalar pass
    for (const [W, H] of [[7, 5], [16, 16], [3, 1], [1, 4], [24, 9]]) {
      for (const sigma of [0.1, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0]) {
        const a = new Uint8Array(W * H * 3);
        for (let i = 0; i < a.length; i++) a[i] = (i * 7919 + 13 * W + H) & 255;
        const b = a.slice();
        naivePilBlur(a, W, H, sigma);
        gaussianBlurPil(b, W, H, sigma, new BlurScratch(Math.max(W, H)));
        expect(Array.from(b)).toEqual(Array.from(a));
      }
    }
  });

  it("converts CMYK with PIL's cmyk2rgb formula", () => {
    const rgb = cmykToRgb(Uint8Array.from([0, 0, 0, 0, 255, 0, 128, 0, 10, 219, 216, 173]), 3);
    expect(Array.from(rgb)).toEqual([255, 255, 255, 0, 255, 127, 79, 12, 13]);
  });

  it("writes CHW with the flip mirrored", () => {
    const px = Uint8Array.from([0, 0, 0, 255, 255, 255, 10, 10, 10, 20, 20, 20]); // 2 × 2
    const out = new Float32Array(12);
    writeNormalizedChw(px, 2, true, false, out, 0);
    expect(out[0]).toBe(normalizeValue(255, 0));
    expect(out[1]).toBe(normalizeValue(0, 0));
    expect(out[4 + 2]).toBe(normalizeValue(20, 1));
    expect(out[8 + 3]).toBe(normalizeValue(10, 2));
    writeNormalizedChw(px, 2, false, true, out, 0);
    expect(out[1]).toBe(normalizeValue(0, 0)); // 255 solarized
  });
});
