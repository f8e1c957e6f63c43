/**
 * Byte-layout kernels of the SIMD resample (pil-resample.ts' CropResampler), hand-assembled
 * WebAssembly SIMD. They let both bicubic passes run as resampleColumns (simd-resample.ts),
 * whose 16 lanes are 16 consecutive samples sharing one set of taps: the horizontal pass
 * reads the image transposed (a source column of one channel is then a row of bytes), its
 * output (per channel) is transposed back before the vertical pass, and the crop is
 * interleaved to RGB at the end.
 * All pointers are byte offsets into the imported memory.
 * - transpose(src, srcStride, rows, dst, dstStride, columns): dst[c·dstStride + r] =
 *   src[r·srcStride + c], in 16 × 16 blocks: reads align16(rows) rows of align16(columns)
 *   bytes and writes align16(columns) rows of align16(rows) bytes.
 * - interleave(src, srcStride, planeStride, width, rows, dst): three planes (rows of
 *   srcStride bytes) → interleaved RGB rows of width pixels; 16 pixels per step, so it
 *   reads up to 15 bytes past each plane row and writes up to 45 past each output row
 *   (rewritten by the next row; callers leave slack after the last).
 * A 16 × 16 byte transpose is four rounds of the same interleave (out[2i] = low bytes of
 * in[i] and in[i + 8] interleaved, out[2i + 1] = their high bytes): each round rotates the
 * (row, column) bits of every byte's position by one, four rounds swap row and column.
 */

import { I32, get, set, i32c, increment, kernelInstantiator, kernelModule, KernelLocals, simdOp as v, v128Load, v128Store, wasmOp as op, whileNot, type KernelFunction } from "./wasm-encoding";

const interleaveLow = Array.from({ length: 8 }, (_, j) => [j, 16 + j]).flat();
const interleaveHigh = interleaveLow.map((lane) => lane + 8);

/** Code that transposes the 16 × 16 byte block in locals `block` in place (`scratch`: 16 more locals). */
function transposeBlock(block: number[], scratch: number[]): number[] {
  const code: number[] = [];
  let [from, to] = [block, scratch];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 8; i++) {
      code.push(...v.i8x16Shuffle(get(from[i]), get(from[i + 8]), interleaveLow), ...set(to[2 * i]));
      code.push(...v.i8x16Shuffle(get(from[i]), get(from[i + 8]), interleaveHigh), ...set(to[2 * i + 1]));
    }
    // Four rounds (an even count) leave the result back in `block`.
    [from, to] = [to, from];
  }
  return code;
}

function transposeKernel(): KernelFunction {
  const [src, srcStride, rowCount, dst, dstStride, columns] = [0, 1, 2, 3, 4, 5];
  const L = new KernelLocals(6);
  const [br, bc, p, q] = Array.from({ length: 4 }, () => L.i32());
  const rows = Array.from({ length: 16 }, () => L.v128());
  const scratch = Array.from({ length: 16 }, () => L.v128());
  const strided = (base: number, stride: number, i: number) => [...get(base), ...(i === 0 ? [] : [...get(stride), ...i32c(i), op.i32Mul, op.i32Add])];
  const code = [
    ...i32c(0), ...set(br),
    ...whileNot([...get(br), ...get(rowCount), op.i32GeS], [
      ...i32c(0), ...set(bc),
      ...whileNot([...get(bc), ...get(columns), op.i32GeS], [
        ...get(src), ...get(br), ...get(srcStride), op.i32Mul, op.i32Add, ...get(bc), op.i32Add, ...set(p),
        ...Array.from({ length: 16 }, (_, i) => [...v128Load(strided(p, srcStride, i)), ...set(rows[i])]).flat(),
        ...transposeBlock(rows, scratch),
        ...get(dst), ...get(bc), ...get(dstStride), op.i32Mul, op.i32Add, ...get(br), op.i32Add, ...set(q),
        ...Array.from({ length: 16 }, (_, i) => v128Store(strided(q, dstStride, i), get(rows[i]))).flat(),
        ...increment(bc, i32c(16)),
      ]),
      ...increment(br, i32c(16)),
    ]),
  ];
  return { name: "transpose", params: Array<number>(6).fill(I32), results: [], locals: L.declaration(), code };
}

/** Output bytes 16·part … 16·part + 15 of 16 interleaved pixels: (pixel, channel) of byte k is (k / 3, k % 3). */
function interleavedPart(r: number, g: number, b: number, part: number): number[] {
  const source = Array.from({ length: 16 }, (_, lane) => {
    const k = 16 * part + lane;
    return { channel: k % 3, pixel: Math.floor(k / 3) };
  });
  // R and G first (lanes 0..15 of R, 16..31 of G; B's lanes are placeholders), then B into its places.
  const rg = v.i8x16Shuffle(get(r), get(g), source.map(({ channel, pixel }) => (channel === 0 ? pixel : channel === 1 ? 16 + pixel : 0)));
  return v.i8x16Shuffle(rg, get(b), source.map(({ channel, pixel }, lane) => (channel === 2 ? 16 + pixel : lane)));
}

function interleaveKernel(): KernelFunction {
  const [src, srcStride, planeStride, width, rowCount, dst] = [0, 1, 2, 3, 4, 5];
  const L = new KernelLocals(6);
  const [y, x, p, q, plane2] = Array.from({ length: 5 }, () => L.i32());
  const [r, g, b] = [L.v128(), L.v128(), L.v128()];
  const code = [
    ...get(planeStride), ...i32c(2), op.i32Mul, ...set(plane2),
    ...i32c(0), ...set(y),
    ...whileNot([...get(y), ...get(rowCount), op.i32GeS], [
      ...get(src), ...get(y), ...get(srcStride), op.i32Mul, op.i32Add, ...set(p),
      ...get(dst), ...get(y), ...get(width), op.i32Mul, ...i32c(3), op.i32Mul, op.i32Add, ...set(q),
      ...i32c(0), ...set(x),
      ...whileNot([...get(x), ...get(width), op.i32GeS], [
        ...v128Load(get(p)), ...set(r),
        ...v128Load([...get(p), ...get(planeStride), op.i32Add]), ...set(g),
        ...v128Load([...get(p), ...get(plane2), op.i32Add]), ...set(b),
        ...v128Store(get(q), interleavedPart(r, g, b, 0)),
        ...v128Store(get(q), interleavedPart(r, g, b, 1), 16),
        ...v128Store(get(q), interleavedPart(r, g, b, 2), 32),
        ...increment(p, i32c(16)),
        ...increment(q, i32c(48)),
        ...increment(x, i32c(16)),
      ]),
      ...increment(y, i32c(1)),
    ]),
  ];
  return { name: "interleave", params: Array<number>(6).fill(I32), results: [], locals: L.declaration(), code };
}

export type Transpose = (src: number, srcStride: number, rows: number, dst: number, dstStride: number, columns: number) => void;
export type Interleave = (src: number, srcStride: number, planeStride: number, width: number, rows: number, dst: number) => void;

export interface TransposeKernels {
  transpose: Transpose;
  interleave: Interleave;
}

const instantiate = kernelInstantiator(() => kernelModule([transposeKernel(), interleaveKernel()]));

/** The kernels bound to `memory`, or null where WebAssembly SIMD is unavailable. */
export function instantiateTranspose(memory: WebAssembly.Memory): TransposeKernels | null {
  const exports = instantiate(memory);
  return exports ? { transpose: exports.transpose as Transpose, interleave: exports.interleave as Interleave } : null;
}
