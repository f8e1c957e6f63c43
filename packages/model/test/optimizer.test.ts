import * as path from "path";
import { AdamW, clipGradientsPerParam, isLastLayerFrozen, OptimizerStateError, studentUpdate } from "../src/optimizer";
import { decayOf, ParamSpec, ParamStore } from "../src/param-store";
import { normalAt, randomKey } from "../src/random";
import { readSafetensors } from "../src/safetensors";

function spec(name: string, shape: number[], trainable = true): ParamSpec {
  return { name, shape, trainable, decay: decayOf(name, shape) };
}

const SPECS: ParamSpec[] = [
  spec("backbone.cls_token", [1, 1, 4]),
  spec("backbone.blocks.0.norm1.weight", [4]),
  spec("backbone.blocks.0.attn.qkv.weight", [6, 4]),
  spec("head.mlp.0.bias", [3]),
  spec("head.last_layer.weight_g", [5, 1], false),
  spec("head.last_layer.weight_v", [5, 3]),
];

function randomArray(length: number, scale: number, ...key: number[]): Float32Array {
  const k = randomKey(...key);
  return Float32Array.from({ length }, (_, i) => scale * normalAt(k, i));
}

/** Straight float64 AdamW for one tensor, from torch.optim.AdamW's documented update. */
class ReferenceAdamW {
  m: Float64Array;
  v: Float64Array;
  t = 0;
  constructor(
    public p: Float64Array,
    readonly decay: boolean,
  ) {
    this.m = new Float64Array(p.length);
    this.v = new Float64Array(p.length);
  }
  step(g: ArrayLike<number>, lr: number, wd: number): void {
    this.t += 1;
    for (let i = 0; i < this.p.length; i++) {
      this.p[i] *= 1 - lr * (this.decay ? wd : 0);
      this.m[i] = 0.9 * this.m[i] + 0.1 * g[i];
      this.v[i] = 0.999 * this.v[i] + 0.001 * g[i] * g[i];
      const mHat = this.m[i] / (1 - 0.9 ** this.t);
      const vHat = this.v[i] / (1 - 0.999 ** this.t);
      this.p[i] -= (lr * mHat) / (Math.sqrt(vHat) + 1e-8);
    }
  }
}

function maxRelativeDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), 1e-3));
  }
  return worst;
}

describe("clipGradientsPerParam (reference clip_gradients)", () => {
  it("scales each tensor above the clip by clip / (norm + 1e-6) and returns the norms", () => {
    const store = new ParamStore(SPECS);
    const grads = new Float32Array(store.size);
    store.viewOf(grads, "backbone.cls_token").set([3, 4, 0, 0]); // norm 5
    store.viewOf(grads, "backbone.blocks.0.norm1.weight").set([0.3, 0.4, 0, 0]); // norm 0.5, kept
    store.viewOf(grads, "head.last_layer.weight_g").fill(100); // not trainable: ignored
    const norms = clipGradientsPerParam(grads, store, 1);
    expect(norms.length).toBe(5); // trainable tensors only
    expect(norms[0]).toBeCloseTo(5, 6);
    expect(norms[1]).toBeCloseTo(0.5, 6);
    expect(norms[2]).toBe(0);
    const coef = 1 / (5 + 1e-6);
    expect(Array.from(store.viewOf(grads, "backbone.cls_token"))).toEqual([3, 4, 0, 0].map((g) => Math.fround(g * coef)));
    expect(Array.from(store.viewOf(grads, "backbone.blocks.0.norm1.weight"))).toEqual([0.3, 0.4, 0, 0].map(Math.fround));
    expect(store.viewOf(grads, "head.last_layer.weight_g").every((g) => g === 100)).toBe(true);
  });

  it("matches a float64 reimplementation on random gradients", () => {
    const store = new ParamStore(SPECS);
    const grads = randomArray(store.size, 0.7, 1, 2);
    const before = Float64Array.from(grads);
    const clip = 1.5;
    const norms = clipGradientsPerParam(grads, store, clip);
    let normIndex = 0;
    store.specs.forEach((s, index) => {
      const [begin, end] = store.rangeAt(index);
      if (!s.trainable) {
        expect(Array.from(grads.subarray(begin, end))).toEqual(Array.from(before.subarray(begin, end)).map(Math.fround));
        return;
      }
      const norm = Math.sqrt(before.subarray(begin, end).reduce((a, g) => a + g * g, 0));
      expect(norms[normIndex++]).toBeCloseTo(norm, 10);
      const coef = Math.min(1, clip / (norm + 1e-6));
      for (let i = begin; i < end; i++) expect(grads[i]).toBeCloseTo(before[i] * coef, 6);
      if (norm > clip) {
        const after = Math.sqrt(grads.subarray(begin, end).reduce((a, g) => a + g * g, 0));
        expect(after).toBeCloseTo(clip, 5);
      }
    });
  });
});

