import { availableParallelism, hostname } from "node:os";
import { existsSync } from "node:fs";
import type { Logger } from "pino";
import { Dealer } from "zeromq";
import { AugmentPool, scanImageFolder, type AugmentedBatch } from "@dino-coord/augment";
import {
  AdamW,
  DinoStepSessions,
  dinoParamSpecs,
  fillDropPathMasks,
  parseDevice,
  ParamStore,
  studentUpdate,
  type Device,
} from "@dino-coord/model";
import { dino } from "@dino-coord/proto";
import { checksumOf, decodeControl, encodeControl, readPayload, type ControlMessage } from "./control-channel";
import { ControlTimeoutError, ProtocolError, RunAbortedError } from "./errors";
import { Outbox } from "./outbox";
import { STUDENT_TEMP, stepShapeOf, type RunConfig } from "./run-config";

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

/** Device of this worker: "cuda" means one GPU per worker, cuda:<rank> locally, cuda:0 in a pod. */
export function workerDevice(spec: string, rank: number, local: boolean): Device {
  const device = parseDevice(spec);
  if (device.kind !== "cpu" && /^(cuda|webgpu)$/.test(spec.trim())) return { ...device, index: local ? rank : 0 };
  return device;
}

/**
 * One data-parallel DINO worker: registers with the coordinator, then for every step
 * plan loads its shard's batch, runs the teacher forward (coordinator's teacher weights)
 * and the student forward/backward, sends [gradient | teacher-output sums | loss], and
 * applies the reduced update to its student replica.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const log = options.logger.child({ component: "worker" });
  const dealer = new Dealer({ linger: 0 });
  const outbox = new Outbox(dealer);
  let heartbeat: NodeJS.Timeout | undefined;
  let pool: AugmentPool | undefined;
  let sessions: DinoStepSessions | undefined;
  let myRank = 0;
  try {
    dealer.sendTimeout = options.connectTimeoutMs;
    dealer.connect(options.coordinator);
    await outbox.send(encodeControl({ register: { podIndex: options.podIndex ?? -1, host: hostname(), pid: process.pid } }));
    log.info({ coordinator: options.coordinator, podIndex: options.podIndex }, "registered, waiting for welcome");
    const welcomeMessage = await receive(dealer, options.connectTimeoutMs, `the coordinator at ${options.coordinator} to answer the registration`);
    const welcome = welcomeMessage.envelope.welcome;
    if (!welcome) throw unexpected(welcomeMessage, "welcome");
    const rank = welcome.rank ?? 0;
    myRank = rank;
    const world = welcome.worldSize ?? 1;
    const config = JSON.parse(welcome.configJson ?? "{}") as RunConfig;
    const specs = dinoParamSpecs(config.model);
    const student = new ParamStore(specs);
    const teacher = new ParamStore(specs);
    const center = new Float32Array(config.model.outDim);
    readPayload(welcomeMessage.payloads[0], student.data, "initial student");
    readPayload(welcomeMessage.payloads[1], teacher.data, "initial teacher");
    readPayload(welcomeMessage.payloads[2], center, "initial center");
    const rankLog = log.child({ rank });
    rankLog.info({ world }, "welcome");

    heartbeat = setInterval(() => {
      outbox.send(encodeControl({ heartbeat: { rank, step: currentStep } })).catch(() => undefined);
    }, Math.max(200, config.heartbeatTimeoutMs / 4));
    heartbeat.unref();
    let currentStep = 0;

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
    await pool.ready();
    sessions = await DinoStepSessions.create(config.model, shape, { device, threads: config.threadsPerWorker, studentTemp: STUDENT_TEMP });
    const adamw = new AdamW(student);
    const P = student.size;
    const K = config.model.outDim;
    // [gradient | teacher-output column sums | loss]: what the step all-reduces.
    const contribution = new Float32Array(P + K + 1);
    const reduced = new Float32Array(P + K + 1);
    const B = config.batchSizePerGpu;
    const L = config.localCropsNumber;
    // The pool's batches live in SharedArrayBuffers, which onnxruntime-node does not take as
    // tensor data; one copy into these per step.
    const globals = new Float32Array(2 * B * 3 * config.model.imgSize ** 2);
    const locals = new Float32Array(L * B * 3 * config.model.localCropSize ** 2);
    const globalMasks = new Float32Array(config.model.depth * 2 * 2 * B);
    const localMasks = new Float32Array(config.model.depth * 2 * L * B);
    await outbox.send(encodeControl({ ready: { rank, datasetSize: dataset.files.length } }));
    rankLog.info({ device, params: P, datasetSize: dataset.files.length }, "ready");

    let batches: AsyncGenerator<AugmentedBatch> | undefined;
    let batchesEpoch = -1;
    let nextIter = 0;
    let lastPlan: dino.control.IStepPlan | undefined;
    let lastBatch: AugmentedBatch | undefined;
    const waitMs = config.stepTimeoutMs + config.heartbeatTimeoutMs;
    for (;;) {
      const message = await receive(dealer, waitMs, "the coordinator's next step plan");
      const { envelope } = message;
      if (envelope.shutdown) {
        rankLog.info("shutdown");
        return;
      }
      if (envelope.abort) throw new RunAbortedError(envelope.abort.reason ?? "unknown reason");
      if (envelope.plan) {
        const plan = envelope.plan;
        currentStep = plan.step ?? 0;
        readPayload(message.payloads[0], teacher.data, "teacher weights");
        readPayload(message.payloads[1], center, "center");
        const epoch = plan.epoch ?? 0;
        const iter = plan.iterInEpoch ?? 0;
        const dataStart = performance.now();
        if (lastBatch) pool.recycle(lastBatch);
        if (!batches || batchesEpoch !== epoch || nextIter !== iter) {
          await batches?.return(undefined);
          batches = pool.iterateEpoch({ epoch, world, rank, batchSize: B, startBatch: iter });
          batchesEpoch = epoch;
        }
        const next = await batches.next();
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
        const result = await sessions.studentStep(student, contribution.subarray(0, P), {
          globals,
          locals: L > 0 ? locals : undefined,
          center,
          teacherTemp: plan.teacherTemp ?? 0,
          globalDropPath: globalMasks,
          localDropPath: L > 0 ? localMasks : undefined,
        });
        contribution.set(result.teacherOutputSum, P);
        contribution[P + K] = result.loss;
        const computeEnd = performance.now();
        await outbox.send(
          encodeControl(
            { result: { step: currentStep, rank, loss: result.loss, skippedImages: batch.skipped, dataMs: computeStart - dataStart, computeMs: computeEnd - computeStart } },
            [contribution],
          ),
        );
        lastPlan = plan;
        continue;
      }
      if (envelope.update) {
        if (!lastPlan || envelope.update.step !== lastPlan.step) throw unexpected(message, `the update of step ${lastPlan?.step}`);
        const start = performance.now();
        readPayload(message.payloads[0], reduced, "reduced step buffer");
        studentUpdate(adamw, student.data, reduced.subarray(0, P), {
          lr: lastPlan.lr ?? 0,
          weightDecay: lastPlan.weightDecay ?? 0,
          clipGrad: config.clipGrad,
          epoch: lastPlan.epoch ?? 0,
          freezeLastLayer: config.freezeLastLayer,
        });
        const studentChecksum = envelope.update.checksumRequested ? checksumOf(student.data) : "";
        await outbox.send(encodeControl({ updateDone: { step: currentStep, rank, studentChecksum, updateMs: performance.now() - start } }));
        continue;
      }
      throw unexpected(message, "a step plan, update, abort or shutdown");
    }
  } catch (err) {
    // Tell the coordinator why, so the run fails with this worker's reason rather than a timeout.
    if (!(err instanceof RunAbortedError)) {
      await withDeadline(outbox.send(encodeControl({ failure: { rank: myRank, message: (err as Error).message } })), 1000);
    }
    throw err;
  } finally {
    if (heartbeat) clearInterval(heartbeat);
    await pool?.close().catch(() => undefined);
    await sessions?.release().catch(() => undefined);
    dealer.close();
  }
}

async function receive(dealer: Dealer, timeoutMs: number, what: string): Promise<ControlMessage> {
  dealer.receiveTimeout = timeoutMs;
  let frames: Buffer[];
  try {
    frames = await dealer.receive();
  } catch (err) {
    if ((err as { code?: string }).code === "EAGAIN") throw new ControlTimeoutError(what, timeoutMs);
    throw err;
  }
  return decodeControl(frames);
}

function unexpected(message: ControlMessage, expected: string): ProtocolError {
  return new ProtocolError(`expected ${expected} from the coordinator, got "${message.envelope.body}"`);
}

async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  await Promise.race([promise.catch(() => undefined), new Promise((r) => setTimeout(r, ms).unref())]);
}
