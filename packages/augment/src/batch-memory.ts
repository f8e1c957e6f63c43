/**
 * A batch's output tensors live in shared WebAssembly memories, so a worker's tensor-write
 * kernel (simd-normalize.ts, instantiated on the batch's memory) writes each crop's floats
 * straight into the batch instead of into its own memory and then copying them (a
 * SharedArrayBuffer copy of ~2 MB per image). The kernel reads the crop's pixels from the
 * same memory: after the floats, each worker lane (one per pool thread) has a pixel area
 * it copies its crop into (a quarter of the floats' bytes).
 */

import type { AugmentConfig } from "./augment-config";
import { instantiateNormalize, type NormalizeKernel } from "./simd-normalize";

/** Bytes of slack around a lane's pixels (the kernel reads up to 16 bytes past each row and, flipped, 12 before it). */
const SLACK = 64;
const align64 = (n: number) => (n + 63) & ~63;
const PAGE = 65536;

/** Floats of a batch's globals ([2B, 3, G, G]) and locals ([L·B, 3, l, l], at least 1). */
export function batchFloats(config: AugmentConfig, batchSize: number): { globals: number; locals: number } {
  return { globals: 2 * batchSize * 3 * config.globalSize ** 2, locals: Math.max(1, config.localCrops * batchSize * 3 * config.localSize ** 2) };
}

function laneBytes(maxSize: number): number {
  return align64(SLACK + maxSize * maxSize * 3 + SLACK);
}

function laneOffset(floats: number, lane: number, maxSize: number): number {
  return align64(floats * 4 + SLACK) + lane * laneBytes(maxSize) + SLACK;
}

/** Bytes of createBatchMemory(floats, lanes, maxSize) (whole pages). */
export function createBatchMemoryBytes(floats: number, lanes: number, maxSize: number): number {
  return Math.ceil(laneOffset(floats, lanes, maxSize) / PAGE) * PAGE;
}

/** A shared memory for `floats` output floats (at offset 0) and `lanes` pixel areas of crops up to maxSize. */
export function createBatchMemory(floats: number, lanes: number, maxSize: number): WebAssembly.Memory {
  const pages = createBatchMemoryBytes(floats, lanes, maxSize) / PAGE;
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/**
 * One worker lane's tensor writes into one batch memory. The kernel steps 4 pixels at a
 * time, so a row of a size that is not a multiple of 4 spills into the next plane or
 * crop, which in the batch may belong to another worker: such sizes return false and the
 * caller writes through its own memory.
 */
export class BatchTensorWriter {
  private readonly pixels: Uint8Array;
  private readonly at: number;

  private constructor(
    memory: WebAssembly.Memory,
    floats: number,
    lane: number,
    readonly maxSize: number,
    private readonly normalize: NormalizeKernel,
  ) {
    this.at = laneOffset(floats, lane, maxSize);
    this.pixels = new Uint8Array(memory.buffer, this.at, maxSize * maxSize * 3);
  }

  /** Null where WebAssembly SIMD is unavailable. */
  static create(memory: WebAssembly.Memory, floats: number, lane: number, maxSize: number): BatchTensorWriter | null {
    const normalize = instantiateNormalize(memory, { shared: true });
    return normalize ? new BatchTensorWriter(memory, floats, lane, maxSize, normalize) : null;
  }

  /** ToTensor + Normalize of the size × size crop `px` (solarized, mirrored as asked) at float offset `offset`; false where size % 4 !== 0. */
  write(px: Uint8Array, size: number, flip: boolean, solarize: boolean, offset: number): boolean {
    if (size % 4 !== 0 || size > this.maxSize) return false;
    this.pixels.set(px.subarray(0, size * size * 3));
    this.normalize(this.at, size, flip ? 1 : 0, solarize ? 1 : 0, offset * 4, size * size * 4);
    return true;
  }
}

/** Largest crop side of `config` (the lanes' pixel areas hold one crop). */
export function maxCropSize(config: AugmentConfig): number {
  return Math.max(config.globalSize, config.localSize);
}
