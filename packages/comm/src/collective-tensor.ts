/**
 * Tensors that the same-host all-reduce works on in place. A plain Float32Array lives outside
 * WebAssembly memory, so every block of it is copied into the kernels' scratch to be checksummed
 * or added, and copied back out: two of the eight passes a 2-rank all-reduce makes over its
 * bytes. A tensor allocated here lives in the memory of its own kernels, which read it where
 * it lies and let the file reads and writes use it directly.
 */
import { PayloadKernels, STREAM_BLOCK_BYTES } from "./payload-kernels";

const kernelsOfMemory = new WeakMap<ArrayBufferLike, PayloadKernels>();

/**
 * A zeroed Float32Array of `length` elements for RingAllReduce.allReduce; any subarray of it
 * is reduced in place too. Its memory is fixed at creation (at most 4 GiB) and never detached.
 */
export function allocateCollectiveTensor(length: number): Float32Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`collective tensor length must be a non-negative integer, got ${length}`);
  const kernels = new PayloadKernels(STREAM_BLOCK_BYTES, length);
  kernelsOfMemory.set(kernels.tensor.buffer, kernels);
  return kernels.tensor;
}

/** The kernels whose memory holds `values`, if it was allocated by allocateCollectiveTensor. */
export function kernelsHolding(values: Float32Array): PayloadKernels | undefined {
  return kernelsOfMemory.get(values.buffer);
}
