import { hostname } from "node:os";
import type { Logger } from "pino";
import { AdamW, DinoSchedules, linspace, type DinoScheduleConfig, dinoParamSpecs, emaTeacher, initParams, ParamStore, paramCount, referenceInitOf, studentUpdate, updateCenter } from "@dino-coord/model";
import { BroadcastRoot, CollectiveTimeoutError, RingAllReduce } from "@dino-coord/comm";
import { dino } from "@dino-coord/proto";
import { advertisedAddress, CENTER_MOMENTUM, StepBuffer, checksumOf, freeCollectiveEndpoints, hostOf, optimizerFrames, ProtocolError, type RunConfig } from "@dino-coord/worker";
import { CHECKPOINT_POLICY_DEFAULTS, epochCheckpointDue, saveCheckpoint, stepCheckpointDue, type CheckpointPolicy } from "./checkpoint";
import { WorkerFailedError, type ControlServer, type Incoming } from "./control-server";
import { Progress, RunOutput, type StepMetrics } from "./run-output";
import type { GracefulStop } from "./graceful-stop";
import { epochSumsExtra, restoreTrainingState, type EpochSums, type ResumePoint } from "./resume";
import { checkpointSettingsOf } from "./run-config";

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
  /** [teacher | center] in one buffer (teacher.data and center are views): one broadcast per step. */
  readonly teacherAndCenter: Float32Array;

  /**
   * `initialize`: draw the reference init (a resumed run loads a checkpoint instead).
   * `allocateBroadcast`: where the student and [teacher | center] live; the teacher
   * broadcast's own allocator puts them where same-host workers read them in place.
   */
  constructor(readonly config: RunConfig, initialize: boolean, allocateBroadcast: (length: number) => Float32Array) {
    const specs = dinoParamSpecs(config.model);
    this.student = new ParamStore(specs, allocateBroadcast(paramCount(specs)));
    if (initialize) initParams(this.student, referenceInitOf(specs), config.seed);
    // The teacher starts as a copy of the student.
    this.teacherAndCenter = allocateBroadcast(this.student.size + config.model.outDim);
    this.teacher = new ParamStore(specs, this.teacherAndCenter.subarray(0, this.student.size));
    this.teacher.data.set(this.student.data);
    this.adamw = new AdamW(this.student);
    this.center = this.teacherAndCenter.subarray(this.student.size);
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
  /** Continue from this checkpoint (resume.ts). */
  resume?: ResumePoint;
  /** SIGTERM/SIGINT: checkpoint, then stop (graceful-stop.ts). */
  stop?: GracefulStop;
  /** Tells the workers to shut down: called after the last step, so they exit while the final checkpoint is written. */
  releaseWorkers?: () => Promise<void>;
}

/**
 * The coordinator's side of training: welcome the workers with the collective groups, draw
 * or load the initial state and send it to them, then per step send the plan (scalars),
 * broadcast [teacher | center] down the chain (the root sends every byte once, whatever N;
 * on one host the workers read it in place), join the workers' ring all-reduce of
 * [loss | teacher-output sums | gradient] as its last member contributing zeros, take the DDP
 * mean exactly as the workers' replicas do, apply the same update to its student (which
 * same-host workers read in place instead of keeping replicas), then the EMA teacher and
 * the center.
 */
