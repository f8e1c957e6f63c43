/**
 * The colour ops of color-ops.ts as hand-assembled WebAssembly SIMD kernels, with the
 * same results as the scalar code (which stays the reference and the fallback):
 * WebAssembly's f32 operations round like Math.fround and never contract a multiply-add,
 * so evaluating PIL's float32 formulas in the same order gives the same bits (the hue
 * kernel's float32 replacements of PIL's double steps are checked exhaustively). Exported functions, on interleaved RGB at byte offsets of the imported memory:
 * - blend(ptr, bytes, constant, alpha): Image.blend(constant, x, alpha) per sample, in
 *   place (brightness: constant 0; contrast: constant = the luma mean);
 * - lumaSum(ptr, pixels) → Σ PIL luma;
 * - saturation(src, dst, pixels, alpha): ImageEnhance.Color (blend against the pixel's luma);
 * - hue(src, dst, pixels, shift): PIL's 8-bit HSV round trip with the hue shifted;
 * - gray(src, dst, pixels): convert("L") replicated to three channels.
 * The per-pixel kernels take 4 pixels per step from one 16-byte load and store 16 bytes
 * (the last 4 are overwritten by the next step). They write to another buffer than they
 * read: in place, each load would overlap the previous step's store, which the CPU cannot
 * forward (a stall of ~15 cycles per step). All read and write up to 64 bytes past the
 * image (callers leave slack); lumaSum ignores those bytes.
 */

import {
  F32, I32, V128, f32c, get, set, i32c, increment, kernelInstantiator, kernelModule, KernelLocals, simdOp as v, v128Const, v128Load, v128Store, wasmOp as op, whileNot,
  type KernelFunction,
} from "./wasm-encoding";

const Z = 16; // a lane index into the zero vector (second shuffle operand)
const zero = v128Const(Array<number>(16).fill(0));
const splat32 = (value: number) => v.i32x4Splat(i32c(value));
const splatF32 = (value: number) => v.f32x4Splat(f32c(value));

/** Channel c (0..2) of the 4 pixels in `pixels` (16 loaded bytes) as i32x4. */
const channel = (pixels: number[], c: number) => v.i8x16Shuffle(pixels, zero, [c, Z, Z, Z, c + 3, Z, Z, Z, c + 6, Z, Z, Z, c + 9, Z, Z, Z]);

/**
 * 4 pixels from i32x4 channels r, g, b as 12 interleaved bytes (and 4 bytes the next
 * step overwrites), saturated to 0..255 by the narrowing, which is the clip of every
 * PIL op here.
 */
const packPixels = (r: number[], g: number[], b: number[]) => {
  const bytes = v.i8x16NarrowI16x8U(v.i16x8NarrowI32x4S(r, g), v.i16x8NarrowI32x4S(b, b));
  return v.i8x16Shuffle(bytes, bytes, [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, 12, 13, 14, 15]);
};

/** PIL's L: (19595·r + 38470·g + 7471·b + 2^15) >> 16 on i32x4. */
const luma = (r: number[], g: number[], b: number[]) =>
  v.i32x4ShrU(v.i32x4Add(v.i32x4Add(v.i32x4Mul(r, splat32(19595)), v.i32x4Mul(g, splat32(38470))), v.i32x4Add(v.i32x4Mul(b, splat32(7471)), splat32(32768))), i32c(16));

/** in1 + alpha·(in2 − in1) in float32 (Image.blend before its clip), i32x4 in, f32x4 out. */
const blendF32 = (in1: number[], in2: number[], alpha: number[]) => v.f32x4Add(v.f32x4ConvertI32x4S(in1), v.f32x4Mul(alpha, v.f32x4ConvertI32x4S(v.i32x4Sub(in2, in1))));

/**
 * Truncation toward zero of |x| < 2^22 (every value these kernels truncate; the clip
 * follows in packPixels' saturating narrows): f32x4.trunc, then adding 1.5·2^23 leaves the
 * integer (signed) in the low mantissa bits. Three x64 instructions where
 * i32x4.trunc_sat_f32x4_s takes seven (its NaN and overflow handling); a NaN lane (the hue
 * of a gray pixel, which is replaced by v at the end) gives garbage instead of 0.
 */
