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
  hsvToRgb((pilHue8(r, g, b) + shift) & 255, pilSaturation8(maxc - minc, maxc), maxc, out, o);
}

/** PIL rgb2hsv_row's 8-bit H of a pixel that is not gray: float32 quotients, fmod(h/6 + 1, 1), truncation. */
function pilHue8(r: number, g: number, b: number): number {
  const maxc = r > g ? (r > b ? r : b) : g > b ? g : b;
  const minc = r < g ? (r < b ? r : b) : g < b ? g : b;
  const cr = maxc - minc;
  let h: number;
  if (r === maxc) h = f32(QUOTIENT[(maxc - b) * 256 + cr] - QUOTIENT[(maxc - g) * 256 + cr]);
  else if (g === maxc) h = f32(f32(2.0 + QUOTIENT[(maxc - r) * 256 + cr]) - QUOTIENT[(maxc - b) * 256 + cr]);
  else h = f32(f32(4.0 + QUOTIENT[(maxc - g) * 256 + cr]) - QUOTIENT[(maxc - r) * 256 + cr]);
  // fmod(h / 6 + 1, 1) with h / 6 + 1 in (0, 2): one exact subtraction instead of a slow float modulo.
  const turns = h / 6.0 + 1.0;
  h = f32(turns >= 1.0 ? turns - 1.0 : turns);
  // h in [0, 1): the CLIP8 of PIL never triggers.
  return Math.trunc(h * 255.0);
}

/** PIL rgb2hsv_row's 8-bit S = trunc(f32(cr / maxc) · 255) (s in (0, 1]: no clipping). */
function pilSaturation8(cr: number, maxc: number): number {
  return Math.trunc(QUOTIENT[cr * 256 + maxc] * 255.0);
}

/**
 * Lookup tables for the hue pass, built on first use (~0.3 MB). H only depends on the
 * channels' differences from the minimum (every quotient in rgb2hsv is of differences),
 * so it is tabulated over the two non-minimal channels' excess for each choice of
 * minimal channel: HUE8[face·65536 + a·256 + b] with face 0: blue minimal (a, b = r, g),
 * 1: green minimal (r, b), 2: red minimal (g, b). S is tabulated by (cr, max).
 */
interface HueTables {
  hue8: Uint8Array;
  saturation8: Uint8Array;
  /** round(v · (1 − fs)) by (s, v): hsv2rgb's p. */
  p8: Uint8Array;
  /** The fraction hsv2rgb needs per 8-bit hue: f in odd sectors (for q), 1 − f in even ones (for t), as double. */
  sectorFraction: Float64Array;
}

let hueTables: HueTables | null = null;

