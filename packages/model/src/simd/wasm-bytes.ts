/**
 * Helpers to hand-assemble small WebAssembly modules from bytes (no toolchain), as
 * packages/comm/src/payload-kernels.ts does: LEB128 integers, vectors, sections.
 */

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

/** The 8 little-endian bytes of a float64 (f64.const immediates). */
export function f64Bytes(value: number): number[] {
  return [...new Uint8Array(new Float64Array([value]).buffer)];
}

export function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

export function sized(bytes: number[]): number[] {
  return [...uleb(bytes.length), ...bytes];
}

export function name(text: string): number[] {
  return sized([...Buffer.from(text, "utf8")]);
}

export function section(id: number, bytes: number[]): number[] {
  return [id, ...sized(bytes)];
}

/** The slice of the WebAssembly JS API used here (the ES2022 lib and @types/node 20 do not declare it). */
export interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
  validate(bytes: Uint8Array): boolean;
}

export const wasmApi: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
