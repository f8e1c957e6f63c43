/**
 * The reference check must hold for any fixture in the shared format, not only the one
 * shared. Two kinds of evidence beyond that fixture:
 * - a variant derived from it whose expected values follow from the reference's rules
 *   alone (epoch < freeze_last_layer: the last layer is not updated at all);
 * - other shapes (depth, heads, crop counts, head depth, learnable weight_g, stochastic
 *   depth), where the whole float64 student graph's gradients are checked against finite
 *   differences of its own loss, and the float32 graph against the float64 one.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DinoModelConfig, StepShape, tinyDemoConfig } from "../src/dino/config";
import { fillDropPathMasks } from "../src/dino/drop-path";
import { dinoParamSpecs } from "../src/dino/param-specs";
import { buildStudentStepGraph, INPUT, OUTPUT } from "../src/dino/train-graphs";
import { initParams, referenceInitOf } from "../src/init";
import { ParamStore } from "../src/param-store";
import { fillNormal, randomKey } from "../src/random";
import { checkReference, relativeError } from "../src/reference-check";
import { CompiledGraph } from "../src/runtime/compiled-graph";
import { readSafetensors, writeSafetensors } from "../src/safetensors";

const SHARED_FIXTURE = join(__dirname, "data", "dino-step-small");

describe("a fixture with the last layer frozen (epoch < freeze_last_layer)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dino-frozen-"));
    cpSync(SHARED_FIXTURE, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    config.step.epoch = 0;
    config.step.freeze_last_layer = 1;
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    // The reference drops the last layer's gradient: AdamW skips it (no decay either), and
    // the teacher EMA mixes two equal tensors. Everything else is unchanged.
    const inputs = readSafetensors(join(dir, "inputs.safetensors"));
    const expected = readSafetensors(join(dir, "expected.safetensors"));
    const m = config.step.momentum;
    for (const name of ["head.last_layer.weight_v", "head.last_layer.weight_g"]) {
      const initial = inputs.get(`student.${name}`)!;
      const init = initial.data as Float32Array;
      expected.set(`student_after.${name}`, { ...initial, data: Float32Array.from(init) });
      expected.set(`teacher_after.${name}`, { ...initial, data: init.map((v) => Math.fround(v * m) + Math.fround((1 - m) * v)) });
    }
    writeSafetensors(join(dir, "expected.safetensors"), expected);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("passes, and the frozen layer did not move", async () => {
    const report = await checkReference(dir);
    expect(Object.entries(report.quantities).filter(([, q]) => !q.ok)).toEqual([]);
    expect(report.quantities["student_after.head.last_layer.weight_v"].relError).toBe(0);
  });

  test("fails when the expected values say the last layer was updated", async () => {
    // The unmodified shared expectations (last layer updated) must not pass at epoch 0.
    cpSync(join(SHARED_FIXTURE, "expected.safetensors"), join(dir, "expected-updated.safetensors"));
    const swapped = mkdtempSync(join(tmpdir(), "dino-frozen-bad-"));
    cpSync(dir, swapped, { recursive: true });
    cpSync(join(SHARED_FIXTURE, "expected.safetensors"), join(swapped, "expected.safetensors"));
    const report = await checkReference(swapped);
    rmSync(swapped, { recursive: true, force: true });
    expect(report.ok).toBe(false);
    expect(report.quantities["student_after.head.last_layer.weight_v"].ok).toBe(false);
  });
});

interface Variant {
  name: string;
  model: DinoModelConfig;
  shape: StepShape;
}

const VARIANTS: Variant[] = [
  {
    name: "depth 3, 4 heads, 3 local crops, 2-layer head, learnable weight_g, stochastic depth",
    model: tinyDemoConfig({ embedDim: 16, depth: 3, numHeads: 4, headLayers: 2, headHiddenDim: 20, headBottleneckDim: 8, outDim: 24, normLastLayer: false, dropPathRate: 0.3 }),
    shape: { batchSize: 2, globalCrops: 2, localCrops: 3 },
  },
  {
    name: "patch 4, no local crops, 1-layer head",
    model: tinyDemoConfig({ imgSize: 16, localCropSize: 8, patchSize: 4, embedDim: 12, depth: 1, numHeads: 2, headLayers: 1, headBottleneckDim: 6, outDim: 10, dropPathRate: 0 }),
    shape: { batchSize: 3, globalCrops: 2, localCrops: 0 },
  },
];

/** Feeds for a student step graph: weights from the reference init, random crops and teacher logits. */
function stepFeeds(v: Variant, dtype: "float32" | "float64"): { store: ParamStore; feeds: Record<string, Float32Array | Float64Array> } {
  const specs = dinoParamSpecs(v.model);
  const store = new ParamStore(specs);
  initParams(store, referenceInitOf(specs), 7);
  // Larger weights than the init's 0.02 make every parameter's gradient clearly non-zero.
  for (let i = 0; i < store.size; i++) store.data[i] *= 3;
  const cast = (a: Float32Array) => (dtype === "float64" ? Float64Array.from(a) : a);
  const random = (n: number, stream: number, scale = 1) => {
    const a = new Float32Array(n);
    fillNormal(randomKey(3, stream), a);
    return cast(a.map((x) => x * scale));
  };
  const { batchSize: b, localCrops: l } = v.shape;
  const feeds: Record<string, Float32Array | Float64Array> = {};
  for (const s of specs) feeds[s.name] = cast(store.view(s.name));
  feeds[INPUT.globalCrops] = random(2 * b * 3 * v.model.imgSize ** 2, 1);
  if (l > 0) feeds[INPUT.localCrops] = random(l * b * 3 * v.model.localCropSize ** 2, 2);
  feeds[INPUT.teacherOutput] = random(2 * b * v.model.outDim, 3, 0.2);
  feeds[INPUT.center] = random(v.model.outDim, 4, 0.05);
  feeds[INPUT.teacherTemp] = cast(new Float32Array([0.07]));
  if (v.model.dropPathRate > 0) {
    const samples = Array.from({ length: b }, (_, i) => i * 5);
    const masks = (firstCrop: number, crops: number) =>
      cast(fillDropPathMasks(new Float32Array(v.model.depth * 2 * crops * b), v.model, { seed: 1, step: 0, sampleIndices: samples, firstCrop, crops }));
    feeds[INPUT.globalDropPath] = masks(0, 2);
    if (l > 0) feeds[INPUT.localDropPath] = masks(2, l);
  }
  return { store, feeds };
}