function getHueTables(): HueTables {
  if (hueTables) return hueTables;
  const hue8 = new Uint8Array(3 * 65536);
  for (let a = 0; a < 256; a++) {
    for (let b = 0; b < 256; b++) {
      if (a === 0 && b === 0) continue; // gray: never looked up
      hue8[(a << 8) | b] = pilHue8(a, b, 0);
      hue8[65536 + ((a << 8) | b)] = pilHue8(a, 0, b);
      hue8[131072 + ((a << 8) | b)] = pilHue8(0, a, b);
    }
  }
  const saturation8 = new Uint8Array(65536);
  for (let cr = 1; cr < 256; cr++) for (let maxc = cr; maxc < 256; maxc++) saturation8[(cr << 8) | maxc] = pilSaturation8(cr, maxc);
  const p8 = new Uint8Array(65536);
  for (let sat = 0; sat < 256; sat++) for (let v = 0; v < 256; v++) p8[(sat << 8) | v] = Math.round(v * (1.0 - SATURATION_FRACTION[sat]));
  const sectorFraction = new Float64Array(256);
  for (let h = 0; h < 256; h++) sectorFraction[h] = HUE_SECTOR[h] & 1 ? HUE_FRACTION[h] : 1.0 - HUE_FRACTION[h];
  hueTables = { hue8, saturation8, p8, sectorFraction };
  return hueTables;
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

/** The last step applyColorOpsDeferred leaves to its caller, reading `scratch.pending` as a per-sample table. */
export const FinalColorStep = { None: 0, Lookup: 1, GrayLookup: 2 } as const;
export type FinalColorStep = (typeof FinalColorStep)[keyof typeof FinalColorStep];

/**
 * ColorJitter (parts in `jitter.order`) then optional grayscale, in place on `px`
 * (pixelCount interleaved RGB pixels). Brightness and contrast are per-sample tables,
 * so consecutive ones compose into one table that rides along with the next pass
 * (saturation, hue, grayscale or a final lookup); contrast's luma mean is summed inside
 * the pass before it when that is saturation or hue, else read through the table
 * without writing: each pass is one tight loop over the crop.
 */
export function applyColorOps(px: Uint8Array, pixelCount: number, jitter: ColorJitterParams | null, grayscale: boolean, scratch: ColorScratch): void {
  const final = applyColorOpsDeferred(px, pixelCount, jitter, grayscale, scratch);
  const n = pixelCount * 3;
  if (final === FinalColorStep.GrayLookup) grayPass(px, n, scratch.pending);
  else if (final === FinalColorStep.Lookup) {
    const lut = scratch.pending;
    for (let i = 0; i < n; i++) px[i] = lut[px[i]];
  }
}

/**
 * applyColorOps without its last pass: the result is `px` read through `scratch.pending`
 * (Lookup) and then converted to gray (GrayLookup), so a caller can fold that pass into
 * the next one (the tensor write).
 */
export function applyColorOpsDeferred(px: Uint8Array, pixelCount: number, jitter: ColorJitterParams | null, grayscale: boolean, scratch: ColorScratch): FinalColorStep {
  const n = pixelCount * 3;
  const pending = scratch.pending;
  pending.set(IDENTITY);
  let hasPending = false;
  /** Luma sum of `px` as it is now, when the pass that wrote it summed it (−1: not summed). */
  let sum = -1;
  if (jitter) {
    const order = jitter.order;
    for (let i = 0; i < order.length; i++) {
      const op = order[i];
      const sumForNext = order[i + 1] === JitterOp.Contrast;
      if (op === JitterOp.Brightness) {
        composeTable(pending, blendTable(0, jitter.brightness, scratch.step));
        hasPending = true;
      } else if (op === JitterOp.Contrast) {
        // ImageEnhance.Contrast: mean = int(ImageStat.Stat(image.convert("L")).mean[0] + 0.5)
        const total = sum >= 0 && !hasPending ? sum : lumaSum(px, n, pending);
        const mean = Math.trunc(total / pixelCount + 0.5);
        composeTable(pending, blendTable(mean, jitter.contrast, scratch.step));
        hasPending = true;
      } else if (op === JitterOp.Saturation) {
        const a = f32(jitter.saturation);
        const sat = scratch.saturation;
        for (let d = -255; d <= 255; d++) sat[d + 255] = f32(a * d);
        const s = saturationPass(px, n, pending, sat, sumForNext);
        pending.set(IDENTITY);
        hasPending = false;
        sum = sumForNext ? s : -1;
        continue;
      } else {
        const s = huePass(px, n, pending, hueShift(jitter.hue), sumForNext);
        pending.set(IDENTITY);
        hasPending = false;
        sum = sumForNext ? s : -1;
        continue;
      }
      sum = -1;
    }
  }
  if (grayscale) return FinalColorStep.GrayLookup;
  return hasPending ? FinalColorStep.Lookup : FinalColorStep.None;
}

/** table ← step ∘ table. */
function composeTable(table: Uint8Array, step: Uint8Array): void {
  for (let i = 0; i < 256; i++) table[i] = step[table[i]];
}

/** Sum of PIL luma over lut(px) (px unchanged). */
function lumaSum(px: Uint8Array, n: number, lut: Uint8Array): number {
  let sum = 0;
  for (let o = 0; o < n; o += 3) sum += (lut[px[o]] * 19595 + lut[px[o + 1]] * 38470 + lut[px[o + 2]] * 7471 + 0x8000) >> 16;
  return sum;
}

/** ImageEnhance.Color: blend(L, x, alpha) per sample, after `lut`; returns the luma sum of the result when `sum`, else 0. */
function saturationPass(px: Uint8Array, n: number, lut: Uint8Array, sat: Float64Array, sum: boolean): number {
  let total = 0;
  for (let o = 0; o < n; o += 3) {
    const r = lut[px[o]];
    const g = lut[px[o + 1]];
    const b = lut[px[o + 2]];
    const l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    const tr = f32(l + sat[r - l + 255]);
    const tg = f32(l + sat[g - l + 255]);
    const tb = f32(l + sat[b - l + 255]);
    // Truncation, as storing into a Uint8Array does (values here lie in (0, 255)).
    const R = tr <= 0 ? 0 : tr >= 255 ? 255 : tr | 0;
    const G = tg <= 0 ? 0 : tg >= 255 ? 255 : tg | 0;
    const B = tb <= 0 ? 0 : tb >= 255 ? 255 : tb | 0;
    px[o] = R;
    px[o + 1] = G;
    px[o + 2] = B;
    if (sum) total += (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16;
  }
  return total;
}

/**
 * shiftHue over the image after `lut`, through the tables of getHueTables: per pixel one
 * H and one S lookup, and of hsv2rgb's q and t only the one the pixel's sector uses.
 */
function huePass(px: Uint8Array, n: number, lut: Uint8Array, shift: number, sum: boolean): number {
  let total = 0;
  const { hue8, saturation8, p8, sectorFraction } = getHueTables();
  const sectors = HUE_SECTOR;
  const fractions = SATURATION_FRACTION;
  for (let o = 0; o < n; o += 3) {
    const r = lut[px[o]];
    const g = lut[px[o + 1]];
    const b = lut[px[o + 2]];
    let v: number;
    let minc: number;
    let h: number;
    if (b <= r && b <= g) {
      minc = b;
      v = r > g ? r : g;
      h = hue8[((r - b) << 8) | (g - b)];
    } else if (g <= r) {
      // g < b, g <= r
      minc = g;
      v = r > b ? r : b;
      h = hue8[65536 + (((r - g) << 8) | (b - g))];
    } else {
      // r < g and r < b
      minc = r;
      v = g > b ? g : b;
      h = hue8[131072 + (((g - r) << 8) | (b - r))];
    }
    const s = saturation8[((v - minc) << 8) | v];
    if (s === 0) {
      px[o] = v;
      px[o + 1] = v;
      px[o + 2] = v;
      if (sum) total += v; // luma of gray v is v (the weights sum to 65536)
      continue;
    }
    h = (h + shift) & 255;
    const p = p8[(s << 8) | v];
    const x = Math.round(v * (1.0 - fractions[s] * sectorFraction[h]));
    switch (sectors[h]) {
      case 0: px[o] = v; px[o + 1] = x; px[o + 2] = p; break;
      case 1: px[o] = x; px[o + 1] = v; px[o + 2] = p; break;
      case 2: px[o] = p; px[o + 1] = v; px[o + 2] = x; break;
      case 3: px[o] = p; px[o + 1] = x; px[o + 2] = v; break;
      case 4: px[o] = x; px[o + 1] = p; px[o + 2] = v; break;
      default: px[o] = v; px[o + 1] = p; px[o + 2] = x; break;
    }
    if (sum) total += (px[o] * 19595 + px[o + 1] * 38470 + px[o + 2] * 7471 + 0x8000) >> 16;
  }
  return total;
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
