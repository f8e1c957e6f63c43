import { emaTeacher } from "../src/ema";
import { AdamW, clipGradientsPerParam, studentUpdate } from "../src/optimizer";
import { decayOf, ParamSpec, ParamStore } from "../src/param-store";
import { normalAt, randomKey } from "../src/random";
import { CHUNK_ELEMENTS, optimizerSimdAvailable, setOptimizerSimd } from "../src/simd/optimizer-kernels";

function spec(name: string, shape: number[], trainable = true): ParamSpec {
  return { name, shape, trainable, decay: decayOf(name, shape) };
}

// Odd and even lengths, a tensor spanning several kernel chunks (with an odd tail), tensors
// starting at odd offsets, a frozen one and one in the no-decay group.
const SPECS: ParamSpec[] = [
  spec("backbone.cls_token", [1, 1, 7]),
  spec("backbone.blocks.0.norm1.weight", [5]),
  spec("backbone.blocks.0.attn.qkv.weight", [2 * CHUNK_ELEMENTS + 3, 3]),
  spec("head.mlp.0.bias", [1]),
  spec("head.last_layer.weight_g", [5, 1], false),
  spec("head.last_layer.weight_v", [5, 3]),
  spec("head.mlp.0.weight", [CHUNK_ELEMENTS, 2]),
];

function randomArray(length: number, scale: number, ...key: number[]): Float32Array {
  const k = randomKey(...key);
  return Float32Array.from({ length }, (_, i) => scale * normalAt(k, i));
}

/** Index of the first element whose bits differ, or -1 (jest's toEqual is slow on arrays this long). */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/** Runs `body` once with the SIMD kernels off (scalar JS loops) and once with them on. */
function scalarAndSimd<T>(body: () => T): { scalar: T; simd: T } {
  setOptimizerSimd(false);
  try {
    const scalar = body();
    setOptimizerSimd(true);
    return { scalar, simd: body() };
  } finally {
    setOptimizerSimd(true);
  }
}

describe("optimizer SIMD kernels", () => {
  it("are available on Node 20 (otherwise the comparisons below would compare scalar with scalar)", () => {
    expect(optimizerSimdAvailable()).toBe(true);
  });

  it("AdamW: SIMD and scalar paths give identical bits for params and moments over several steps", () => {
    const store = new ParamStore(SPECS);
    const initial = randomArray(store.size, 0.02, 1);
    const grads = [0, 1, 2].map((s) => randomArray(store.size, 1e-3, 2, s));
    const run = () => {
      const params = Float32Array.from(initial);
      const adamw = new AdamW(store);
      grads.forEach((g, s) =>
        adamw.step(params, g, { lr: 1e-3 * (s + 1), weightDecay: 0.04, skip: (p) => s === 0 && p.name.includes("last_layer") }),
      );
      return { params, expAvg: Float32Array.from(adamw.expAvg), expAvgSq: Float32Array.from(adamw.expAvgSq), steps: Array.from(adamw.steps) };
    };
    const { scalar, simd } = scalarAndSimd(run);
    expect(firstBitDifference(simd.params, initial)).not.toBe(-1);
    expect(firstBitDifference(simd.params, scalar.params)).toBe(-1);
    expect(firstBitDifference(simd.expAvg, scalar.expAvg)).toBe(-1);
    expect(firstBitDifference(simd.expAvgSq, scalar.expAvgSq)).toBe(-1);
    expect(simd.steps).toEqual(scalar.steps);
  });

  it("AdamW: a state saved by one path and loaded by the other continues with identical bits", () => {
    const store = new ParamStore(SPECS);
    const params = randomArray(store.size, 0.02, 3);
    const g1 = randomArray(store.size, 1e-3, 4);
    const g2 = randomArray(store.size, 1e-3, 5);
    setOptimizerSimd(false);
    const scalarOptimizer = new AdamW(store);
    setOptimizerSimd(true);
    const simdOptimizer = new AdamW(store);
    scalarOptimizer.step(params, g1, { lr: 1e-3, weightDecay: 0.04 });
    simdOptimizer.loadState(scalarOptimizer.state());
    const viaScalar = Float32Array.from(params);
    const viaSimd = Float32Array.from(params);
    scalarOptimizer.step(viaScalar, g2, { lr: 1e-3, weightDecay: 0.04 });
    simdOptimizer.step(viaSimd, g2, { lr: 1e-3, weightDecay: 0.04 });
    expect(firstBitDifference(viaSimd, viaScalar)).toBe(-1);
    expect(firstBitDifference(simdOptimizer.expAvgSq, scalarOptimizer.expAvgSq)).toBe(-1);
  });

  it("clipGradientsPerParam: SIMD and scalar paths give identical norms and clipped gradients", () => {
    const store = new ParamStore(SPECS);
    const grads = randomArray(store.size, 0.05, 6);
    const { scalar, simd } = scalarAndSimd(() => {
      const g = Float32Array.from(grads);
      return { norms: clipGradientsPerParam(g, store, 0.5), g };
    });
    expect(Array.from(simd.norms)).toEqual(Array.from(scalar.norms));
    expect(firstBitDifference(simd.g, scalar.g)).toBe(-1);
    expect(firstBitDifference(simd.g, grads)).not.toBe(-1); // the big tensors were clipped
  });

  it("clipGradientsPerParam: the interleaved norm stays within float64 rounding of a sequential sum", () => {
    const store = new ParamStore(SPECS);
    const grads = randomArray(store.size, 0.05, 7);
    const norms = clipGradientsPerParam(Float32Array.from(grads), store, 1e9);
    let n = 0;
    store.specs.forEach((s, index) => {
      if (!s.trainable) return;
      const [begin, end] = store.rangeAt(index);
      let sum = 0;
      for (let i = begin; i < end; i++) sum += grads[i] * grads[i];
      expect(Math.abs(norms[n++] - Math.sqrt(sum))).toBeLessThanOrEqual(1e-12 * Math.sqrt(sum));
    });
  });

  it("studentUpdate: SIMD and scalar paths give identical bits", () => {
    const store = new ParamStore(SPECS);
    const initial = randomArray(store.size, 0.02, 8);
    const grads = randomArray(store.size, 0.05, 9);
    const { scalar, simd } = scalarAndSimd(() => {
      const params = Float32Array.from(initial);
      const norms = studentUpdate(new AdamW(store), params, Float32Array.from(grads), {
        lr: 5e-4, weightDecay: 0.04, clipGrad: 0.5, epoch: 0, freezeLastLayer: 1,
      });
      return { params, norms };
    });
    expect(firstBitDifference(simd.params, scalar.params)).toBe(-1);
    expect(Array.from(simd.norms)).toEqual(Array.from(scalar.norms));
  });

  it("emaTeacher: SIMD and scalar paths give identical bits (odd length spanning several chunks)", () => {
    const length = 3 * CHUNK_ELEMENTS + 5;
    const teacher = randomArray(length, 0.02, 10);
    const student = randomArray(length, 0.02, 11);
    const { scalar, simd } = scalarAndSimd(() => {
      const t = Float32Array.from(teacher);
      emaTeacher(t, student, 0.996);
      return t;
    });
    expect(firstBitDifference(simd, teacher)).not.toBe(-1);
    expect(firstBitDifference(simd, scalar)).toBe(-1);
  });
});