export async function train(run: TrainingRun): Promise<TrainingState> {
  const { server, config, output, log, itersPerEpoch } = run;
  const world = config.gpus;
  const start = run.resume?.checkpoint;
  const configJson = JSON.stringify(config);
  output.writeConfig(config);

  run.workers.forEach((w, rank) => server.assignRank(w.identity, rank));
  server.startHeartbeats();
  const { ring, teacherFeed, ringEndpoints, broadcastEndpoints } = await collectiveGroups(run);
  // A failed run (a dead worker, a signal) cancels the collective the coordinator waits on.
  server.onFailure((err) => {
    ring.abort(err.message);
    teacherFeed.abort(err.message);
  });
  for (let rank = 0; rank < world; rank++) {
    await server.sendTo(rank, { welcome: { rank, worldSize: world, configJson, ringEndpoints, broadcastEndpoints } });
  }
  // The workers build their sessions while the weights are drawn (seconds for large models).
  const drawing = performance.now();
  const state = new TrainingState(config, !start, (length) => teacherFeed.allocateTensor(length));
  const { student, teacher, adamw, center } = state;
  if (start) restoreTrainingState(state, start);
  const P = student.size;
  const K = config.model.outDim;
  // The teacher and center reach the workers with the first step's broadcast. On one host the
  // workers read this student where it lies; elsewhere they keep replicas: a fresh one starts
  // as the teacher, a resumed one gets the student and AdamW state.
  const sharedStudent = teacherFeed.inPlaceLocation(student.data);
  const initialPayloads = start && !sharedStudent ? [student.data, ...optimizerFrames(adamw.state())] : [];
  const firstStep = { step: start?.step ?? 0, epoch: start?.epoch ?? 0, iterInEpoch: start?.iterInEpoch ?? 0 };
  const initialState = sharedStudent
    ? { ...firstStep, sharedStudentFile: sharedStudent.file, sharedStudentOffset: sharedStudent.byteOffset }
    : { ...firstStep, studentIsTeacher: !start };
  const bytesBeforeInitialStates = server.bytesSent;
  for (let rank = 0; rank < world; rank++) await server.sendTo(rank, { initialState }, initialPayloads);
  const bytesPerWorker = (server.bytesSent - bytesBeforeInitialStates) / world;
  log.info({ step: start?.step ?? 0, ms: Math.round(performance.now() - drawing), bytesPerWorker, sharedStudent: sharedStudent !== undefined }, start ? "checkpoint state sent" : "initial weights drawn, initial state sent");
  // Made while the workers get ready: writing the step buffer's shared-memory file takes a while.
  const schedules = runSchedules(config, world, itersPerEpoch);
  // What the ring reduces in place; the coordinator contributes zeros.
  const stepBuffer = new StepBuffer(student.specs, K, (length) => ring.allocateTensor(length));
  for (let rank = 0; rank < world; rank++) {
    const ready = await server.next("ready", `worker ${rank} to load the model and data`, run.connectTimeoutMs + config.stepTimeoutMs, rank);
    const size = ready.envelope.ready?.datasetSize;
    if (size !== run.datasetSize) throw new ProtocolError(`worker ${rank} sees ${size} images in ${config.dataPath}, the coordinator ${run.datasetSize}: every worker must see the same data set`);
  }
  server.startWatchdog();
  log.info({ world, params: P, itersPerEpoch, host: hostname() }, "all workers ready, training");

  const results: Incoming[] = new Array(world);
  const totalSteps = config.epochs * itersPerEpoch;
  const progress = new Progress(totalSteps, Math.max(1, Math.floor(itersPerEpoch / 4)));
  const imagesPerStep = config.batchSizePerGpu * world;
  const { saveEverySteps, keepLast } = checkpointSettingsOf(config);
  const policy: CheckpointPolicy = { ...CHECKPOINT_POLICY_DEFAULTS, saveEverySteps, keepLast, saveckpFreq: config.saveckpFreq };
  const started = performance.now() - (start?.elapsedSeconds ?? 0) * 1000;
  const controlBytesBefore = server.bytesSent; // a resumed run's initial states carried the student
  let lastLoss = start?.loss ?? Number.NaN;
  let lastSaved = start ? { step: start.step, path: start.path } : undefined;
  // Positions count what is done: `step` updates applied, (epoch, iterInEpoch) the next iteration.
  // `sums`: the epoch's running sums up to `at`, saved so a resumed run's log.txt means are the same.
  const save = (at: { step: number; epoch: number; iterInEpoch: number; pinned: boolean; loss: number }, sums: EpochSums): string => {
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
      extra: epochSumsExtra(sums),
    }, { keepLast: policy.keepLast });
    lastSaved = { step: at.step, path };
    log.info({ path, step: at.step, pinned: at.pinned }, "checkpoint saved");
    return path;
  };

  // What the in-memory state is, updated where it changes: a stop signal saves this (graceful-stop.ts).
  let completed = { step: start?.step ?? 0, epoch: start?.epoch ?? 0, iterInEpoch: start?.iterInEpoch ?? 0, loss: lastLoss, sums: { ...(run.resume?.sums ?? { loss: 0, lr: 0, wd: 0 }) } };
  run.stop?.setSaver(() => (lastSaved?.step === completed.step ? lastSaved.path : save({ ...completed, pinned: false }, completed.sums)));

  for (let epoch = start?.epoch ?? 0; epoch < config.epochs; epoch++) {
    const resumedEpoch = start !== undefined && epoch === start.epoch;
    const sums: EpochSums = resumedEpoch ? { ...completed.sums } : { loss: 0, lr: 0, wd: 0 };
    for (let iter = resumedEpoch ? start.iterInEpoch : 0; iter < itersPerEpoch; iter++) {
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
      // Replicas are compared now and then; a shared student is one.
      const checksumRequested = !sharedStudent && ((step + 1) % config.checksumEvery === 0 || step + 1 === totalSteps);
      await server.broadcast(world, { plan: { ...plan, checksumRequested } });
      // Same-host workers read [teacher | center] where it lies: the update below changes it
      // only after the all-reduce, which each worker enters after its last read of it.
      await collective(server, teacherFeed.sendInPlace(state.teacherAndCenter, { step }, step));
      const reduced = stepBuffer.reduced(plan.freezeLastLayer);
      reduced.fill(0);
      await collective(server, ring.allReduce(reduced, step));
      let slowest = -1;
      let broadcast = 0;
      let data = 0;
      let compute = 0;
      let allReduce = 0;
      let skipped = 0;
      for (let rank = 0; rank < world; rank++) {
        results[rank] = await server.next("result", `step ${step} result of worker ${rank}`, config.stepTimeoutMs, rank);
        const r = results[rank].envelope.result;
        if (r?.step !== step) throw new ProtocolError(`worker ${rank} sent the result of step ${r?.step} during step ${step}`);
        // The step's critical path is the worker that entered the ring last (teacher arrival,
        // data and compute, counted from its plan); its all-reduce time is the collective's own.
        // Its split adds up to the step: the root's wait for the chain's acknowledgement
        // overlaps the workers' work and is not counted again.
        const busy = (r.broadcastMs ?? 0) + (r.dataMs ?? 0) + (r.computeMs ?? 0);
        if (busy > slowest) [slowest, broadcast, data, compute, allReduce] = [busy, r.broadcastMs ?? 0, r.dataMs ?? 0, r.computeMs ?? 0, r.allReduceMs ?? 0];
        skipped += r.skippedImages ?? 0;
      }
      const t3 = performance.now();
      stepBuffer.averageOver(world, plan.freezeLastLayer); // DDP averages gradients (and the loss) over ranks
      const loss = stepBuffer.loss;
      if (!Number.isFinite(loss)) {
        // The state has not been touched by this step yet: it is the last good one.
        const savedTo = save({ step, epoch, iterInEpoch: iter, pinned: true, loss: lastLoss }, sums);
        throw new NonFiniteLossError(step, loss, savedTo);
      }
      studentUpdate(adamw, student.data, stepBuffer.gradient, { lr: hp.lr, weightDecay: hp.weightDecay, clipGrad: config.clipGrad, epoch, freezeLastLayer: config.freezeLastLayer });
      emaTeacher(teacher.data, student.data, hp.momentum);
      updateCenter(center, stepBuffer.teacherOutputSum, 2 * config.batchSizePerGpu * world, CENTER_MOMENTUM);
      completed = { step: step + 1, epoch, iterInEpoch: iter + 1, loss, sums: { loss: sums.loss + loss, lr: sums.lr + hp.lr, wd: sums.wd + hp.weightDecay } };
      const t4 = performance.now();
      if (checksumRequested) {
        const expected = checksumOf(student.data);
        for (let rank = 0; rank < world; rank++) {
          const done = await server.next("updateDone", `worker ${rank} to apply the update of step ${step}`, config.stepTimeoutMs, rank);
          const got = done.envelope.updateDone?.studentChecksum ?? "";
          if (got !== expected) throw new ReplicaMismatchError(step, `worker ${rank} has checksum ${got}, the coordinator ${expected}`);
        }
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
          all_reduce: allReduce,
          // the critical worker's wait for [teacher | center] after its plan arrived
          broadcast,
          // the rest: plan delivery, results in flight, checksum replies
          wait: Math.max(0, total - broadcast - data - compute - allReduce - (t4 - t3)),
          update: t4 - t3,
        },
      };
      output.step(metrics);
      progress.update(metrics);
      log.debug(metrics, "step");
      lastLoss = loss;
      sums.loss += loss;
      sums.lr += hp.lr;
      sums.wd += hp.weightDecay;
      const due = stepCheckpointDue(policy, step + 1);
      if (iter + 1 < itersPerEpoch) {
        if (due.save) save({ step: step + 1, epoch, iterInEpoch: iter + 1, pinned: due.pinned, loss }, sums);
        run.stop?.stopAfterStep();
      }
    }
    output.epoch(epoch, { loss: sums.loss / itersPerEpoch, lr: sums.lr / itersPerEpoch, wd: sums.wd / itersPerEpoch });
    // The reference's end of epoch: checkpoint.pth always, checkpoint{epoch:04}.pth (pinned here) every --saveckp-freq.
    const due = epochCheckpointDue(policy, epoch);
    completed = { step: (epoch + 1) * itersPerEpoch, epoch: epoch + 1, iterInEpoch: 0, loss: lastLoss, sums: { loss: 0, lr: 0, wd: 0 } };
    // The coordinator holds the whole state: the last checkpoint needs nothing from the workers.
    if (epoch === config.epochs - 1) await run.releaseWorkers?.();
    if (due.save) save({ ...completed, pinned: due.pinned }, completed.sums);
    log.info({ epoch, loss: sums.loss / itersPerEpoch }, "epoch done");
    run.stop?.stopAfterStep();
  }
  progress.done();
  log.info({ steps: totalSteps, ring: ring.stats, broadcast: teacherFeed.stats, controlBytesPerStep: (server.bytesSent - controlBytesBefore) / totalSteps }, "collective stats");
  await Promise.all([ring.close(), teacherFeed.close()]);
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

