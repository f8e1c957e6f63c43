import type { DinoModelConfig, StepShape } from "@dino-coord/model";

/**
 * Everything a training run is defined by, resolved from the `launch` flags. The
 * coordinator sends it to every worker (Welcome.config_json) and writes it to
 * `config.json` next to the checkpoints, so a run can be reproduced from that file.
 */
export interface RunConfig {
  model: DinoModelConfig;
  /** main_dino.py's flag values, same names in camelCase. */
  momentumTeacher: number;
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTempEpochs: number;
  weightDecay: number;
  weightDecayEnd: number;
  clipGrad: number;
  batchSizePerGpu: number;
  epochs: number;
  freezeLastLayer: number;
  lr: number;
  warmupEpochs: number;
  minLr: number;
  optimizer: "adamw";
  globalCropsScale: [number, number];
  localCropsNumber: number;
  localCropsScale: [number, number];
  dataPath: string;
  outputDir: string;
  saveckpFreq: number;
  seed: number;
  numWorkers: number;
  /** dino-coord's own settings. */
  gpus: number;
  /** "cpu", "cuda" (each local worker takes cuda:<rank>), or "cuda:<i>". */
  device: string;
  threadsPerWorker: number;
  /** Every this many steps the workers send a checksum of their student replica. */
  checksumEvery: number;
  /** Milliseconds a worker may take for one step before the run fails. */
  stepTimeoutMs: number;
  /** Milliseconds without any message from a peer before it is declared dead. */
  heartbeatTimeoutMs: number;
}

/** Temperature of the student softmax (fixed at 0.1 in the reference's DINOLoss). */
export const STUDENT_TEMP = 0.1;
/** The reference's DINOLoss center momentum. */
export const CENTER_MOMENTUM = 0.9;

export function stepShapeOf(config: RunConfig): StepShape {
  return { batchSize: config.batchSizePerGpu, globalCrops: 2, localCrops: config.localCropsNumber };
}
