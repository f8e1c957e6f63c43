/**
 * PIL's ImageFilter.GaussianBlur(radius) (what the reference's utils.GaussianBlur
 * calls): not a sampled Gaussian but three passes of an extended box blur (Gwosdek et
 * al. 2011) horizontally, then three vertically, each pass rounding to uint8, with
 * edge pixels repeated. Reproduced with PIL's float32 and 8.24 fixed-point arithmetic.
 */

import { instantiateBoxBlur, type BlurColumns, type BlurRows } from "./simd-box-blur";

const f32 = Math.fround;
const PASSES = 3;
const INV_2_24 = 1 / 16777216;

/** ImagingGaussianBlur: the fractional box radius whose 3-fold box matches sigma = radius. */
export function boxRadiusForGaussian(radius: number): number {
  const r = f32(radius);
  const sigma2 = f32(f32(r * r) / PASSES);
  const L = f32(Math.sqrt(12.0 * sigma2 + 1.0));
  const l = f32(Math.floor((L - 1.0) / 2.0));
  let a = f32(f32(f32(2 * l) + 1) * f32(f32(l * f32(l + 1)) - f32(3 * sigma2)));
  a = f32(a / f32(6 * f32(sigma2 - f32(f32(l + 1) * f32(l + 1)))));
  return f32(l + a);
}

/** Box weights of ImagingHorizontalBoxBlur: integer radius, inner weight ww and fractional edge weight fw (8.24). */
export function boxWeights(boxRadius: number): { radius: number; ww: number; fw: number } {
  const radius = Math.trunc(boxRadius);
  const ww = Math.trunc(f32(16777216 / f32(f32(boxRadius * 2) + 1)));
  const fw = Math.floor((16777216 - (radius * 2 + 1) * ww) / 2);
  return { radius, ww, fw };
}

/** Bytes the SIMD kernels may touch past an image or a row (they work in steps of 16). */
const SLACK = 64;

/**
 * Scratch for gaussianBlurPil, sized for the largest crop: the image, a copy, a
 * transposed image and a padded row in one WebAssembly memory for the SIMD kernels
 * (scalar fallback, on the transposed image, when WebAssembly SIMD is missing or the box
 * radius exceeds 1), and per-column sums.
 */
export class BlurScratch {
  readonly copy: Uint8Array;
  readonly transposed: Uint8Array;
  readonly image: Uint8Array;
  readonly sums: Float64Array;
  private readonly kernels: { columns: BlurColumns; rows: BlurRows } | null;
  private readonly offsets: { image: number; copy: number; transposed: number; line: number };

  constructor(maxSize: number) {
    const region = maxSize * maxSize * 3 + SLACK;
    const memory = new WebAssembly.Memory({ initial: Math.ceil((3 * region + maxSize * 3 + SLACK) / 65536) });
    this.kernels = instantiateBoxBlur(memory);
    this.offsets = { image: 0, copy: region, transposed: 2 * region, line: 3 * region };
    this.image = new Uint8Array(memory.buffer, 0, region);
    this.copy = new Uint8Array(memory.buffer, region, region);
    this.transposed = new Uint8Array(memory.buffer, 2 * region, region);
    this.sums = new Float64Array(maxSize * 3);
  }

  /** Whether the WebAssembly SIMD kernels are in use (else the scalar pass, same results). */
  get simd(): boolean {
    return this.kernels !== null;
  }

  /** Whether rowPassBetween can run box radius r (the SIMD kernels cover r <= 1, every sigma <= 2). */
  passesRows(r: number): boolean {
    return this.kernels !== null && r <= 1;
  }

  /** One pass down the columns reading region `from` and writing region `to` (no copy: passes ping-pong). */
  columnPassBetween(from: BlurRegion, to: BlurRegion, rowLength: number, rows: number, r: number, ww: number, fw: number): void {
    if (this.kernels && r <= 1) this.kernels.columns(this.offsets[from], this.offsets[to], rowLength, rows, r, ww, fw);
    else columnPassScalar(this[to], this[from], rowLength, rows, r, ww, fw, this.sums);
  }

  /** One pass along the rows of an interleaved RGB image (only where passesRows(r)). */
  rowPassBetween(from: BlurRegion, to: BlurRegion, width: number, rows: number, r: number, ww: number, fw: number): void {
    if (!this.kernels || r > 1) throw new Error(`no row pass for box radius ${r}`);
    this.kernels.rows(this.offsets[from], this.offsets[to], width, rows, r, ww, fw, this.offsets.line);
  }
}

type BlurRegion = "image" | "copy" | "transposed";

/**
 * Blur interleaved RGB `px` (width × height) in place, as PIL: three horizontal passes,
 * then three vertical. Each pass computes
 * out[x] = round((ww·Σ_{k=−r..r} in[x+k] + fw·(in[x−r−1] + in[x+r+1])) / 2^24) with indices
 * clamped to the line (ImagingLineBoxBlur32). The SIMD kernels run the horizontal passes
 * along the rows; the scalar passes run down the columns (tight row-major loops), the
 * horizontal ones on the transposed image, as PIL itself transposes for its vertical ones.
 */
