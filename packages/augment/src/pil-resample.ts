/**
 * PIL's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB (libImaging/Resample.c,
 * ImagingResample with 8 bits per channel), reproduced to the bit: separable,
 * horizontal pass first into an 8-bit temporary holding only the source rows the
 * vertical pass reads, then the vertical pass. Per output sample the filter
 * (Keys cubic, a = −0.5, support 2) is stretched by the reduction factor when
 * downsampling (antialiasing), renormalised over the taps that fall inside the image
 * (no edge extension), and quantised to 22-bit fixed point; sums start at 2^21 and are
 * shifted right by 22 and clipped to 0..255.
 *
 * torchvision's RandomResizedCrop on a PIL image crops first (`img.crop`) and then
 * resizes the crop, so the kernel is clipped at the crop's edges, not the image's: the
 * passes here read the crop inside the decoded image in place, with the crop as the
 * resampling input.
 */

import { instantiateResample, type ResampleKernels } from "./simd-resample";
import { instantiateTranspose, type TransposeKernels } from "./simd-transpose";

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const SCALE = 1 << PRECISION_BITS;

/** PIL's bicubic_filter (a = −0.5). */
export function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

const BICUBIC_SUPPORT = 2.0;

/** Per output position: first input tap and tap count (bounds), and ksize fixed-point weights each. */
export class ResampleCoefficients {
  ksize = 0;
  bounds = new Int32Array(0);
  weights = new Int32Array(0);
  private real = new Float64Array(0);

  /**
   * PIL precompute_coeffs(inSize, 0, inSize, outSize) + normalize_coeffs_8bpc. Arrays grow
   * on demand and are reused, so a renderer allocates nothing per crop once warm.
   */
  compute(inSize: number, outSize: number): this {
    const scale = inSize / outSize;
    const filterscale = scale < 1.0 ? 1.0 : scale;
    const support = BICUBIC_SUPPORT * filterscale;
    const ksize = Math.ceil(support) * 2 + 1;
    if (this.weights.length < outSize * ksize) {
      this.weights = new Int32Array(outSize * ksize);
      this.real = new Float64Array(outSize * ksize);
    }
    if (this.bounds.length < outSize * 2) this.bounds = new Int32Array(outSize * 2);
    const { bounds, weights, real } = this;
    const ss = 1.0 / filterscale;
    for (let xx = 0; xx < outSize; xx++) {
      const center = (xx + 0.5) * scale;
      // C's (int) cast truncates toward zero.
      let xmin = Math.trunc(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      let xmax = Math.trunc(center + support + 0.5);
      if (xmax > inSize) xmax = inSize;
      xmax -= xmin;
      const k = xx * ksize;
      let ww = 0.0;
      for (let x = 0; x < xmax; x++) {
        const w = bicubicFilter((x + xmin - center + 0.5) * ss);
        real[k + x] = w;
        ww += w;
      }
      for (let x = 0; x < ksize; x++) {
        let w = x < xmax ? real[k + x] : 0;
        if (x < xmax && ww !== 0.0) w /= ww;
        weights[k + x] = w < 0 ? Math.trunc(-0.5 + w * SCALE) : Math.trunc(0.5 + w * SCALE);
      }
      bounds[xx * 2] = xmin;
      bounds[xx * 2 + 1] = xmax;
    }
    this.ksize = ksize;
    return this;
  }
}

/** One pass's coefficients as ResampleCoefficients computes them, in arrays of exactly their size. */
export interface CoefficientTable {
  ksize: number;
  bounds: Int32Array;
  weights: Int32Array;
}

/** Int32 entries CoefficientCache holds before it starts over (16 MiB). */
const CACHE_INTS = 1 << 22;

/**
 * Coefficients by (input size, output size). Random crops repeat sizes (a 96-pixel local
 * crop is at most a few hundred pixels wide), so most of an image's 20 passes find their
 * tables here instead of evaluating the filter again. Bounded: it is cleared when full.
 */
export class CoefficientCache {
  private readonly tables = new Map<number, CoefficientTable>();
  private readonly scratch = new ResampleCoefficients();
  private ints = 0;

  get(inSize: number, outSize: number): CoefficientTable {
    const key = inSize * 65536 + outSize;
    let table = this.tables.get(key);
    if (!table) {
      const c = this.scratch.compute(inSize, outSize);
      table = { ksize: c.ksize, bounds: c.bounds.slice(0, 2 * outSize), weights: c.weights.slice(0, outSize * c.ksize) };
      this.ints += table.bounds.length + table.weights.length;
      if (this.ints > CACHE_INTS) {
        this.tables.clear();
        this.ints = table.bounds.length + table.weights.length;
      }
      this.tables.set(key, table);
    }
    return table;
  }
}

/** Reusable coefficient tables and the 8-bit temporary between the two passes. */
export class ResampleScratch {
  readonly horizontal = new ResampleCoefficients();
  readonly vertical = new ResampleCoefficients();
  temp = new Uint8Array(0);

