/**
 * Jest runs each test file in its own V8 context, whose typed-array constructors differ
 * from the ones native addons (onnxruntime-node, zeromq, sharp) create their buffers
 * with; `instanceof Float32Array` checks in those libraries then fail. Sharing the host
 * realm's constructors makes the test context behave like a plain Node process.
 */
const { TestEnvironment } = require("jest-environment-node");

const SHARED = [
  "ArrayBuffer", "SharedArrayBuffer", "DataView", "Buffer",
  "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
  "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
];

class HostRealmEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = HostRealmEnvironment;
