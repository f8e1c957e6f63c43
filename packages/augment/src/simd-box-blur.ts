/**
 * One PIL box-blur pass (radius 0 or 1, i.e. every sigma ≤ 2) down the columns or along
 * the rows of an interleaved image, as hand-assembled WebAssembly SIMD kernels: 16
 * samples per step, same integer arithmetic as the scalar pass. With S the centre-window
 * sum and E the two fractional-edge samples, out = (S·ww + E·fw + 2^23) >> 24, computed
 * without leaving 32 bits as (hi + ((lo + 2^23) >> 12)) >> 12 with hi = S·(ww>>12) +
 * E·(fw>>12) and lo = S·(ww&4095) + E·(fw&4095), each one i32x4.dot_i16x8_s of (S, E)
 * pairs (exact: 2^12·hi + lo is the full sum).
 *
 * Exported functions (byte offsets into the imported memory): blurColumns(src, dst,
 * rowLength, rows, r, ww, fw) reads and writes up to 15 bytes past each row;
 * blurRows(src, dst, width, rows, r, ww, fw, line) (below) also writes its `line` buffer
 * (3·width + 32 bytes). Callers leave slack.
 */

import { I32, uleb, get, set, i32c, simd, increment, kernelInstantiator, kernelModule, KernelLocals, whileNot, type KernelFunction } from "./wasm-encoding";

const op = {
  add: 0x6a, sub: 0x6b, mul: 0x6c, and: 0x71, or: 0x72, shl: 0x74, shrU: 0x76, eqz: 0x45, ltS: 0x48, gtS: 0x4a, geS: 0x4e, select: 0x1b,
  i32Load: [0x28, 2, 0], i32Store: [0x36, 2, 0], memoryCopy: [0xfc, 10, 0, 0],
};
const v = {
  load8x8U: (offset: number) => simd(0x02, 0, ...uleb(offset)),
  store: simd(0x0b, 0, 0),
  i16Splat: simd(0x10), i32Splat: simd(0x11),
  i8NarrowI16U: simd(0x66), i16NarrowI32U: simd(0x86),
  i16Add: simd(0x8e), i16Mul: simd(0x95),
  i32ShrU: simd(0xad), i32Add: simd(0xae), i32Dot16: simd(0xba),
  shuffle: (lanes: number[]) => simd(0x0d, ...lanes),
};

/** The locals the stencil reads: five source pointers, the step offset j and the weights. */
interface Stencil {
  pHere: number; pAbove: number; pBelow: number; pEA: number; pEB: number; j: number;
  high: number; low: number; round: number; R16: number; S16: number; E16: number; pairsLow: number; pairsHigh: number;
}

function stencilLocals(L: KernelLocals): Stencil {
  const [pHere, pAbove, pBelow, pEA, pEB, j] = Array.from({ length: 6 }, () => L.i32());
  const [high, low, round, R16, S16, E16, pairsLow, pairsHigh] = Array.from({ length: 8 }, () => L.v128());
  return { pHere, pAbove, pBelow, pEA, pEB, j, high, low, round, R16, S16, E16, pairsLow, pairsHigh };
}

/**
 * The weight vectors from the r, ww, fw parameters: (ww >> 12, fw >> 12) and
 * (ww & 4095, fw & 4095) as i16 pairs, the multipliers of (S, E) pairs in a dot product.
 */
function stencilWeights(s: Stencil, r: number, ww: number, fw: number): number[] {
  const pair = (mask: (x: number) => number[]) => [...mask(ww), ...mask(fw), ...i32c(16), op.shl, op.or, ...v.i32Splat];
  return [
    ...pair((x) => [...get(x), ...i32c(12), op.shrU]), ...set(s.high),
    ...pair((x) => [...get(x), ...i32c(4095), op.and]), ...set(s.low),
    ...i32c(8388608), ...v.i32Splat, ...set(s.round),
    ...get(r), ...v.i16Splat, ...set(s.R16),
  ];
}