  tempOf(bytes: number): Uint8Array {
    if (this.temp.length < bytes) this.temp = new Uint8Array(bytes);
    return this.temp;
  }
}

/** A crop of an interleaved RGB image: `src` is width pixels wide; the crop is (left, top, cropWidth × cropHeight). */
export interface RgbCrop {
  src: Uint8Array;
  width: number;
  left: number;
  top: number;
  cropWidth: number;
  cropHeight: number;
}

/**
 * `img.crop(box).resize((outWidth, outHeight), BICUBIC)` into `out` (outWidth × outHeight × 3,
 * interleaved). Like PIL, a pass whose size does not change is skipped (it would be the
 * identity anyway: the unstretched kernel is 1 at 0 and 0 at the other integers).
 */
export function resizeCropBicubic(crop: RgbCrop, outWidth: number, outHeight: number, out: Uint8Array, scratch: ResampleScratch): void {
  const { src, width, left, top, cropWidth, cropHeight } = crop;
  const stride = width * 3;
  const base = top * stride + left * 3;
  const needHorizontal = cropWidth !== outWidth;
  const needVertical = cropHeight !== outHeight;
  if (!needHorizontal && !needVertical) {
    for (let y = 0; y < outHeight; y++) out.set(src.subarray(base + y * stride, base + y * stride + outWidth * 3), y * outWidth * 3);
    return;
  }
  if (!needVertical) {
    horizontalPass(src, base, stride, cropHeight, out, outWidth, scratch.horizontal.compute(cropWidth, outWidth));
    return;
  }
  const vertical = scratch.vertical.compute(cropHeight, outHeight);
  if (!needHorizontal) {
    verticalPass(src, base, stride, out, outWidth * 3, outHeight, vertical, 0);
    return;
  }
  // Only the source rows some output row reads: [first, last).
  const first = vertical.bounds[0];
  const last = vertical.bounds[outHeight * 2 - 2] + vertical.bounds[outHeight * 2 - 1];
  const rowBytes = outWidth * 3;
  const temp = scratch.tempOf((last - first) * rowBytes);
  horizontalPass(src, base + first * stride, stride, last - first, temp, outWidth, scratch.horizontal.compute(cropWidth, outWidth));
  verticalPass(temp, 0, rowBytes, out, rowBytes, outHeight, vertical, first);
}

/** ImagingResampleHorizontal_8bpc over `rows` rows starting at src[offset], stride `stride`. */
function horizontalPass(src: Uint8Array, offset: number, stride: number, rows: number, out: Uint8Array, outWidth: number, c: ResampleCoefficients): void {
  const { bounds, weights, ksize } = c;
  let o = 0;
  for (let y = 0; y < rows; y++) {
    const row = offset + y * stride;
    for (let xx = 0; xx < outWidth; xx++) {
      const n = bounds[xx * 2 + 1];
      let p = row + bounds[xx * 2] * 3;
      let k = xx * ksize;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      for (const end = k + n; k < end; k++, p += 3) {
        const w = weights[k];
        s0 += src[p] * w;
        s1 += src[p + 1] * w;
        s2 += src[p + 2] * w;
      }
      s0 >>= PRECISION_BITS;
      s1 >>= PRECISION_BITS;
      s2 >>= PRECISION_BITS;
      out[o] = s0 < 0 ? 0 : s0 > 255 ? 255 : s0;
      out[o + 1] = s1 < 0 ? 0 : s1 > 255 ? 255 : s1;
      out[o + 2] = s2 < 0 ? 0 : s2 > 255 ? 255 : s2;
      o += 3;
    }
  }
}

/**
 * ImagingResampleVertical_8bpc: output row yy sums input rows bounds[2yy] − shift … with
 * rows of `rowBytes` samples at src[offset + row·stride].
 */
function verticalPass(src: Uint8Array, offset: number, stride: number, out: Uint8Array, rowBytes: number, outHeight: number, c: ResampleCoefficients, shift: number): void {
  const { bounds, weights, ksize } = c;
  for (let yy = 0; yy < outHeight; yy++) {
    const first = offset + (bounds[yy * 2] - shift) * stride;
    const n = bounds[yy * 2 + 1];
    const k0 = yy * ksize;
    const o = yy * rowBytes;
    for (let j = 0; j < rowBytes; j++) {
      let s = HALF;
      let p = first + j;
      for (let k = k0, end = k0 + n; k < end; k++, p += stride) s += src[p] * weights[k];
      s >>= PRECISION_BITS;
      out[o + j] = s < 0 ? 0 : s > 255 ? 255 : s;
    }
  }
}

const align16 = (n: number) => (n + 15) & ~15;
const SLACK = 64;

/**
 * resizeCropBicubic for many crops of one image, on the WebAssembly SIMD kernels (the
 * scalar passes above where WebAssembly SIMD is missing, same results). Both passes run
 * as simd-resample.ts' resampleColumns, 16 samples that share their taps per step: the
 * image is copied into the kernels' memory once (`load`) and also kept transposed
 * (simd-transpose.ts: row 3x + c is channel c of column x; bytes past the last image row
 * are garbage that only reaches samples no output reads), so the
 * horizontal pass is a column pass over them; its transposed output is transposed back
 * into planes for the vertical pass, and the crop is interleaved to RGB at the end. Each
 * `resize` returns a view of the crop's pixels that stays valid until the next call.
 */
export class CropResampler {
  /** The scalar path's tables and temporary. */
  private readonly scratch = new ResampleScratch();
  private readonly coefficients = new CoefficientCache();
  private readonly memory: WebAssembly.Memory;
  private readonly kernels: { resample: ResampleKernels; layout: TransposeKernels } | null;
  private bytes: Uint8Array;
  private ints: Int32Array;
  private image: { data: Uint8Array; width: number; height: number } | null = null;
  private readonly scalarOut: Uint8Array;
  private layout = { out: 0, hBounds: 0, hWeights: 0, vBounds: 0, vWeights: 0, tempT: 0, tempTStride: 0, temp: 0, tempStride: 0, planes: 0, planeStride: 0, src: 0, sourceT: 0, columnStride: 0 };
  /** Bytes reserved for each weight table (the regions are packed: overflowing one would corrupt the next). */
  private weightBytes = 0;

