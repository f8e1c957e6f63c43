/**
 * The per-element optimizer math (AdamW, teacher EMA, gradient clipping) in WebAssembly
 * SIMD. Plain JS loops over the ~27.5M floats of vit_tiny + a 65536-d head take ~0.5 s per
 * step; these kernels work on two elements per instruction after a memcpy into wasm memory.
 *
 * Each kernel reproduces the scalar JS math bit for bit: float32 values are promoted to
 * float64 (exact), every operation runs in float64 in the same order as the JS expression
 * (IEEE float64 is deterministic, wasm has no fused multiply-add), and results are rounded
 * to float32 once when stored (round to nearest even, as a Float32Array store does). So a
 * process with and one without WebAssembly SIMD compute identical bits.
 *
 * Elements are processed in pairs (one f64x2 vector); callers handle an odd last element
 * with the scalar expression.
 *
 * AdamW stays in float64 although an f32x4 kernel with PyTorch's per-operation float32
 * rounding measured ~55 ms instead of ~110 ms per 27.5M elements (its divisions and square
 * root bound this one): in float32, lr / (1 − β₁ᵗ) overflows to Infinity for huge learning
 * rates where the float64 update stays finite, which changes what a blown-up run leaves as
 * its last good state.
 */
import { END, F64, get, I32, i32c, loopUntil, MODULE_HEADER, name, section, set, simd, sized, tee, uleb, V128, vec, webAssembly } from "@dino-coord/wasm";

/** Bytes at the start of every kernel memory where sumOfSquares keeps its two lane sums. */
export const ACCUMULATOR_BYTES = 16;
/** Elements per copied chunk: 3 × 128 KiB regions stay in L2 cache. Even, so chunks hold whole pairs. */
export const CHUNK_ELEMENTS = 32768;
const PAIR_BYTES = 8;

