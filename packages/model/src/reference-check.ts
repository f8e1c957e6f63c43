/**
 * Runs one full DINO step on a fixture computed by the PyTorch reference and measures
 * how far every quantity lands from it (see shared/fixtures/README.md for the format).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DinoModelConfig, validateModelConfig } from "./dino/config";
import { dinoParamSpecs } from "./dino/param-specs";
import { DinoStepSessions } from "./dino/step-sessions";
import { emaTeacher, updateCenter } from "./ema";
import { AdamW, studentUpdate } from "./optimizer";
import { ParamStore } from "./param-store";
import { Device } from "./runtime/device";
import { readSafetensors, SafetensorsTensor, TensorToWrite, writeSafetensors } from "./safetensors";

export class FixtureError extends Error {
  constructor(readonly fixtureDir: string, problem: string) {
    super(`fixture ${fixtureDir}: ${problem}`);
    this.name = "FixtureError";
  }
}

export const TOLERANCE = { lossAndCenter: 1e-5, outputsAndGrads: 1e-4, paramsAfter: 1e-4, maskRelativeGrad: 1e-6 } as const;

interface FixtureStep {
  lr: number;
  wd: number;
  momentum: number;
  clip_grad: number;
  teacher_temp: number;
  student_temp: number;
  center_momentum: number;
  epoch: number;
  freeze_last_layer: number;
}

export interface Fixture {
  model: DinoModelConfig;
  batchSize: number;
  localCrops: number;
  step: FixtureStep;
  inputs: Map<string, SafetensorsTensor>;
  expected: Map<string, SafetensorsTensor>;
}

export function readFixture(dir: string): Fixture {
  for (const file of ["config.json", "inputs.safetensors", "expected.safetensors"]) {
    if (!existsSync(join(dir, file))) throw new FixtureError(dir, `missing ${file}`);
  }
  let json: any;
  try {
    json = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  } catch (err) {
    throw new FixtureError(dir, `config.json is not valid JSON (${(err as Error).message})`);
  }
  const m = json.model ?? {};
  if (m.arch !== undefined && m.arch !== "vit") throw new FixtureError(dir, `unsupported model arch "${m.arch}"`);
  if (json.global_crops !== undefined && json.global_crops !== 2) throw new FixtureError(dir, "DINO uses exactly 2 global crops");
  if (m.qkv_bias === false) throw new FixtureError(dir, "qkv_bias false is not supported: every reference ViT has qkv biases");
  const model = validateModelConfig({
    imgSize: m.img_size,
    localCropSize: m.local_crop_size ?? m.img_size,
    patchSize: m.patch_size,
    embedDim: m.embed_dim,
    depth: m.depth,
    numHeads: m.num_heads,
    mlpRatio: m.mlp_ratio ?? 4,
    layerNormEps: m.layer_norm_eps ?? 1e-6,
    headHiddenDim: m.head_hidden_dim ?? 2048,
    headBottleneckDim: m.head_bottleneck_dim ?? 256,
    headLayers: m.head_nlayers ?? 3,
    outDim: m.out_dim,
    normLastLayer: m.norm_last_layer ?? true,
    dropPathRate: m.drop_path_rate ?? 0,
  });
  if (model.dropPathRate > 0) throw new FixtureError(dir, "a fixture step must not use stochastic depth (its masks are not in the fixture)");
  return {
    model,
    batchSize: json.batch_size,
    localCrops: json.local_crops,
    step: json.step,
    inputs: readSafetensors(join(dir, "inputs.safetensors")),
    expected: readSafetensors(join(dir, "expected.safetensors")),
  };
}

export interface QuantityReport {
  relError: number;
  limit: number;
  ok: boolean;
  /** For parameters after the step: the largest move away from the reference on masked-out elements, and its bound. */
  maxMaskedOutDiff?: number;
  maskedOutBound?: number;
}

export interface ReferenceReport {
  fixture: string;
  ok: boolean;
  worst: { name: string; relError: number } | null;
  quantities: Record<string, QuantityReport>;
}

function tensorOf(map: Map<string, SafetensorsTensor>, name: string, dir: string): Float32Array {
  const t = map.get(name);
  if (!t) throw new FixtureError(dir, `missing tensor ${name}`);
  return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as ArrayLike<number>);
}