/**
 * Four outputs from the four (S, E) i16 pairs in local `pairs`:
 * (dot(pairs, high) + ((dot(pairs, low) + 2^23) >> 12)) >> 12. Exact: with ww = 2^12·wH + wL
 * (and fw alike), S·ww + E·fw + 2^23 = 2^12·dot(high) + dot(low) + 2^23, and flooring by 2^12
 * twice is flooring by 2^24; every partial sum stays below 2^24.
 */
const quarter = (s: Stencil, pairs: number) => [
  ...get(pairs), ...get(s.high), ...v.i32Dot16,
  ...get(pairs), ...get(s.low), ...v.i32Dot16, ...get(s.round), ...v.i32Add, ...i32c(12), ...v.i32ShrU,
  ...v.i32Add, ...i32c(12), ...v.i32ShrU,
];

const at = (s: Stencil, base: number, offset: number) => [...get(base), ...get(s.j), op.add, ...v.load8x8U(offset)];

/** i16 lanes first … first + 3 of S16 and E16 interleaved: (S, E) pairs. */
const interleaved = (s: Stencil, first: number) =>
  [...get(s.S16), ...get(s.E16), ...v.shuffle([0, 1, 2, 3].flatMap((k) => [2 * (first + k), 2 * (first + k) + 1, 16 + 2 * (first + k), 17 + 2 * (first + k)]))];

/** Eight output samples at byte offset `offset` of the current 16, as i16x8 on the stack. */
const half = (s: Stencil, offset: number) => [
  ...at(s, s.pHere, offset), ...at(s, s.pAbove, offset), ...at(s, s.pBelow, offset), ...v.i16Add, ...get(s.R16), ...v.i16Mul, ...v.i16Add, ...set(s.S16),
  ...at(s, s.pEA, offset), ...at(s, s.pEB, offset), ...v.i16Add, ...set(s.E16),
  ...interleaved(s, 0), ...set(s.pairsLow), ...interleaved(s, 4), ...set(s.pairsHigh),
  ...quarter(s, s.pairsLow), ...quarter(s, s.pairsHigh), ...v.i16NarrowI32U,
];

/** Output samples j … j + 15 at pDst + j. */
const stencil16 = (s: Stencil, pDst: number) => [...get(pDst), ...get(s.j), op.add, ...half(s, 0), ...half(s, 8), ...v.i8NarrowI16U, ...v.store];

/** blurColumns(src, dst, rowLength, rows, r, ww, fw). */
function columnsKernel(): KernelFunction {
  const [src, dst, rowLength, rows, r, ww, fw] = [0, 1, 2, 3, 4, 5, 6];
  const L = new KernelLocals(7);
  const s = stencilLocals(L);
  const [y, last, pDst, rowStart] = [L.i32(), L.i32(), L.i32(), L.i32()];
  /** src + row·rowLength on the stack. */
  const rowPointer = (row: number[]) => [...get(src), ...row, ...get(rowLength), op.mul, op.add];
  const code = [
    ...stencilWeights(s, r, ww, fw),
    ...get(rows), ...i32c(1), op.sub, ...set(last),
    ...i32c(0), ...set(y),
    ...whileNot([...get(y), ...get(rows), op.geS], [
      ...get(y), ...get(rowLength), op.mul, ...set(rowStart),
      ...get(src), ...get(rowStart), op.add, ...set(s.pHere),
      ...get(dst), ...get(rowStart), op.add, ...set(pDst),
      // above = max(y − 1, 0), below = min(y + 1, last)
      ...rowPointer([...get(y), ...i32c(1), op.sub, ...i32c(0), ...get(y), ...i32c(0), op.gtS, op.select]), ...set(s.pAbove),
      ...rowPointer([...get(y), ...i32c(1), op.add, ...get(last), ...get(y), ...get(last), op.ltS, op.select]), ...set(s.pBelow),
      // edge rows: radius 0 → above / below; radius 1 → max(y − 2, 0) / min(y + 2, last)
      ...get(s.pAbove), ...rowPointer([...get(y), ...i32c(2), op.sub, ...i32c(0), ...get(y), ...i32c(1), op.gtS, op.select]), ...get(r), op.eqz, op.select, ...set(s.pEA),
      ...get(s.pBelow), ...rowPointer([...get(y), ...i32c(2), op.add, ...get(last), ...get(y), ...i32c(2), op.add, ...get(last), op.ltS, op.select]), ...get(r), op.eqz, op.select, ...set(s.pEB),
      ...i32c(0), ...set(s.j),
      ...whileNot([...get(s.j), ...get(rowLength), op.geS], [...stencil16(s, pDst), ...increment(s.j, i32c(16))]),
      ...increment(y, i32c(1)),
    ]),
  ];
  return { name: "blurColumns", params: [I32, I32, I32, I32, I32, I32, I32], results: [], locals: L.declaration(), code };
}

