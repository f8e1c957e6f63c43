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

/** Bytes at the start of wasm memory where the kernels leave their lane accumulators. */
const ACCUMULATOR_BYTES = 64;
const VECTOR_BYTES = 16;

/** Builds the wasm binary. Opcodes are named so the module can be read and changed here. */
function buildKernelModule(): Uint8Array {
  const op = {
    block: 0x02, loop: 0x03, br: 0x0c, brIf: 0x0d, end: 0x0b, void: 0x40,
    localGet: 0x20, localSet: 0x21, localTee: 0x22,
    i32Const: 0x41, i32GeU: 0x4f, i32Add: 0x6a,
  };
  const simd = (code: number, ...immediates: number[]): number[] => [0xfd, ...uleb(code), ...immediates];
  const memArg = [0x00, 0x00]; // alignment hint 2^0, offset 0
  const v128Load = simd(0x00, ...memArg);
  const v128Store = simd(0x0b, ...memArg);
  const i32x4Add = simd(0xae);
  const f32x4Add = simd(0xe4);
  const i32 = 0x7f;
  const v128 = 0x7b;

  const get = (i: number) => [op.localGet, i];
  const set = (i: number) => [op.localSet, i];
  const tee = (i: number) => [op.localTee, i];
  const i32c = (v: number) => [op.i32Const, ...sleb(v)];
  const advance = (i: number) => [...get(i), ...i32c(VECTOR_BYTES), op.i32Add, ...set(i)];
  const storeAt = (address: number, local: number) => [...i32c(address), ...get(local), ...v128Store];
  /** acc += top of stack; sumOfSums += acc. Consumes the vector on the stack. */
  const fletcherStep = (acc: number, sumOfSums: number) => [...get(acc), ...i32x4Add, ...tee(acc), ...get(sumOfSums), ...i32x4Add, ...set(sumOfSums)];
  /** while (params[cursor] < locals[end]) { body } */
  const loopUntil = (cursor: number, end: number, body: number[]) => [
    op.block, op.void, op.loop, op.void,
    ...get(cursor), ...get(end), op.i32GeU, op.brIf, 1,
    ...body,
    op.br, 0, op.end, op.end,
  ];

  // checksumLanes(ptr, len): lanes a,b of the bytes [ptr, ptr+len) stored at 0 and 16.
  // locals: 0 ptr, 1 len, 2 end, 3 a, 4 b
  const checksumBody = [
    ...get(0), ...get(1), op.i32Add, ...set(2),
    ...loopUntil(0, 2, [...get(0), ...v128Load, ...fletcherStep(3, 4), ...advance(0)]),
    ...storeAt(0, 3), ...storeAt(16, 4),
    op.end,
  ];
  const checksumFn = [...vec([[1, i32], [2, v128]].map(([n, t]) => [n, t])), ...checksumBody];

  // addChecksumLanes(dst, src, len): lanes of dst before (0, 16), dst += src as float32,
  // lanes of dst after (32, 48).
  // locals: 0 dst, 1 src, 2 len, 3 end, 4 v, 5 a1, 6 b1, 7 a2, 8 b2
  const addBody = [
    ...get(0), ...get(2), op.i32Add, ...set(3),
    ...loopUntil(0, 3, [
      ...get(0), ...v128Load, ...tee(4), ...fletcherStep(5, 6),
      ...get(0), ...get(4), ...get(1), ...v128Load, ...f32x4Add, ...tee(4), ...v128Store,
      ...get(4), ...fletcherStep(7, 8),
      ...advance(0), ...advance(1),
    ]),
    ...storeAt(0, 5), ...storeAt(16, 6), ...storeAt(32, 7), ...storeAt(48, 8),
    op.end,
  ];
  const addFn = [...vec([[1, i32], [5, v128]].map(([n, t]) => [n, t])), ...addBody];

  const typeSection = vec([
    [0x60, ...vec([[i32], [i32]]), ...vec([])],
    [0x60, ...vec([[i32], [i32], [i32]]), ...vec([])],
  ]);
  const importSection = vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]]);
  const functionSection = vec([[0], [1]]);
  const exportSection = vec([
    [...name("checksumLanes"), 0x00, 0],
    [...name("addChecksumLanes"), 0x00, 1],
  ]);
  const codeSection = vec([sized(checksumFn), sized(addFn)]);
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, typeSection), ...section(2, importSection), ...section(3, functionSection),
    ...section(7, exportSection), ...section(10, codeSection),
  ]);
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function sized(bytes: number[]): number[] {
  return [...uleb(bytes.length), ...bytes];
}

