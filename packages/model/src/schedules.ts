/**
 * Per-iteration schedules of the reference (`utils.cosine_scheduler`, the teacher
 * temperature schedule of `DINOLoss`), with the same float64 arithmetic, operation order
 * and numpy `linspace` semantics so the values match bit for bit.
 */

/** numpy.linspace(start, stop, num) with endpoint=True: [] for 0, [start] for 1, last element exactly stop. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  if (!Number.isSafeInteger(num) || num < 0) throw new RangeError(`linspace: num must be a non-negative integer, got ${num}`);
  const out = new Float64Array(num);
  if (num === 0) return out;
  if (num === 1) {
    out[0] = start;
    return out;
  }
  const divisions = num - 1;
  const delta = stop - start;
  const step = delta / divisions;
  for (let i = 0; i < num; i++) {
    // numpy falls back to (i / div) · delta when the step underflows to 0.
    out[i] = (step === 0 ? (i / divisions) * delta : i * step) + start;
  }
  out[num - 1] = stop;
  return out;
}

function checkCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} must be a non-negative integer, got ${value}`);
}

/**
 * The reference `cosine_scheduler`: `linspace(startWarmup, base, W)` over the first
 * W = warmupEpochs·itersPerEpoch iterations, then `final + ½(base − final)(1 + cos(π·j/J))`
 * for j = 0…J−1 over the remaining J iterations. One value per iteration, epochs·itersPerEpoch in all.
 */
export function cosineSchedule(
  base: number,
  final: number,
  epochs: number,
  itersPerEpoch: number,
  warmupEpochs = 0,
  startWarmup = 0,
): Float64Array {
  checkCount(epochs, "epochs");
  checkCount(itersPerEpoch, "itersPerEpoch");
  checkCount(warmupEpochs, "warmupEpochs");
  if (warmupEpochs > epochs) throw new RangeError(`warmupEpochs (${warmupEpochs}) exceeds epochs (${epochs})`);
  const total = epochs * itersPerEpoch;
  const warmupIters = warmupEpochs * itersPerEpoch;
  const schedule = new Float64Array(total);
  if (warmupEpochs > 0) schedule.set(linspace(startWarmup, base, warmupIters));
  const cosineIters = total - warmupIters;
  const amplitude = 0.5 * (base - final);
  for (let j = 0; j < cosineIters; j++) {
    schedule[warmupIters + j] = final + amplitude * (1 + Math.cos((Math.PI * j) / cosineIters));
  }
  return schedule;
}

/**
 * The reference teacher temperature, one value per epoch:
 * `linspace(warmupTeacherTemp, teacherTemp, warmupEpochs)` then `teacherTemp`.
 */
export function teacherTempSchedule(
  warmupTeacherTemp: number,
  teacherTemp: number,
  warmupEpochs: number,
  epochs: number,
): Float64Array {
  checkCount(warmupEpochs, "warmupTeacherTempEpochs");
  checkCount(epochs, "epochs");
  if (warmupEpochs > epochs) {
    throw new RangeError(`warmupTeacherTempEpochs (${warmupEpochs}) exceeds epochs (${epochs})`);
  }
  const schedule = new Float64Array(epochs).fill(teacherTemp);
  schedule.set(linspace(warmupTeacherTemp, teacherTemp, warmupEpochs));
  return schedule;
}

/** Hyper-parameters of the schedules, named after the reference's `main_dino.py` flags. */
export interface DinoScheduleConfig {
  /** Base learning rate at batch 256 (`--lr`), scaled linearly by the global batch. */
  lr: number;
  minLr: number;
  warmupEpochs: number;
  batchSizePerGpu: number;
  worldSize: number;
  weightDecay: number;
  weightDecayEnd: number;
  momentumTeacher: number;
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTempEpochs: number;
  epochs: number;
  itersPerEpoch: number;
}

/** The reference's command-line defaults (everything but the data-dependent sizes). */
export const DINO_SCHEDULE_DEFAULTS: Omit<DinoScheduleConfig, "batchSizePerGpu" | "worldSize" | "itersPerEpoch"> = {
  lr: 0.0005,
  minLr: 1e-6,
  warmupEpochs: 10,
  weightDecay: 0.04,
  weightDecayEnd: 0.4,
  momentumTeacher: 0.996,
  warmupTeacherTemp: 0.04,
  teacherTemp: 0.04,
  warmupTeacherTempEpochs: 0,
  epochs: 100,
};

export interface StepHyperParams {
  /** Global iteration `epoch · itersPerEpoch + iterInEpoch`. */
  iteration: number;
  epoch: number;
  lr: number;
  weightDecay: number;
  momentum: number;
  teacherTemp: number;
}

/** All schedules of a DINO run, indexed like `train_one_epoch`. */
export class DinoSchedules {
  readonly lr: Float64Array;
  readonly weightDecay: Float64Array;
  readonly momentum: Float64Array;
  /** Per epoch, not per iteration. */
  readonly teacherTemp: Float64Array;

  constructor(readonly config: DinoScheduleConfig) {
    const { epochs, itersPerEpoch } = config;
    this.lr = cosineSchedule(
      (config.lr * (config.batchSizePerGpu * config.worldSize)) / 256,
      config.minLr,
      epochs,
      itersPerEpoch,
      config.warmupEpochs,
    );
    this.weightDecay = cosineSchedule(config.weightDecay, config.weightDecayEnd, epochs, itersPerEpoch);
    this.momentum = cosineSchedule(config.momentumTeacher, 1, epochs, itersPerEpoch);
    this.teacherTemp = teacherTempSchedule(
      config.warmupTeacherTemp,
      config.teacherTemp,
      config.warmupTeacherTempEpochs,
      epochs,
    );
  }

  at(epoch: number, iterInEpoch: number): StepHyperParams {
    const { epochs, itersPerEpoch } = this.config;
    if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch >= epochs) {
      throw new RangeError(`epoch ${epoch} is outside the schedule's 0…${epochs - 1}`);
    }
    if (!Number.isSafeInteger(iterInEpoch) || iterInEpoch < 0 || iterInEpoch >= itersPerEpoch) {
      throw new RangeError(`iteration ${iterInEpoch} is outside the epoch's 0…${itersPerEpoch - 1}`);
    }
    const iteration = epoch * itersPerEpoch + iterInEpoch;
    return {
      iteration,
      epoch,
      lr: this.lr[iteration],
      weightDecay: this.weightDecay[iteration],
      momentum: this.momentum[iteration],
      teacherTemp: this.teacherTemp[epoch],
    };
  }
}
