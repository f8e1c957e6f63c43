/**
 * The two passes of PIL's 8-bit bicubic resample (pil-resample.ts) as a hand-assembled
 * WebAssembly SIMD kernel, same integer arithmetic (22-bit weights, sums from 2^21,
 * arithmetic shift by 22, clip to 0..255 by saturating narrows):
 * - deinterleave(src, pixels, dst, planeStride): the source image as R, G, B planes, once
 *   per image, so the horizontal pass reads each channel's taps as consecutive bytes.
 * - resampleRows(planes, planeStride, width, rows, dst, outWidth, bounds, weights,
 *   weightStride): PIL's horizontal pass from the planes (rows `width` bytes apart) into
 *   interleaved RGB, one output pixel at a time, 8 taps of each channel per step with
 *   i32x4.dot_i16x8_s: each 22-bit weight w is split as w = 2^11·(w >> 11) + (w & 2047),
 *   both halves fit i16, and 2^11·Σ x·hi + Σ x·lo is the exact sum. bounds here are
 *   (first tap, 8-tap groups) pairs and weights, per output pixel (weightStride bytes
 *   apart), 32 bytes per group: hi halves of taps 0..7, then lo halves (uploadRowWeights
 *   prepares them; padding taps weigh 0). It reads up to 8 bytes past the last tap.
 * - resampleColumns(src, stride, dst, rowBytes, outHeight, bounds, weights, ksize, shift):
 *   PIL's vertical pass, 16 samples of an output row per step; it reads and writes up to
 *   15 bytes past each row.
 * For resampleColumns bounds are (first tap, tap count) int32 pairs and weights int32 rows
 * of ksize, as ResampleCoefficients holds them. All pointers are byte offsets into the
 * imported memory.
 */

import { I32, V128, uleb, get, set, tee, i32c, simd, section, kernelInstantiator, KernelLocals, simdOp } from "./wasm-encoding";

const PRECISION_BITS = 22;

