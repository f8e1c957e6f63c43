/**
 * normalize.ts' ToTensor + Normalize (with the optional solarize and the horizontal
 * flip) as a hand-assembled WebAssembly SIMD kernel: ((v / 255) − mean) / std with each
 * step in float32, as torch's float32 tensors and NORMALIZE_TABLE compute it, 4 pixels
 * per step.
 *
 * normalize(src, size, flip, solarize, dst, planeStride): interleaved RGB size × size at
 * byte offset src → three float32 planes at dst, dst + planeStride, dst + 2·planeStride.
 * Rows are written in order, each in steps of 4 pixels: a row's last step may spill up
 * to 3 floats into the next row (rewritten right after) or past the plane (callers leave
 * 16 bytes). It reads up to 16 bytes past each row and, flipped, up to 12 bytes before
 * it (callers leave slack on both sides).
 */

import { I32, V128, f32c, get, set, i32c, increment, kernelInstantiator, kernelModule, simdOp as v, v128Const, v128Load, v128Store, wasmOp as op, whileNot } from "./wasm-encoding";
import { IMAGENET_MEAN, IMAGENET_STD } from "./normalize";

const Z = 16;
const zero = v128Const(Array<number>(16).fill(0));

function normalizeKernel() {
  const [src, size, flip, solarize, dst, planeStride] = [0, 1, 2, 3, 4, 5];
  const [y, x, rowSrc, rowDst] = [6, 7, 8, 9];
  const [loaded, solarizeMask, value] = [10, 11, 12];

  /** Channel c of the loaded 4 pixels as i32x4, in memory order or mirrored. */
  const channel = (c: number, mirrored: boolean) => {
    const lanes = mirrored ? [c + 9, c + 6, c + 3, c] : [c, c + 3, c + 6, c + 9];
    return v.i8x16Shuffle(get(loaded), zero, lanes.flatMap((lane) => [lane, Z, Z, Z]));
  };
  /** ImageOps.solarize (v >= 128 → 255 − v) is min(v, 255 − v), applied where the mask is set. */
  const solarized = (raw: number[]) => [
    ...raw, ...set(value),
    ...v.v128Bitselect(v.i32x4MinS(get(value), v.i32x4Sub(v.i32x4Splat(i32c(255)), get(value))), get(value), get(solarizeMask)),
  ];
  const normalized = (c: number, raw: number[]) =>
    v.f32x4Div(v.f32x4Sub(v.f32x4Div(v.f32x4ConvertI32x4S(solarized(raw)), v.f32x4Splat(f32c(255))), v.f32x4Splat(f32c(IMAGENET_MEAN[c]))), v.f32x4Splat(f32c(IMAGENET_STD[c])));
  /** Output address of channel c for the step at pixel x of the row. */
  const out = (c: number) => [...get(rowDst), ...get(x), ...i32c(2), op.i32Shl, op.i32Add, ...get(planeStride), ...i32c(c), op.i32Mul, op.i32Add];

  const rowLoop = (mirrored: boolean) =>
    whileNot([...get(x), ...get(size), op.i32GeS], [
      // Mirrored, output pixels x..x+3 come from input pixels size−1−x down to size−4−x.
      ...v128Load(mirrored ? [...get(rowSrc), ...get(size), ...i32c(4), op.i32Sub, ...get(x), op.i32Sub, ...i32c(3), op.i32Mul, op.i32Add] : [...get(rowSrc), ...get(x), ...i32c(3), op.i32Mul, op.i32Add]),
      ...set(loaded),
      ...v128Store(out(0), normalized(0, channel(0, mirrored))),
      ...v128Store(out(1), normalized(1, channel(1, mirrored))),
      ...v128Store(out(2), normalized(2, channel(2, mirrored))),
      ...increment(x, i32c(4)),
    ]);

  const code = [
    ...v.i32x4Splat([...i32c(0), ...get(solarize), op.i32Sub]), ...set(solarizeMask), // 0 or all ones
    ...i32c(0), ...set(y),
    ...whileNot([...get(y), ...get(size), op.i32GeS], [
      ...get(src), ...get(y), ...get(size), op.i32Mul, ...i32c(3), op.i32Mul, op.i32Add, ...set(rowSrc),
      ...get(dst), ...get(y), ...get(size), op.i32Mul, ...i32c(2), op.i32Shl, op.i32Add, ...set(rowDst),
      ...i32c(0), ...set(x),
      ...get(flip), ...op.if, ...rowLoop(true), op.else, ...rowLoop(false), op.end,
      ...increment(y, i32c(1)),
    ]),
  ];
  return { name: "normalize", params: [I32, I32, I32, I32, I32, I32], results: [], locals: [4, I32, 3, V128], code };
}

export type NormalizeKernel = (src: number, size: number, flip: number, solarize: number, dst: number, planeStride: number) => void;

const instantiate = kernelInstantiator(() => kernelModule([normalizeKernel()]));
const instantiateShared = kernelInstantiator(() => kernelModule([normalizeKernel()], { shared: true }));

/**
 * The kernel bound to `memory` (a shared memory: a batch's output, see batch-memory.ts),
 * or null where WebAssembly SIMD is unavailable (callers use normalize.ts).
 */
export function instantiateNormalize(memory: WebAssembly.Memory, options: { shared?: boolean } = {}): NormalizeKernel | null {
  const exports = (options.shared ? instantiateShared : instantiate)(memory);
  return exports ? (exports.normalize as NormalizeKernel) : null;
}