const truncate = (x: number[]) => v.i32x4Sub(v.f32x4Add(v.f32x4Trunc(x), splatF32(1.5 * 2 ** 23)), splat32(0x4b400000));

/** A loop over the pixels 4 at a time from src to dst: `step` maps the 16 loaded bytes (local `loaded`) to the 16 to store. */
function pixelLoop(L: KernelLocals, src: number, dst: number, pixels: number, loaded: number, step: number[]): number[] {
  const [p, q, end] = [L.i32(), L.i32(), L.i32()];
  return [
    ...get(src), ...set(p),
    ...get(dst), ...set(q),
    ...get(src), ...get(pixels), ...i32c(3), op.i32Mul, op.i32Add, ...set(end),
    ...whileNot([...get(p), ...get(end), op.i32GeS], [
      ...setLocal(loaded, v128Load(get(p))),
      ...v128Store(get(q), step),
      ...increment(p, i32c(12)),
      ...increment(q, i32c(12)),
    ]),
  ];
}

function setLocal(local: number, value: number[]): number[] {
  return [...value, ...set(local)];
}

/** blend(ptr, bytes, constant, alpha): 16 samples per step, widened to four i32x4. */
function blendKernel(): KernelFunction {
  const [ptr, bytes, constant, alpha] = [0, 1, 2, 3];
  const [p, end] = [4, 5];
  const [x, c, a, w0, w1] = [6, 7, 8, 9, 10];
  const blended = (wide: number[]) => truncate(blendF32(get(c), wide, get(a)));
  const halfBytes = (half: number[]) =>
    v.i16x8NarrowI32x4S(blended(v.i32x4ExtendLowI16x8U(half)), blended(v.i32x4ExtendHighI16x8U(half)));
  const code = [
    ...setLocal(c, v.i32x4Splat(get(constant))),
    ...setLocal(a, v.f32x4Splat(get(alpha))),
    ...get(ptr), ...set(p),
    ...get(ptr), ...get(bytes), op.i32Add, ...set(end),
    ...whileNot([...get(p), ...get(end), op.i32GeS], [
      ...setLocal(x, v128Load(get(p))),
      ...setLocal(w0, v.i16x8ExtendLowI8x16U(get(x))),
      ...setLocal(w1, v.i16x8ExtendHighI8x16U(get(x))),
      ...v128Store(get(p), v.i8x16NarrowI16x8U(halfBytes(get(w0)), halfBytes(get(w1)))),
      ...increment(p, i32c(16)),
    ]),
  ];
  return { name: "blend", params: [I32, I32, I32, F32], results: [], locals: [2, I32, 5, V128], code };
}

/** lumaSum(ptr, pixels) → i32: lanes past the last pixel are masked out. */
function lumaSumKernel(): KernelFunction {
  const [ptr, pixels] = [0, 1];
  const [p, end] = [2, 3];
  const [loaded, sum, index, limit] = [4, 5, 6, 7];
  const l = luma(channel(get(loaded), 0), channel(get(loaded), 1), channel(get(loaded), 2));
  const code = [
    ...setLocal(sum, zero),
    ...setLocal(index, v128Const([0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0])),
    ...setLocal(limit, v.i32x4Splat(get(pixels))),
    ...get(ptr), ...set(p),
    ...get(ptr), ...get(pixels), ...i32c(3), op.i32Mul, op.i32Add, ...set(end),
    ...whileNot([...get(p), ...get(end), op.i32GeS], [
      ...setLocal(loaded, v128Load(get(p))),
      ...setLocal(sum, v.i32x4Add(get(sum), v.v128And(l, v.i32x4LtS(get(index), get(limit))))),
      ...setLocal(index, v.i32x4Add(get(index), splat32(4))),
      ...increment(p, i32c(12)),
    ]),
    // Horizontal sum of the four lanes.
    ...setLocal(sum, v.i32x4Add(get(sum), v.i8x16Shuffle(get(sum), get(sum), [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]))),
    ...setLocal(sum, v.i32x4Add(get(sum), v.i8x16Shuffle(get(sum), get(sum), [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11]))),
    ...get(sum), 0xfd, 0x1b, 0, // i32x4.extract_lane 0
  ];
  return { name: "lumaSum", params: [I32, I32], results: [I32], locals: [2, I32, 4, V128], code };
}

