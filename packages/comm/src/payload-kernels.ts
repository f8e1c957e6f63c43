/**
 * The per-byte work of the collectives (checksumming payloads, adding float32 chunks) in
 * WebAssembly SIMD: a plain JS loop adds ~1.5 GB/s and zlib.crc32 checksums ~3 GB/s on the
 * reference machine, which alone would exceed the all-reduce time budget; copying a chunk
 * into wasm memory (~20 GB/s) and working on 16 bytes per instruction is several times
 * faster.
 *
 * The checksum is "fletcher32x4": four independent 32-bit lanes, each keeping a running
 * sum a += word and a sum of sums b += a (Fletcher's construction, so a changed, dropped or
 * reordered word changes it), folded into 32 bits together with the byte length. It guards
 * against corrupted, truncated and foreign payloads; it is not cryptographic.
 */

import { END, get, I32, i32c, loopUntil, MODULE_HEADER, name, section, set, simd, sized, tee, uleb, V128, vec, webAssembly } from "@dino-coord/wasm";

/** Bytes at the start of wasm memory where the kernels leave their lane accumulators. */
const ACCUMULATOR_BYTES = 64;
const VECTOR_BYTES = 16;
const PAGE_BYTES = 4096;
const WASM_PAGE_BYTES = 65536;
const MAX_WASM_PAGES = 65536;

/** Builds the wasm binary. Opcodes are named so the module can be read and changed here. */
function buildKernelModule(): Uint8Array {
  const op = { i32Add: 0x6a };
  const memArg = [0x00, 0x00]; // alignment hint 2^0, offset 0
  const v128Load = simd(0x00, ...memArg);
  const v128Store = simd(0x0b, ...memArg);
  const i32x4Add = simd(0xae);
  const f32x4Add = simd(0xe4);

  const advance = (i: number) => [...get(i), ...i32c(VECTOR_BYTES), op.i32Add, ...set(i)];
  const storeAt = (address: number, local: number) => [...i32c(address), ...get(local), ...v128Store];
  /** acc += top of stack; sumOfSums += acc. Consumes the vector on the stack. */
  const fletcherStep = (acc: number, sumOfSums: number) => [...get(acc), ...i32x4Add, ...tee(acc), ...get(sumOfSums), ...i32x4Add, ...set(sumOfSums)];

  // Both kernels continue from the lanes found in memory (the caller zeroes them to start), so
  // a payload can be fed in blocks of whole vectors and still gets its one-pass checksum.
  const loadAt = (address: number, local: number) => [...i32c(address), ...v128Load, ...set(local)];

  // checksumLanes(ptr, len): lanes a,b at 0 and 16 continued over the bytes [ptr, ptr+len).
  // locals: 0 ptr, 1 len, 2 end, 3 a, 4 b
  const checksumBody = [
    ...get(0), ...get(1), op.i32Add, ...set(2),
    ...loadAt(0, 3), ...loadAt(16, 4),
    ...loopUntil(0, 2, [...get(0), ...v128Load, ...fletcherStep(3, 4), ...advance(0)]),
    ...storeAt(0, 3), ...storeAt(16, 4),
    END,
  ];
  const checksumFn = [...vec([[1, I32], [2, V128]].map(([n, t]) => [n, t])), ...checksumBody];

  // addChecksumLanes(dst, src, len): lanes of dst before (0, 16), dst += src as float32,
  // lanes of dst after (32, 48); all four continued from memory.
  // locals: 0 dst, 1 src, 2 len, 3 end, 4 v, 5 a1, 6 b1, 7 a2, 8 b2
  const addBody = [
    ...get(0), ...get(2), op.i32Add, ...set(3),
    ...loadAt(0, 5), ...loadAt(16, 6), ...loadAt(32, 7), ...loadAt(48, 8),
    ...loopUntil(0, 3, [
      ...get(0), ...v128Load, ...tee(4), ...fletcherStep(5, 6),
      ...get(0), ...get(4), ...get(1), ...v128Load, ...f32x4Add, ...tee(4), ...v128Store,
      ...get(4), ...fletcherStep(7, 8),
      ...advance(0), ...advance(1),
    ]),
    ...storeAt(0, 5), ...storeAt(16, 6), ...storeAt(32, 7), ...storeAt(48, 8),
    END,
  ];
  const addFn = [...vec([[1, I32], [5, V128]].map(([n, t]) => [n, t])), ...addBody];

  // addLanes(dst, src, len): dst += src as float32; no checksum (a sum of several addends is
  // checksummed once, when complete). locals: 0 dst, 1 src, 2 len, 3 end
  const plainAddBody = [
    ...get(0), ...get(2), op.i32Add, ...set(3),
    ...loopUntil(0, 3, [...get(0), ...get(0), ...v128Load, ...get(1), ...v128Load, ...f32x4Add, ...v128Store, ...advance(0), ...advance(1)]),
    END,
  ];
  const plainAddFn = [...vec([[1, I32]].map(([n, t]) => [n, t])), ...plainAddBody];

  const typeSection = vec([
    [0x60, ...vec([[I32], [I32]]), ...vec([])],
    [0x60, ...vec([[I32], [I32], [I32]]), ...vec([])],
  ]);
  const importSection = vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]]);
  const functionSection = vec([[0], [1], [1]]);
  const exportSection = vec([
    [...name("checksumLanes"), 0x00, 0],
    [...name("addChecksumLanes"), 0x00, 1],
    [...name("addLanes"), 0x00, 2],
  ]);
  const codeSection = vec([sized(checksumFn), sized(addFn), sized(plainAddFn)]);
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, typeSection), ...section(2, importSection), ...section(3, functionSection),
    ...section(7, exportSection), ...section(10, codeSection),
  ]);
}