describe("isLastLayerFrozen (reference cancel_gradients_last_layer)", () => {
  it("drops names containing last_layer while epoch < freeze_last_layer", () => {
    expect(isLastLayerFrozen("head.last_layer.weight_v", 0, 1)).toBe(true);
    expect(isLastLayerFrozen("head.last_layer.weight_v", 1, 1)).toBe(false);
    expect(isLastLayerFrozen("head.mlp.0.weight", 0, 1)).toBe(false);
    expect(isLastLayerFrozen("head.last_layer.weight_v", 0, 0)).toBe(false);
  });
});

describe("AdamW", () => {
  it("first step by hand: decoupled decay, then a ±lr move (bias-corrected m/√v = sign(g))", () => {
    const store = new ParamStore([spec("w.weight", [1, 2]), spec("b.bias", [2])]);
    store.data.set([1, -2, 1, -2]);
    const grads = Float32Array.from([0.5, -0.25, 0.5, -0.25]);
    const adam = new AdamW(store);
    adam.step(store.data, grads, { lr: 0.1, weightDecay: 0.5 });
    const eps = 1e-8;
    expect(store.data[0]).toBeCloseTo(1 * 0.95 - (0.1 * 0.5) / (0.5 + eps), 6); // 0.85
    expect(store.data[1]).toBeCloseTo(-2 * 0.95 + (0.1 * 0.25) / (0.25 + eps), 6); // -1.8
    expect(store.data[2]).toBeCloseTo(1 - 0.1, 6); // bias: no decay
    expect(store.data[3]).toBeCloseTo(-2 + 0.1, 6);
    expect(adam.expAvg[0]).toBeCloseTo(0.05, 7);
    expect(adam.expAvgSq[0]).toBeCloseTo(0.001 * 0.25, 9);
    expect(Array.from(adam.steps)).toEqual([1, 1]);
  });

  it("a zero gradient only decays the decay group", () => {
    const store = new ParamStore([spec("backbone.cls_token", [1, 1, 2]), spec("backbone.norm.weight", [2])]);
    store.data.set([2, 3, 2, 3]);
    new AdamW(store).step(store.data, new Float32Array(4), { lr: 0.01, weightDecay: 0.04 });
    expect(Array.from(store.data)).toEqual([2 * (1 - 0.0004), 3 * (1 - 0.0004), 2, 3].map(Math.fround));
  });

  it("matches a float64 torch-formula reimplementation over several steps with changing lr and wd", () => {
    const store = new ParamStore(SPECS);
    store.data.set(randomArray(store.size, 0.1, 3));
    const initial = Float32Array.from(store.data);
    const references = store.specs.map((s) => new ReferenceAdamW(Float64Array.from(store.view(s.name)), s.decay));
    const adam = new AdamW(store);
    for (let step = 0; step < 6; step++) {
      const grads = randomArray(store.size, step % 2 ? 1e-3 : 2, 4, step);
      const lr = 1e-3 * (step + 1);
      const wd = 0.04 + 0.05 * step;
      adam.step(store.data, grads, { lr, weightDecay: wd });
      store.specs.forEach((s, i) => {
        if (s.trainable) references[i].step(store.viewOf(grads, s.name), lr, wd);
      });
    }
    store.specs.forEach((s, i) => {
      const ours = store.view(s.name);
      if (!s.trainable) {
        expect(Array.from(ours)).toEqual(Array.from(store.viewOf(initial, s.name)));
        return;
      }
      expect(maxRelativeDifference(ours, references[i].p)).toBeLessThan(1e-5);
      expect(maxRelativeDifference(store.viewOf(adam.expAvg, s.name), references[i].m)).toBeLessThan(1e-5);
      expect(maxRelativeDifference(store.viewOf(adam.expAvgSq, s.name), references[i].v)).toBeLessThan(1e-5);
    });
    expect(Array.from(adam.steps)).toEqual([6, 6, 6, 6, 0, 6]);
  });

  it("last-layer freeze: no update, no decay, no moments, no step; then a first step with t = 1", () => {
    const store = new ParamStore(SPECS);
    store.data.set(randomArray(store.size, 0.1, 5));
    const adam = new AdamW(store);
    const lastLayer = store.indexOf("head.last_layer.weight_v");
    const before = Float32Array.from(store.view("head.last_layer.weight_v"));
    const references = store.specs.map((s) => new ReferenceAdamW(Float64Array.from(store.view(s.name)), s.decay));
    const options = { lr: 0.01, weightDecay: 0.1, clipGrad: 0, freezeLastLayer: 1 };

    const grads0 = randomArray(store.size, 1, 6, 0);
    studentUpdate(adam, store.data, grads0, { ...options, epoch: 0 });
    store.specs.forEach((s, i) => {
      if (s.trainable && !s.name.includes("last_layer")) references[i].step(store.viewOf(grads0, s.name), 0.01, 0.1);
    });
    expect(Array.from(store.view("head.last_layer.weight_v"))).toEqual(Array.from(before));
    expect(store.viewOf(adam.expAvg, "head.last_layer.weight_v").every((m) => m === 0)).toBe(true);
    expect(store.viewOf(adam.expAvgSq, "head.last_layer.weight_v").every((v) => v === 0)).toBe(true);
    expect(adam.steps[lastLayer]).toBe(0);
    expect(adam.steps[store.indexOf("head.mlp.0.bias")]).toBe(1);

    const grads1 = randomArray(store.size, 1, 6, 1);
    studentUpdate(adam, store.data, grads1, { ...options, epoch: 1 });
    store.specs.forEach((s, i) => {
      if (s.trainable) references[i].step(store.viewOf(grads1, s.name), 0.01, 0.1);
    });
    expect(adam.steps[lastLayer]).toBe(1);
    expect(adam.steps[store.indexOf("head.mlp.0.bias")]).toBe(2);
    // t = 1 for the last layer: p·(1 − lr·wd) − lr·g/(|g| + eps).
    const v = store.view("head.last_layer.weight_v");
    const g = store.viewOf(grads1, "head.last_layer.weight_v");
    for (let i = 0; i < v.length; i++) {
      expect(v[i]).toBeCloseTo(before[i] * (1 - 0.001) - (0.01 * g[i]) / (Math.abs(g[i]) + 1e-8), 6);
    }
    store.specs.forEach((s, i) => {
      if (s.trainable) expect(maxRelativeDifference(store.view(s.name), references[i].p)).toBeLessThan(1e-5);
    });
  });

  it("saves and restores its state: a restored optimizer continues identically", () => {
    const store = new ParamStore(SPECS);
    store.data.set(randomArray(store.size, 0.1, 7));
    const adam = new AdamW(store);
    for (let s = 0; s < 3; s++) adam.step(store.data, randomArray(store.size, 1, 8, s), { lr: 0.01, weightDecay: 0.1 });
    const saved = adam.state();
    const copy = { expAvg: saved.expAvg.slice(), expAvgSq: saved.expAvgSq.slice(), steps: saved.steps.slice() };
    const restoredParams = store.data.slice();
    const restored = new AdamW(store);
    restored.loadState(copy);
    const grads = randomArray(store.size, 1, 8, 3);
    adam.step(store.data, grads, { lr: 0.01, weightDecay: 0.1 });
    restored.step(restoredParams, grads, { lr: 0.01, weightDecay: 0.1 });
    expect(Array.from(restoredParams)).toEqual(Array.from(store.data));
    expect(Array.from(restored.steps)).toEqual([4, 4, 4, 4, 0, 4]);

    expect(() => restored.loadState({ ...copy, expAvg: new Float32Array(3) })).toThrow(OptimizerStateError);
    expect(() => restored.loadState({ ...copy, steps: new Int32Array(2) })).toThrow(/2 step counters for 6/);
  });

  it("keeps its moment buffers across steps (no per-step allocation) and checks buffer sizes", () => {
    const store = new ParamStore(SPECS);
    const adam = new AdamW(store);
    const { expAvg, expAvgSq } = adam;
    adam.step(store.data, new Float32Array(store.size).fill(0.1), { lr: 0.01, weightDecay: 0 });
    expect(adam.state().expAvg).toBe(expAvg);
    expect(adam.state().expAvgSq).toBe(expAvgSq);
    expect(() => adam.step(store.data, new Float32Array(3), { lr: 0.01, weightDecay: 0 })).toThrow(/gradient buffer has 3/);
  });
});

