/**
 * Philox4x32-10 in WebAssembly, for drawing millions of values at once (a model's initial
 * weights: 27.5M for vit_tiny with the 65536-wide head took 3.2 s with the JS block
 * function, whose 32×32→64-bit products need four 16-bit partial products; wasm has I64.mul).
 *
 * `unitPairs` writes, for `count` consecutive counters, the block's two 53-bit uniforms
 * (words 0–1 and 2–3, as `toUnit` in random.ts) as float64 pairs. Every operation is exact
 * integer arithmetic or an exact float64 conversion, multiplication by 2^26 or 2^-53 and
 * addition below 2^53, so the values equal the JS path's bit for bit.
 */
import { BR_IF, END, f64Bytes, get, I32, i32c, I64, LOOP, loopUntil, MODULE_HEADER, name, section, set, sized, sleb64, uleb, vec, VOID, webAssembly } from "@dino-coord/wasm";

/** Counters per call: the output (16 bytes each) fills one 64 KiB wasm page. */
export const UNIT_PAIRS_PER_CALL = 4096;

const PHILOX_M0 = 0xd2511f53n;
const PHILOX_M1 = 0xcd9e8d57n;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

function buildPhiloxModule(): Uint8Array {
  const op = {
    i64Const: 0x42, f64Const: 0x44,
    i32LtU: 0x49, i32Add: 0x6a, i32Xor: 0x73, i32ShrU: 0x76,
    i64Mul: 0x7e, i64ShrU: 0x88, i32WrapI64: 0xa7, i64ExtendI32U: 0xad,
    f64Add: 0xa0, f64Mul: 0xa2, f64ConvertI32U: 0xb8, f64Store: 0x39,
  };
  const f64c = (v: number) => [op.f64Const, ...f64Bytes(v)];
  // params: 0 out, 1 count, 2 c0 of the first counter, 3 c1, 4 c2, 5 c3, 6 k0, 7 k1
  // locals: 8 n, 9 x0, 10 x1, 11 x2, 12 x3, 13 key0, 14 key1, 15 round, 16 next x0, 17 next x2, 18 p0 (I64), 19 p1 (I64)
  const [OUT, COUNT, C0, C1, C2, C3, K0, K1, N, X0, X1, X2, X3, KEY0, KEY1, ROUND, NX0, NX2, P0, P1] = Array.from({ length: 20 }, (_, i) => i);
  const product = (x: number, m: bigint, into: number) => [...get(x), op.i64ExtendI32U, op.i64Const, ...sleb64(m), op.i64Mul, ...set(into)];
  const high = (p: number) => [...get(p), op.i64Const, ...sleb64(32n), op.i64ShrU, op.i32WrapI64];
  const low = (p: number) => [...get(p), op.i32WrapI64];
  /** ((a >>> 5) · 2^26 + (b >>> 6)) · 2^-53, stored at out + offset */
  const storeUnit = (a: number, b: number, offset: number) => [
    ...get(OUT),
    ...get(a), ...i32c(5), op.i32ShrU, op.f64ConvertI32U, ...f64c(67108864), op.f64Mul,
    ...get(b), ...i32c(6), op.i32ShrU, op.f64ConvertI32U, op.f64Add,
    ...f64c(2 ** -53), op.f64Mul,
    op.f64Store, 0x03, ...uleb(offset),
  ];
  const round = [
    ...product(X0, PHILOX_M0, P0),
    ...product(X2, PHILOX_M1, P1),
    ...high(P1), ...get(X1), op.i32Xor, ...get(KEY0), op.i32Xor, ...set(NX0),
    ...high(P0), ...get(X3), op.i32Xor, ...get(KEY1), op.i32Xor, ...set(NX2),
    ...low(P1), ...set(X1),
    ...low(P0), ...set(X3),
    ...get(NX0), ...set(X0),
    ...get(NX2), ...set(X2),
    // The key bump before rounds 1..9 (one after round 9 too, unused).
    ...get(KEY0), ...i32c(PHILOX_W0), op.i32Add, ...set(KEY0),
    ...get(KEY1), ...i32c(PHILOX_W1), op.i32Add, ...set(KEY1),
  ];
  const body = [
    ...i32c(0), ...set(N),
    ...loopUntil(N, COUNT, [
      ...get(C0), ...get(N), op.i32Add, ...set(X0),
      ...get(C1), ...set(X1), ...get(C2), ...set(X2), ...get(C3), ...set(X3),
      ...get(K0), ...set(KEY0), ...get(K1), ...set(KEY1),
      ...i32c(0), ...set(ROUND),
      LOOP, VOID,
      ...round,
      ...get(ROUND), ...i32c(1), op.i32Add, ...set(ROUND),
      ...get(ROUND), ...i32c(10), op.i32LtU, BR_IF, 0,
      END,
      ...storeUnit(X0, X1, 0),
      ...storeUnit(X2, X3, 8),
      ...get(OUT), ...i32c(16), op.i32Add, ...set(OUT),
      ...get(N), ...i32c(1), op.i32Add, ...set(N),
    ]),
    END,
  ];
  const fn = [...vec([[...uleb(10), I32], [...uleb(2), I64]]), ...body];
  const typeSection = vec([[0x60, ...vec(Array.from({ length: 8 }, () => [I32])), ...vec([])]]);
  const importSection = vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]]);
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, typeSection), ...section(2, importSection), ...section(3, vec([[0]])),
    ...section(7, vec([[...name("unitPairs"), 0x00, 0]])), ...section(10, vec([sized(fn)])),
  ]);
}

export interface PhiloxUnits {
  /**
   * The uniforms of counters [c0, c0 + count) (count ≤ UNIT_PAIRS_PER_CALL, no 32-bit wrap of
   * c0) with the upper counter words and key given: element i's pair at [2i, 2i + 1] of the
   * returned view, valid until the next call.
   */
  unitPairs(count: number, c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): Float64Array;
}

let instance: PhiloxUnits | null | undefined;

/** The kernel, or null where WebAssembly is unavailable (callers then use the JS block function). */
export function philoxUnits(): PhiloxUnits | null {
  if (instance !== undefined) return instance;
  const bytes = buildPhiloxModule();
  if (!webAssembly || !webAssembly.validate(bytes)) return (instance = null);
  const memory = new webAssembly.Memory({ initial: 1, maximum: 1 });
  const wasm = new webAssembly.Instance(new webAssembly.Module(bytes), { env: { memory } }).exports as {
    unitPairs: (out: number, count: number, c0: number, c1: number, c2: number, c3: number, k0: number, k1: number) => void;
  };
  const units = new Float64Array(memory.buffer);
  instance = {
    unitPairs(count, c0, c1, c2, c3, k0, k1) {
      if (!(count >= 0 && count <= UNIT_PAIRS_PER_CALL)) throw new RangeError(`unitPairs: count ${count} outside 0..${UNIT_PAIRS_PER_CALL}`);
      if (c0 + count > 2 ** 32) throw new RangeError("unitPairs: the low counter word would wrap");
      wasm.unitPairs(0, count, c0, c1, c2, c3, k0, k1);
      return units;
    },
  };
  return instance;
}