function concatenated(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** ‖ours − ref‖ / ‖ref‖ over the elements where `keep` holds (all when absent). */
export function relativeError(ours: ArrayLike<number>, ref: ArrayLike<number>, keep?: (i: number) => boolean): number {
  if (ours.length !== ref.length) return Infinity;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    if (keep && !keep(i)) continue;
    diff += (ours[i] - ref[i]) ** 2;
    norm += ref[i] ** 2;
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

export async function checkReference(
  dir: string,
  { device, threads, out }: { device?: Device; threads?: number; out?: string } = {},
): Promise<ReferenceReport> {
  const fx = readFixture(dir);
  const { model, step } = fx;
  const specs = dinoParamSpecs(model);
  const shape = { batchSize: fx.batchSize, globalCrops: 2 as const, localCrops: fx.localCrops };

  const student = new ParamStore(specs);
  student.loadFrom(fx.inputs, "student.");
  const initial = Float32Array.from(student.data);
  const teacher = new ParamStore(specs, Float32Array.from(student.data));
  const crop = (i: number) => tensorOf(fx.inputs, `crop.${i}`, dir);
  const center = Float32Array.from(tensorOf(fx.inputs, "center", dir));

  const sessions = await DinoStepSessions.create(model, shape, { device, threads, studentTemp: step.student_temp, exposeStudentOutput: true });
  const teacherOutput = Float32Array.from(await sessions.teacherForward(teacher, concatenated([crop(0), crop(1)])));
  const grads = new Float32Array(student.size);
  const result = await sessions.studentStep(student, grads, {
    globals: concatenated([crop(0), crop(1)]),
    locals: fx.localCrops > 0 ? concatenated(Array.from({ length: fx.localCrops }, (_, i) => crop(i + 2))) : undefined,
    center,
    teacherTemp: step.teacher_temp,
  });
  await sessions.release();
  const rawGrads = Float32Array.from(grads);

  studentUpdate(new AdamW(student), student.data, grads, {
    lr: step.lr,
    weightDecay: step.wd,
    clipGrad: step.clip_grad,
    epoch: step.epoch,
    freezeLastLayer: step.freeze_last_layer,
  });
  emaTeacher(teacher.data, student.data, step.momentum);
  updateCenter(center, result.teacherOutputSum, 2 * fx.batchSize, step.center_momentum);

  const quantities: Record<string, QuantityReport> = {};
  const compare = (name: string, ours: ArrayLike<number>, limit: number) => {
    const relError = relativeError(ours, tensorOf(fx.expected, name, dir));
    quantities[name] = { relError, limit, ok: relError <= limit };
  };
  compare("loss", [result.loss], TOLERANCE.lossAndCenter);
  compare("center_after", center, TOLERANCE.lossAndCenter);
  compare("teacher_output", teacherOutput, TOLERANCE.outputsAndGrads);
  compare("student_output", result.studentOutput!, TOLERANCE.outputsAndGrads);

  specs.forEach((spec, index) => {
    const [begin, end] = student.rangeAt(index);
    const refGrad = fx.expected.get(`grad.${spec.name}`);
    if (spec.trainable) {
      if (!refGrad) throw new FixtureError(dir, `missing tensor grad.${spec.name}`);
      compare(`grad.${spec.name}`, rawGrads.subarray(begin, end), TOLERANCE.outputsAndGrads);
    }
    const after = [
      { prefix: "student_after", ours: student.data.subarray(begin, end), bound: 2 * step.lr },
      { prefix: "teacher_after", ours: teacher.data.subarray(begin, end), bound: 2 * step.lr * (1 - step.momentum) },
    ];
    for (const { prefix, ours, bound } of after) {
      const name = `${prefix}.${spec.name}`;
      const ref = tensorOf(fx.expected, name, dir);
      if (!refGrad) {
        // No gradient: the parameter must not move at all.
        const unmoved = ours.every((v, i) => v === ref[i] && v === initial[begin + i]);
        quantities[name] = { relError: relativeError(ours, ref), limit: 0, ok: unmoved };
        continue;
      }
      // Elements whose reference gradient is rounding noise move by up to ±lr in any implementation.
      const g = refGrad.data as Float32Array;
      const largest = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const significant = (i: number) => Math.abs(g[i]) > TOLERANCE.maskRelativeGrad * largest;
      const relError = relativeError(ours, ref, significant);
      let maxMaskedOutDiff = 0;
      for (let i = 0; i < ref.length; i++) maxMaskedOutDiff = Math.max(maxMaskedOutDiff, Math.abs(ours[i] - ref[i]));
      quantities[name] = {
        relError,
        limit: TOLERANCE.paramsAfter,
        ok: relError <= TOLERANCE.paramsAfter && maxMaskedOutDiff <= bound,
        maxMaskedOutDiff,
        maskedOutBound: bound,
      };
    }
  });

  if (out) {
    const tensors = new Map<string, TensorToWrite>([
      ["loss", { shape: [1], data: new Float32Array([result.loss]) }],
      ["teacher_output", { shape: [2 * fx.batchSize, model.outDim], data: teacherOutput }],
      ["student_output", { shape: [(2 + fx.localCrops) * fx.batchSize, model.outDim], data: result.studentOutput! }],
      ["center_after", { shape: [1, model.outDim], data: center }],
    ]);
    specs.forEach((spec, index) => {
      if (spec.trainable) tensors.set(`grad.${spec.name}`, { shape: spec.shape, data: rawGrads.subarray(...student.rangeAt(index)) });
    });
    for (const spec of specs) tensors.set(`student_after.${spec.name}`, { shape: spec.shape, data: student.view(spec.name) });
    for (const spec of specs) tensors.set(`teacher_after.${spec.name}`, { shape: spec.shape, data: teacher.view(spec.name) });
    writeSafetensors(out, tensors);
  }

  const entries = Object.entries(quantities);
  const worst = entries.reduce<{ name: string; relError: number } | null>(
    (w, [name, q]) => (q.limit > 0 && (!w || q.relError > w.relError) ? { name, relError: q.relError } : w),
    null,
  );
  return { fixture: dir, ok: entries.every(([, q]) => q.ok), worst, quantities };
}
