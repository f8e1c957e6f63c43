/** The value types and the instructions every hand-assembled kernel uses. */
import { sleb, uleb } from "./bytes";

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F32 = 0x7d;
export const F64 = 0x7c;
export const V128 = 0x7b;

/** local.get / local.set / local.tee of local `i`. */
export const get = (i: number): number[] => [0x20, ...uleb(i)];
export const set = (i: number): number[] => [0x21, ...uleb(i)];
export const tee = (i: number): number[] => [0x22, ...uleb(i)];
/** i32.const of a 32-bit pattern (an unsigned value above 2^31 − 1 gives the same bits). */
export const i32c = (value: number): number[] => [0x41, ...sleb(value | 0)];
/** A SIMD (0xfd-prefixed) instruction with its immediates. */
export const simd = (code: number, ...immediates: number[]): number[] => [0xfd, ...uleb(code), ...immediates];
