/** Hand-assembled WebAssembly for dino-coord's SIMD kernels (model, comm, augment): encoders and the JS API. */
export { f32Bytes, f64Bytes, MODULE_HEADER, name, section, sized, sleb, sleb64, uleb, vec } from "./bytes";
export { BLOCK, BR, BR_IF, END, F32, F64, get, I32, I64, i32c, LOOP, loopUntil, set, simd, tee, V128, VOID } from "./instructions";
export { webAssembly, type WebAssemblyApi, type WebAssemblyMemory } from "./web-assembly";
