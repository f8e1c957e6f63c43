/**
 * Times whole training steps of one worker on random crops: teacher forward, student
 * forward/backward, clipping + AdamW, teacher EMA and center update — what one reference
 * process does per iteration, minus data loading.
 */
import { Arch, dinoPreset, StepShape } from "./dino/config";
import { fillDropPathMasks } from "./dino/drop-path";
import { dinoParamSpecs } from "./dino/param-specs";
import { DinoStepSessions } from "./dino/step-sessions";
import { emaTeacher, updateCenter } from "./ema";
import { initParams, referenceInitOf } from "./init";
import { AdamW, studentUpdate } from "./optimizer";
import { ParamStore } from "./param-store";
import { fillNormal, randomKey } from "./random";
import { Device } from "./runtime/device";

export interface BenchStepOptions {
  arch: Arch;
  patchSize: number;
  batchSize: number;
  localCrops: number;
  outDim: number;
  threads: number;
  device: Device;
  steps: number;
  warmup: number;
}

export interface BenchStepResult {
  arch: string;
  patch_size: number;
  batch_size: number;
  local_crops: number;
  out_dim: number;
  threads: number;
  device: string;
  steps: number;
  step_s_median: number;
  images_per_s: number;
  peak_rss_mb: number;
  setup_s: number;
}

export async function benchStep(o: BenchStepOptions): Promise<BenchStepResult> {
  const started = performance.now();
  const config = dinoPreset(o.arch, { patchSize: o.patchSize, outDim: o.outDim });
  const shape: StepShape = { batchSize: o.batchSize, globalCrops: 2, localCrops: o.localCrops };
  const specs = dinoParamSpecs(config);
  const student = new ParamStore(specs);
  initParams(student, referenceInitOf(specs), 0);
  const teacher = new ParamStore(specs, Float32Array.from(student.data));
  const grads = new Float32Array(student.size);
  const optimizer = new AdamW(student);
  const center = new Float32Array(config.outDim);

  const globals = new Float32Array(2 * o.batchSize * 3 * config.imgSize ** 2);
  const locals = new Float32Array(o.localCrops * o.batchSize * 3 * config.localCropSize ** 2);
  fillNormal(randomKey(0, 100), globals);
  fillNormal(randomKey(0, 101), locals);
  const sampleIndices = Array.from({ length: o.batchSize }, (_, i) => i);
  const globalDropPath = new Float32Array(config.depth * 2 * 2 * o.batchSize);
  const localDropPath = new Float32Array(config.depth * 2 * o.localCrops * o.batchSize);

  const sessions = await DinoStepSessions.create(config, shape, { device: o.device, threads: o.threads });
  const setupSeconds = (performance.now() - started) / 1000;
  const times: number[] = [];
  for (let step = 0; step < o.warmup + o.steps; step++) {
    const t0 = performance.now();
    fillDropPathMasks(globalDropPath, config, { seed: 0, step, sampleIndices, firstCrop: 0, crops: 2 });
    if (o.localCrops > 0) fillDropPathMasks(localDropPath, config, { seed: 0, step, sampleIndices, firstCrop: 2, crops: o.localCrops });
    await sessions.teacherForward(teacher, globals);
    const { teacherOutputSum } = await sessions.studentStep(student, grads, {
      globals,
      locals: o.localCrops > 0 ? locals : undefined,
      center,
      teacherTemp: 0.04,
      globalDropPath,
      localDropPath: o.localCrops > 0 ? localDropPath : undefined,
    });
    studentUpdate(optimizer, student.data, grads, { lr: 1e-4, weightDecay: 0.04, clipGrad: 3, epoch: 1, freezeLastLayer: 1 });
    emaTeacher(teacher.data, student.data, 0.996);
    updateCenter(center, teacherOutputSum, 2 * o.batchSize, 0.9);
    if (step >= o.warmup) times.push((performance.now() - t0) / 1000);
  }
  await sessions.release();
  times.sort((a, b) => a - b);
  const median = times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
  return {
    arch: o.arch,
    patch_size: o.patchSize,
    batch_size: o.batchSize,
    local_crops: o.localCrops,
    out_dim: o.outDim,
    threads: o.threads,
    device: o.device.kind,
    steps: o.steps,
    step_s_median: median,
    images_per_s: o.batchSize / median,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    setup_s: setupSeconds,
  };
}