function buildKernelModule(): Uint8Array {
  const op = { i32Add: 0x6a, i32Shl: 0x74 };
  const memArg = [0x00, 0x00]; // alignment hint 2^0, offset 0
  const advance = (i: number) => [...get(i), ...i32c(PAIR_BYTES), op.i32Add, ...set(i)];
  /** Two float32 at the address on the stack, as f64x2. */
  const loadPair = [...simd(0x5d, ...memArg), ...simd(0x5f)]; // V128.load64_zero, f64x2.promote_low_f32x4
  /** Stores the f64x2 on the stack, rounded to float32, at the address below it. */
  const storePair = [...simd(0x5e), ...simd(0x5b, ...memArg, 0)]; // f32x4.demote_f64x2_zero, V128.store64_lane 0
  const splat = simd(0x14);
  const add = simd(0xf0);
  const sub = simd(0xf1);
  const mul = simd(0xf2);
  const div = simd(0xf3);
  const sqrt = simd(0xef);
  /** end = start + pairs · 8 */
  const endOf = (start: number, pairs: number, end: number) => [...get(start), ...get(pairs), ...i32c(3), op.i32Shl, op.i32Add, ...set(end)];
  const locals = (groups: Array<[number, number]>) => vec(groups.map(([n, t]) => [...uleb(n), t]));

  // adamwPairs(p, g, m, v, pairs, beta1, 1-beta1, beta2, 1-beta2, √bc2, eps, decayFactor, stepSize)
  // params: 0 p, 1 g, 2 m, 3 v, 4 pairs, 5..12 F64 constants; locals: 13 end (I32),
  // 14..21 the constants splatted, 22 gv, 23 mv, 24 vv
  const adamwBody = [
    ...endOf(0, 4, 13),
    ...[5, 6, 7, 8, 9, 10, 11, 12].flatMap((c) => [...get(c), ...splat, ...set(c + 9)]),
    ...loopUntil(0, 13, [
      ...get(1), ...loadPair, ...set(22),
      // m = beta1·m + (1−beta1)·g
      ...get(2), ...loadPair, ...get(14), ...mul, ...get(15), ...get(22), ...mul, ...add, ...set(23),
      ...get(2), ...get(23), ...storePair,
      // v = beta2·v + (1−beta2)·g·g
      ...get(3), ...loadPair, ...get(16), ...mul, ...get(17), ...get(22), ...mul, ...get(22), ...mul, ...add, ...set(24),
      ...get(3), ...get(24), ...storePair,
      // p = p·decayFactor − (stepSize·m) / (√v / √bc2 + eps)
      ...get(0),
      ...get(0), ...loadPair, ...get(20), ...mul,
      ...get(21), ...get(23), ...mul,
      ...get(24), ...sqrt, ...get(18), ...div, ...get(19), ...add,
      ...div, ...sub,
      ...storePair,
      ...advance(0), ...advance(1), ...advance(2), ...advance(3),
    ]),
    END,
  ];
  const adamwFn = [...locals([[1, I32], [11, V128]]), ...adamwBody];

  // emaPairs(t, s, pairs, momentum, studentWeight): t = t·momentum + studentWeight·s
  // params: 0 t, 1 s, 2 pairs, 3 momentum, 4 studentWeight; locals: 5 end, 6 momentum², 7 weight²
  const emaBody = [
    ...endOf(0, 2, 5),
    ...get(3), ...splat, ...set(6), ...get(4), ...splat, ...set(7),
    ...loopUntil(0, 5, [
      ...get(0),
      ...get(0), ...loadPair, ...get(6), ...mul, ...get(7), ...get(1), ...loadPair, ...mul, ...add,
      ...storePair,
      ...advance(0), ...advance(1),
    ]),
    END,
  ];
  const emaFn = [...locals([[1, I32], [2, V128]]), ...emaBody];

  // sumOfSquaresPairs(x, pairs): the f64x2 at address 0 += x[2k]², x[2k+1]² for every pair
  // params: 0 x, 1 pairs; locals: 2 end, 3 acc, 4 xv
  const sumOfSquaresBody = [
    ...endOf(0, 1, 2),
    ...i32c(0), ...simd(0x00, ...memArg), ...set(3),
    ...loopUntil(0, 2, [
      ...get(0), ...loadPair, ...tee(4), ...get(4), ...mul, ...get(3), ...add, ...set(3),
      ...advance(0),
    ]),
    ...i32c(0), ...get(3), ...simd(0x0b, ...memArg),
    END,
  ];
  const sumOfSquaresFn = [...locals([[1, I32], [2, V128]]), ...sumOfSquaresBody];

  // scalePairs(x, pairs, factor): x = x·factor
  // params: 0 x, 1 pairs, 2 factor; locals: 3 end, 4 factor²
  const scaleBody = [
    ...endOf(0, 1, 3),
    ...get(2), ...splat, ...set(4),
    ...loopUntil(0, 3, [
      ...get(0), ...get(0), ...loadPair, ...get(4), ...mul, ...storePair,
      ...advance(0),
    ]),
    END,
  ];
  const scaleFn = [...locals([[1, I32], [1, V128]]), ...scaleBody];

  const typeSection = vec([
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [F64], [F64], [F64], [F64], [F64], [F64], [F64], [F64]]), ...vec([])],
    [0x60, ...vec([[I32], [I32], [I32], [F64], [F64]]), ...vec([])],
    [0x60, ...vec([[I32], [I32]]), ...vec([])],
    [0x60, ...vec([[I32], [I32], [F64]]), ...vec([])],
  ]);
  const importSection = vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]]);
  const functionSection = vec([[0], [1], [2], [3]]);
  const exportSection = vec([
    [...name("adamwPairs"), 0x00, 0],
    [...name("emaPairs"), 0x00, 1],
    [...name("sumOfSquaresPairs"), 0x00, 2],
    [...name("scalePairs"), 0x00, 3],
  ]);
  const codeSection = vec([sized(adamwFn), sized(emaFn), sized(sumOfSquaresFn), sized(scaleFn)]);
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, typeSection), ...section(2, importSection), ...section(3, functionSection),
    ...section(7, exportSection), ...section(10, codeSection),
  ]);
}

let compiled: object | null | undefined;

/** The compiled module, or null where WebAssembly (or its SIMD proposal) is unavailable. */
function kernelModule(): object | null {
  if (compiled === undefined) {
    const bytes = buildKernelModule();
    compiled = webAssembly && webAssembly.validate(bytes) ? new webAssembly.Module(bytes) : null;
  }
  return compiled;
}

/** When false, the optimizer uses its scalar JS loops (set by tests to compare both paths). */
let simdEnabled = true;