/**
 * blurRows(src, dst, width, rows, r, ww, fw, line): the same pass along each row of an
 * interleaved RGB image (neighbours 3 bytes apart). Each row is copied into `line`
 * between two repeats of its first and two of its last pixel (PIL's clamped edges), so
 * the stencil needs no edge cases.
 */
function rowsKernel(): KernelFunction {
  const [src, dst, width, rows, r, ww, fw, line] = [0, 1, 2, 3, 4, 5, 6, 7];
  const L = new KernelLocals(8);
  const s = stencilLocals(L);
  const [y, rowBytes, rowSrc, pDst, lastPixel] = Array.from({ length: 5 }, () => L.i32());
  const copyPixel = (to: number[], from: number) => [...to, ...get(from), ...op.i32Load, ...op.i32Store];
  const linePlus = (offset: number[]) => [...get(line), ...offset, op.add];
  const code = [
    ...stencilWeights(s, r, ww, fw),
    ...get(width), ...i32c(3), op.mul, ...set(rowBytes),
    ...i32c(0), ...set(y),
    ...whileNot([...get(y), ...get(rows), op.geS], [
      ...get(src), ...get(y), ...get(rowBytes), op.mul, op.add, ...set(rowSrc),
      ...get(dst), ...get(y), ...get(rowBytes), op.mul, op.add, ...set(pDst),
      ...get(rowSrc), ...get(rowBytes), op.add, ...i32c(3), op.sub, ...set(lastPixel),
      // Left edge first: its 4-byte stores spill one byte into the row, which the copy then overwrites.
      ...copyPixel(get(line), rowSrc), ...copyPixel(linePlus(i32c(3)), rowSrc),
      ...linePlus(i32c(6)), ...get(rowSrc), ...get(rowBytes), ...op.memoryCopy,
      ...copyPixel(linePlus([...i32c(6), ...get(rowBytes), op.add]), lastPixel), ...copyPixel(linePlus([...i32c(9), ...get(rowBytes), op.add]), lastPixel),
      ...linePlus(i32c(6)), ...set(s.pHere),
      ...linePlus(i32c(3)), ...set(s.pAbove),
      ...linePlus(i32c(9)), ...set(s.pBelow),
      // Edge samples: radius 0 → the neighbours; radius 1 → two pixels away.
      ...get(s.pAbove), ...get(line), ...get(r), op.eqz, op.select, ...set(s.pEA),
      ...get(s.pBelow), ...linePlus(i32c(12)), ...get(r), op.eqz, op.select, ...set(s.pEB),
      ...i32c(0), ...set(s.j),
      ...whileNot([...get(s.j), ...get(rowBytes), op.geS], [...stencil16(s, pDst), ...increment(s.j, i32c(16))]),
      ...increment(y, i32c(1)),
    ]),
  ];
  return { name: "blurRows", params: [I32, I32, I32, I32, I32, I32, I32, I32], results: [], locals: L.declaration(), code };
}

export type BlurColumns = (src: number, dst: number, rowLength: number, rows: number, r: number, ww: number, fw: number) => void;
export type BlurRows = (src: number, dst: number, width: number, rows: number, r: number, ww: number, fw: number, line: number) => void;

const instantiate = kernelInstantiator(() => kernelModule([columnsKernel(), rowsKernel()]));

/** The kernels bound to `memory`, or null where WebAssembly SIMD is unavailable (callers use the scalar pass). */
export function instantiateBoxBlur(memory: WebAssembly.Memory): { columns: BlurColumns; rows: BlurRows } | null {
  const exports = instantiate(memory);
  return exports ? { columns: exports.blurColumns as BlurColumns, rows: exports.blurRows as BlurRows } : null;
}
