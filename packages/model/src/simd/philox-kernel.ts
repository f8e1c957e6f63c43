/**
 * Philox4x32-10 in WebAssembly, for drawing millions of values at once (a model's initial
 * weights: 27.5M for vit_tiny with the 65536-wide head took 3.2 s with the JS block
 * function, whose 32×32→64-bit products need four 16-bit partial products; wasm has I64.mul).
 *
 * `unitPairs` writes, for `count` consecutive counters, the block's two 53-bit uniforms
 * (words 0–1 and 2–3, as `toUnit` in random.ts) as float64 pairs. Every operation is exact
 * integer arithmetic or an exact float64 conversion, multiplication by 2^26 or 2^-53 and
 * addition below 2^53, so the values equal the JS path's bit for bit.
 *
 * The scalar loop takes one counter at a time (~23 ns each: its two i64.mul a round, each
 * waiting on the previous round; interleaving 2 or 4 scalar counters measured no faster, as
 * V8 runs out of registers). The SIMD loop takes COUNTERS_PER_GROUP counters at once: an
 * i32x4 holds one word of 4 counters, i64x2.extmul gives the 64-bit products of 2 lanes, and
 * CHAINS independent sets of these vectors are interleaved so that one set's multiplies and
 * shuffles overlap another's latency (4 sets ~1.3× faster than 1). It does ~8 ns a counter;
 * the scalar loop finishes the last count mod COUNTERS_PER_GROUP counters, and is the whole
 * kernel where wasm SIMD is unavailable.
 */
import { BR_IF, END, f64Bytes, get, I32, i32c, I64, LOOP, loopUntil, MODULE_HEADER, name, section, set, simd, sized, sleb64, uleb, V128, vec, VOID, webAssembly } from "@dino-coord/wasm";

/** Counters per call: the output (16 bytes each) fills one 64 KiB wasm page. */
export const UNIT_PAIRS_PER_CALL = 4096;

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;

/** Independent sets of vectors (4 counters each) interleaved in one SIMD iteration. */
const CHAINS = 4;
const COUNTERS_PER_GROUP = 4 * CHAINS;

