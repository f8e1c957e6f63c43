/**
 * The two passes of PIL's 8-bit bicubic resample (pil-resample.ts) as a hand-assembled
 * WebAssembly SIMD kernel, same integer arithmetic (22-bit weights, sums from 2^21,
 * arithmetic shift by 22, clip to 0..255 by saturating narrows):
 * - resampleRows(src, srcStride, rows, dst, outWidth, bounds, weights, weightStride):
 *   PIL's horizontal pass on interleaved RGB, one output pixel at a time, four taps per
 *   step with i32x4.dot_i16x8_s: each 22-bit weight w is split as w = 2^11·(w >> 11) +
 *   (w & 2047), both halves fit i16, and 2^11·Σ x·hi + Σ x·lo is the exact sum. bounds
 *   here are (byte offset of the first tap, 4-tap groups) pairs and weights, per output
 *   pixel (weightStride bytes apart), 32 bytes per group: hi halves of taps 0..3 twice,
 *   then lo halves twice (rowWeights prepares them; padding taps weigh 0). It reads up to
 *   16 bytes past the last tap and writes 1 byte past the last output pixel.
 * - resampleColumns(src, stride, dst, rowBytes, outHeight, bounds, weights, ksize, shift):
 *   PIL's vertical pass, 16 samples of an output row per step; it reads and writes up to
 *   15 bytes past each row.
 * For resampleColumns bounds are (first tap, tap count) int32 pairs and weights int32 rows
 * of ksize, as ResampleCoefficients holds them. All pointers are byte offsets into the
 * imported memory.
 */

import { I32, V128, uleb, get, set, tee, i32c, simd, section, kernelInstantiator } from "./wasm-encoding";

const PRECISION_BITS = 22;

