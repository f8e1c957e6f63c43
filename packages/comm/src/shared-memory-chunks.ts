/**
 * The per-chunk byte work of the shared-memory all-reduce, streamed through the kernels'
 * scratch one cache-sized block at a time: each block is read from a file (one copy),
 * checksummed or added while it is in cache, and written on (one copy). So a chunk
 * costs the same per byte whatever its size, and chunks can be large, which saves ZeroMQ
 * round trips (process wake-ups: the scarce resource when many members share few cores).
 *
 * A chunk's checksum is only known once its last block has been read, so whatever a block
 * is written to before that must be a place where a chunk that turns out bad does no harm:
 * this rank's own file (its next writer rewrites it before any doorbell announces it), a
 * private buffer, or a region of the caller's tensor whose old contents are no longer needed
 * and that the accepted chunk will overwrite (see RingAllReduce.run).
 *
 * A tensor from allocateCollectiveTensor lies in the kernels' own memory: its blocks are then
 * written to and read from the files directly, and checksummed and added where they lie.
 */
import type { PayloadKernels } from "./payload-kernels";
import type { SharedMemoryFiles, SharedMemoryReadProblem } from "./shared-memory-files";

/**
 * Most payload bytes one shared-memory doorbell announces: a run of whole chunks costs one
 * ZeroMQ round trip instead of one per chunk, and its blocks stream the same either way.
 */
export const SHARED_MEMORY_RUN_BYTES = 16 * 1024 * 1024;

/** Where the sums of reduceChunk go: this rank's file at the chunk's offset, or a buffer of the chunk's length. */
export type SumSink = "own-file" | Uint8Array;

/**
 * Copies `source` (the caller's bytes of the chunk at tensor byte `byteOffset`) into this
 * rank's file and returns its checksum.
 */
export function exportChunk(files: SharedMemoryFiles, kernels: PayloadKernels, source: Uint8Array, byteOffset: number): number {
  const inPlace = kernels.holds(source);
  kernels.startStream();
  for (let start = 0; start < source.length; start += kernels.blockBytes) {
    const block = source.subarray(start, Math.min(start + kernels.blockBytes, source.length));
    const view = inPlace ? block : kernels.blockView(block.length, files.alignmentOf(byteOffset + start));
    if (!inPlace) view.set(block);
    kernels.checksumBlock(view);
    files.write(view, byteOffset + start);
  }
  return kernels.streamChecksum(source.length);
}

/**
 * Reads `peer`'s bytes of the chunk at `byteOffset`, adds `local` to them (peer + local, the
 * ring's order) and writes the sums to `sink`. Returns the checksum of the sums if the peer's
 * bytes had checksum `expected`, null if not, or the problem that stopped the read.
 */
export function reduceChunk(
  files: SharedMemoryFiles, kernels: PayloadKernels, peer: number, local: Uint8Array, byteOffset: number, expected: number, sink: SumSink,
): number | null | SharedMemoryReadProblem {
  kernels.startStream();
  for (let start = 0; start < local.length; start += kernels.blockBytes) {
    const length = Math.min(kernels.blockBytes, local.length - start);
    const view = kernels.blockView(length, files.alignmentOf(byteOffset + start));
    const problem = files.read(peer, view, byteOffset + start);
    if (problem) return problem;
    kernels.accumulateBlock(view, local.subarray(start, start + length));
    if (sink === "own-file") files.write(view, byteOffset + start);
    else sink.set(view, start);
  }
  if (kernels.streamChecksum(local.length) !== expected) return null;
  return kernels.streamSumChecksum(local.length);
}

/**
 * Reads `owner`'s bytes of the chunk at `byteOffset` into `target` (the chunk's region of the
 * caller's tensor). Returns true if they had checksum `expected`, false if not (the region then
 * holds those bytes), or the problem that stopped the read.
 */
export function gatherChunk(
  files: SharedMemoryFiles, kernels: PayloadKernels, owner: number, target: Uint8Array, byteOffset: number, expected: number,
): boolean | SharedMemoryReadProblem {
  const inPlace = kernels.holds(target);
  kernels.startStream();
  for (let start = 0; start < target.length; start += kernels.blockBytes) {
    const block = target.subarray(start, Math.min(start + kernels.blockBytes, target.length));
    const view = inPlace ? block : kernels.blockView(block.length, files.alignmentOf(byteOffset + start));
    const problem = files.read(owner, view, byteOffset + start);
    if (problem) return problem;
    kernels.checksumBlock(view);
    if (!inPlace) block.set(view);
  }
  return kernels.streamChecksum(target.length) === expected;
}
