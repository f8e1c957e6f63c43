import { JitterOp, type ColorJitterParams } from "./crop-plan";

/**
 * torchvision's PIL-path color ops on interleaved 8-bit RGB, with PIL's arithmetic:
 * Image.blend computes `in1 + alpha·(in2 − in1)` in float32 and truncates; the L
 * conversion is the fixed-point ITU-R 601-2 luma (19595, 38470, 7471)/65536 rounded;
 * hue goes through PIL's 8-bit HSV. Each op ends in uint8, as the reference's
 * PIL image does, so results match it to the bit, not just approximately.
 */

const f32 = Math.fround;

/** PIL `L24(rgb) >> 16`: ITU-R 601-2 luma 0.299, 0.587, 0.114 in 16.16 fixed point, rounded. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Image.blend(in1, in2, alpha) for one sample. */
export function blend(in1: number, in2: number, alpha: number): number {
  const t = f32(in1 + f32(alpha * (in2 - in1)));
  return t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
}

/** 256-entry table of blend(constant, x, alpha): brightness (constant 0) and contrast (constant = mean). */
function blendTable(constant: number, alpha: number, table: Uint8Array): Uint8Array {
  const a = f32(alpha);
  for (let x = 0; x < 256; x++) table[x] = blend(constant, x, a);
  return table;
}

/** f32(a / b) for a, b in 0..255 (b > 0): PIL's float divisions in rgb2hsv, looked up. */
const QUOTIENT = (() => {
  const table = new Float32Array(256 * 256);
  for (let a = 0; a < 256; a++) for (let b = 1; b < 256; b++) table[a * 256 + b] = a / b;
  return table;
})();

/** hsv2rgb's sector i % 6 and remainder f (float32) per 8-bit hue, and fs = s / 255 per saturation. */
const HUE_SECTOR = new Uint8Array(256);
const HUE_FRACTION = new Float32Array(256);
const SATURATION_FRACTION = new Float32Array(256);
for (let h = 0; h < 256; h++) {
  const h6 = (h * 6.0) / 255.0;
  HUE_SECTOR[h] = Math.floor(h6) % 6;
  HUE_FRACTION[h] = h6 - Math.floor(h6);
  SATURATION_FRACTION[h] = h / 255.0;
}

/** PIL rgb2hsv_row + hue shift (8-bit, wrapping) + hsv2rgb for one pixel, written to out[o..o+2]. */
export function shiftHue(r: number, g: number, b: number, shift: number, out: Uint8Array, o: number): void {
  const maxc = r > g ? (r > b ? r : b) : g > b ? g : b;
  const minc = r < g ? (r < b ? r : b) : g < b ? g : b;
  if (maxc === minc) {
    // s = 0: hsv2rgb returns v for all channels whatever the hue.
    out[o] = maxc;
    out[o + 1] = maxc;
    out[o + 2] = maxc;
    return;
  }
  const cr = maxc - minc;
  const s = QUOTIENT[cr * 256 + maxc];
  let h: number;
  if (r === maxc) h = f32(QUOTIENT[(maxc - b) * 256 + cr] - QUOTIENT[(maxc - g) * 256 + cr]);
  else if (g === maxc) h = f32(f32(2.0 + QUOTIENT[(maxc - r) * 256 + cr]) - QUOTIENT[(maxc - b) * 256 + cr]);
  else h = f32(f32(4.0 + QUOTIENT[(maxc - g) * 256 + cr]) - QUOTIENT[(maxc - r) * 256 + cr]);
  // fmod(h / 6 + 1, 1) with h / 6 + 1 in (0, 2): one exact subtraction instead of a slow float modulo.
  const turns = h / 6.0 + 1.0;
  h = f32(turns >= 1.0 ? turns - 1.0 : turns);
  // h in [0, 1) and s in (0, 1]: the CLIP8 of PIL never triggers.
  const uh = Math.trunc(h * 255.0);
  const us = Math.trunc(s * 255.0);
  hsvToRgb((uh + shift) & 255, us, maxc, out, o);
}

/** PIL hsv2rgb for one pixel. */
export function hsvToRgb(h: number, s: number, v: number, out: Uint8Array, o: number): void {
  if (s === 0) {
    out[o] = v;
    out[o + 1] = v;
    out[o + 2] = v;
    return;
  }
  const f = HUE_FRACTION[h];
  const fs = SATURATION_FRACTION[s];
  // Values lie in [0, v]: no clipping needed; C round() and Math.round agree on non-negative halves.
  const p = Math.round(v * (1.0 - fs));
  const q = Math.round(v * (1.0 - fs * f));
  const t = Math.round(v * (1.0 - fs * (1.0 - f)));
  switch (HUE_SECTOR[h]) {
    case 0: out[o] = v; out[o + 1] = t; out[o + 2] = p; break;
    case 1: out[o] = q; out[o + 1] = v; out[o + 2] = p; break;
    case 2: out[o] = p; out[o + 1] = v; out[o + 2] = t; break;
    case 3: out[o] = p; out[o + 1] = q; out[o + 2] = v; break;
    case 4: out[o] = t; out[o + 1] = p; out[o + 2] = v; break;
    default: out[o] = v; out[o + 1] = p; out[o + 2] = q; break;
  }
}

