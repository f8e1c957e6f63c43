import { hostname } from "node:os";
import type { Logger } from "pino";
import { AdamW, DinoSchedules, linspace, type DinoScheduleConfig, dinoParamSpecs, emaTeacher, initParams, ParamStore, referenceInitOf, studentUpdate, updateCenter } from "@dino-coord/model";
import { CENTER_MOMENTUM, checksumOf, ProtocolError, readPayload, type RunConfig } from "@dino-coord/worker";
import { CHECKPOINT_POLICY_DEFAULTS, epochCheckpointDue, saveCheckpoint, stepCheckpointDue, type CheckpointPolicy } from "./checkpoint";
import type { ControlServer, Incoming } from "./control-server";
import { Progress, RunOutput, type StepMetrics } from "./run-output";

/** The loss became NaN or infinite: training stops, as the reference's `sys.exit(1)`. */
export class NonFiniteLossError extends Error {
  override readonly name = "NonFiniteLossError";
  constructor(
    readonly step: number,
    readonly loss: number,
    readonly savedTo: string,
  ) {
    super(`loss is ${loss} at step ${step}, stopping training (the last good state, before this step, is in ${savedTo})`);
  }
}

/** The workers' student replicas drifted apart from the coordinator's. */
export class ReplicaMismatchError extends Error {
  override readonly name = "ReplicaMismatchError";
  constructor(step: number, detail: string) {
    super(`student replicas differ after step ${step}: ${detail}; the workers no longer train the same model (nondeterministic kernel or corrupted message), stopping`);
  }
}

/** Everything the coordinator owns: student (its own replica), AdamW state, EMA teacher, center. */
export class TrainingState {
  readonly student: ParamStore;
  readonly teacher: ParamStore;
  readonly adamw: AdamW;
  readonly center: Float32Array;

  constructor(readonly config: RunConfig) {
    const specs = dinoParamSpecs(config.model);
    this.student = new ParamStore(specs);
    initParams(this.student, referenceInitOf(specs), config.seed);
    // The teacher starts as a copy of the student.
    this.teacher = this.student.clone();
    this.adamw = new AdamW(this.student);
    this.center = new Float32Array(config.model.outDim);
  }
}

/** Waits for `world` registrations; ranks come from pod indices when given, else the lowest free rank. */
export async function acceptWorkers(server: ControlServer, world: number, timeoutMs: number, log: Logger): Promise<Incoming[]> {
  const byRank: Array<Incoming | undefined> = new Array(world).fill(undefined);
  const deadline = Date.now() + timeoutMs;
  const pending: Incoming[] = [];
  let registered = 0;
  while (registered + pending.length < world) {
    const left = deadline - Date.now();
    const message = await server.next("register", `${world} worker(s) to register (${registered + pending.length} did)`, Math.max(1, left));
    const podIndex = message.envelope.register?.podIndex ?? -1;
    if (podIndex >= 0) {
      if (podIndex >= world) throw new ProtocolError(`a worker on ${message.envelope.register?.host} asked for pod index ${podIndex}, but the run has ${world} worker(s) (--gpus ${world})`);
      if (byRank[podIndex]) throw new ProtocolError(`two workers asked for pod index ${podIndex} (${byRank[podIndex]?.envelope.register?.host} and ${message.envelope.register?.host})`);
      byRank[podIndex] = message;
      registered++;
    } else {
      pending.push(message);
    }
    log.info({ podIndex, host: message.envelope.register?.host, pid: message.envelope.register?.pid }, "worker registered");
  }
  for (const message of pending) byRank[byRank.indexOf(undefined)] = message;
  return byRank as Incoming[];
}

export interface TrainingRun {
  server: ControlServer;
  config: RunConfig;
  datasetSize: number;
  itersPerEpoch: number;
  output: RunOutput;
  log: Logger;
  connectTimeoutMs: number;
  /** Register handles given by acceptWorkers, by rank. */
  workers: Incoming[];
}

/**
 * The coordinator's side of training: welcome the workers with the initial weights, then per
 * step send the plan (teacher + center), reduce the workers' [gradient | teacher-output sums |
 * loss] buffers (a star reduction in rank order, since @dino-coord/comm has no all-reduce that
 * includes the coordinator yet), send the mean back, apply the same update to its own replica,
 * then the EMA teacher and the center.
 */
