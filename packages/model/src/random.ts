/**
 * Counter-based random numbers: a value is a pure function of a key tuple such as
 * (seed, stream, step, sampleIndex) and an element index, so any process can compute any
 * draw without sharing generator state, and results do not depend on the order of draws.
 *
 * The block function is Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011), checked against the Random123 known-answer vectors. The key tuple is
 * folded into Philox's 2-word key and the 2 upper counter words by chaining Philox over its
 * parts; the element index fills the 2 lower counter words.
 */

import { philoxUnits, UNIT_PAIRS_PER_CALL } from "./simd/philox-kernel";

// Local bindings: under jest's vm sandbox every global lookup (Math) goes through a slow
// interceptor, which made the hot loop ~40× slower than in plain Node.
const { floor, imul, sqrt, log, cos, PI } = Math;

const PHILOX_M0 = 0xd2511f53;
const PHILOX_M1 = 0xcd9e8d57;
const PHILOX_W0 = 0x9e3779b9;
const PHILOX_W1 = 0xbb67ae85;
const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/**
 * High 32 bits of the 64-bit product of two uint32, from 16-bit halves (float64 cannot
 * hold the full product; every partial product here is below 2^32 and exact).
 */
function mulHigh(a: number, b: number): number {
  const aHigh = a >>> 16;
  const aLow = a & 0xffff;
  const bHigh = b >>> 16;
  const bLow = b & 0xffff;
  const cross1 = aHigh * bLow;
  const cross2 = aLow * bHigh;
  const carry = (((aLow * bLow) >>> 16) + (cross1 & 0xffff) + (cross2 & 0xffff)) >>> 16;
  return (aHigh * bHigh + (cross1 >>> 16) + (cross2 >>> 16) + carry) >>> 0;
}

/** Philox4x32 with 10 rounds; writes 4 uint32 words to `out`. */
export function philox4x32(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
): void {
  c0 >>>= 0;
  c1 >>>= 0;
  c2 >>>= 0;
  c3 >>>= 0;
  k0 >>>= 0;
  k1 >>>= 0;
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + PHILOX_W0) >>> 0;
      k1 = (k1 + PHILOX_W1) >>> 0;
    }
    const hi0 = mulHigh(PHILOX_M0, c0);
    const lo0 = imul(PHILOX_M0, c0) >>> 0;
    const hi1 = mulHigh(PHILOX_M1, c2);
    const lo1 = imul(PHILOX_M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/** A key tuple folded to Philox inputs; make one with `randomKey`. */
export interface RandomKey {
  readonly k0: number;
  readonly k1: number;
  readonly c2: number;
  readonly c3: number;
}

function lowWord(value: number): number {
  return value >>> 0; // two's complement low 32 bits, also for negatives
}

function highWord(value: number): number {
  return floor(value / TWO_POW_32) >>> 0;
}

function checkInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new RangeError(`${what} must be a safe integer, got ${value}`);
}

/**
 * Folds a tuple of integers (e.g. seed, stream, step, sampleIndex) into a key. Tuples of
 * different lengths give unrelated keys: (1, 2) and (1, 2, 0) differ.
 */
export function randomKey(...parts: number[]): RandomKey {
  const block = new Uint32Array(4);
  let k0 = 0x243f6a88; // arbitrary nonzero start (digits of pi)
  let k1 = 0x85a308d3;
  let c2 = parts.length;
  let c3 = 0x13198a2e;
  for (const [index, part] of parts.entries()) {
    checkInteger(part, `random key part ${index}`);
    philox4x32(lowWord(part), highWord(part), c2, c3, k0, k1, block);
    [k0, k1, c2, c3] = [block[0], block[1], block[2], block[3]];
  }
  return { k0, k1, c2, c3 };
}

const scratch = new Uint32Array(4);

function blockAt(key: RandomKey, index: number): Uint32Array {
  philox4x32(lowWord(index), highWord(index), key.c2, key.c3, key.k0, key.k1, scratch);
  return scratch;
}

/** 53 random bits from two words, as a float64 in [0, 1). */
function toUnit(a: number, b: number): number {
  return ((a >>> 5) * 67108864 + (b >>> 6)) / TWO_POW_53;
}

/** Uniform float64 in [0, 1) for element `index` (a non-negative safe integer) of `key`. */
export function uniformAt(key: RandomKey, index: number): number {
  const block = blockAt(key, index);
  return toUnit(block[0], block[1]);
}

/** Standard normal for element `index` of `key` (Box–Muller on the block's two uniforms). */
export function normalAt(key: RandomKey, index: number): number {
  const block = blockAt(key, index);
  const u1 = toUnit(block[0], block[1]);
  const u2 = toUnit(block[2], block[3]);
  // 1 − u1 lies in (0, 1], so the logarithm is finite.
  return sqrt(-2 * log(1 - u1)) * cos(2 * PI * u2);
}

/**
 * Runs `fill(units, offset, count)` over [0, length) in pieces, where units[2j], units[2j + 1]
 * are the uniforms (u1, u2) of element firstIndex + offset + j, from the WebAssembly block
 * function; returns false (nothing done) where it is unavailable.
 */
function withUnitPairs(key: RandomKey, firstIndex: number, length: number, fill: (units: Float64Array, offset: number, count: number) => void): boolean {
  const kernel = wasmPhilox ? philoxUnits() : null;
  if (!kernel) return false;
  for (let offset = 0; offset < length; ) {
    const index = firstIndex + offset;
    const low = lowWord(index);
    // Pieces stop where the low counter word would wrap into the high one.
    const count = Math.min(length - offset, UNIT_PAIRS_PER_CALL, TWO_POW_32 - low);
    fill(kernel.unitPairs(count, low, highWord(index), key.c2, key.c3, key.k0, key.k1), offset, count);
    offset += count;
  }
  return true;
}

/** out[i] = uniformAt(key, firstIndex + i). */
export function fillUniform(key: RandomKey, out: Float32Array | Float64Array, firstIndex = 0): void {
  checkInteger(firstIndex, "firstIndex");
  const done = withUnitPairs(key, firstIndex, out.length, (units, offset, count) => {
    for (let j = 0; j < count; j++) out[offset + j] = units[2 * j];
  });
  if (!done) for (let i = 0; i < out.length; i++) out[i] = uniformAt(key, firstIndex + i);
}

/** out[i] = normalAt(key, firstIndex + i). */
export function fillNormal(key: RandomKey, out: Float32Array | Float64Array, firstIndex = 0): void {
  checkInteger(firstIndex, "firstIndex");
  const done = withUnitPairs(key, firstIndex, out.length, (units, offset, count) => {
    for (let j = 0; j < count; j++) out[offset + j] = sqrt(-2 * log(1 - units[2 * j])) * cos(2 * PI * units[2 * j + 1]);
  });
  if (!done) for (let i = 0; i < out.length; i++) out[i] = normalAt(key, firstIndex + i);
}

let wasmPhilox = true;

/** Turns the WebAssembly block function off or on for later fills; for tests that compare both paths. */
export function setWasmPhilox(enabled: boolean): void {
  wasmPhilox = enabled;
}
