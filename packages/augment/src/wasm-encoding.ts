/**
 * Instruction builders for the hand-assembled WebAssembly SIMD kernels of this package
 * (simd-*.ts), on top of @dino-coord/wasm's byte encoders: the instructions the kernels
 * use, as stack expressions, and the module layout they share. No toolchain is needed to
 * build the kernels.
 */
import { f32Bytes, get, I32, MODULE_HEADER, name, section, set, simd, uleb, V128 } from "@dino-coord/wasm";

export { F32, get, I32, i32c, section, set, simd, tee, uleb, V128 } from "@dino-coord/wasm";

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

/** f32.const (little-endian IEEE bytes). */
export const f32c = (value: number): number[] => [0x43, ...f32Bytes(value)];

/**
 * The SIMD instructions of the newer kernels as stack-expression builders: each takes
 * its operands' code and appends the opcode, so a kernel reads as nested expressions,
 * e.g. `simdOp.f32x4Add(get(a), get(b))`.
 */
const op =
  (code: number) =>
  (...operands: number[][]): number[] => [...operands.flat(), ...simd(code)];

export const simdOp = {
  i8x16Shuffle: (a: number[], b: number[], lanes: number[]) => [...a, ...b, ...simd(0x0d, ...lanes)],
  /** Bytes of a by the byte indices in b (an index of 16 or more gives 0). */
  i8x16Swizzle: op(0x0e),
  i32x4Splat: op(0x11),
  f32x4Splat: op(0x13),
  i32x4Eq: op(0x37),
  i32x4LtS: op(0x39),
  f32x4Lt: op(0x43),
  v128And: op(0x4e),
  v128AndNot: op(0x4f),
  v128Or: op(0x50),
  v128Bitselect: op(0x52),
  i8x16NarrowI16x8U: op(0x66),
  f32x4Trunc: op(0x69),
  i16x8NarrowI32x4S: op(0x85),
  i16x8ExtendLowI8x16U: op(0x89),
  i16x8ExtendHighI8x16U: op(0x8a),
  i32x4ExtendLowI16x8U: op(0xa9),
  i32x4ExtendHighI16x8U: op(0xaa),
  i32x4Shl: op(0xab),
  i32x4ShrS: op(0xac),
  i32x4ShrU: op(0xad),
  i32x4Add: op(0xae),
  i32x4Sub: op(0xb1),
  i32x4Mul: op(0xb5),
  i32x4MinS: op(0xb6),
  i32x4MaxS: op(0xb8),
  f32x4Add: op(0xe4),
  f32x4Sub: op(0xe5),
  f32x4Mul: op(0xe6),
  f32x4Div: op(0xe7),
  f32x4ConvertI32x4S: op(0xfa),
};

/** v128.load / v128.store at `offset` bytes past the address operand. */
export const v128Load = (address: number[], offset = 0): number[] => [...address, ...simd(0x00, 0, ...uleb(offset))];
export const v128Store = (address: number[], value: number[], offset = 0): number[] => [...address, ...value, ...simd(0x0b, 0, ...uleb(offset))];
export const v128Const = (bytes: number[]): number[] => simd(0x0c, ...bytes);

/** Plain (non-SIMD) instructions the kernels use. */
export const wasmOp = {
  i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c, i32And: 0x71, i32Shl: 0x74, i32ShrU: 0x76, i32GeS: 0x4e, i32LtS: 0x48, i32Eqz: 0x45,
  block: [0x02, 0x40], loop: [0x03, 0x40], if: [0x04, 0x40], else: 0x05, end: 0x0b, br: 0x0c, brIf: 0x0d,
};

/** while (!exit) { body }: `exit` pushes an i32 that is non-zero to leave. */
export const whileNot = (exit: number[], body: number[]): number[] => [...wasmOp.block, ...wasmOp.loop, ...exit, wasmOp.brIf, 1, ...body, wasmOp.br, 0, wasmOp.end, wasmOp.end];

/** local += by (i32). */
export const increment = (local: number, by: number[]): number[] => [...get(local), ...by, wasmOp.i32Add, ...set(local)];

export interface KernelFunction {
  name: string;
  params: number[];
  results: number[];
  /** (count, type) pairs declaring the locals after the parameters. */
  locals: number[];
  code: number[];
}

/**
 * A module importing env.memory and exporting `functions`. A `shared` import takes a
 * shared memory (WebAssembly.Memory({ shared: true, maximum })) of any size.
 */
export function kernelModule(functions: KernelFunction[], options: { shared?: boolean } = {}): Uint8Array {
  const types = functions.flatMap((f) => [0x60, ...uleb(f.params.length), ...f.params, ...uleb(f.results.length), ...f.results]);
  const exported = functions.flatMap((f, i) => [...name(f.name), 0x00, ...uleb(i)]);
  const bodies = functions.flatMap((f) => {
    const entry = [...uleb(f.locals.length / 2), ...f.locals, ...f.code, wasmOp.end];
    return [...uleb(entry.length), ...entry];
  });
  return Uint8Array.from([
    ...MODULE_HEADER,
    ...section(1, [...uleb(functions.length), ...types]),
    // Limits: flags 0 = minimum only; 3 = shared, minimum and maximum (65536 pages, 4 GiB).
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, ...(options.shared ? [0x03, 0x01, ...uleb(65536)] : [0x00, 0x01])]),
    ...section(3, [...uleb(functions.length), ...functions.map((_, i) => i)]),
    ...section(7, [...uleb(functions.length), ...exported]),
    ...section(10, [...uleb(functions.length), ...bodies]),
  ]);
}

/**
 * Locals of one kernel function, declared as they are asked for, and its loop-invariant
 * vectors (splats of constants or parameters), each computed once into a local before the
 * loop (`preamble`). V8's optimizing compiler re-materialises the constant ones at their
 * uses anyway (measured: keeping them in memory or opaque locals was no faster), so this
 * is for the parameter splats and for readable kernels.
 */
export class KernelLocals {
  private readonly types: number[] = [];
  private readonly constants = new Map<string, number>();
  readonly preamble: number[] = [];

  constructor(private readonly paramCount: number) {}

  i32(): number {
    return this.add(I32);
  }

  v128(): number {
    return this.add(V128);
  }

  /** local.get of a local holding `value` (code pushing a v128), set once in the preamble. */
  constant(value: number[]): number[] {
    const key = value.join(",");
    let local = this.constants.get(key);
    if (local === undefined) {
      local = this.v128();
      this.preamble.push(...value, ...set(local));
      this.constants.set(key, local);
    }
    return get(local);
  }

  /** The (count, type) declaration of every local asked for. */
  declaration(): number[] {
    return this.types.flatMap((type) => [1, type]);
  }

  private add(type: number): number {
    this.types.push(type);
    return this.paramCount + this.types.length - 1;
  }
}
