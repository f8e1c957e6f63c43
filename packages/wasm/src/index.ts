/** Hand-assembled WebAssembly for dino-coord's SIMD kernels (model, comm, augment): encoders and the JS API. */
export { f32Bytes, f64Bytes, MODULE_HEADER, name, section, sized, sleb, sleb64, uleb, vec } from "./bytes";
export { webAssembly, type WebAssemblyApi, type WebAssemblyMemory } from "./web-assembly";