  constructor(readonly maxSize: number) {
    this.memory = new WebAssembly.Memory({ initial: 1 });
    const resample = instantiateResample(this.memory);
    const layout = instantiateTranspose(this.memory);
    this.kernels = resample && layout ? { resample, layout } : null;
    this.bytes = new Uint8Array(this.memory.buffer);
    this.ints = new Int32Array(this.memory.buffer);
    this.scalarOut = this.kernels ? new Uint8Array(0) : new Uint8Array(maxSize * maxSize * 3);
  }

  /** Whether the WebAssembly SIMD kernels are in use. */
  get simd(): boolean {
    return this.kernels !== null;
  }

  load(data: Uint8Array, width: number, height: number): void {
    this.image = { data, width, height };
    if (!this.kernels) return;
    const S = this.maxSize;
    const S16 = align16(S);
    // A pass reads at most `height` source rows; the transposes work in 16-byte blocks.
    const columnStride = align16(height);
    // outSize · ksize <= 4 · inSize + 3 · outSize when reducing (ksize <= 4 · inSize / outSize + 3), 5 · outSize when enlarging.
    const coefficientBytes = (4 * Math.max(width, height) + 5 * S + 16) * 4;
    const out = 0;
    const hBounds = align16(out + S * S * 3 + SLACK);
    const hWeights = align16(hBounds + 2 * S * 4);
    const vBounds = align16(hWeights + coefficientBytes);
    const vWeights = align16(vBounds + 2 * S * 4);
    // The horizontal pass's output, transposed: per channel, S16 rows (output columns) of up to columnStride bytes.
    const tempT = align16(vWeights + coefficientBytes);
    const tempTStride = align16(S16 * columnStride + SLACK);
    // The same transposed back: per channel, up to columnStride rows of S16 bytes.
    const temp = tempT + 3 * tempTStride;
    const tempStride = align16(columnStride * S16 + SLACK);
    // The vertical pass's output planes, rows of `size` bytes.
    const planes = temp + 3 * tempStride;
    const planeStride = align16(S * S + SLACK);
    // The image, room for the transpose's reads of up to 15 rows past the last.
    const src = planes + 3 * planeStride;
    // Its transpose: row 3x + c is channel c of column x, columnStride bytes per row.
    const sourceT = align16(src + width * 3 * columnStride + SLACK);
    const sourceTBytes = align16(width * 3) * columnStride + SLACK;
    const total = sourceT + sourceTBytes;
    if (total > this.memory.buffer.byteLength) {
      this.memory.grow(Math.ceil((total - this.memory.buffer.byteLength) / 65536));
      this.bytes = new Uint8Array(this.memory.buffer);
      this.ints = new Int32Array(this.memory.buffer);
    }
    this.layout = { out, hBounds, hWeights, vBounds, vWeights, tempT, tempTStride, temp, tempStride, planes, planeStride, src, sourceT, columnStride };
    this.weightBytes = coefficientBytes;
    this.bytes.set(data.subarray(0, width * height * 3), src);
    this.kernels.layout.transpose(src, width * 3, height, sourceT, columnStride, width * 3);
  }

