/**
 * Byte encoders for hand-assembled WebAssembly modules (no toolchain): LEB128 integers,
 * constants' immediates, vectors, names and sections, as the binary format spells them.
 */

/** Unsigned LEB128 (indices, counts, sizes). */
export function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit value (i32.const immediates). */
export function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const done = (value === 0 && (byte & 0x40) === 0) || (value === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** Signed LEB128 of a 64-bit value (i64.const immediates). */
export function sleb64(value: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = Number(value & 0x7fn);
    value >>= 7n;
    const done = (value === 0n && (byte & 0x40) === 0) || (value === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

/** The 4 little-endian bytes of a float32 (f32.const immediates). */
export function f32Bytes(value: number): number[] {
  return [...new Uint8Array(Float32Array.of(value).buffer)];
}

/** The 8 little-endian bytes of a float64 (f64.const immediates). */
export function f64Bytes(value: number): number[] {
  return [...new Uint8Array(Float64Array.of(value).buffer)];
}

/** A vector: its length, then its items. */
export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** Bytes prefixed by their length (function bodies, section contents). */
export function sized(bytes: number[]): number[] {
  return [...uleb(bytes.length), ...bytes];
}

/** A UTF-8 name (imports, exports). */
export function name(text: string): number[] {
  return sized([...new TextEncoder().encode(text)]);
}

/** Section `id` with its contents. */
export function section(id: number, contents: number[]): number[] {
  return [id, ...sized(contents)];
}

/** The module preamble: magic and version 1. */
export const MODULE_HEADER: readonly number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