describe("studentUpdate on the reference fixture dino-step-small", () => {
  const dir = path.join(__dirname, "data", "dino-step-small");
  const inputs = readSafetensors(path.join(dir, "inputs.safetensors"));
  const expected = readSafetensors(path.join(dir, "expected.safetensors"));
  const config = require(path.join(dir, "config.json"));

  it("clip → last-layer rule → AdamW lands on student_after", () => {
    const specs = [...inputs.entries()]
      .filter(([name]) => name.startsWith("student."))
      .map(([name, t]) => {
        const param = name.slice("student.".length);
        return spec(param, t.shape, expected.has("grad." + param));
      });
    const store = new ParamStore(specs);
    store.loadFrom(inputs, "student.");
    const grads = new Float32Array(store.size);
    for (const s of specs) if (s.trainable) store.viewOf(grads, s.name).set(expected.get("grad." + s.name)!.data as Float32Array);
    const rawGrads = grads.slice();

    const adam = new AdamW(store);
    const { lr, wd, clip_grad: clipGrad, epoch, freeze_last_layer: freezeLastLayer } = config.step;
    const norms = studentUpdate(adam, store.data, grads, { lr, weightDecay: wd, clipGrad, epoch, freezeLastLayer });
    expect(norms.length).toBe(specs.filter((s) => s.trainable).length);

    for (const s of specs) {
      const ours = store.view(s.name);
      const reference = expected.get("student_after." + s.name)!.data as Float32Array;
      if (!s.trainable) {
        expect(Array.from(ours)).toEqual(Array.from(reference));
        continue;
      }
      // Fixture README: compare elements whose gradient is above 1e-6 × the largest by
      // relative norm; bound the rest (rounding-noise gradients) by 2·lr.
      const g = store.viewOf(rawGrads, s.name);
      const largest = g.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
      let errorSq = 0;
      let referenceSq = 0;
      for (let i = 0; i < ours.length; i++) {
        if (Math.abs(g[i]) >= 1e-6 * largest) {
          errorSq += (ours[i] - reference[i]) ** 2;
          referenceSq += reference[i] ** 2;
        } else {
          expect(Math.abs(ours[i] - reference[i])).toBeLessThanOrEqual(2 * lr);
        }
      }
      expect(Math.sqrt(errorSq / referenceSq)).toBeLessThan(1e-5);
    }
  });
});
