/**
 * The pass of PIL's 8-bit bicubic resample (pil-resample.ts) as a hand-assembled
 * WebAssembly SIMD kernel, same integer arithmetic (22-bit weights, sums from 2^21,
 * arithmetic shift by 22, clip to 0..255 by saturating narrows):
 * resampleColumns(src, stride, dst, rowBytes, outHeight, bounds, weights, ksize, shift):
 * output row yy (rowBytes bytes at dst + yy·rowBytes) is Σ_k weights[yy·ksize + k] ·
 * input row (bounds[2yy] − shift + k) (rows `stride` bytes apart from src), k below
 * bounds[2yy + 1]; bounds are (first tap, tap count) int32 pairs and weights int32 rows of
 * ksize, as ResampleCoefficients holds them. 16 samples per step, which share their taps:
 * PIL's vertical pass directly, and its horizontal pass on the transposed image
 * (simd-transpose.ts). It reads and writes up to 15 bytes past each row. All pointers are
 * byte offsets into the imported memory.
 */

import { I32, V128, uleb, get, set, tee, i32c, simd, section, kernelInstantiator } from "./wasm-encoding";

const PRECISION_BITS = 22;

const op = {
  add: 0x6a, sub: 0x6b, mul: 0x6c, geS: 0x4e, geU: 0x4f,
  block: [0x02, 0x40], loop: [0x03, 0x40], end: 0x0b, br: 0x0c, brIf: 0x0d,
  i32Load: (offset: number) => [0x28, 0, ...uleb(offset)],
};
const v = {
  load8x8U: (offset: number) => simd(0x02, 0, ...uleb(offset)),
  load32Splat: simd(0x09, 0, 0),
  store: simd(0x0b, 0, 0),
  i32Splat: simd(0x11),
  i8NarrowI16U: simd(0x66),
  i16NarrowI32S: simd(0x85),
  i32ExtendLowU: simd(0xa9),
  i32ExtendHighU: simd(0xaa),
  i32ShrS: simd(0xac),
  i32Add: simd(0xae),
  i32Mul: simd(0xb5),
};

/** while (cond) { body } as block/loop, cond pushing 1 to leave. */
const whileNot = (exit: number[], body: number[]) => [...op.block, ...op.loop, ...exit, op.brIf, 1, ...body, op.br, 0, op.end, op.end];
const inc = (local: number, by: number[]) => [...get(local), ...by, op.add, ...set(local)];
const shifted = (local: number) => [...get(local), ...i32c(PRECISION_BITS), ...v.i32ShrS];

function columnsBody(): { params: number; locals: number[]; code: number[] } {
  const [src, stride, dst, rowBytes, outHeight, bounds, weights, ksize, shift] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const [yy, j, p, wp, end, first, wrow, drow, bp] = [9, 10, 11, 12, 13, 14, 15, 16, 17];
  const [a0, a1, a2, a3, half, w, lo, hi] = [18, 19, 20, 21, 22, 23, 24, 25];
  const madd = (a: number, part: number, ext: number[]) => [...get(a), ...get(part), ...ext, ...get(w), ...v.i32Mul, ...v.i32Add, ...set(a)];
  const code = [
    ...i32c(1 << (PRECISION_BITS - 1)), ...v.i32Splat, ...set(half),
    ...i32c(0), ...set(yy), ...get(bounds), ...set(bp), ...get(weights), ...set(wrow),
    ...whileNot([...get(yy), ...get(outHeight), op.geS], [
      ...get(src), ...get(bp), ...op.i32Load(0), ...get(shift), op.sub, ...get(stride), op.mul, op.add, ...set(first),
      ...get(wrow), ...get(bp), ...op.i32Load(4), ...i32c(4), op.mul, op.add, ...set(end),
      ...get(dst), ...get(yy), ...get(rowBytes), op.mul, op.add, ...set(drow),
      ...i32c(0), ...set(j),
      ...whileNot([...get(j), ...get(rowBytes), op.geS], [
        ...get(half), ...tee(a0), ...tee(a1), ...tee(a2), ...set(a3),
        ...get(first), ...get(j), op.add, ...set(p), ...get(wrow), ...set(wp),
        ...whileNot([...get(wp), ...get(end), op.geU], [
          ...get(wp), ...v.load32Splat, ...set(w),
          ...get(p), ...v.load8x8U(0), ...set(lo), ...get(p), ...v.load8x8U(8), ...set(hi),
          ...madd(a0, lo, v.i32ExtendLowU), ...madd(a1, lo, v.i32ExtendHighU), ...madd(a2, hi, v.i32ExtendLowU), ...madd(a3, hi, v.i32ExtendHighU),
          ...inc(p, get(stride)), ...inc(wp, i32c(4)),
        ]),
        ...get(drow), ...get(j), op.add,
        ...shifted(a0), ...shifted(a1), ...v.i16NarrowI32S, ...shifted(a2), ...shifted(a3), ...v.i16NarrowI32S, ...v.i8NarrowI16U,
        ...v.store,
        ...inc(j, i32c(16)),
      ]),
      ...inc(yy, i32c(1)), ...inc(bp, i32c(8)), ...get(wrow), ...get(ksize), ...i32c(4), op.mul, op.add, ...set(wrow),
    ]),
  ];
  return { params: 9, locals: [9, I32, 8, V128], code };
}

function moduleBytes(): Uint8Array {
  const name = (s: string) => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
  const body = columnsBody();
  const entry = [...uleb(body.locals.length / 2), ...body.locals, ...body.code, op.end];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, body.params, ...Array<number>(body.params).fill(I32), 0]),
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 0x01]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name("resampleColumns"), 0x00, 0]),
    ...section(10, [1, ...uleb(entry.length), ...entry]),
  ]);
}

export type ResampleColumns = (src: number, stride: number, dst: number, rowBytes: number, outHeight: number, bounds: number, weights: number, ksize: number, shift: number) => void;

const instantiate = kernelInstantiator(moduleBytes);

export interface ResampleKernels {
  columns: ResampleColumns;
}

/** The kernel bound to `memory`, or null where WebAssembly SIMD is unavailable (callers use the scalar passes). */
export function instantiateResample(memory: WebAssembly.Memory): ResampleKernels | null {
  const exports = instantiate(memory);
  return exports ? { columns: exports.resampleColumns as ResampleColumns } : null;
}