interface CollectiveGroups {
  ring: RingAllReduce;
  teacherFeed: BroadcastRoot<dino.control.IStepPlan>;
  ringEndpoints: string[];
  broadcastEndpoints: string[];
}

/**
 * The run's collective groups from the workers' registered endpoints: the gradient ring
 * (workers by rank, then the coordinator) and the teacher broadcast chain (the coordinator,
 * then the workers by rank). The coordinator's own sockets are Unix sockets when every worker
 * registered one (all on this host), else TCP on an address the workers reach.
 */
async function collectiveGroups(run: TrainingRun): Promise<CollectiveGroups> {
  const registered = run.workers.map((w, rank) => {
    const { ringEndpoint, broadcastEndpoint, host } = w.envelope.register ?? {};
    if (!ringEndpoint || !broadcastEndpoint) throw new ProtocolError(`worker ${rank} (${host}) registered no collective endpoints`);
    return { ring: ringEndpoint, broadcast: broadcastEndpoint };
  });
  const all = registered.flatMap((r) => [r.ring, r.broadcast]);
  const transport = all.every((e) => e.startsWith("ipc://")) ? "ipc" : "tcp";
  const loopbackOnly = all.every((e) => e.startsWith("ipc://") || hostOf(e).startsWith("127."));
  const own = await freeCollectiveEndpoints(transport, advertisedAddress(loopbackOnly ? "127.0.0.1" : ""));
  const ringEndpoints = [...registered.map((r) => r.ring), own.ring];
  const broadcastEndpoints = [own.broadcast, ...registered.map((r) => r.broadcast)];
  const timeoutMs = run.config.stepTimeoutMs;
  const ring = new RingAllReduce({ rank: run.config.gpus, endpoints: ringEndpoints, timeoutMs, logger: run.log });
  const teacherFeed = new BroadcastRoot<dino.control.IStepPlan>({ endpoints: broadcastEndpoints, timeoutMs, logger: run.log, metaCodec: dino.control.StepPlan });
  await ring.start();
  await teacherFeed.start();
  run.log.info({ ringEndpoints, broadcastEndpoints }, "collective groups started");
  return { ring, teacherFeed, ringEndpoints, broadcastEndpoints };
}

/**
 * Awaits a collective; when the run already failed (and so cancelled it) reports the run's
 * error, and names the worker behind a collective timeout (ring member r and broadcast
 * receiver r + 1 are worker r; the ring's last member is the coordinator).
 */
async function collective<T>(server: ControlServer, operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (err) {
    if (server.error) throw server.error;
    if (err instanceof CollectiveTimeoutError) {
      const worker = err.operation === "allReduce" ? err.peerRank : err.peerRank - 1;
      throw new WorkerFailedError(worker, `stopped taking part in the ${err.operation} of step ${err.step}: ${err.message}`);
    }
    throw err;
  }
}
