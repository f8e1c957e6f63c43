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

/** Structured control flow: block, loop, br, br_if and end, with the empty block type. */
export const BLOCK = 0x02;
export const LOOP = 0x03;
export const BR = 0x0c;
export const BR_IF = 0x0d;
export const END = 0x0b;
export const VOID = 0x40;
const I32_GE_U = 0x4f;

/** while (local `cursor` < local `end`, unsigned) { body }: the loop of every streaming kernel. */
export const loopUntil = (cursor: number, end: number, body: number[]): number[] => [
  BLOCK, VOID, LOOP, VOID,
  ...get(cursor), ...get(end), I32_GE_U, BR_IF, 1,
  ...body,
  BR, 0, END, END,
];
