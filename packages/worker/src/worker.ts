import { availableParallelism, hostname } from "node:os";
import { existsSync } from "node:fs";
import type { Logger } from "pino";
import { Dealer } from "zeromq";
import { AugmentPool, scanImageFolder, type AugmentedBatch } from "@dino-coord/augment";
import { DinoStepSessions, dinoParamSpecs, fillDropPathMasks, parseDevice, probeDevice, ParamStore, type Device } from "@dino-coord/model";
import { BroadcastReceiver, CollectiveAbortedError, RingAllReduce } from "@dino-coord/comm";
import { dino } from "@dino-coord/proto";
import { advertisedAddress, freeCollectiveEndpoints, hostOf } from "./collective-endpoints";
import type { ControlMessage } from "./control-channel";
import { CoordinatorLink } from "./coordinator-link";
import { ProtocolError, RunAbortedError } from "./errors";
import { STUDENT_TEMP, stepShapeOf, type RunConfig } from "./run-config";
import { StepBuffer } from "./step-buffer";
import { studentFromInitialState } from "./student-source";

export interface WorkerOptions {
  /** tcp://HOST:PORT of the coordinator's control socket. */
  coordinator: string;
  /** Stable rank request (Kubernetes job completion index, or the launcher's child number). */
  podIndex?: number;
  /** How long to wait for the coordinator's Welcome. */
  connectTimeoutMs: number;
  logger: Logger;
  /** Set by the local launcher: worker r of one machine uses cuda:r. */
  localDeviceIndex?: boolean;
}

/**
 * Device of this worker: "cuda" means one GPU per worker, cuda:<rank> locally, cuda:0 in a
 * pod. WebGPU cannot pick an adapter, so every worker takes the one Dawn offers.
 */
export function workerDevice(spec: string, rank: number, local: boolean): Device {
  const device = parseDevice(spec);
  if (device.kind === "cuda" && spec.trim() === "cuda") return { ...device, index: local ? rank : 0 };
  return device;
}