function name(text: string): number[] {
  return sized([...Buffer.from(text, "utf8")]);
}

function section(id: number, bytes: number[]): number[] {
  return [id, ...sized(bytes)];
}

/** The slice of the WebAssembly JS API used here (the ES2022 lib and @types/node 20 do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let compiled: object | undefined;

function kernelModule(): object {
  compiled ??= new wasm.Module(buildKernelModule());
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
 * Scratch wasm memory for chunks of at most `maxChunkBytes`, preallocated once. Payloads
 * are copied in, never referenced, so ZeroMQ keeps owning the received buffers.
 */
export class PayloadKernels {
  readonly maxChunkBytes: number;
  private readonly bytes: Uint8Array;
  private readonly lanes: Uint32Array;
  private readonly regionA: number;
  private readonly regionB: number;
  private readonly checksumLanes: (ptr: number, len: number) => void;
  private readonly addChecksumLanes: (dst: number, src: number, len: number) => void;

  constructor(maxChunkBytes: number) {
    this.maxChunkBytes = maxChunkBytes;
    const regionBytes = Math.ceil(maxChunkBytes / VECTOR_BYTES) * VECTOR_BYTES;
    this.regionA = ACCUMULATOR_BYTES;
    this.regionB = this.regionA + regionBytes;
    const pages = Math.ceil((this.regionB + regionBytes) / 65536) || 1;
    const memory = new wasm.Memory({ initial: pages, maximum: pages });
    const instance = new wasm.Instance(kernelModule(), { env: { memory } });
    this.bytes = new Uint8Array(memory.buffer);
    this.lanes = new Uint32Array(memory.buffer, 0, ACCUMULATOR_BYTES / 4);
    this.checksumLanes = instance.exports.checksumLanes as (ptr: number, len: number) => void;
    this.addChecksumLanes = instance.exports.addChecksumLanes as (dst: number, src: number, len: number) => void;
  }

  /** Checksum of `payload` (any length up to maxChunkBytes). */
  checksum(payload: Uint8Array): number {
    const padded = this.load(payload, this.regionA);
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
    this.addChecksumLanes(this.regionA, this.regionB, padded);
    if (foldLanes(this.lanes, 0, received.length) !== expected) return null;
    received.set(this.bytes.subarray(this.regionA, this.regionA + received.length));
    return foldLanes(this.lanes, 8, received.length);
  }

  /**
   * The first `length` bytes of the scratch region, for a caller (the shared-memory path) to
   * fill directly; the *Scratch methods then work on those bytes without another copy.
   */
  scratch(length: number): Uint8Array {
    this.checkLength(length);
    return this.bytes.subarray(this.regionA, this.regionA + length);
  }

  /** Checksum of the first `length` bytes of the scratch region. */
  checksumScratch(length: number): number {
    this.checksumLanes(this.regionA, this.padScratch(length));
    return foldLanes(this.lanes, 0, length);
  }

  /**
   * accumulateVerified for a payload already in the scratch region: if its first `local.length`
   * bytes have checksum `expected`, adds `local` into them (the sum stays in the scratch) and
   * returns the checksum of the sum; otherwise null.
   */
  accumulateScratchVerified(local: Uint8Array, expected: number): number | null {
    const padded = this.padScratch(local.length);
    this.load(local, this.regionB);
    this.addChecksumLanes(this.regionA, this.regionB, padded);
    if (foldLanes(this.lanes, 0, local.length) !== expected) return null;
    return foldLanes(this.lanes, 8, local.length);
  }

  private checkLength(length: number): void {
    if (length > this.maxChunkBytes) {
      throw new RangeError(`payload of ${length} bytes exceeds the ${this.maxChunkBytes}-byte chunk scratch`);
    }
  }

  /** Zeroes the scratch bytes after `length` up to a whole vector; returns that length. */
  private padScratch(length: number): number {
    this.checkLength(length);
    const padded = Math.ceil(length / VECTOR_BYTES) * VECTOR_BYTES;
    this.bytes.fill(0, this.regionA + length, this.regionA + padded);
    return padded;
  }

  /** Copies `source` to `offset` and zeroes the tail up to a whole vector; returns that length. */
  private load(source: Uint8Array, offset: number): number {
    if (source.length > this.maxChunkBytes) {
      throw new RangeError(`payload of ${source.length} bytes exceeds the ${this.maxChunkBytes}-byte chunk scratch`);
    }
    this.bytes.set(source, offset);
    const padded = Math.ceil(source.length / VECTOR_BYTES) * VECTOR_BYTES;
    this.bytes.fill(0, offset + source.length, offset + padded);
    return padded;
  }
}