function buildPhiloxModule(useSimd: boolean): Uint8Array {
  const op = {
    i64Const: 0x42, f64Const: 0x44,
    i32LtU: 0x49, i32Add: 0x6a, i32Sub: 0x6b, i32RemU: 0x70, i32Xor: 0x73, i32ShrU: 0x76,
    i64Mul: 0x7e, i64ShrU: 0x88, i32WrapI64: 0xa7, i64ExtendI32U: 0xad,
    f64Add: 0xa0, f64Mul: 0xa2, f64ConvertI32U: 0xb8, f64Store: 0x39,
  };
  const v = {
    store: (offset: number) => simd(0x0b, 0x04, ...uleb(offset)),
    i32x4: (...lanes: number[]) => simd(0x0c, ...lanes.flatMap((lane) => [...new Uint8Array(Uint32Array.of(lane).buffer)])),
    f64x2: (value: number) => simd(0x0c, ...f64Bytes(value), ...f64Bytes(value)),
    /** i8x16.shuffle picking 32-bit lanes: 0–3 from the first operand, 4–7 from the second. */
    shuffle32: (...lanes: number[]) => simd(0x0d, ...lanes.flatMap((lane) => [4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3])),
    i32x4Splat: simd(0x11), xor: simd(0x51),
    i32x4ShrU: simd(0xad), i32x4Add: simd(0xae),
    extmulLowU: simd(0xde), extmulHighU: simd(0xdf), // i64x2.extmul_{low,high}_i32x4_u
    f64x2Add: simd(0xf0), f64x2Mul: simd(0xf2), f64x2ConvertLowU: simd(0xff),
  };
  const i32x4Same = (value: number) => v.i32x4(value, value, value, value);
  const f64c = (v: number) => [op.f64Const, ...f64Bytes(v)];
  // params: 0 out, 1 count, 2 c0 of the first counter, 3 c1, 4 c2, 5 c3, 6 k0, 7 k1
  // locals: 8 n, 9 x0, 10 x1, 11 x2, 12 x3, 13 key0, 14 key1, 15 round, 16 next x0, 17 next x2,
  // 18 end of the SIMD groups, 19 p0 (I64), 20 p1 (I64), then V128: 21 key0, 22 key1 (splatted), 23 u1, 24 u2,
  // and from 25 on 8 per chain (set of vectors): x0, x1, x2, x3, and the products x0·M0 and x2·M1 of lanes 0–1 and 2–3
  const [OUT, COUNT, C0, C1, C2, C3, K0, K1, N, X0, X1, X2, X3, KEY0, KEY1, ROUND, NX0, NX2, GROUPS_END, P0, P1, VKEY0, VKEY1, U1, U2] = Array.from({ length: 25 }, (_, i) => i);
  const chain = (c: number) => {
    const base = 25 + 8 * c;
    return { x0: base, x1: base + 1, x2: base + 2, x3: base + 3, p0Low: base + 4, p0High: base + 5, p1Low: base + 6, p1High: base + 7 };
  };
  const chains = Array.from({ length: CHAINS }, (_, c) => chain(c));

  // The scalar loop: one counter at a time.
  const product = (x: number, m: number, into: number) => [...get(x), op.i64ExtendI32U, op.i64Const, ...sleb64(BigInt(m)), op.i64Mul, ...set(into)];
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
  const scalarLoop = loopUntil(N, COUNT, [
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
  ]);

  // The SIMD loop: the same round on 4 counters a vector, for CHAINS sets of vectors.
  const splat = (x: number) => [...get(x), ...v.i32x4Splat];
  const vectorRound = [
    ...chains.flatMap((c) => [
      ...get(c.x0), ...i32x4Same(PHILOX_M0), ...v.extmulLowU, ...set(c.p0Low),
      ...get(c.x0), ...i32x4Same(PHILOX_M0), ...v.extmulHighU, ...set(c.p0High),
      ...get(c.x2), ...i32x4Same(PHILOX_M1), ...v.extmulLowU, ...set(c.p1Low),
      ...get(c.x2), ...i32x4Same(PHILOX_M1), ...v.extmulHighU, ...set(c.p1High),
    ]),
    // x0 = high(x2·M1) ^ x1 ^ key0, x2 = high(x0·M0) ^ x3 ^ key1, x1 = low(x2·M1), x3 = low(x0·M0)
    // (the 64-bit products of lanes 0–1 and 2–3 hold their low words in 32-bit lanes 0, 2, 4, 6)
    ...chains.flatMap((c) => [
      ...get(c.p1Low), ...get(c.p1High), ...v.shuffle32(1, 3, 5, 7), ...get(c.x1), ...v.xor, ...get(VKEY0), ...v.xor, ...set(c.x0),
      ...get(c.p0Low), ...get(c.p0High), ...v.shuffle32(1, 3, 5, 7), ...get(c.x3), ...v.xor, ...get(VKEY1), ...v.xor, ...set(c.x2),
      ...get(c.p1Low), ...get(c.p1High), ...v.shuffle32(0, 2, 4, 6), ...set(c.x1),
      ...get(c.p0Low), ...get(c.p0High), ...v.shuffle32(0, 2, 4, 6), ...set(c.x3),
    ]),
    ...get(VKEY0), ...i32x4Same(PHILOX_W0), ...v.i32x4Add, ...set(VKEY0),
    ...get(VKEY1), ...i32x4Same(PHILOX_W1), ...v.i32x4Add, ...set(VKEY1),
  ];
  /**
   * The pairs of a chain's 4 counters, at out + 64·index. With x0, x2 shifted right by 5 and
   * x1, x3 by 6 in place, u1 of counters 0–1 is (x0 · 2^26 + x1) · 2^-53 from their lanes
   * 0–1 converted to float64 (lanes 2–3 shuffled down for counters 2–3), u2 the same from
   * x2 and x3; the two f64x2 are then interleaved into the pairs (u1, u2) of each counter.
   */
  const storeChain = (c: ReturnType<typeof chain>, index: number) => {
    const lanes = (x: number, half: number) => [...get(x), ...(half ? [...get(x), ...v.shuffle32(2, 3, 2, 3)] : []), ...v.f64x2ConvertLowU];
    const units = (a: number, b: number, half: number) => [...lanes(a, half), ...v.f64x2(67108864), ...v.f64x2Mul, ...lanes(b, half), ...v.f64x2Add, ...v.f64x2(2 ** -53), ...v.f64x2Mul];
    return [
      ...[[c.x0, 5], [c.x1, 6], [c.x2, 5], [c.x3, 6]].flatMap(([x, by]) => [...get(x), ...i32c(by), ...v.i32x4ShrU, ...set(x)]),
      ...[0, 1].flatMap((half) => [
        ...units(c.x0, c.x1, half), ...set(U1), ...units(c.x2, c.x3, half), ...set(U2),
        ...get(OUT), ...get(U1), ...get(U2), ...v.shuffle32(0, 1, 4, 5), ...v.store(64 * index + 32 * half),
        ...get(OUT), ...get(U1), ...get(U2), ...v.shuffle32(2, 3, 6, 7), ...v.store(64 * index + 32 * half + 16),
      ]),
    ];
  };
  const simdLoop = [
    ...get(COUNT), ...get(COUNT), ...i32c(COUNTERS_PER_GROUP), op.i32RemU, op.i32Sub, ...set(GROUPS_END),
    ...loopUntil(N, GROUPS_END, [
      ...chains.flatMap((c, index) => [
        ...get(C0), ...get(N), op.i32Add, ...v.i32x4Splat, ...v.i32x4(4 * index, 4 * index + 1, 4 * index + 2, 4 * index + 3), ...v.i32x4Add, ...set(c.x0),
        ...splat(C1), ...set(c.x1), ...splat(C2), ...set(c.x2), ...splat(C3), ...set(c.x3),
      ]),
      ...splat(K0), ...set(VKEY0), ...splat(K1), ...set(VKEY1),
      ...i32c(0), ...set(ROUND),
      LOOP, VOID,
      ...vectorRound,
      ...get(ROUND), ...i32c(1), op.i32Add, ...set(ROUND),
      ...get(ROUND), ...i32c(10), op.i32LtU, BR_IF, 0,
      END,
      ...chains.flatMap((c, index) => storeChain(c, index)),
      ...get(OUT), ...i32c(16 * COUNTERS_PER_GROUP), op.i32Add, ...set(OUT),
      ...get(N), ...i32c(COUNTERS_PER_GROUP), op.i32Add, ...set(N),
    ]),
  ];
  const body = [
    ...i32c(0), ...set(N),
    ...(useSimd ? simdLoop : []),
    ...scalarLoop,
    END,
  ];
  const locals = [[...uleb(11), I32], [...uleb(2), I64], ...(useSimd ? [[...uleb(4 + 8 * CHAINS), V128]] : [])];
  const fn = [...vec(locals), ...body];
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
  if (!webAssembly) return (instance = null);
  // Runtimes without wasm SIMD get the scalar loop alone.
  const bytes = [buildPhiloxModule(true), buildPhiloxModule(false)].find((candidate) => webAssembly!.validate(candidate));
  if (!bytes) return (instance = null);
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