/**
 * One data-parallel DINO worker: registers with the coordinator (and where its collective
 * sockets will be), sets up from the Welcome's configuration, loads the initial state sent
 * after it, then for every step plan receives the teacher weights and center from
 * the broadcast chain, loads its shard's batch, runs the teacher forward and the student
 * forward/backward, all-reduces [loss | teacher-output sums | gradient] in the ring with
 * the other workers and the coordinator, and applies the averaged update to its student
 * replica, exactly as the coordinator does to its own. On the coordinator's host it keeps no
 * replica: it reads the coordinator's student, teacher and center where they lie
 * (student-source.ts).
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const log = options.logger.child({ component: "worker" });
  const dealer = new Dealer({ linger: 0 });
  const link = new CoordinatorLink(dealer, options.coordinator, log);
  let pool: AugmentPool | undefined;
  let sessions: DinoStepSessions | undefined;
  let ring: RingAllReduce | undefined;
  let teacherFeed: BroadcastReceiver<dino.control.IStepPlan> | undefined;
  let myRank = 0;
  // A collective cancelled because the link failed (Abort, silent coordinator) reports the link's reason.
  const collective = async <T>(operation: Promise<T>): Promise<T> => {
    try {
      return await operation;
    } catch (err) {
      if (err instanceof CollectiveAbortedError && link.error) throw link.error;
      throw err;
    }
  };
  try {
    dealer.sendTimeout = options.connectTimeoutMs;
    dealer.connect(options.coordinator);
    // A local run's workers share the coordinator's host: Unix sockets; otherwise TCP on an address the peers reach.
    const own = await freeCollectiveEndpoints(options.localDeviceIndex ? "ipc" : "tcp", advertisedAddress(hostOf(options.coordinator)));
    await link.send({ register: { podIndex: options.podIndex ?? -1, host: hostname(), pid: process.pid, ringEndpoint: own.ring, broadcastEndpoint: own.broadcast } });
    log.info({ coordinator: options.coordinator, podIndex: options.podIndex, endpoints: own }, "registered, waiting for welcome");
    const welcomeMessage = await link.next(`the coordinator at ${options.coordinator} to answer the registration`, options.connectTimeoutMs);
    const welcome = welcomeMessage.envelope.welcome;
    if (!welcome) throw unexpected(welcomeMessage, "welcome");
    const rank = welcome.rank ?? 0;
    myRank = rank;
    const world = welcome.worldSize ?? 1;
    const config = JSON.parse(welcome.configJson ?? "{}") as RunConfig;
    const specs = dinoParamSpecs(config.model);
    // [teacher | center] arrive in one broadcast per step: on one host, the coordinator's own
    // (read-only here, unchanged until this worker has entered the step's all-reduce); else a copy.
    let received: { teacherAndCenter: Float32Array; teacher: ParamStore; center: Float32Array } | undefined;
    const rankLog = log.child({ rank });
    rankLog.info({ world }, "welcome");
    const welcomed = performance.now();

    let currentStep = 0;
    link.startHeartbeats(config.heartbeatTimeoutMs, () => ({ heartbeat: { rank, step: currentStep } }));

    const ringEndpoints = welcome.ringEndpoints ?? [];
    const broadcastEndpoints = welcome.broadcastEndpoints ?? [];
    if (ringEndpoints.length !== world + 1 || ringEndpoints[rank] !== own.ring || broadcastEndpoints.length !== world + 1 || broadcastEndpoints[rank + 1] !== own.broadcast) {
      throw new ProtocolError(`the welcome's collective endpoints (ring ${JSON.stringify(ringEndpoints)}, broadcast ${JSON.stringify(broadcastEndpoints)}) do not place rank ${rank} at ${own.ring} / ${own.broadcast}`);
    }
    // The ring waits for every member's compute, so its timeout is the step timeout; a dead
    // peer is usually noticed sooner (Abort from the coordinator, or the heartbeat watchdog).
    ring = new RingAllReduce({ rank, endpoints: ringEndpoints, timeoutMs: config.stepTimeoutMs, logger: rankLog });
    teacherFeed = new BroadcastReceiver({ rank: rank + 1, endpoints: broadcastEndpoints, timeoutMs: config.stepTimeoutMs, logger: rankLog, metaCodec: dino.control.StepPlan });
    link.onFailure((err) => {
      ring?.abort(err.message);
      teacherFeed?.abort(err.message);
    });
    await ring.start();
    await teacherFeed.start();

    const dataset = await scanImageFolder(config.dataPath, { cacheDir: existsSync(config.outputDir) ? config.outputDir : undefined, logger: rankLog });
    const shape = stepShapeOf(config);
    const device = workerDevice(config.device, rank, options.localDeviceIndex ?? false);
    pool = new AugmentPool({
      dataset,
      config: {
        globalSize: config.model.imgSize,
        localSize: config.model.localCropSize,
        localCrops: config.localCropsNumber,
        globalScale: config.globalCropsScale,
        localScale: config.localCropsScale,
      },
      // --num-workers as the reference's DataLoader workers, but never more threads than cores.
      threads: Math.max(1, Math.min(config.numWorkers, availableParallelism())),
      seed: config.seed,
      logger: rankLog,
    });
    // The augmentation threads start up (modules, decoders) while the sessions are built.
    const poolReady = pool.ready();
    poolReady.catch(() => undefined); // awaited below, after the sessions
    await probeDevice(device); // a missing driver or adapter fails here with what was looked for
    sessions = await DinoStepSessions.create(config.model, shape, {
      device,
      threads: config.threadsPerWorker,
      studentTemp: STUDENT_TEMP,
      // A fresh run starts frozen; a run resumed past the frozen epochs switches at its first step.
      firstStepLastLayerFrozen: config.freezeLastLayer > 0,
    });
    await poolReady;
    rankLog.info({ ms: Math.round(performance.now() - welcomed) }, "set up, waiting for the initial state");
    // Made while the coordinator draws the weights: writing its shared-memory file takes a while.
    const stepBuffer = new StepBuffer(specs, config.model.outDim, ring.allocateTensor.bind(ring));
    // Sent after the Welcome: the coordinator drew the weights while this worker set up.
    const stateMessage = await link.next("the coordinator's initial training state", options.connectTimeoutMs + config.heartbeatTimeoutMs);
    const initialState = stateMessage.envelope.initialState;
    if (!initialState) throw unexpected(stateMessage, "the initial state");
    // Teacher and center arrive with each step's broadcast.
    const studentSource = studentFromInitialState(initialState, stateMessage.payloads, specs, teacherFeed.viewRootTensor.bind(teacherFeed));
    const student = studentSource.params;
    const B = config.batchSizePerGpu;
    const L = config.localCropsNumber;
    // The pool's batches live in SharedArrayBuffers, which onnxruntime-node does not take as
    // tensor data; one copy into these per step.
    const globals = new Float32Array(2 * B * 3 * config.model.imgSize ** 2);
    const locals = new Float32Array(L * B * 3 * config.model.localCropSize ** 2);
    const globalMasks = new Float32Array(config.model.depth * 2 * 2 * B);
    const localMasks = new Float32Array(config.model.depth * 2 * L * B);
    await link.send({ ready: { rank, datasetSize: dataset.files.length } });
    rankLog.info({ device, params: student.size, datasetSize: dataset.files.length, startStep: initialState.step ?? 0 }, "ready");

    // The first step's batch is augmented while the others finish setting up.
    let batchesEpoch = initialState.epoch ?? 0;
    let nextIter = initialState.iterInEpoch ?? 0;
    let batches = pool.iterateEpoch({ epoch: batchesEpoch, world, rank, batchSize: B, startBatch: nextIter });
    let prefetched: Promise<IteratorResult<AugmentedBatch>> | undefined = batches.next();
    prefetched.catch(() => undefined); // awaited in the first step; a run that ends before must not leave it unhandled
    let lastBatch: AugmentedBatch | undefined;
    const waitMs = config.stepTimeoutMs + config.heartbeatTimeoutMs;
    for (;;) {
      const message = await link.next("the coordinator's next step plan", waitMs);
      const { envelope } = message;
      if (envelope.shutdown) {
        rankLog.info({ ring: ring.stats, broadcast: teacherFeed.stats }, "shutdown");
        await Promise.all([ring.close(), teacherFeed.close()]);
        return;
      }
      if (!envelope.plan) throw unexpected(message, "a step plan, abort or shutdown");
      const plan = envelope.plan;
      currentStep = plan.step ?? 0;
      const epoch = plan.epoch ?? 0;
      const iter = plan.iterInEpoch ?? 0;
      const planned = performance.now();
      if (lastBatch) pool.recycle(lastBatch);
      if (batchesEpoch !== epoch || nextIter !== iter) {
        prefetched = undefined;
        await batches.return(undefined);
        batches = pool.iterateEpoch({ epoch, world, rank, batchSize: B, startBatch: iter });
        batchesEpoch = epoch;
      }
      // The batch does not depend on the teacher: let augmentation run while the broadcast arrives.
      const pendingBatch = prefetched ?? batches.next();
      prefetched = undefined;
      pendingBatch.catch(() => undefined); // awaited below; a failed broadcast must not leave it unhandled
      const { meta, values } = await collective(teacherFeed.receiveInPlace(student.size + config.model.outDim, currentStep));
      if (meta.step !== currentStep) throw new ProtocolError(`the teacher broadcast of step ${currentStep} carries the plan of step ${meta.step}`);
      if (received?.teacherAndCenter !== values) {
        received = { teacherAndCenter: values, teacher: new ParamStore(specs, values.subarray(0, student.size)), center: values.subarray(student.size) };
      }
      const { teacher, center } = received;
      studentSource.startFrom(teacher);
      const broadcastEnd = performance.now();
      const next = await pendingBatch;
      if (next.done) throw new ProtocolError(`the coordinator planned batch ${iter} of epoch ${epoch}, past the end of this rank's shard`);
      const batch = next.value;
      lastBatch = batch;
      nextIter = iter + 1;
      globals.set(batch.globals);
      if (L > 0) locals.set(batch.locals);
      const computeStart = performance.now();
      await sessions.teacherForward(teacher, globals);
      const common = { seed: config.seed, step: currentStep, sampleIndices: batch.indices };
      fillDropPathMasks(globalMasks, config.model, { ...common, firstCrop: 0, crops: 2 });
      if (L > 0) fillDropPathMasks(localMasks, config.model, { ...common, firstCrop: 2, crops: L });
      const lastLayerFrozen = plan.freezeLastLayer ?? false;
      const result = await sessions.studentStep(student, stepBuffer.gradient, {
        globals,
        locals: L > 0 ? locals : undefined,
        center,
        teacherTemp: plan.teacherTemp ?? 0,
        globalDropPath: globalMasks,
        localDropPath: L > 0 ? localMasks : undefined,
        lastLayerFrozen,
      });
      stepBuffer.teacherOutputSum.set(result.teacherOutputSum);
      stepBuffer.loss = result.loss;
      const computeEnd = performance.now();
      await collective(ring.allReduce(stepBuffer.reduced(lastLayerFrozen), currentStep));
      const reduced = performance.now();
      await link.send({
        result: {
          step: currentStep, rank, loss: result.loss, skippedImages: batch.skipped,
          dataMs: computeStart - broadcastEnd, computeMs: computeEnd - computeStart, allReduceMs: reduced - computeEnd, broadcastMs: broadcastEnd - planned,
        },
      });
      studentSource.update(stepBuffer, world, lastLayerFrozen, {
        lr: plan.lr ?? 0,
        weightDecay: plan.weightDecay ?? 0,
        clipGrad: config.clipGrad,
        epoch,
        freezeLastLayer: config.freezeLastLayer,
      });
      if (plan.checksumRequested) {
        const studentChecksum = studentSource.checksum();
        if (studentChecksum === null) throw new ProtocolError(`the coordinator asked for a checksum of the student it shares (step ${currentStep})`);
        await link.send({ updateDone: { step: currentStep, rank, studentChecksum, updateMs: performance.now() - reduced } });
      }
    }
  } catch (err) {
    // Tell the coordinator why, so the run fails with this worker's reason rather than a timeout.
    if (!(err instanceof RunAbortedError)) {
      await withDeadline(link.send({ failure: { rank: myRank, message: (err as Error).message } }), 1000);
    }
    throw err;
  } finally {
    ring?.abort("worker stopping");
    teacherFeed?.abort("worker stopping");
    link.close();
    await pool?.close().catch(() => undefined);
    await sessions?.release().catch(() => undefined);
  }
}

function unexpected(message: ControlMessage, expected: string): ProtocolError {
  return new ProtocolError(`expected ${expected} from the coordinator, got "${message.envelope.body}"`);
}

async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  await Promise.race([promise.catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
}