export async function train(run: TrainingRun): Promise<TrainingState> {
  const { server, config, output, log, itersPerEpoch } = run;
  const world = config.gpus;
  const state = new TrainingState(config);
  const { student, teacher, adamw, center } = state;
  const P = student.size;
  const K = config.model.outDim;
  const configJson = JSON.stringify(config);
  output.writeConfig(config);

  run.workers.forEach((w, rank) => server.assignRank(w.identity, rank));
  for (let rank = 0; rank < world; rank++) {
    await server.sendTo(rank, { welcome: { rank, worldSize: world, configJson } }, [student.data, teacher.data, center]);
  }
  for (let rank = 0; rank < world; rank++) {
    const ready = await server.next("ready", `worker ${rank} to load the model and data`, run.connectTimeoutMs + config.stepTimeoutMs, rank);
    const size = ready.envelope.ready?.datasetSize;
    if (size !== run.datasetSize) throw new ProtocolError(`worker ${rank} sees ${size} images in ${config.dataPath}, the coordinator ${run.datasetSize}: every worker must see the same data set`);
  }
  server.startWatchdog();
  log.info({ world, params: P, itersPerEpoch, host: hostname() }, "all workers ready, training");

  const schedules = runSchedules(config, world, itersPerEpoch);
  const reduced = new Float32Array(P + K + 1);
  const scratch = new Float32Array(P + K + 1); // aligned copy of an unaligned frame
  const grads = new Float32Array(P); // the coordinator's copy: clipping works in place
  const results: Incoming[] = new Array(world);
  const totalSteps = config.epochs * itersPerEpoch;
  const progress = new Progress(totalSteps, Math.max(1, Math.floor(itersPerEpoch / 4)));
  const imagesPerStep = config.batchSizePerGpu * world;
  const policy: CheckpointPolicy = { ...CHECKPOINT_POLICY_DEFAULTS, saveckpFreq: config.saveckpFreq };
  const started = performance.now();
  let lastLoss = Number.NaN;
  // Positions count what is done: `step` updates applied, (epoch, iterInEpoch) the next iteration.
  const save = (at: { step: number; epoch: number; iterInEpoch: number; pinned: boolean; loss: number }): string => {
    const { path } = saveCheckpoint(config.outputDir, {
      ...at,
      student,
      teacher,
      optimizer: adamw.state(),
      center,
      runConfig: config,
      rng: { seed: config.seed },
      schedule: scheduleConfigOf(config, world, itersPerEpoch),
      elapsedSeconds: (performance.now() - started) / 1000,
    }, { keepLast: policy.keepLast });
    log.info({ path, step: at.step, pinned: at.pinned }, "checkpoint saved");
    return path;
  };

  for (let epoch = 0; epoch < config.epochs; epoch++) {
    const sums = { loss: 0, lr: 0, wd: 0 };
    for (let iter = 0; iter < itersPerEpoch; iter++) {
      const hp = schedules.at(epoch, iter);
      const step = hp.iteration;
      const t0 = performance.now();
      const plan = {
        step,
        epoch,
        iterInEpoch: iter,
        lr: hp.lr,
        weightDecay: hp.weightDecay,
        momentum: hp.momentum,
        teacherTemp: hp.teacherTemp,
        freezeLastLayer: epoch < config.freezeLastLayer,
      };
      await server.broadcast(world, { plan }, [teacher.data, center]);
      const t1 = performance.now();
      let slowest = 0;
      let data = 0;
      let compute = 0;
      let skipped = 0;
      for (let rank = 0; rank < world; rank++) {
        results[rank] = await server.next("result", `step ${step} result of worker ${rank}`, config.stepTimeoutMs, rank);
        const r = results[rank].envelope.result;
        if (r?.step !== step) throw new ProtocolError(`worker ${rank} sent the result of step ${r?.step} during step ${step}`);
        const busy = (r.dataMs ?? 0) + (r.computeMs ?? 0);
        if (busy > slowest) [slowest, data, compute] = [busy, r.dataMs ?? 0, r.computeMs ?? 0];
        skipped += r.skippedImages ?? 0;
      }
      const t2 = performance.now();
      // Sum in rank order, so a run's reduction does not depend on message arrival order.
      reduced.fill(0);
      for (let rank = 0; rank < world; rank++) {
        readPayload(results[rank].payloads[0], scratch, `step buffer of worker ${rank}`);
        for (let i = 0; i < scratch.length; i++) reduced[i] += scratch[i];
        results[rank] = undefined as unknown as Incoming; // let the frame go
      }
      for (let i = 0; i < P; i++) reduced[i] /= world; // DDP averages gradients over ranks
      reduced[P + K] /= world; // mean loss (every rank has the same batch size)
      const loss = reduced[P + K];
      if (!Number.isFinite(loss)) {
        // The state has not been touched by this step yet: it is the last good one.
        const savedTo = save({ step, epoch, iterInEpoch: iter, pinned: true, loss: lastLoss });
        throw new NonFiniteLossError(step, loss, savedTo);
      }
      const checksumRequested = (step + 1) % config.checksumEvery === 0 || step + 1 === totalSteps;
      await server.broadcast(world, { update: { step, checksumRequested } }, [reduced]);
      const t3 = performance.now();
      grads.set(reduced.subarray(0, P));
      studentUpdate(adamw, student.data, grads, { lr: hp.lr, weightDecay: hp.weightDecay, clipGrad: config.clipGrad, epoch, freezeLastLayer: config.freezeLastLayer });
      emaTeacher(teacher.data, student.data, hp.momentum);
      updateCenter(center, reduced.subarray(P, P + K), 2 * config.batchSizePerGpu * world, CENTER_MOMENTUM);
      const t4 = performance.now();
      const expected = checksumRequested ? checksumOf(student.data) : "";
      for (let rank = 0; rank < world; rank++) {
        const done = await server.next("updateDone", `worker ${rank} to apply the update of step ${step}`, config.stepTimeoutMs, rank);
        const got = done.envelope.updateDone?.studentChecksum ?? "";
        if (checksumRequested && got !== expected) throw new ReplicaMismatchError(step, `worker ${rank} has checksum ${got}, the coordinator ${expected}`);
      }
      const t5 = performance.now();
      const total = t5 - t0;
      const metrics: StepMetrics = {
        step,
        epoch,
        iter,
        loss,
        lr: hp.lr,
        wd: hp.weightDecay,
        momentum: hp.momentum,
        teacher_temp: hp.teacherTemp,
        images_per_s: imagesPerStep / (total / 1000),
        skipped_images: skipped,
        time_ms: {
          total,
          data,
          compute,
          // star all-reduce: summing, sending the mean back, workers applying it
          all_reduce: t3 - t2 + (t5 - t4),
          broadcast: t1 - t0,
          // results in flight and stragglers: the result wait beyond the slowest worker's own work
          wait: Math.max(0, t2 - t1 - slowest),
          update: t4 - t3,
        },
      };
      output.step(metrics);
      progress.update(metrics);
      log.debug(metrics, "step");
      lastLoss = loss;
      const completed = step + 1;
      const due = stepCheckpointDue(policy, completed);
      if (due.save && iter + 1 < itersPerEpoch) save({ step: completed, epoch, iterInEpoch: iter + 1, pinned: due.pinned, loss });
      sums.loss += loss;
      sums.lr += hp.lr;
      sums.wd += hp.weightDecay;
    }
    output.epoch(epoch, { loss: sums.loss / itersPerEpoch, lr: sums.lr / itersPerEpoch, wd: sums.wd / itersPerEpoch });
    // The reference's end of epoch: checkpoint.pth always, checkpoint{epoch:04}.pth (pinned here) every --saveckp-freq.
    const due = epochCheckpointDue(policy, epoch);
    if (due.save) save({ step: (epoch + 1) * itersPerEpoch, epoch: epoch + 1, iterInEpoch: 0, pinned: due.pinned, loss: lastLoss });
    log.info({ epoch, loss: sums.loss / itersPerEpoch }, "epoch done");
  }
  progress.done();
  return state;
}