describe.each(VARIANTS)("student step on other shapes: $name", (v) => {
  test("float64 gradients match finite differences of the loss", async () => {
    const graph = await CompiledGraph.create(buildStudentStepGraph(v.model, v.shape, { studentTemp: 0.1, dtype: "float64" }));
    const { store, feeds } = stepFeeds(v, "float64");
    const analytic = await graph.run(feeds);
    const loss = async () => (await graph.run(feeds))[OUTPUT.loss][0];
    // LayerNorm statistics are float32 inside ONNX Runtime, so the float64 loss carries
    // ~1e-7 relative noise: a 1e-3 step keeps the central difference well above it.
    const h = 1e-3;
    for (const spec of store.specs.filter((s) => s.trainable)) {
      const param = feeds[spec.name] as Float64Array;
      const grad = analytic[OUTPUT.gradPrefix + spec.name];
      const scale = Math.max(...Array.from(grad, Math.abs));
      expect(scale).toBeGreaterThan(0);
      // Probe the element with the largest gradient and one other, per tensor.
      const probes = [grad.indexOf(grad.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a))), Math.floor(param.length / 2)];
      for (const i of probes) {
        const original = param[i];
        param[i] = original + h;
        const up = await loss();
        param[i] = original - h;
        const down = await loss();
        param[i] = original;
        const numeric = (up - down) / (2 * h);
        expect({ name: spec.name, i, diff: Math.abs(numeric - grad[i]) / scale < 2e-3 }).toEqual({ name: spec.name, i, diff: true });
      }
    }
    await graph.release();
  });

  test("float32 loss, outputs and gradients agree with float64 within the reference tolerances", async () => {
    const g64 = await CompiledGraph.create(buildStudentStepGraph(v.model, v.shape, { studentTemp: 0.1, dtype: "float64" }));
    const g32 = await CompiledGraph.create(buildStudentStepGraph(v.model, v.shape, { studentTemp: 0.1 }));
    const r64 = await g64.run(stepFeeds(v, "float64").feeds);
    const r32 = await g32.run(stepFeeds(v, "float32").feeds);
    expect(relativeError(r32[OUTPUT.loss], r64[OUTPUT.loss])).toBeLessThan(1e-5);
    for (const name of Object.keys(r64).filter((k) => k.startsWith(OUTPUT.gradPrefix))) {
      expect({ name, ok: relativeError(r32[name], r64[name]) < 1e-4 }).toEqual({ name, ok: true });
    }
    await Promise.all([g64.release(), g32.release()]);
  });
});