/** saturation(src, dst, pixels, alpha): blend(L, x, alpha) per channel. */
function saturationKernel(): KernelFunction {
  const [src, dst, pixels, alpha] = [0, 1, 2, 3];
  const L = new KernelLocals(4);
  const [loaded, r, g, b, l] = Array.from({ length: 5 }, () => L.v128());
  const a = L.constant(v.f32x4Splat(get(alpha)));
  const step = [
    ...setLocal(r, channel(get(loaded), 0)),
    ...setLocal(g, channel(get(loaded), 1)),
    ...setLocal(b, channel(get(loaded), 2)),
    ...setLocal(l, luma(get(r), get(g), get(b))),
    ...packPixels(truncate(blendF32(get(l), get(r), a)), truncate(blendF32(get(l), get(g), a)), truncate(blendF32(get(l), get(b), a))),
  ];
  const loop = pixelLoop(L, src, dst, pixels, loaded, step);
  return { name: "saturation", params: [I32, I32, I32, F32], results: [], locals: L.declaration(), code: [...L.preamble, ...loop] };
}

/** gray(src, dst, pixels): L in all three channels. */
function grayKernel(): KernelFunction {
  const [src, dst, pixels] = [0, 1, 2];
  const L = new KernelLocals(3);
  const [loaded, l] = [L.v128(), L.v128()];
  const step = [...setLocal(l, luma(channel(get(loaded), 0), channel(get(loaded), 1), channel(get(loaded), 2))), ...packPixels(get(l), get(l), get(l))];
  const loop = pixelLoop(L, src, dst, pixels, loaded, step);
  return { name: "gray", params: [I32, I32, I32], results: [], locals: L.declaration(), code: loop };
}

/**
 * Which of hsv2rgb's (v, p, x) each of R, G, B is, as a byte index 0..2, by sector 0..5
 * ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q), x being t in even
 * sectors and q in odd ones), then 6 for gray pixels (v, v, v).
 */
const SOURCES = [[0, 2, 1], [2, 0, 1], [1, 0, 2], [1, 2, 0], [2, 1, 0], [0, 1, 2], [0, 0, 0]];

/** A swizzle table: SOURCES[s][channels[i]] at 7i + s. */
const channelSources = (channels: number[]) => Array.from({ length: 16 }, (_, k) => (k < 7 * channels.length ? SOURCES[k % 7][channels[Math.floor(k / 7)]] : 0));

/** Byte 4k of every lane k: added to the lanes' byte indices 0..2 to address the 16-byte vector. */
const LANE_BASES = v128Const([0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12]);

/**
 * hue(src, dst, pixels, shift): color-ops.ts' shiftHue on 4 pixels per step: PIL's rgb2hsv
 * (float32 quotients, 8-bit H and S) and hsv2rgb (i, f, fs as PIL, then p, q, t), all in
 * float32. PIL computes some of these steps in double; the float32 steps here give the
 * same bytes for every input, as checked exhaustively (see the comments and tests).
 */