  /** `image.crop((left, top, left + cropWidth, top + cropHeight)).resize((size, size), BICUBIC)` of the loaded image. */
  resize(left: number, top: number, cropWidth: number, cropHeight: number, size: number): Uint8Array {
    const image = this.image;
    if (!image) throw new Error("CropResampler.resize before load");
    if (left < 0 || top < 0 || cropWidth < 1 || cropHeight < 1 || left + cropWidth > image.width || top + cropHeight > image.height || size < 1 || size > this.maxSize) {
      throw new RangeError(`crop (${left}, ${top}, ${cropWidth} × ${cropHeight}) → ${size} does not fit a ${image.width} × ${image.height} image / size limit ${this.maxSize}`);
    }
    const kernels = this.kernels;
    if (!kernels) {
      const px = this.scalarOut.subarray(0, size * size * 3);
      resizeCropBicubic({ src: image.data, width: image.width, left, top, cropWidth, cropHeight }, size, size, px, this.scratch);
      return px;
    }
    const { columns } = kernels.resample;
    const { transpose, interleave } = kernels.layout;
    const L = this.layout;
    const stride = image.width * 3;
    const base = L.src + top * stride + left * 3;
    const rowBytes = size * 3;
    const px = this.bytes.subarray(L.out, L.out + size * size * 3);
    const needHorizontal = cropWidth !== size;
    const needVertical = cropHeight !== size;
    if (!needHorizontal && !needVertical) {
      for (let y = 0; y < size; y++) this.bytes.copyWithin(L.out + y * rowBytes, base + y * stride, base + y * stride + rowBytes);
      return px;
    }
    const vertical = needVertical ? this.upload(this.coefficients.get(cropHeight, size), L.vBounds, L.vWeights) : null;
    if (!needHorizontal) {
      // Interleaved samples of one row share their taps too: one pass straight from the image.
      columns(base, stride, L.out, rowBytes, size, L.vBounds, L.vWeights, (vertical as CoefficientTable).ksize, 0);
      return px;
    }
    const horizontal = this.upload(this.coefficients.get(cropWidth, size), L.hBounds, L.hWeights);
    // Only the source rows some output row reads: [first, last).
    const first = vertical ? vertical.bounds[0] : 0;
    const last = vertical ? vertical.bounds[size * 2 - 2] + vertical.bounds[size * 2 - 1] : cropHeight;
    const rows = last - first;
    const rowsStride = align16(rows);
    const S16 = align16(this.maxSize);
    for (let c = 0; c < 3; c++) {
      // Source column x of channel c is row 3x + c of the transposed image.
      const sourceColumn = L.sourceT + (3 * left + c) * L.columnStride + top + first;
      columns(sourceColumn, 3 * L.columnStride, L.tempT + c * L.tempTStride, rowsStride, size, L.hBounds, L.hWeights, horizontal.ksize, 0);
      transpose(L.tempT + c * L.tempTStride, rowsStride, size, L.temp + c * L.tempStride, S16, rows);
    }
    if (!vertical) {
      interleave(L.temp, S16, L.tempStride, size, size, L.out);
      return px;
    }
    for (let c = 0; c < 3; c++) columns(L.temp + c * L.tempStride, S16, L.planes + c * L.planeStride, size, size, L.vBounds, L.vWeights, vertical.ksize, first);
    interleave(L.planes, size, L.planeStride, size, size, L.out);
    return px;
  }

  /** Coefficients into the kernels' memory as resampleColumns reads them ((first tap, count) pairs, int32 rows of ksize). */
  private upload(c: CoefficientTable, bounds: number, weights: number): CoefficientTable {
    if (c.weights.length * 4 > this.weightBytes) throw new Error(`resample weights overflow their region (${c.bounds.length / 2} × ${c.ksize} taps)`);
    this.ints.set(c.bounds, bounds >> 2);
    this.ints.set(c.weights, weights >> 2);
    return c;
  }
}