/** np.uint8(hue_factor · 255) as torchvision adds it to the H channel (truncation, wraps mod 256). */
export function hueShift(hueFactor: number): number {
  return Math.trunc(hueFactor * 255) & 255;
}

const IDENTITY = Uint8Array.from({ length: 256 }, (_, i) => i);

/** Scratch tables reused across crops to keep the hot path allocation-free. */
export class ColorScratch {
  /** Composition of the brightness / contrast steps not yet applied to the pixels. */
  readonly pending = new Uint8Array(256);
  readonly step = new Uint8Array(256);
  /** f32(alpha · d) for d = x − L in [−255, 255]. */
  readonly saturation = new Float64Array(511);
}

/**
 * ColorJitter (parts in `jitter.order`) then optional grayscale, in place on `px`
 * (pixelCount interleaved RGB pixels). Brightness and contrast are per-sample tables,
 * so consecutive ones compose into one table that rides along with the next pass
 * (saturation, hue, grayscale, the luma sum contrast needs, or a final lookup): each
 * pass is one tight loop over the crop.
 */
export function applyColorOps(px: Uint8Array, pixelCount: number, jitter: ColorJitterParams | null, grayscale: boolean, scratch: ColorScratch): void {
  const n = pixelCount * 3;
  const pending = scratch.pending;
  pending.set(IDENTITY);
  let hasPending = false;
  if (jitter) {
    for (const op of jitter.order) {
      if (op === JitterOp.Brightness) {
        composeTable(pending, blendTable(0, jitter.brightness, scratch.step));
        hasPending = true;
      } else if (op === JitterOp.Contrast) {
        // ImageEnhance.Contrast: mean = int(ImageStat.Stat(image.convert("L")).mean[0] + 0.5)
        const mean = Math.trunc(lumaSumPass(px, n, pending) / pixelCount + 0.5);
        pending.set(IDENTITY);
        composeTable(pending, blendTable(mean, jitter.contrast, scratch.step));
        hasPending = true;
      } else if (op === JitterOp.Saturation) {
        const a = f32(jitter.saturation);
        const sat = scratch.saturation;
        for (let d = -255; d <= 255; d++) sat[d + 255] = f32(a * d);
        saturationPass(px, n, pending, sat);
        pending.set(IDENTITY);
        hasPending = false;
      } else {
        huePass(px, n, pending, hueShift(jitter.hue));
        pending.set(IDENTITY);
        hasPending = false;
      }
    }
  }
  if (grayscale) grayPass(px, n, pending);
  else if (hasPending) for (let i = 0; i < n; i++) px[i] = pending[px[i]];
}

/** table ← step ∘ table. */
function composeTable(table: Uint8Array, step: Uint8Array): void {
  for (let i = 0; i < 256; i++) table[i] = step[table[i]];
}

/** Apply `lut` in place and return the sum of PIL luma over the result. */
function lumaSumPass(px: Uint8Array, n: number, lut: Uint8Array): number {
  let sum = 0;
  for (let o = 0; o < n; o += 3) {
    const r = lut[px[o]];
    const g = lut[px[o + 1]];
    const b = lut[px[o + 2]];
    px[o] = r;
    px[o + 1] = g;
    px[o + 2] = b;
    sum += (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
  }
  return sum;
}

/** ImageEnhance.Color: blend(L, x, alpha) per sample, after `lut`. */
function saturationPass(px: Uint8Array, n: number, lut: Uint8Array, sat: Float64Array): void {
  for (let o = 0; o < n; o += 3) {
    const r = lut[px[o]];
    const g = lut[px[o + 1]];
    const b = lut[px[o + 2]];
    const l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    const tr = f32(l + sat[r - l + 255]);
    const tg = f32(l + sat[g - l + 255]);
    const tb = f32(l + sat[b - l + 255]);
    px[o] = tr <= 0 ? 0 : tr >= 255 ? 255 : tr;
    px[o + 1] = tg <= 0 ? 0 : tg >= 255 ? 255 : tg;
    px[o + 2] = tb <= 0 ? 0 : tb >= 255 ? 255 : tb;
  }
}

function huePass(px: Uint8Array, n: number, lut: Uint8Array, shift: number): void {
  for (let o = 0; o < n; o += 3) shiftHue(lut[px[o]], lut[px[o + 1]], lut[px[o + 2]], shift, px, o);
}

/** PIL convert("L") replicated to 3 channels, after `lut`. */
function grayPass(px: Uint8Array, n: number, lut: Uint8Array): void {
  for (let o = 0; o < n; o += 3) {
    const l = (lut[px[o]] * 19595 + lut[px[o + 1]] * 38470 + lut[px[o + 2]] * 7471 + 0x8000) >> 16;
    px[o] = l;
    px[o + 1] = l;
    px[o + 2] = l;
  }
}