function hueKernel(): KernelFunction {
  const params = { src: 0, dst: 1, pixels: 2, shift: 3 };
  const L = new KernelLocals(4);
  const [loaded, r, g, b, maxc, vF, crF, dr, dg, db, h, q, gray, shifted, h6, sector, fraction, fs, odd, temp] = Array.from({ length: 20 }, () => L.v128());
  const [hue8, sat8, pOut, xOut, isR, isG] = Array.from({ length: 6 }, () => L.v128());
  const i32s = (value: number) => L.constant(splat32(value));
  const f32s = (value: number) => L.constant(splatF32(value));
  const shiftV = L.constant(v.i32x4Splat(get(params.shift)));

  /**
   * y (in [0, 2^22)) rounded to the nearest integer, ties to even, as i32x4: adding 2^23 in
   * float32 leaves the integer in the low mantissa bits. PIL rounds p, q and t half up in
   * double; this float32 arithmetic gives the same integers for every (s, v, h) (see the
   * test, which checks all of them).
   */
  const rounded = (y: number[]) => v.i32x4Sub(v.f32x4Add(y, f32s(2 ** 23)), i32s(0x4b000000));
  const quotient = (numerator: number[]) => v.f32x4Div(v.f32x4ConvertI32x4S(numerator), get(crF));
  const [source, sources] = [L.v128(), L.v128()];

  const step = [
    ...setLocal(r, channel(get(loaded), 0)),
    ...setLocal(g, channel(get(loaded), 1)),
    ...setLocal(b, channel(get(loaded), 2)),
    ...setLocal(maxc, v.i32x4MaxS(v.i32x4MaxS(get(r), get(g)), get(b))),
    ...setLocal(crF, v.f32x4ConvertI32x4S(v.i32x4Sub(get(maxc), v.i32x4MinS(v.i32x4MinS(get(r), get(g)), get(b))))),
    // rgb2hsv: rc, gc, bc = (max − channel) / cr in float32; h by the maximal channel (r first, then g):
    // bc − gc, (2 + rc) − bc or (4 + gc) − rc. Each is (c0 + first) − second with the two quotients it
    // needs, so two divisions instead of three; 0 + bc is bc exactly.
    // Gray pixels (cr = 0) get NaN here; their lanes are replaced by v at the end.
    ...setLocal(isR, v.i32x4Eq(get(r), get(maxc))),
    ...setLocal(isG, v.i32x4Eq(get(g), get(maxc))),
    // dr, dg, db = max − channel: the numerators of rc, gc, bc.
    ...setLocal(dr, v.i32x4Sub(get(maxc), get(r))),
    ...setLocal(dg, v.i32x4Sub(get(maxc), get(g))),
    ...setLocal(db, v.i32x4Sub(get(maxc), get(b))),
    ...setLocal(h, v.f32x4Sub(
      v.f32x4Add(v.v128Bitselect(zero, v.v128Bitselect(f32s(2), f32s(4), get(isG)), get(isR)), quotient(v.v128Bitselect(get(db), v.v128Bitselect(get(dr), get(dg), get(isG)), get(isR)))),
      quotient(v.v128Bitselect(get(dg), v.v128Bitselect(get(db), get(dr), get(isG)), get(isR))),
    )),
    // PIL: H = trunc(f32(fmod(h / 6 + 1, 1)) · 255) and S = trunc(f32(cr / max) · 255), both in
    // double. Here in float32: t = h / 6, plus 1 where negative, and the products with 255,
    // which give the same 8-bit H for every h rgb2hsv can produce and the same S for every
    // (cr, max) (checked exhaustively when this was written; the hue test reaches them all).
    ...setLocal(temp, v.f32x4Div(get(h), f32s(6))),
    ...setLocal(hue8, truncate(v.f32x4Mul(v.v128Bitselect(v.f32x4Add(get(temp), f32s(1)), get(temp), v.f32x4Lt(get(temp), zero)), f32s(255)))),
    // max >= 1 as divisor: black stays 0, not NaN.
    ...setLocal(q, v.f32x4Div(get(crF), v.f32x4ConvertI32x4S(v.i32x4MaxS(get(maxc), i32s(1))))),
    ...setLocal(sat8, truncate(v.f32x4Mul(get(q), f32s(255)))),
    ...setLocal(gray, v.i32x4Eq(get(sat8), zero)),
    // hsv2rgb of the shifted 8-bit hue h: i = floor(6h / 255) = ((6h + 1)·257) >> 16 on 0..1530, f = (6h − 255·i) / 255.
    ...setLocal(shifted, v.v128And(v.i32x4Add(get(hue8), shiftV), i32s(255))),
    ...setLocal(h6, v.i32x4Add(v.i32x4Shl(get(shifted), i32c(2)), v.i32x4Shl(get(shifted), i32c(1)))),
    ...setLocal(sector, v.i32x4ShrU(v.i32x4Mul(v.i32x4Add(get(h6), i32s(1)), i32s(257)), i32c(16))),
    // f and fs (below) are integers 0..255 over 255: multiplied by float32(1/255) instead of divided, which can
    // differ from the quotient in the last bit but gives the same rounded p, q and t for every (S, V, H) (the
    // test checks all 2^24) and spares two of the step's six divisions, the slowest instructions here.
    ...setLocal(fraction, v.f32x4Mul(v.f32x4ConvertI32x4S(v.i32x4Sub(get(h6), v.i32x4Sub(v.i32x4Shl(get(sector), i32c(8)), get(sector)))), f32s(1 / 255))),
    ...setLocal(sector, v.v128AndNot(get(sector), v.i32x4Eq(get(sector), i32s(6)))), // i % 6: only i = 6 (h = 255) wraps
    ...setLocal(fs, v.f32x4Mul(v.f32x4ConvertI32x4S(get(sat8)), f32s(1 / 255))),
    ...setLocal(odd, v.i32x4ShrS(v.i32x4Shl(get(sector), i32c(31)), i32c(31))),
    // p = round(v·(1 − fs)); q or t = round(v·(1 − fs·f')) with f' = f in odd sectors, 1 − f in even ones.
    ...setLocal(vF, v.f32x4ConvertI32x4S(get(maxc))),
    ...setLocal(pOut, rounded(v.f32x4Mul(get(vF), v.f32x4Sub(f32s(1), get(fs))))),
    ...setLocal(temp, v.v128Bitselect(get(fraction), v.f32x4Sub(f32s(1), get(fraction)), get(odd))),
    ...setLocal(xOut, rounded(v.f32x4Mul(get(vF), v.f32x4Sub(f32s(1), v.f32x4Mul(get(fs), get(temp)))))),
    // The output bytes by table lookups instead of per-sector masks: each pixel's lane holds the bytes (v, p, x, 0)
    // (all three in 0..255, except p and x of gray pixels, garbage that the shifts keep out of byte 0, the only one
    // gray pixels use), and byte 3k + c of the 4 output pixels is byte 4k + SOURCES[sector][c] of those lanes.
    ...setLocal(source, v.i32x4Mul(v.v128Bitselect(i32s(6), get(sector), get(gray)), i32s(0x010101))), // (s, s, s, 0) per lane, s = 6 for gray
    // Plus (0, 7, 128, 128): R's and G's sources from their 7-entry tables, 0 elsewhere (indices >= 16); B's likewise.
    ...setLocal(sources, v.v128Or(
      v.i8x16Swizzle(v128Const(channelSources([0, 1])), v.i32x4Add(get(source), i32s(0x8080_0700 | 0))),
      v.i8x16Swizzle(v128Const(channelSources([2])), v.i32x4Add(get(source), i32s(0x8000_8080 | 0))),
    )),
    ...v.i8x16Swizzle(
      v.v128Or(get(maxc), v.v128Or(v.i32x4Shl(get(pOut), i32c(8)), v.i32x4Shl(get(xOut), i32c(16)))),
      v.i8x16Shuffle(v.i32x4Add(get(sources), LANE_BASES), zero, [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 3, 3, 3, 3]),
    ),
  ];
  const loop = pixelLoop(L, params.src, params.dst, params.pixels, loaded, step);
  return { name: "hue", params: [I32, I32, I32, I32], results: [], locals: L.declaration(), code: [...L.preamble, ...loop] };
}

export interface ColorKernels {
  blend(ptr: number, bytes: number, constant: number, alpha: number): void;
  lumaSum(ptr: number, pixels: number): number;
  saturation(src: number, dst: number, pixels: number, alpha: number): void;
  hue(src: number, dst: number, pixels: number, shift: number): void;
  gray(src: number, dst: number, pixels: number): void;
}

const instantiate = kernelInstantiator(() => kernelModule([blendKernel(), lumaSumKernel(), saturationKernel(), hueKernel(), grayKernel()]));

/** The kernels bound to `memory`, or null where WebAssembly SIMD is unavailable (callers use color-ops.ts). */
export function instantiateColorKernels(memory: WebAssembly.Memory): ColorKernels | null {
  return instantiate(memory) as ColorKernels | null;
}