const op = {
  add: 0x6a, sub: 0x6b, mul: 0x6c, geS: 0x4e, geU: 0x4f, ltS: 0x48, select: 0x1b,
  block: [0x02, 0x40], loop: [0x03, 0x40], end: 0x0b, br: 0x0c, brIf: 0x0d,
  i32Load: (offset: number) => [0x28, 0, ...uleb(offset)],
  i32Store: [0x36, 0, 0],
};
const v = {
  load8x8U: (offset: number) => simd(0x02, 0, ...uleb(offset)),
  load32Splat: simd(0x09, 0, 0),
  store: simd(0x0b, 0, 0),
  /** v128.store16_lane / store8_lane of `lane` at the address operand (+ offset). */
  store16Lane: (lane: number) => simd(0x59, 0, 0, lane),
  store8Lane: (lane: number, offset: number) => simd(0x58, 0, offset, lane),
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

/**
 * resampleRows on planar input, two rows per step (they share each output pixel's
 * taps and weights): per output pixel, per row and channel, 8 taps per step as
 * 2^11·dot(x, hi) + dot(x, lo) with i32x4.dot_i16x8_s, the four partial sums added up
 * at the end of the pixel. An odd last row is paired with itself.
 */
function rowsBody(): { params: number; locals: number[]; code: number[] } {
  const [planes, planeStride, width, rows, dst, outWidth, bounds, weights, wstride] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const L = new KernelLocals(9);
  const [y, xx, p, wp, end, rowp, bp, wrow, plane2, rowDelta, d0, d1, dstDelta, rowBytes] = Array.from({ length: 14 }, () => L.i32());
  const [r0, g0, b0, r1, g1, b1, wh, wl, x, half, sums, other] = Array.from({ length: 12 }, () => L.v128());
  const zero = simdOp.i32x4Splat(i32c(0));
  /** acc += 2^11·dot(x, hi) + dot(x, lo) for the 8 samples at `address` widened to i16. */
  const acc = (a: number, address: number[]) => [
    ...address, ...v.load8x8U(0), ...set(x),
    ...get(a), ...get(x), ...get(wh), ...v.i32Dot16, ...i32c(11), ...v.i32Shl, ...v.i32Add, ...get(x), ...get(wl), ...v.i32Dot16, ...v.i32Add, ...set(a),
  ];
  const at = (offset: number[]) => [...get(p), ...offset, op.add];
  /** A shuffle of two i32x4 by 32-bit lanes (0..3 the first, 4..7 the second). */
  const lanes32 = (a: number[], b: number[], picks: number[]) => simdOp.i8x16Shuffle(a, b, picks.flatMap((lane) => [4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3]));
  /** (a0 + a2, a1 + a3, b0 + b2, b1 + b3) */
  const pairSums = (a: number[], b: number[]) => [...lanes32(a, b, [0, 1, 4, 5]), ...lanes32(a, b, [2, 3, 6, 7]), ...v.i32Add];
  /** One row's [R, G, B] sums + 2^21, >> 22, saturated to bytes, stored as exactly 3 bytes at `to`. */
  const store = (r: number, g: number, b: number, to: number) => [
    ...pairSums(get(r), get(g)), ...set(sums),
    ...pairSums(get(b), get(b)), ...set(other),
    ...lanes32(get(sums), get(other), [0, 2, 4, 4]), ...lanes32(get(sums), get(other), [1, 3, 5, 5]), ...v.i32Add,
    ...get(half), ...v.i32Add, ...i32c(PRECISION_BITS), ...v.i32ShrS, ...set(sums), ...get(sums), ...get(sums), ...v.i16NarrowI32S, ...set(sums), ...get(sums), ...get(sums), ...v.i8NarrowI16U, ...set(sums),
    ...get(to), ...get(sums), ...v.store16Lane(0), ...get(to), ...get(sums), ...v.store8Lane(2, 2),
  ];
  const code = [
    ...i32c(1 << (PRECISION_BITS - 1)), ...v.i32Splat, ...set(half),
    ...get(planeStride), ...i32c(2), op.mul, ...set(plane2),
    ...get(outWidth), ...i32c(3), op.mul, ...set(rowBytes),
    ...i32c(0), ...set(y),
    ...whileNot([...get(y), ...get(rows), op.geS], [
      ...get(planes), ...get(y), ...get(width), op.mul, op.add, ...set(rowp),
      ...get(dst), ...get(y), ...get(rowBytes), op.mul, op.add, ...set(d0),
      // The second row of the pair: the next one, or this one again at the end of an odd count.
      ...get(width), ...i32c(0), ...get(y), ...i32c(1), op.add, ...get(rows), op.ltS, op.select, ...set(rowDelta),
      ...get(rowBytes), ...i32c(0), ...get(y), ...i32c(1), op.add, ...get(rows), op.ltS, op.select, ...set(dstDelta),
      ...get(d0), ...get(dstDelta), op.add, ...set(d1),
      ...get(bounds), ...set(bp), ...get(weights), ...set(wrow), ...i32c(0), ...set(xx),
      ...whileNot([...get(xx), ...get(outWidth), op.geS], [
        ...get(rowp), ...get(bp), ...op.i32Load(0), op.add, ...set(p),
        ...get(wrow), ...set(wp),
        ...get(wrow), ...get(bp), ...op.i32Load(4), ...i32c(32), op.mul, op.add, ...set(end),
        ...zero, ...tee(r0), ...tee(g0), ...tee(b0), ...tee(r1), ...tee(g1), ...set(b1),
        ...whileNot([...get(wp), ...get(end), op.geU], [
          ...get(wp), ...v.load(0), ...set(wh), ...get(wp), ...v.load(16), ...set(wl),
          ...acc(r0, get(p)), ...acc(g0, at(get(planeStride))), ...acc(b0, at(get(plane2))),
          ...acc(r1, at(get(rowDelta))), ...acc(g1, at([...get(rowDelta), ...get(planeStride), op.add])), ...acc(b1, at([...get(rowDelta), ...get(plane2), op.add])),
          ...inc(p, i32c(8)), ...inc(wp, i32c(32)),
        ]),
        // Row 1 first: for an odd last row both stores go to the same pixel with the same value.
        ...store(r1, g1, b1, d1), ...store(r0, g0, b0, d0),
        ...inc(d0, i32c(3)), ...inc(d1, i32c(3)), ...inc(bp, i32c(8)), ...inc(wrow, get(wstride)), ...inc(xx, i32c(1)),
      ]),
      ...inc(y, i32c(2)),
    ]),
  ];
  return { params: 9, locals: L.declaration(), code };
}

/**
 * deinterleave(src, pixels, dst, planeStride): interleaved RGB → R, G and B planes
 * planeStride bytes apart, 16 pixels per step (reads up to 47 bytes past the pixels,
 * writes up to 15 past each plane).
 */
function deinterleaveBody(): { params: number; locals: number[]; code: number[] } {
  const [src, pixels, dst, planeStride] = [0, 1, 2, 3];
  const L = new KernelLocals(4);
  const [i, p] = [L.i32(), L.i32()];
  const [v0, v1, v2] = [L.v128(), L.v128(), L.v128()];
  /** Bytes c, c + 3, … of the 48 loaded: the first 11 − (c === 2) from v0, v1, the rest from v2. */
  const plane = (c: number) => {
    const all = Array.from({ length: 16 }, (_, k) => c + 3 * k);
    const fromFirstTwo = all.filter((k) => k < 32);
    const first = simdOp.i8x16Shuffle(get(v0), get(v1), [...fromFirstTwo, ...Array<number>(16 - fromFirstTwo.length).fill(0)]);
    return simdOp.i8x16Shuffle(first, get(v2), all.map((k, lane) => (k < 32 ? lane : 16 + k - 32)));
  };
  const store = (c: number) => [...get(dst), ...get(i), op.add, ...(c === 0 ? [] : [...get(planeStride), ...i32c(c), op.mul, op.add]), ...plane(c), ...v.store];
  const code = [
    ...i32c(0), ...set(i), ...get(src), ...set(p),
    ...whileNot([...get(i), ...get(pixels), op.geS], [
      ...get(p), ...v.load(0), ...set(v0), ...get(p), ...v.load(16), ...set(v1), ...get(p), ...v.load(32), ...set(v2),
      ...store(0), ...store(1), ...store(2),
      ...inc(p, i32c(48)), ...inc(i, i32c(16)),
    ]),
  ];
  return { params: 4, locals: L.declaration(), code };
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
  const bodies = [rowsBody(), columnsBody(), deinterleaveBody()];
  const type = (params: number) => [0x60, params, ...Array<number>(params).fill(I32), 0];
  const codeEntry = (b: { locals: number[]; code: number[] }) => {
    const entry = [...uleb(b.locals.length / 2), ...b.locals, ...b.code, op.end];
    return [...uleb(entry.length), ...entry];
  };
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [3, ...bodies.flatMap((b) => type(b.params))]),
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x00, 0x01]),
    ...section(3, [3, 0, 1, 2]),
    ...section(7, [3, ...name("resampleRows"), 0x00, 0, ...name("resampleColumns"), 0x00, 1, ...name("deinterleave"), 0x00, 2]),
    ...section(10, [3, ...bodies.flatMap(codeEntry)]),
  ]);
}

export type ResampleRows = (planes: number, planeStride: number, width: number, rows: number, dst: number, outWidth: number, bounds: number, weights: number, weightStride: number) => void;
export type Deinterleave = (src: number, pixels: number, dst: number, planeStride: number) => void;
export type ResampleColumns = (src: number, stride: number, dst: number, rowBytes: number, outHeight: number, bounds: number, weights: number, ksize: number, shift: number) => void;

const instantiate = kernelInstantiator(moduleBytes);

/** The kernels bound to `memory`, or null where WebAssembly SIMD is unavailable (callers use the scalar passes). */
export function instantiateResample(memory: WebAssembly.Memory): { rows: ResampleRows; columns: ResampleColumns; deinterleave: Deinterleave } | null {
  const exports = instantiate(memory);
  return exports ? { rows: exports.resampleRows as ResampleRows, columns: exports.resampleColumns as ResampleColumns, deinterleave: exports.deinterleave as Deinterleave } : null;
}
