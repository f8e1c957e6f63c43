/**
 * Byte encoders for the hand-assembled WebAssembly SIMD kernels of this package
 * (simd-box-blur.ts, simd-resample.ts): LEB128 integers, the few instructions every
 * kernel uses, and module sections. No toolchain is needed to build the kernels.
 */

/** Value types. */
export const I32 = 0x7f;
export const V128 = 0x7b;

export function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/** local.get / local.set / local.tee of local `i`. */
export const get = (i: number): number[] => [0x20, ...uleb(i)];
export const set = (i: number): number[] => [0x21, ...uleb(i)];
export const tee = (i: number): number[] => [0x22, ...uleb(i)];
/** i32.const */
export const i32c = (value: number): number[] => [0x41, ...sleb(value)];
/** A SIMD (0xfd-prefixed) instruction with its immediates. */
export const simd = (code: number, ...immediates: number[]): number[] => [0xfd, ...uleb(code), ...immediates];

export function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

/**
 * Compiles a kernel module on first use (null where WebAssembly SIMD is unavailable, so
 * callers take their scalar path) and binds it to the caller's memory.
 */
export function kernelInstantiator(build: () => Uint8Array): (memory: WebAssembly.Memory) => Record<string, unknown> | null {
  let compiled: WebAssembly.Module | null | undefined;
  return (memory) => {
    if (compiled === undefined) {
      try {
        compiled = new WebAssembly.Module(build());
      } catch {
        compiled = null;
      }
    }
    return compiled ? (new WebAssembly.Instance(compiled, { env: { memory } }).exports as Record<string, unknown>) : null;
  };
}