let compiled: object | undefined;

function kernelModule(): object {
  compiled ??= new webAssembly!.Module(buildKernelModule());
  return compiled;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Folds eight lane accumulators starting at `first` and the byte length into 32 bits. */
function foldLanes(lanes: Uint32Array, first: number, byteLength: number): number {
  let h = fmix32(byteLength ^ 0x9e3779b9);
  for (let i = first; i < first + 8; i++) h = fmix32(Math.imul(h ^ lanes[i], 0x01000193));
  return h;
}

/**
 * Largest block the streaming methods take. Two blocks (the payload and the local operand,
 * together the 512 KiB of a core's L2 cache) stay in cache between the system call that fills
 * one and the one that drains it, so a chunk of any size costs the same per byte; whole
 * chunks in the scratch would spill to L3 and, with many members on few cores, to memory.
 */
export const STREAM_BLOCK_BYTES = 256 * 1024;
/** Extra scratch so a block may start at any address mod 64 (see blockView). */
const ALIGNMENT_SLACK = 64;

/**
 * Scratch wasm memory for chunks of at most `maxChunkBytes`, preallocated once. Payloads
 * are copied in, never referenced, so ZeroMQ keeps owning the received buffers.
 *
 * Besides the whole-chunk methods there is a streaming interface for payloads that live in
 * files (the shared-memory path): startStream(), then blockView() / checksumBlock() /
 * accumulateBlock() per block of at most blockBytes, then streamChecksum() or
 * streamSumChecksum(). A stream's checksum equals checksum() of the concatenated blocks as
 * long as every block but the last is a multiple of 16 bytes long.
 */
export class PayloadKernels {
  readonly maxChunkBytes: number;
  /** Largest block of a stream: STREAM_BLOCK_BYTES, or less for small chunks (a multiple of 16). */
  readonly blockBytes: number;
  /**
   * The caller's tensor, when these kernels were made with room for one (allocateCollectiveTensor):
   * the streaming methods checksum and add its bytes where they lie, without copying them into
   * the scratch first.
   */
  readonly tensor: Float32Array;
  private readonly bytes: Uint8Array;
  private readonly lanes: Uint32Array;
  private readonly regionA: number;
  private readonly regionB: number;
  private readonly tensorStart: number;
  private readonly checksumLanes: (ptr: number, len: number) => void;
  private readonly addChecksumLanes: (dst: number, src: number, len: number) => void;
  private readonly addLanes: (dst: number, src: number, len: number) => void;

  constructor(maxChunkBytes: number, tensorElements = 0) {
    this.maxChunkBytes = maxChunkBytes;
    const chunkRegion = roundUpToVector(maxChunkBytes);
    this.blockBytes = Math.min(chunkRegion, STREAM_BLOCK_BYTES);
    const regionBytes = chunkRegion + ALIGNMENT_SLACK;
    this.regionA = ACCUMULATOR_BYTES;
    this.regionB = this.regionA + regionBytes;
    // Half a page in, like the files' data (SharedMemoryFiles.DATA_OFFSET): a memcpy whose
    // destination lies a few bytes after its source modulo 4096 runs several times slower (4K
    // aliasing), and buffers of other allocators start at or just after a page boundary.
    this.tensorStart = Math.ceil((this.regionB + regionBytes) / PAGE_BYTES) * PAGE_BYTES + PAGE_BYTES / 2;
    const pages = Math.ceil((this.tensorStart + roundUpToVector(tensorElements * 4)) / WASM_PAGE_BYTES);
    if (pages > MAX_WASM_PAGES) {
      throw new RangeError(`a collective tensor of ${tensorElements} float32 values does not fit in WebAssembly memory (4 GiB at most)`);
    }
    const memory = new webAssembly!.Memory({ initial: pages, maximum: pages });
    const instance = new webAssembly!.Instance(kernelModule(), { env: { memory } });
    this.bytes = new Uint8Array(memory.buffer);
    this.lanes = new Uint32Array(memory.buffer, 0, ACCUMULATOR_BYTES / 4);
    this.tensor = new Float32Array(memory.buffer, this.tensorStart, tensorElements);
    this.checksumLanes = instance.exports.checksumLanes as (ptr: number, len: number) => void;
    this.addChecksumLanes = instance.exports.addChecksumLanes as (dst: number, src: number, len: number) => void;
    this.addLanes = instance.exports.addLanes as (dst: number, src: number, len: number) => void;
  }

  /** Whether `view` lies in this instance's tensor, where the streaming methods use it in place. */
  holds(view: Uint8Array): boolean {
    return view.buffer === this.bytes.buffer && view.byteOffset >= this.tensorStart;
  }

  /** Checksum of `payload` (any length up to maxChunkBytes). */
  checksum(payload: Uint8Array): number {
    const padded = this.load(payload, this.regionA);
    this.lanes.fill(0);
    this.checksumLanes(this.regionA, padded);
    return foldLanes(this.lanes, 0, payload.length);
  }

  /**
   * If `received` has checksum `expected`, adds the float32 values of `local` into it
   * (received[i] + local[i], IEEE single precision) and returns the checksum of the sum;
   * otherwise leaves `received` untouched and returns null. Both lengths must be equal
   * multiples of 4 bytes.
   */
  accumulateVerified(received: Uint8Array, local: Uint8Array, expected: number): number | null {
    const padded = this.load(received, this.regionA);
    this.load(local, this.regionB);
    this.lanes.fill(0);
    this.addChecksumLanes(this.regionA, this.regionB, padded);
    if (foldLanes(this.lanes, 0, received.length) !== expected) return null;
    received.set(this.bytes.subarray(this.regionA, this.regionA + received.length));
    return foldLanes(this.lanes, 8, received.length);
  }

  /**
   * The first `length` bytes of the scratch region, for a caller to fill directly; the
   * *Scratch methods then work on those bytes without another copy.
   */
  scratch(length: number): Uint8Array {
    this.checkLength(length);
    return this.bytes.subarray(this.regionA, this.regionA + length);
  }

  /** Checksum of the first `length` bytes of the scratch region. */
  checksumScratch(length: number): number {
    const padded = this.padScratch(this.regionA, length);
    this.lanes.fill(0);
    this.checksumLanes(this.regionA, padded);
    return foldLanes(this.lanes, 0, length);
  }

  /**
   * accumulateVerified for a payload already in the scratch region: if its first `local.length`
   * bytes have checksum `expected`, adds `local` into them (the sum stays in the scratch) and
   * returns the checksum of the sum; otherwise null.
   */
  accumulateScratchVerified(local: Uint8Array, expected: number): number | null {
    const padded = this.padScratch(this.regionA, local.length);
    this.load(local, this.regionB);
    this.lanes.fill(0);
    this.addChecksumLanes(this.regionA, this.regionB, padded);
    if (foldLanes(this.lanes, 0, local.length) !== expected) return null;
    return foldLanes(this.lanes, 8, local.length);
  }

  /** Starts a stream: zeroes the lanes that the block methods continue. */
  startStream(): void {
    this.lanes.fill(0);
  }

  /**
   * A scratch view of `length` bytes (at most blockBytes) whose address is congruent to
   * `alignment` modulo 64. A file read or write copies fastest when the user address and the
   * file offset agree modulo 64 (the kernel's copy slows down several times when the
   * destination runs a few bytes ahead of the source), so callers pass the file offset.
   */
  blockView(length: number, alignment: number): Uint8Array {
    this.checkBlock(length);
    const start = this.regionA + (alignment & (ALIGNMENT_SLACK - 1));
    return this.bytes.subarray(start, start + length);
  }

  /** Continues the stream's checksum over `view` (a blockView, or up to blockBytes of the tensor). */
  checksumBlock(view: Uint8Array): void {
    if (!this.holds(view)) {
      this.checksumLanes(view.byteOffset, this.padScratch(view.byteOffset, view.length));
      return;
    }
    this.checkBlock(view.length);
    // Vectors past the view hold the tensor's next bytes, not zeros: the partial last vector
    // is checksummed from a zero-padded copy.
    const whole = wholeVectors(view.length);
    this.checksumLanes(view.byteOffset, whole);
    if (whole < view.length) this.checksumLanes(this.regionB, this.load(view.subarray(whole), this.regionB));
  }

  /**
   * `view` (a blockView) += `local` as float32, continuing the stream's checksums of the
   * view before (streamChecksum) and after (streamSumChecksum) the addition. A `local` in the
   * tensor is read where it lies.
   */
  accumulateBlock(view: Uint8Array, local: Uint8Array): void {
    const padded = this.padScratch(view.byteOffset, view.length);
    if (!this.holds(local)) {
      this.load(local, this.regionB);
      this.addChecksumLanes(view.byteOffset, this.regionB, padded);
      return;
    }
    const whole = wholeVectors(local.length);
    this.addChecksumLanes(view.byteOffset, local.byteOffset, whole);
    if (whole < local.length) this.addChecksumLanes(view.byteOffset + whole, this.regionB, this.load(local.subarray(whole), this.regionB));
  }

  /**
   * A second scratch view of `length` bytes (at most blockBytes), apart from blockView's, for
   * an addend that addBlock then adds into a block.
   */
  addendView(length: number): Uint8Array {
    this.checkBlock(length);
    return this.bytes.subarray(this.regionB, this.regionB + length);
  }

  /**
   * `view` (a blockView) += `addend` (an addendView of the same length) as float32, leaving
   * the stream's checksums as they were: a sum of many addends is checksummed once, when
   * complete, with checksumBlock.
   */
  addBlock(view: Uint8Array, addend: Uint8Array): void {
    const padded = this.padScratch(view.byteOffset, view.length);
    this.padScratch(addend.byteOffset, addend.length);
    this.addLanes(view.byteOffset, addend.byteOffset, padded);
  }

  /** Checksum of everything streamed (before any addition), `totalBytes` long. */
  streamChecksum(totalBytes: number): number {
    return foldLanes(this.lanes, 0, totalBytes);
  }

  /** Checksum of the sums written by accumulateBlock, `totalBytes` long. */
  streamSumChecksum(totalBytes: number): number {
    return foldLanes(this.lanes, 8, totalBytes);
  }

  private checkBlock(length: number): void {
    if (length > this.blockBytes) throw new RangeError(`block of ${length} bytes exceeds the ${this.blockBytes}-byte stream block`);
  }

  private checkLength(length: number): void {
    if (length > this.maxChunkBytes) {
      throw new RangeError(`payload of ${length} bytes exceeds the ${this.maxChunkBytes}-byte chunk scratch`);
    }
  }

  /** Zeroes the scratch bytes after [start, start+length) up to a whole vector; returns the padded length. */
  private padScratch(start: number, length: number): number {
    this.checkLength(length);
    const padded = roundUpToVector(length);
    this.bytes.fill(0, start + length, start + padded);
    return padded;
  }

  /** Copies `source` to `offset` and zeroes the tail up to a whole vector; returns that length. */
  private load(source: Uint8Array, offset: number): number {
    this.checkLength(source.length);
    this.bytes.set(source, offset);
    const padded = roundUpToVector(source.length);
    this.bytes.fill(0, offset + source.length, offset + padded);
    return padded;
  }
}

function wholeVectors(bytes: number): number {
  return bytes - (bytes % VECTOR_BYTES);
}

function roundUpToVector(bytes: number): number {
  return Math.ceil(bytes / VECTOR_BYTES) * VECTOR_BYTES;
}