const op = {
  add: 0x6a, sub: 0x6b, mul: 0x6c, geS: 0x4e, geU: 0x4f,
  block: [0x02, 0x40], loop: [0x03, 0x40], end: 0x0b, br: 0x0c, brIf: 0x0d,
  i32Load: (offset: number) => [0x28, 0, ...uleb(offset)],
  i32Store: [0x36, 0, 0],
};
const v = {
  load8x8U: (offset: number) => simd(0x02, 0, ...uleb(offset)),
  load32Splat: simd(0x09, 0, 0),
  store: simd(0x0b, 0, 0),
  i32Splat: simd(0x11),
  load: (offset: number) => simd(0x00, 0, ...uleb(offset)),
  shuffle: (lanes: number[]) => simd(0x0d, ...lanes),
  i32Shl: simd(0xab),
  i32Dot16: simd(0xba),
  i32ExtractLane0: simd(0x1b, 0),
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

function rowsBody(): { params: number; locals: number[]; code: number[] } {
  const [src, srcStride, rows, dst, outWidth, bounds, weights, wstride] = [0, 1, 2, 3, 4, 5, 6, 7];
  const [y, xx, p, wp, end, rowp, bp, wrow] = [8, 9, 10, 11, 12, 13, 14, 15];
  const [rgHi, rgLo, bHi, bLo, zero, half, px, rg, bl, wh, wl] = [16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26];
  const z = 16; // byte 0 of the zero vector: widens u8 to i16
  const acc = (a: number, samples: number, weight: number) => [...get(a), ...get(samples), ...get(weight), ...v.i32Dot16, ...v.i32Add, ...set(a)];
  const combined = (hi: number, lo: number) => [...get(hi), ...i32c(11), ...v.i32Shl, ...get(lo), ...v.i32Add];
  const code = [
    ...i32c(1 << (PRECISION_BITS - 1)), ...v.i32Splat, ...set(half),
    ...i32c(0), ...set(y),
    ...whileNot([...get(y), ...get(rows), op.geS], [
      ...get(src), ...get(y), ...get(srcStride), op.mul, op.add, ...set(rowp),
      ...get(bounds), ...set(bp), ...get(weights), ...set(wrow), ...i32c(0), ...set(xx),
      ...whileNot([...get(xx), ...get(outWidth), op.geS], [
        ...get(rowp), ...get(bp), ...op.i32Load(0), op.add, ...set(p),
        ...get(wrow), ...set(wp),
        ...get(wrow), ...get(bp), ...op.i32Load(4), ...i32c(32), op.mul, op.add, ...set(end),
        ...get(zero), ...tee(rgHi), ...tee(rgLo), ...tee(bHi), ...set(bLo),
        // Four taps per step: R and G of pixels 0..3 as i16 lanes, B in a second vector; 16-bit dots with the weights split at bit 11.
        ...whileNot([...get(wp), ...get(end), op.geU], [
          ...get(p), ...v.load(0), ...set(px),
          ...get(px), ...get(zero), ...v.shuffle([0, z, 3, z, 6, z, 9, z, 1, z, 4, z, 7, z, 10, z]), ...set(rg),
          ...get(px), ...get(zero), ...v.shuffle([2, z, 5, z, 8, z, 11, z, z, z, z, z, z, z, z, z]), ...set(bl),
          ...get(wp), ...v.load(0), ...set(wh), ...get(wp), ...v.load(16), ...set(wl),
          ...acc(rgHi, rg, wh), ...acc(rgLo, rg, wl), ...acc(bHi, bl, wh), ...acc(bLo, bl, wl),
          ...inc(p, i32c(12)), ...inc(wp, i32c(32)),
        ]),
        // [R01, R23, G01, G23] and [B01, B23, 0, 0] → [R, G, B, B] + 2^21, >> 22, saturate to bytes.
        ...combined(rgHi, rgLo), ...set(rg), ...combined(bHi, bLo), ...set(bl),
        ...get(dst),
        ...get(rg), ...get(bl), ...v.shuffle([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 16, 17, 18, 19]),
        ...get(rg), ...get(bl), ...v.shuffle([4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 20, 21, 22, 23]),
        ...v.i32Add, ...get(half), ...v.i32Add, ...i32c(PRECISION_BITS), ...v.i32ShrS, ...tee(px), ...get(px), ...v.i16NarrowI32S, ...tee(px), ...get(px), ...v.i8NarrowI16U, ...v.i32ExtractLane0,
        ...op.i32Store,
        ...inc(dst, i32c(3)), ...inc(bp, i32c(8)), ...inc(wrow, get(wstride)), ...inc(xx, i32c(1)),
      ]),
      ...inc(y, i32c(1)),
    ]),
  ];
  return { params: 8, locals: [8, I32, 11, V128], code };
}

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
  const bodies = [rowsBody(), columnsBody()];
  const type = (params: number) => [0x60, params, ...Array<number>(params).fill(I32), 0];
  const codeEntry = (b: { locals: number[]; code: number[] }) => {
    const entry = [b.locals.length / 2, ...b.locals, ...b.code, op.end];
    return [...uleb(entry.length), ...entry];
  };
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [2, ...type(bodies[0].params), ...type(bodies[1].params)]),
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 0x01]),
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name("resampleRows"), 0x00, 0, ...name("resampleColumns"), 0x00, 1]),
    ...section(10, [2, ...codeEntry(bodies[0]), ...codeEntry(bodies[1])]),
  ]);
}

export type ResampleRows = (src: number, srcStride: number, rows: number, dst: number, outWidth: number, bounds: number, weights: number, weightStride: number) => void;
export type ResampleColumns = (src: number, stride: number, dst: number, rowBytes: number, outHeight: number, bounds: number, weights: number, ksize: number, shift: number) => void;

const instantiate = kernelInstantiator(moduleBytes);

/** The kernels bound to `memory`, or null where WebAssembly SIMD is unavailable (callers use the scalar passes). */
export function instantiateResample(memory: WebAssembly.Memory): { rows: ResampleRows; columns: ResampleColumns } | null {
  const exports = instantiate(memory);
  return exports ? { rows: exports.resampleRows as ResampleRows, columns: exports.resampleColumns as ResampleColumns } : null;
}
