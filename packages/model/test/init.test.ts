import { setWasmPhilox } from "../src/random";
import { initParams, InitKind, referenceInitOf } from "../src/init";
import { decayOf, ParamSpec, ParamStore } from "../src/param-store";

function spec(name: string, shape: number[], trainable = true): ParamSpec {
  return { name, shape, trainable, decay: decayOf(name, shape) };
}

function moments(values: Float32Array): { mean: number; std: number; min: number; max: number } {
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    sumSq += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / values.length;
  return { mean, std: Math.sqrt(sumSq / values.length - mean * mean), min, max };
}

/** A small DINO ViT + head in reference state_dict names (patch 4, width 8, 1 block). */
const VIT_SPECS: ParamSpec[] = [
  spec("backbone.cls_token", [1, 1, 8]),
  spec("backbone.pos_embed", [1, 17, 8]),
  spec("backbone.patch_embed.proj.weight", [8, 3, 4, 4]),
  spec("backbone.patch_embed.proj.bias", [8]),
  spec("backbone.blocks.0.norm1.weight", [8]),
  spec("backbone.blocks.0.norm1.bias", [8]),
  spec("backbone.blocks.0.attn.qkv.weight", [24, 8]),
  spec("backbone.blocks.0.attn.qkv.bias", [24]),
  spec("backbone.norm.weight", [8]),
  spec("backbone.norm.bias", [8]),
  spec("head.mlp.0.weight", [16, 8]),
  spec("head.mlp.0.bias", [16]),
  spec("head.last_layer.weight_g", [32, 1], false),
  spec("head.last_layer.weight_v", [32, 16]),
];

describe("initParams", () => {
  it("normal(0, 0.02): mean and std within sampling bounds, never beyond ±2", () => {
    const n = 100_000;
    const store = new ParamStore([spec("w.weight", [n / 100, 100])]);
    initParams(store, () => ({ kind: "normal", std: 0.02 }), 0);
    const { mean, std, min, max } = moments(store.view("w.weight"));
    expect(Math.abs(mean)).toBeLessThan((5 * 0.02) / Math.sqrt(n));
    expect(Math.abs(std - 0.02)).toBeLessThan(0.02 * 5 * Math.sqrt(1 / (2 * n)));
    expect(min).toBeGreaterThanOrEqual(-2);
    expect(max).toBeLessThanOrEqual(2);
  });

  it("truncation resamples out-of-range draws instead of clamping them", () => {
    const n = 50_000;
    const store = new ParamStore([spec("w.weight", [n, 1])]);
    // Bound at one standard deviation: a clamp would pile ~32% of the mass on ±1.
    initParams(store, () => ({ kind: "normal", std: 1, bound: 1 }), 3);
    const values = store.view("w.weight");
    const { mean, std, max, min } = moments(values);
    expect(max).toBeLessThanOrEqual(1);
    expect(min).toBeGreaterThanOrEqual(-1);
    expect(values.filter((v) => Math.abs(v) === 1).length).toBe(0);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    // Std of a standard normal truncated to [−1, 1] is sqrt(1 − 2φ(1)/(2Φ(1) − 1)) = 0.5379.
    expect(std).toBeCloseTo(0.5379, 2);
  });

  it("uniform(fanIn): within ±1/√fanIn, mean 0, variance bound²/3", () => {
    const n = 100_000;
    const fanIn = 192;
    const bound = 1 / Math.sqrt(fanIn);
    const store = new ParamStore([spec("w.weight", [n / fanIn | 0, fanIn])]);
    initParams(store, () => ({ kind: "uniform", fanIn }), 11);
    const values = store.view("w.weight");
    const { mean, std, min, max } = moments(values);
    expect(min).toBeGreaterThanOrEqual(-bound);
    expect(max).toBeLessThanOrEqual(bound);
    expect(min).toBeLessThan(-0.99 * bound);
    expect(max).toBeGreaterThan(0.99 * bound);
    expect(Math.abs(mean)).toBeLessThan((5 * bound) / Math.sqrt(3 * values.length));
    expect(Math.abs(std - bound / Math.sqrt(3))).toBeLessThan(0.01 * bound);
  });

  it("zeros and ones", () => {
    const store = new ParamStore([spec("a.bias", [5]), spec("b.weight", [5])]);
    store.data.fill(7);
    initParams(store, (s): InitKind => (s.name === "a.bias" ? { kind: "zeros" } : { kind: "ones" }), 0);
    expect(Array.from(store.view("a.bias"))).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(store.view("b.weight"))).toEqual([1, 1, 1, 1, 1]);
  });

  it("is deterministic in the seed, differs between seeds and between tensors", () => {
    const specs = [spec("a.weight", [10, 10]), spec("b.weight", [10, 10])];
    const normal = (): InitKind => ({ kind: "normal", std: 0.02 });
    const first = new ParamStore(specs);
    const again = new ParamStore(specs);
    const other = new ParamStore(specs);
    initParams(first, normal, 42);
    initParams(again, normal, 42);
    initParams(other, normal, 43);
    expect(Array.from(again.data)).toEqual(Array.from(first.data));
    expect(Array.from(other.data)).not.toEqual(Array.from(first.data));
    expect(Array.from(first.view("a.weight"))).not.toEqual(Array.from(first.view("b.weight")));
    // A tensor's values depend on its name, not its position.
    const reordered = new ParamStore([specs[1], specs[0]]);
    initParams(reordered, normal, 42);
    expect(Array.from(reordered.view("a.weight"))).toEqual(Array.from(first.view("a.weight")));
  });

  it("rejects invalid parameters of an init kind", () => {
    const store = new ParamStore([spec("a.weight", [2, 2])]);
    expect(() => initParams(store, () => ({ kind: "uniform", fanIn: 0 }), 0)).toThrow(/fanIn > 0/);
    expect(() => initParams(store, () => ({ kind: "normal", std: 0 }), 0)).toThrow(/std > 0/);
  });
});