/**
 * The reference schedules; where --warmup-epochs exceeds --epochs (a short trial run with the
 * default 10 warm-up epochs), the learning rate is the first part of the full warm-up ramp.
 */
export function runSchedules(config: RunConfig, world: number, itersPerEpoch: number): DinoSchedules {
  const warmupEpochs = Math.min(config.warmupEpochs, config.epochs);
  const schedules = new DinoSchedules({ ...scheduleConfigOf(config, world, itersPerEpoch), warmupEpochs });
  if (config.warmupEpochs > config.epochs) {
    const peak = (config.lr * config.batchSizePerGpu * world) / 256;
    schedules.lr.set(linspace(0, peak, config.warmupEpochs * itersPerEpoch).subarray(0, schedules.lr.length));
  }
  return schedules;
}

/** The schedule inputs of a run, as main_dino.py's flags plus the data-dependent sizes. */
export function scheduleConfigOf(config: RunConfig, worldSize: number, itersPerEpoch: number): DinoScheduleConfig {
  const { lr, minLr, warmupEpochs, batchSizePerGpu, weightDecay, weightDecayEnd, momentumTeacher, warmupTeacherTemp, teacherTemp, warmupTeacherTempEpochs, epochs } = config;
  return { lr, minLr, warmupEpochs, batchSizePerGpu, worldSize, weightDecay, weightDecayEnd, momentumTeacher, warmupTeacherTemp, teacherTemp, warmupTeacherTempEpochs, epochs, itersPerEpoch };
}