export function gaussianBlurPil(px: Uint8Array, width: number, height: number, radius: number, scratch: BlurScratch): void {
  const { radius: r, ww, fw } = boxWeights(boxRadiusForGaussian(radius));
  const n = width * height * 3;
  if (scratch.passesRows(r)) {
    scratch.image.set(px.subarray(0, n));
    scratch.rowPassBetween("image", "copy", width, height, r, ww, fw);
    scratch.rowPassBetween("copy", "image", width, height, r, ww, fw);
    scratch.rowPassBetween("image", "copy", width, height, r, ww, fw);
    scratch.columnPassBetween("copy", "image", width * 3, height, r, ww, fw);
    scratch.columnPassBetween("image", "copy", width * 3, height, r, ww, fw);
    scratch.columnPassBetween("copy", "image", width * 3, height, r, ww, fw);
    px.set(scratch.image.subarray(0, n));
    return;
  }
  // Three passes ping-pong between two regions and end in `copy`.
  transpose(px, scratch.transposed, width, height);
  scratch.columnPassBetween("transposed", "copy", height * 3, width, r, ww, fw);
  scratch.columnPassBetween("copy", "transposed", height * 3, width, r, ww, fw);
  scratch.columnPassBetween("transposed", "copy", height * 3, width, r, ww, fw);
  transpose(scratch.copy, scratch.image, height, width);
  scratch.columnPassBetween("image", "copy", width * 3, height, r, ww, fw);
  scratch.columnPassBetween("copy", "image", width * 3, height, r, ww, fw);
  scratch.columnPassBetween("image", "copy", width * 3, height, r, ww, fw);
  px.set(scratch.copy.subarray(0, n));
}

/** RGB pixel (x, y) of src (width × height) → (y, x) of dst (height × width). */
function transpose(src: Uint8Array, dst: Uint8Array, width: number, height: number): void {
  for (let y = 0; y < height; y++) {
    let i = y * width * 3;
    for (let x = 0; x < width; x++, i += 3) {
      const o = (x * height + y) * 3;
      dst[o] = src[i];
      dst[o + 1] = src[i + 1];
      dst[o + 2] = src[i + 2];
    }
  }
}

/** One box pass along the columns of `img` (`rows` rows of `rowLength` samples) reading `src`, a copy of it. */
function columnPassScalar(img: Uint8Array, src: Uint8Array, rowLength: number, rows: number, r: number, ww: number, fw: number, sums: Float64Array): void {
  const last = rows - 1;
  if (r <= 1) {
    // sigma <= 2 (all DINO radii) gives box radius 0 or 1: a direct 3- or 5-row stencil is cheaper than running sums.
    for (let y = 0; y < rows; y++) {
      const above = (y > 0 ? y - 1 : 0) * rowLength;
      const here = y * rowLength;
      const below = (y < last ? y + 1 : last) * rowLength;
      if (r === 0) {
        for (let j = 0; j < rowLength; j++) img[here + j] = Math.floor((src[here + j] * ww + (src[above + j] + src[below + j]) * fw + 8388608) * INV_2_24);
      } else {
        const farAbove = (y > 1 ? y - 2 : 0) * rowLength;
        const farBelow = (y + 2 < last ? y + 2 : last) * rowLength;
        for (let j = 0; j < rowLength; j++) {
          img[here + j] = Math.floor(((src[above + j] + src[here + j] + src[below + j]) * ww + (src[farAbove + j] + src[farBelow + j]) * fw + 8388608) * INV_2_24);
        }
      }
    }
    return;
  }
  // Window sum of row −1: Σ_{k=−r−1..r−1} in[clamp(k)].
  for (let j = 0; j < rowLength; j++) sums[j] = src[j] * (r + 1);
  for (let k = 0; k < r; k++) {
    const c = (k < last ? k : last) * rowLength;
    for (let j = 0; j < rowLength; j++) sums[j] += src[c + j];
  }
  for (let y = 0; y < rows; y++) {
    const add = (y + r < last ? y + r : last) * rowLength;
    const sub = (y - r - 1 > 0 ? y - r - 1 : 0) * rowLength;
    const far = (y + r + 1 < last ? y + r + 1 : last) * rowLength;
    const o = y * rowLength;
    for (let j = 0; j < rowLength; j++) {
      const s = sums[j] + src[add + j] - src[sub + j];
      sums[j] = s;
      // Exact: the sum is an integer below 2^32 and the scale a power of two.
      img[o + j] = Math.floor((s * ww + (src[sub + j] + src[far + j]) * fw + 8388608) * INV_2_24);
    }
  }
}