describe("referenceInitOf (the reference ViT/DINO head rules)", () => {
  const initOf = referenceInitOf(VIT_SPECS);
  const kindOf = (name: string): InitKind => initOf(VIT_SPECS.find((s) => s.name === name)!);

  it("maps each reference parameter to its init", () => {
    expect(kindOf("backbone.cls_token")).toEqual({ kind: "normal", std: 0.02 });
    expect(kindOf("backbone.pos_embed")).toEqual({ kind: "normal", std: 0.02 });
    expect(kindOf("backbone.patch_embed.proj.weight")).toEqual({ kind: "uniform", fanIn: 48 });
    expect(kindOf("backbone.patch_embed.proj.bias")).toEqual({ kind: "uniform", fanIn: 48 });
    expect(kindOf("backbone.blocks.0.norm1.weight")).toEqual({ kind: "ones" });
    expect(kindOf("backbone.blocks.0.norm1.bias")).toEqual({ kind: "zeros" });
    expect(kindOf("backbone.blocks.0.attn.qkv.weight")).toEqual({ kind: "normal", std: 0.02 });
    expect(kindOf("backbone.blocks.0.attn.qkv.bias")).toEqual({ kind: "zeros" });
    expect(kindOf("head.mlp.0.weight")).toEqual({ kind: "normal", std: 0.02 });
    expect(kindOf("head.mlp.0.bias")).toEqual({ kind: "zeros" });
    expect(kindOf("head.last_layer.weight_g")).toEqual({ kind: "ones" });
    expect(kindOf("head.last_layer.weight_v")).toEqual({ kind: "uniform", fanIn: 16 });
  });

  it("initialises a whole store", () => {
    const store = new ParamStore(VIT_SPECS);
    initParams(store, initOf, 1);
    expect(moments(store.view("backbone.pos_embed")).std).toBeGreaterThan(0.01);
    expect(moments(store.view("backbone.pos_embed")).std).toBeLessThan(0.03);
    expect(Math.max(...store.view("backbone.patch_embed.proj.bias").map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(48));
    expect(Array.from(store.view("head.last_layer.weight_g")).every((v) => v === 1)).toBe(true);
    expect(Array.from(store.view("backbone.norm.bias")).every((v) => v === 0)).toBe(true);
  });

  it("draws the same weights with and without the WebAssembly block function", () => {
    const fast = new ParamStore(VIT_SPECS);
    initParams(fast, initOf, 5);
    setWasmPhilox(false);
    const slow = new ParamStore(VIT_SPECS);
    try {
      initParams(slow, initOf, 5);
    } finally {
      setWasmPhilox(true);
    }
    expect(fast.data).toEqual(slow.data);
  });

  it("names a parameter it has no rule for", () => {
    expect(() => referenceInitOf([])(spec("mystery", [3]))).toThrow(/"mystery"/);
  });
});