/** Turns the SIMD kernels off or on for optimizers and calls made afterwards; for tests and benchmarks. */
export function setOptimizerSimd(enabled: boolean): void {
  simdEnabled = enabled;
}

export function optimizerSimdAvailable(): boolean {
  return simdEnabled && kernelModule() !== null;
}

const WASM_PAGE_BYTES = 65536;
const MAX_WASM_PAGES = 65536;

/**
 * One instance of the kernels on its own fixed-size memory: the accumulator, two chunk
 * regions (A, B) and `extraBytes` more after them for the caller (AdamW keeps its moments there).
 */
export class OptimizerKernels {
  readonly memory: ArrayBuffer;
  readonly regionA = ACCUMULATOR_BYTES;
  readonly regionB = ACCUMULATOR_BYTES + CHUNK_ELEMENTS * 4;
  readonly extraStart = ACCUMULATOR_BYTES + 2 * CHUNK_ELEMENTS * 4;
  readonly floats: Float32Array;
  private readonly accumulator: Float64Array;
  readonly adamwPairs: (p: number, g: number, m: number, v: number, pairs: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, biasCorrection2Sqrt: number, eps: number, decayFactor: number, stepSize: number) => void;
  readonly emaPairs: (t: number, s: number, pairs: number, momentum: number, studentWeight: number) => void;
  private readonly sumOfSquaresPairs: (x: number, pairs: number) => void;
  readonly scalePairs: (x: number, pairs: number, factor: number) => void;

  /** Null where SIMD is unavailable or turned off, or the memory would exceed wasm's 4 GiB. */
  static create(extraBytes = 0): OptimizerKernels | null {
    const module = optimizerSimdAvailable() ? kernelModule() : null;
    if (!module || !webAssembly) return null;
    const pages = Math.ceil((ACCUMULATOR_BYTES + 2 * CHUNK_ELEMENTS * 4 + extraBytes) / WASM_PAGE_BYTES);
    if (pages > MAX_WASM_PAGES) return null;
    return new OptimizerKernels(module, pages);
  }

  private constructor(module: object, pages: number) {
    // A fixed size (initial = maximum): the memory never grows, so views of it stay valid.
    const memory = new webAssembly!.Memory({ initial: pages, maximum: pages });
    const instance = new webAssembly!.Instance(module, { env: { memory } });
    this.memory = memory.buffer as ArrayBuffer; // not shared: no `shared` flag above
    this.floats = new Float32Array(memory.buffer);
    this.accumulator = new Float64Array(memory.buffer, 0, 2);
    const exports = instance.exports as Record<string, never>;
    this.adamwPairs = exports.adamwPairs;
    this.emaPairs = exports.emaPairs;
    this.sumOfSquaresPairs = exports.sumOfSquaresPairs;
    this.scalePairs = exports.scalePairs;
  }

  /** Copies `source` (at most CHUNK_ELEMENTS) into a region; returns its byte address. */
  load(source: Float32Array, region: number): number {
    this.floats.set(source, region >> 2);
    return region;
  }

  /** Copies `length` floats of a region back into `target`. */
  unload(region: number, target: Float32Array): void {
    target.set(this.floats.subarray(region >> 2, (region >> 2) + target.length));
  }

  /**
   * The two interleaved float64 sums (even- and odd-indexed squares) of x[begin, end),
   * the odd last element excluded; see sumOfSquaresInterleaved for the scalar twin.
   */
  sumOfSquaresLanes(x: Float32Array, begin: number, end: number): [number, number] {
    this.accumulator[0] = 0;
    this.accumulator[1] = 0;
    for (let start = begin; start < end; start += CHUNK_ELEMENTS) {
      const stop = Math.min(start + CHUNK_ELEMENTS, end);
      this.sumOfSquaresPairs(this.load(x.subarray(start, stop), this.regionA), (stop - start) >> 1);
    }
    return [this.accumulator[0], this.accumulator[1]];
  }
}

let shared: OptimizerKernels | null | undefined;

/** The scratch-only instance shared by emaTeacher and clipGradientsPerParam (null: use scalar loops). */
export function sharedKernels(): OptimizerKernels | null {
  if (!optimizerSimdAvailable()) return null;
  shared ??= OptimizerKernels.create();
  return shared;
}
