import * as path from "path";
import { decayOf, ParamLoadError, ParamSpec, ParamStore } from "../src/param-store";
import { readSafetensors } from "../src/safetensors";

function spec(name: string, shape: number[], trainable = true): ParamSpec {
  return { name, shape, trainable, decay: decayOf(name, shape) };
}

const SPECS: ParamSpec[] = [
  spec("backbone.cls_token", [1, 1, 4]),
  spec("backbone.blocks.0.norm1.weight", [4]),
  spec("backbone.blocks.0.attn.qkv.weight", [12, 4]),
  spec("head.mlp.0.bias", [3]),
  spec("head.last_layer.weight_g", [5, 1], false),
];

describe("decayOf (reference get_params_groups)", () => {
  it.each([
    ["backbone.cls_token", [1, 1, 384], true],
    ["backbone.pos_embed", [1, 197, 384], true],
    ["backbone.patch_embed.proj.weight", [384, 3, 16, 16], true],
    ["backbone.patch_embed.proj.bias", [384], false],
    ["backbone.blocks.0.norm1.weight", [384], false],
    ["backbone.blocks.0.attn.qkv.weight", [1152, 384], true],
    ["backbone.blocks.0.attn.qkv.bias", [1152], false],
    ["head.mlp.0.bias", [2048], false],
    ["head.mlp.0.weight", [2048, 384], true],
    ["head.last_layer.weight_v", [65536, 256], true],
    ["some.bias", [3, 3], false], // ".bias" wins even when 2-D
    ["some.gamma", [7], false], // 1-D wins for any name
    ["biasless.weight", [2, 2], true],
  ])("%s %j → decay %s", (name, shape, expected) => {
    expect(decayOf(name as string, shape as number[])).toBe(expected);
  });
});

describe("ParamStore", () => {
  it("lays tensors out back to back in spec order, with views into one buffer", () => {
    const store = new ParamStore(SPECS);
    expect(store.size).toBe(4 + 4 + 48 + 3 + 5);
    expect(store.offsetOf("backbone.cls_token")).toBe(0);
    expect(store.offsetOf("backbone.blocks.0.norm1.weight")).toBe(4);
    expect(store.offsetOf("backbone.blocks.0.attn.qkv.weight")).toBe(8);
    expect(store.offsetOf("head.mlp.0.bias")).toBe(56);
    expect(store.offsetOf("head.last_layer.weight_g")).toBe(59);
    const qkv = store.view("backbone.blocks.0.attn.qkv.weight");
    expect(qkv.buffer).toBe(store.data.buffer);
    expect(qkv.length).toBe(48);
    qkv[3] = 7;
    expect(store.data[8 + 3]).toBe(7);
    store.data[56] = -2;
    expect(store.view("head.mlp.0.bias")[0]).toBe(-2);
    expect(store.specs.map((s) => s.name)).toEqual(SPECS.map((s) => s.name));
  });

  it("views other buffers of the same layout and rejects wrong sizes", () => {
    const store = new ParamStore(SPECS);
    const grads = new Float32Array(store.size).map((_, i) => i);
    expect(Array.from(store.viewOf(grads, "head.mlp.0.bias"))).toEqual([56, 57, 58]);
    expect(() => store.viewOf(new Float32Array(3), "head.mlp.0.bias")).toThrow(/3 elements/);
    expect(() => store.view("nope")).toThrow(/no parameter named "nope"/);
  });

  it("rejects duplicate names", () => {
    expect(() => new ParamStore([spec("a.weight", [2, 2]), spec("a.weight", [2, 2])])).toThrow(/declared twice/);
  });

  it("loads from named tensors with a prefix and round-trips through toTensorMap", () => {
    const source = new ParamStore(SPECS);
    source.data.forEach((_, i) => (source.data[i] = i * 0.5 - 3));
    const map = source.toTensorMap("student.");
    expect([...map.keys()]).toEqual(SPECS.map((s) => "student." + s.name));
    expect(map.get("student.backbone.blocks.0.attn.qkv.weight")!.shape).toEqual([12, 4]);
    const target = new ParamStore(SPECS);
    target.loadFrom(map, "student.");
    expect(Array.from(target.data)).toEqual(Array.from(source.data));
  });

  it("names a missing tensor or a shape mismatch, and writes nothing then", () => {
    const store = new ParamStore(SPECS);
    const map = new ParamStore(SPECS).toTensorMap();
    map.get("backbone.cls_token")!.data.fill(9);
    map.delete("head.mlp.0.bias");
    expect(() => store.loadFrom(map)).toThrow(ParamLoadError);
    expect(() => store.loadFrom(map)).toThrow('parameter "head.mlp.0.bias": missing');
    expect(store.view("backbone.cls_token")[0]).toBe(0);

    const wrongShape = new ParamStore(SPECS).toTensorMap();
    wrongShape.set("backbone.blocks.0.attn.qkv.weight", { shape: [4, 12], data: new Float32Array(48) });
    expect(() => store.loadFrom(wrongShape)).toThrow(/qkv\.weight": shape \[4, 12\] where \[12, 4\] is expected/);
  });

  it("loads the reference fixture's student parameters", () => {
    const tensors = readSafetensors(path.join(__dirname, "data", "dino-step-small", "inputs.safetensors"));
    const specs = [...tensors.entries()]
      .filter(([name]) => name.startsWith("student."))
      .map(([name, t]) => spec(name.slice("student.".length), t.shape, !name.endsWith("weight_g")));
    const store = new ParamStore(specs);
    store.loadFrom(tensors, "student.");
    expect(Array.from(store.view("backbone.pos_embed"))).toEqual(Array.from(tensors.get("student.backbone.pos_embed")!.data as Float32Array));
    expect(store.specs.find((s) => s.name === "backbone.cls_token")!.decay).toBe(true);
    expect(store.specs.find((s) => s.name === "backbone.norm.weight")!.decay).toBe(false);
  });
});
