/**
 * The slice of the WebAssembly JS API the kernels use: the ES2022 lib and @types/node 20 do
 * not declare it, though Node provides it.
 */
export interface WebAssemblyMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(deltaPages: number): number;
}

export interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
  /** shared: a memory whose buffer is a SharedArrayBuffer (needs maximum), which can be posted to worker threads. */
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WebAssemblyMemory;
  validate(bytes: Uint8Array): boolean;
}

/** The runtime's WebAssembly, or undefined where there is none (callers keep a scalar path). */
export const webAssembly: WebAssemblyApi | undefined = (globalThis as unknown as { WebAssembly?: WebAssemblyApi }).WebAssembly;
