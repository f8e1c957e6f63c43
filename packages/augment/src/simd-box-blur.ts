/**
 * One PIL box-blur pass (radius 0 or 1, i.e. every sigma ≤ 2) down the columns of an
 * interleaved image, as a hand-assembled WebAssembly SIMD kernel: 16 samples per step,
 * same integer arithmetic as the scalar pass. With S the centre-window sum and E the two
 * fractional-edge samples, out = (S·ww + E·fw + 2^23) >> 24, computed without leaving
 * 32 bits as (hi + (lo >> 8)) >> 16 with hi = S·(ww>>8) + E·(fw>>8) and
 * lo = S·(ww&255) + E·(fw&255) + 2^23 (exact: 2^8·hi + lo is the full sum).
 *
 * Exported function: blurColumns(src, dst, rowLength, rows, r, ww, fw), byte offsets into
 * the imported memory; it reads and writes up to 15 bytes past each row (callers leave slack).
 */

import { I32, V128, uleb, get, set, i32c, simd, section, kernelInstantiator } from "./wasm-encoding";

// Locals: parameters first, then i32 and v128 temporaries.
const [src, dst, rowLength, rows, r, ww, fw] = [0, 1, 2, 3, 4, 5, 6];
const [y, last, pHere, pAbove, pBelow, pEA, pEB, pDst, j, rowStart] = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const [WH, WL, FH, FL, C23, R16, S16, E16, S32, E32] = [17, 18, 19, 20, 21, 22, 23, 24, 25, 26];

const op = {
  add: 0x6a, sub: 0x6b, mul: 0x6c, and: 0x71, shrU: 0x76, eqz: 0x45, ltS: 0x48, gtS: 0x4a, geS: 0x4e, select: 0x1b,
  block: [0x02, 0x40], loop: [0x03, 0x40], end: 0x0b, br: 0x0c, brIf: 0x0d,
};
const v = {
  load8x8U: (offset: number) => simd(0x02, 0, ...uleb(offset)),
  store: simd(0x0b, 0, 0),
  i16Splat: simd(0x10), i32Splat: simd(0x11),
  i8NarrowI16U: simd(0x66), i16NarrowI32U: simd(0x86),
  i16Add: simd(0x8e), i16Mul: simd(0x95),
  i32ExtendLowU: simd(0xa9), i32ExtendHighU: simd(0xaa),
  i32ShrU: simd(0xad), i32Add: simd(0xae), i32Mul: simd(0xb5),
};

/** (S32·WH + E32·FH + ((S32·WL + E32·FL + C23) >> 8)) >> 16 on the stack. */
const quarter = [
  ...get(S32), ...get(WH), ...v.i32Mul, ...get(E32), ...get(FH), ...v.i32Mul, ...v.i32Add,
  ...get(S32), ...get(WL), ...v.i32Mul, ...get(E32), ...get(FL), ...v.i32Mul, ...v.i32Add, ...get(C23), ...v.i32Add,
  ...i32c(8), ...v.i32ShrU, ...v.i32Add, ...i32c(16), ...v.i32ShrU,
];

const at = (base: number, offset: number) => [...get(base), ...get(j), op.add, ...v.load8x8U(offset)];

/** Eight output samples at byte offset `offset` of the current 16, as i16x8 on the stack. */
const half = (offset: number) => [
  ...at(pHere, offset), ...at(pAbove, offset), ...at(pBelow, offset), ...v.i16Add, ...get(R16), ...v.i16Mul, ...v.i16Add, ...set(S16),
  ...at(pEA, offset), ...at(pEB, offset), ...v.i16Add, ...set(E16),
  ...get(S16), ...v.i32ExtendLowU, ...set(S32), ...get(E16), ...v.i32ExtendLowU, ...set(E32), ...quarter,
  ...get(S16), ...v.i32ExtendHighU, ...set(S32), ...get(E16), ...v.i32ExtendHighU, ...set(E32), ...quarter,
  ...v.i16NarrowI32U,
];

/** src + row·rowLength on the stack. */
const rowPointer = (row: number[]) => [...get(src), ...row, ...get(rowLength), op.mul, op.add];

const body = [
  ...get(ww), ...i32c(8), op.shrU, ...v.i32Splat, ...set(WH),
  ...get(ww), ...i32c(255), op.and, ...v.i32Splat, ...set(WL),
  ...get(fw), ...i32c(8), op.shrU, ...v.i32Splat, ...set(FH),
  ...get(fw), ...i32c(255), op.and, ...v.i32Splat, ...set(FL),
  ...i32c(8388608), ...v.i32Splat, ...set(C23),
  ...get(r), ...v.i16Splat, ...set(R16),
  ...get(rows), ...i32c(1), op.sub, ...set(last),
  ...i32c(0), ...set(y),
  ...op.block, ...op.loop,
  ...get(y), ...get(rows), op.geS, op.brIf, 1,
  ...get(y), ...get(rowLength), op.mul, ...set(rowStart),
  ...get(src), ...get(rowStart), op.add, ...set(pHere),
  ...get(dst), ...get(rowStart), op.add, ...set(pDst),
  // above = max(y − 1, 0), below = min(y + 1, last)
  ...rowPointer([...get(y), ...i32c(1), op.sub, ...i32c(0), ...get(y), ...i32c(0), op.gtS, op.select]), ...set(pAbove),
  ...rowPointer([...get(y), ...i32c(1), op.add, ...get(last), ...get(y), ...get(last), op.ltS, op.select]), ...set(pBelow),
  // edge rows: radius 0 → above / below; radius 1 → max(y − 2, 0) / min(y + 2, last)
  ...get(pAbove), ...rowPointer([...get(y), ...i32c(2), op.sub, ...i32c(0), ...get(y), ...i32c(1), op.gtS, op.select]), ...get(r), op.eqz, op.select, ...set(pEA),
  ...get(pBelow), ...rowPointer([...get(y), ...i32c(2), op.add, ...get(last), ...get(y), ...i32c(2), op.add, ...get(last), op.ltS, op.select]), ...get(r), op.eqz, op.select, ...set(pEB),
  ...i32c(0), ...set(j),
  ...op.block, ...op.loop,
  ...get(j), ...get(rowLength), op.geS, op.brIf, 1,
  ...get(pDst), ...get(j), op.add,
  ...half(0), ...half(8), ...v.i8NarrowI16U, ...v.store,
  ...get(j), ...i32c(16), op.add, ...set(j),
  op.br, 0,
  op.end, op.end,
  ...get(y), ...i32c(1), op.add, ...set(y),
  op.br, 0,
  op.end, op.end,
  op.end,
];

function moduleBytes(): Uint8Array {
  const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
  const locals = [2, 10, I32, 10, V128];
  const code = [...locals, ...body];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 7, I32, I32, I32, I32, I32, I32, I32, 0]),
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 0x01]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name("blurColumns"), 0x00, 0]),
    ...section(10, [1, ...uleb(code.length), ...code]),
  ]);
}

export type BlurColumns = (src: number, dst: number, rowLength: number, rows: number, r: number, ww: number, fw: number) => void;

const instantiate = kernelInstantiator(moduleBytes);

/** The kernel bound to `memory`, or null where WebAssembly SIMD is unavailable (callers use the scalar pass). */
export function instantiateBlurColumns(memory: WebAssembly.Memory): BlurColumns | null {
  const exports = instantiate(memory);
  return exports ? (exports.blurColumns as BlurColumns) : null;
}
