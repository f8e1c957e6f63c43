/**
 * One crop's pixels in a WebAssembly memory, worked on by the SIMD kernels of
 * simd-color.ts and simd-normalize.ts: the colour jitter and grayscale (alternating
 * between two buffers), then the tensor write into float32 planes that are copied into
 * the batch. Same results as color-ops.ts and normalize.ts (the scalar reference), op by op.
 */

import { JitterOp, type ColorJitterParams } from "./crop-plan";
import { hueShift } from "./color-ops";
import { instantiateColorKernels, type ColorKernels } from "./simd-color";
import { instantiateNormalize, type NormalizeKernel } from "./simd-normalize";

/** Bytes of slack before and after the pixels and the planes (the kernels step past both ends). */
const SLACK = 64;
const align64 = (n: number) => (n + 63) & ~63;

export class SimdCropPixels {
  private readonly floats: Float32Array;
  /** Two pixel buffers: the per-pixel kernels read one and write the other (see simd-color.ts). */
  private readonly buffersAt: [number, number];
  private readonly buffers: [Uint8Array, Uint8Array];
  private current = 0;
  private readonly planesAt: number;
  private readonly planeStride: number;

  private constructor(
    readonly maxSize: number,
    memory: WebAssembly.Memory,
    private readonly color: ColorKernels,
    private readonly normalize: NormalizeKernel,
  ) {
    const bytes = maxSize * maxSize * 3;
    const second = align64(SLACK + bytes + SLACK);
    this.buffersAt = [SLACK, second];
    this.buffers = [new Uint8Array(memory.buffer, SLACK, bytes), new Uint8Array(memory.buffer, second, bytes)];
    this.planesAt = align64(second + bytes + SLACK);
    this.planeStride = align64(maxSize * maxSize * 4 + SLACK);
    this.floats = new Float32Array(memory.buffer, this.planesAt, (3 * this.planeStride) / 4);
  }

  /** Null where WebAssembly SIMD is unavailable (callers take the scalar path). */
  static create(maxSize: number): SimdCropPixels | null {
    const bytes = 2 * align64(SLACK + maxSize * maxSize * 3 + SLACK) + 3 * align64(maxSize * maxSize * 4 + SLACK);
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) });
    const color = instantiateColorKernels(memory);
    const normalize = instantiateNormalize(memory);
    return color && normalize ? new SimdCropPixels(maxSize, memory, color, normalize) : null;
  }

  /** The crop's interleaved RGB (room for maxSize × maxSize): changes place after each colour op. */
  get pixels(): Uint8Array {
    return this.buffers[this.current];
  }

  load(px: Uint8Array): void {
    this.current = 0;
    this.buffers[0].set(px);
  }

  /**
   * ColorJitter (parts in `jitter.order`) then the optional grayscale on the first
   * pixelCount pixels, as color-ops.ts' applyColorOps.
   */
  applyColorOps(pixelCount: number, jitter: ColorJitterParams | null, grayscale: boolean): void {
    const k = this.color;
    if (jitter) {
      for (const op of jitter.order) {
        const at = this.buffersAt[this.current];
        const other = this.buffersAt[1 - this.current];
        if (op === JitterOp.Brightness) k.blend(at, pixelCount * 3, 0, jitter.brightness);
        else if (op === JitterOp.Contrast) {
          // ImageEnhance.Contrast: mean = int(mean of L + 0.5)
          const mean = Math.trunc(k.lumaSum(at, pixelCount) / pixelCount + 0.5);
          k.blend(at, pixelCount * 3, mean, jitter.contrast);
        } else {
          if (op === JitterOp.Saturation) k.saturation(at, other, pixelCount, jitter.saturation);
          else k.hue(at, other, pixelCount, hueShift(jitter.hue));
          this.current = 1 - this.current;
        }
      }
    }
    if (grayscale) {
      k.gray(this.buffersAt[this.current], this.buffersAt[1 - this.current], pixelCount);
      this.current = 1 - this.current;
    }
  }

  /** ToTensor + Normalize of the size × size crop (solarized, mirrored as asked) into out[offset..]. */
  writeNormalized(size: number, flip: boolean, solarize: boolean, out: Float32Array, offset: number): void {
    this.normalize(this.buffersAt[this.current], size, flip ? 1 : 0, solarize ? 1 : 0, this.planesAt, this.planeStride);
    const plane = size * size;
    const stride = this.planeStride / 4;
    for (let c = 0; c < 3; c++) out.set(this.floats.subarray(c * stride, c * stride + plane), offset + c * plane);
  }
}
