import * as fs from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DINO_SCHEDULE_DEFAULTS, dinoParamSpecs, ParamStore, tinyDemoConfig, type DinoModelConfig } from "@dino-coord/model";
import type { RunConfig } from "@dino-coord/worker";
import type { TrainingState } from "../src/checkpoint";

/** Distinct, reproducible values (a small LCG), so swapped or shifted tensors are noticed. */
export function fill(array: Float32Array, seed: number): Float32Array {
  let x = seed >>> 0;
  for (let i = 0; i < array.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    array[i] = x / 2 ** 32 - 0.5;
  }
  return array;
}

export function runConfig(model: DinoModelConfig = tinyDemoConfig(), overrides: Partial<RunConfig> = {}): RunConfig {
  return {
    model,
    momentumTeacher: 0.996,
    warmupTeacherTemp: 0.04,
    teacherTemp: 0.04,
    warmupTeacherTempEpochs: 0,
    weightDecay: 0.04,
    weightDecayEnd: 0.4,
    clipGrad: 3,
    batchSizePerGpu: 4,
    epochs: 10,
    freezeLastLayer: 1,
    lr: 0.0005,
    warmupEpochs: 2,
    minLr: 1e-6,
    optimizer: "adamw",
    globalCropsScale: [0.4, 1],
    localCropsNumber: 2,
    localCropsScale: [0.05, 0.4],
    dataPath: "/data/train",
    outputDir: "/runs/a",
    saveckpFreq: 2,
    seed: 0,
    numWorkers: 2,
    gpus: 2,
    device: "cpu",
    threadsPerWorker: 1,
    checksumEvery: 200,
    stepTimeoutMs: 600000,
    heartbeatTimeoutMs: 60000,
    ...overrides,
  };
}

/** A coordinator state of the tiny demo model at `step`, every buffer filled differently. */
export function trainingState(step: number, overrides: Partial<TrainingState> = {}): TrainingState {
  const model = tinyDemoConfig();
  const specs = dinoParamSpecs(model);
  const student = new ParamStore(specs);
  fill(student.data, 1 + step);
  const teacher = new ParamStore(specs);
  fill(teacher.data, 1000 + step);
  const steps = new Int32Array(specs.length).map((_, i) => (specs[i].trainable ? step : 0));
  return {
    step,
    epoch: Math.floor(step / 5),
    iterInEpoch: step % 5,
    student,
    teacher,
    optimizer: { expAvg: fill(new Float32Array(student.size), 2000 + step), expAvgSq: fill(new Float32Array(student.size), 3000 + step).map(Math.abs), steps },
    center: fill(new Float32Array(model.outDim), 4000 + step),
    runConfig: runConfig(model),
    rng: { seed: 0, augmentCounter: step * 8, dropPathCounter: step },
    schedule: { ...DINO_SCHEDULE_DEFAULTS, batchSizePerGpu: 4, worldSize: 2, itersPerEpoch: 5, epochs: 10 },
    loss: 10.5 - step / 100,
    elapsedSeconds: step * 1.5,
    ...overrides,
  };
}

const created: string[] = [];

/** A fresh run dir under the OS temp folder; `removeRunDirs` (afterAll) deletes them. */
export function temporaryRunDir(): string {
  const dir = fs.mkdtempSync(join(tmpdir(), "dino-ckpt-"));
  created.push(dir);
  return dir;
}

export function removeRunDirs(): void {
  for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A logger that records what it was told. */
export function recordingLogger(): { warn: (d: object, m: string) => void; info: (d: object, m: string) => void; warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  return { warnings, infos, warn: (_d, m) => warnings.push(m), info: (_d, m) => infos.push(m) };
}
