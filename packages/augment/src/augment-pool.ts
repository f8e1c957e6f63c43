import { availableParallelism } from "node:os";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { resolveAugmentConfig, type AugmentConfig } from "./augment-config";
import { batchFloats, createBatchMemory, createBatchMemoryBytes, maxCropSize } from "./batch-memory";
import { populatePages } from "./populate-pages";
import { shardBatchIndices } from "./distributed-sampler";
import { AugmentConfigError, AugmentPoolClosedError, AugmentTimeoutError, AugmentWorkerError, DataFolderError } from "./errors";
import type { ImageFolderDataset } from "./image-folder";
import { resolveWorkerScript } from "./worker-script";
import type { ImageTask, WorkerInit, WorkerReply } from "./worker-protocol";

export interface AugmentPoolOptions {
  dataset: ImageFolderDataset;
  config?: Partial<AugmentConfig>;
  /** Worker threads; default: the cores this process may use. */
  threads?: number;
  /** Batches iterateEpoch keeps in flight ahead of the consumer (default 2). */
  prefetch?: number;
  /** Seed of the sampler and of every crop (main_dino.py --seed). */
  seed?: number;
  /** Longest wait for one image before its worker is declared stuck, terminated and replaced (default 60 s). */
  timeoutMs?: number;
  /** Longest wait for a worker thread to start or stop (default: timeoutMs, at least 30 s). */
  startupTimeoutMs?: number;
  /**
   * Images one worker works on at once, so decoding (on libvips' threads) stays ahead of
   * the pixel pass (default 4: with the SIMD pixel pass, 2 left one worker waiting for
   * decodes ~15% of the time).
   */
  tasksPerThread?: number;
  /** libvips threads per worker (sharp.concurrency; default 1, the pool itself gives the parallelism). */
  vipsThreads?: number;
  logger?: Logger;
}

/**
 * One batch of multi-crop views, crop-major, float32 CHW normalized. globals and locals
 * view the start of shared WebAssembly memories (their SharedArrayBuffers also hold the
 * workers' pixel areas: use the arrays, not their whole buffers).
 */
export interface AugmentedBatch {
  epoch: number;
  /** [2B, 3, G, G]: all images' global crop 0, then all images' global crop 1. */
  globals: Float32Array;
  /** [L·B, 3, l, l]: all images' local crop 2, then crop 3, …. */
  locals: Float32Array;
  /** Dataset index whose crops fill each batch position (after skipping unreadable files). */
  indices: Uint32Array;
  /** The indices asked for. */
  requested: Uint32Array;
  /** Unreadable files skipped while making this batch. */
  skipped: number;
}

interface Job {
  /** Names the batch's memories for the workers, which keep their kernels bound to them across the batch's tasks. */
  id: number;
  epoch: number;
  batchSize: number;
  /** Shared memories holding the output tensors (batch-memory.ts). */
  globals: WebAssembly.Memory;
  locals: WebAssembly.Memory;
  indices: Uint32Array;
  requested: Uint32Array;
  remaining: number;
  skipped: number;
  settled: boolean;
  resolve: (batch: AugmentedBatch) => void;
  reject: (err: Error) => void;
}

interface Task {
  job: Job;
  slot: number;
  datasetIndex: number;
  /** Files tried for this slot so far (bounded by the dataset size). */
  attempts: number;
}

interface Running {
  task: Task;
  timer: NodeJS.Timeout;
}

interface WorkerHandle {
  worker: Worker;
  /** Its pixel area in the batch memories (a replacement takes over the lane of the worker it replaces). */
  lane: number;
  ready: boolean;
  running: Map<number, Running>;
  startTimer?: NodeJS.Timeout;
}

const MAX_RESPAWNS_WITHOUT_PROGRESS = 3;

/** A worker_threads pool that turns dataset indices into multi-crop batches. */
export class AugmentPool {
  readonly config: AugmentConfig;
  readonly threads: number;
  readonly seed: number;
  readonly prefetch: number;
  readonly timeoutMs: number;
  readonly startupTimeoutMs: number;
  private readonly dataset: ImageFolderDataset;
  private readonly tasksPerThread: number;
  private readonly vipsThreads: number;
  private readonly log?: Logger;
  private readonly script: string;
  private readonly workers = new Set<WorkerHandle>();
  private readonly queue: Task[] = [];
  private readonly freeBuffers = new Map<number, WebAssembly.Memory[]>();
  /** The memory behind each batch array handed out, for recycle. */
  private readonly memoryOf = new WeakMap<SharedArrayBuffer, WebAssembly.Memory>();
  private readonly readyWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private nextTaskId = 1;
  private nextJobId = 1;
  private respawnsWithoutProgress = 0;
  private closed = false;

  constructor(options: AugmentPoolOptions) {
    this.dataset = options.dataset;
    if (this.dataset.files.length === 0) throw new DataFolderError(this.dataset.root, "no-images", "dataset has no images");
    this.config = resolveAugmentConfig(options.config);
    this.threads = options.threads ?? availableParallelism();
    this.seed = options.seed ?? 0;
    this.prefetch = options.prefetch ?? 2;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.startupTimeoutMs = options.startupTimeoutMs ?? Math.max(this.timeoutMs, 30_000);
    this.tasksPerThread = options.tasksPerThread ?? 4;
    this.vipsThreads = options.vipsThreads ?? 1;
    for (const [name, value, min] of [
      ["threads", this.threads, 1],
      ["prefetch", this.prefetch, 0],
      ["tasksPerThread", this.tasksPerThread, 1],
      ["vipsThreads", this.vipsThreads, 1],
      ["timeoutMs", this.timeoutMs, 1],
      ["startupTimeoutMs", this.startupTimeoutMs, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) throw new AugmentConfigError(`AugmentPool ${name} must be an integer >= ${min}, got ${value}`);
    }
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw new AugmentConfigError(`AugmentPool seed must be a non-negative integer, got ${this.seed}`);
    this.log = options.logger?.child({ component: "augment-pool" });
    this.script = resolveWorkerScript();
    for (let lane = 0; lane < this.threads; lane++) this.spawn(lane);
  }

  /** Resolves when every worker has started (bounded by startupTimeoutMs). */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new AugmentPoolClosedError());
    if ([...this.workers].every((w) => w.ready)) return Promise.resolve();
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /** Crops for the given dataset indices in `epoch` (any count ≥ 1; sampler batches come from shardBatchIndices). */
  batch(request: { epoch: number; indices: ArrayLike<number> }): Promise<AugmentedBatch> {
    if (this.closed) return Promise.reject(new AugmentPoolClosedError());
    const { epoch } = request;
    const requested = Uint32Array.from(request.indices as ArrayLike<number>);
    const n = this.dataset.files.length;
    if (!Number.isSafeInteger(epoch) || epoch < 0) return Promise.reject(new AugmentConfigError(`epoch must be a non-negative integer, got ${epoch}`));
    if (requested.length === 0) return Promise.reject(new AugmentConfigError("a batch needs at least one index"));
    for (let i = 0; i < request.indices.length; i++) {
      const v = request.indices[i];
      if (!Number.isInteger(v) || v < 0 || v >= n) return Promise.reject(new AugmentConfigError(`dataset index ${v} out of range [0, ${n})`));
    }
    if (this.workers.size === 0) return Promise.reject(new AugmentWorkerError("no live worker threads (they failed to start or kept crashing)"));
    const B = requested.length;
    const floats = batchFloats(this.config, B);
    return new Promise<AugmentedBatch>((resolve, reject) => {
      const job: Job = {
        id: this.nextJobId++,
        epoch,
        batchSize: B,
        globals: this.takeBuffer(floats.globals),
        locals: this.takeBuffer(floats.locals),
        indices: requested.slice(),
        requested,
        remaining: B,
        skipped: 0,
        settled: false,
        resolve,
        reject,
      };
      for (let slot = 0; slot < B; slot++) this.queue.push({ job, slot, datasetIndex: requested[slot], attempts: 1 });
      this.dispatch();
    });
  }

  /**
   * Batches of rank `rank` for `epoch` from `startBatch` on (DistributedSampler +
   * drop_last), keeping `prefetch` batches in flight while the consumer works.
   */
  async *iterateEpoch(spec: { epoch: number; world: number; rank: number; batchSize: number; startBatch?: number }): AsyncGenerator<AugmentedBatch> {
    const batches = shardBatchIndices({ ...spec, datasetSize: this.dataset.files.length, seed: this.seed });
    let next = spec.startBatch ?? 0;
    const inFlight: Promise<AugmentedBatch>[] = [];
    const launch = () => {
      const pending = this.batch({ epoch: spec.epoch, indices: batches[next++] });
      pending.catch(() => undefined); // an abandoned prefetch must not become an unhandled rejection
      inFlight.push(pending);
    };
    while (next < batches.length && inFlight.length <= this.prefetch) launch();
    while (inFlight.length > 0) {
      const batch = await (inFlight.shift() as Promise<AugmentedBatch>);
      if (next < batches.length) launch();
      yield batch;
    }
  }

  /** Hand a consumed batch's buffers back for reuse (optional; avoids reallocating them every step). */
  recycle(batch: AugmentedBatch): void {
    for (const array of [batch.globals, batch.locals]) {
      const memory = this.memoryOf.get(array.buffer as SharedArrayBuffer);
      if (!memory) continue;
      const bytes = memory.buffer.byteLength;
      const list = this.freeBuffers.get(bytes) ?? [];
      if (list.length <= this.prefetch + 1) list.push(memory);
      this.freeBuffers.set(bytes, list);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new AugmentPoolClosedError();
    for (const task of this.queue.splice(0)) this.fail(task.job, err);
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(err);
    const exits: Promise<unknown>[] = [];
    for (const handle of this.workers) {
      for (const { task, timer } of handle.running.values()) {
        clearTimeout(timer);
        this.fail(task.job, err);
      }
      handle.running.clear();
      clearTimeout(handle.startTimer);
      exits.push(handle.worker.terminate());
    }
    this.workers.clear();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AugmentTimeoutError("terminating worker threads", this.startupTimeoutMs)), this.startupTimeoutMs);
    });
    try {
      await Promise.race([Promise.all(exits), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A batch memory for `floats` floats with a pixel area per thread (batch-memory.ts), reused where one of that size was recycled. */
  private takeBuffer(floats: number): WebAssembly.Memory {
    const fresh = () => {
      const memory = createBatchMemory(floats, this.threads, maxCropSize(this.config));
      this.memoryOf.set(memory.buffer as SharedArrayBuffer, memory); // shared: always a SharedArrayBuffer
      void populatePages(memory);
      return memory;
    };
    const bytes = createBatchMemoryBytes(floats, this.threads, maxCropSize(this.config));
    return this.freeBuffers.get(bytes)?.pop() ?? fresh();
  }

  private spawn(lane: number): void {
    const init: WorkerInit = { config: this.config, seed: this.seed, vipsThreads: this.vipsThreads, lane, lowerDecodePriority: this.threads < availableParallelism() };
    const handle: WorkerHandle = { worker: new Worker(this.script, { workerData: init }), lane, ready: false, running: new Map() };
    this.workers.add(handle);
    handle.startTimer = setTimeout(() => {
      this.log?.error({ timeoutMs: this.startupTimeoutMs }, "augment worker did not start");
      this.retire(handle, new AugmentTimeoutError("worker thread start-up", this.startupTimeoutMs), false);
    }, this.startupTimeoutMs);
    handle.worker.on("message", (message: WorkerReply) => this.onMessage(handle, message));
    handle.worker.on("error", (err) => {
      this.log?.error({ err }, "augment worker crashed");
      this.retire(handle, new AugmentWorkerError(`worker thread crashed: ${err.message}`), true);
    });
    handle.worker.on("exit", (code) => {
      if (this.workers.has(handle)) this.retire(handle, new AugmentWorkerError(`worker thread exited with code ${code}`), true);
    });
  }

  /** Remove a broken worker: its running tasks' batches fail with `err`; replace it while that still makes progress. */
  private retire(handle: WorkerHandle, err: Error, respawn: boolean): void {
    if (!this.workers.delete(handle)) return;
    clearTimeout(handle.startTimer);
    for (const { task, timer } of handle.running.values()) {
      clearTimeout(timer);
      this.fail(task.job, err);
    }
    handle.running.clear();
    void handle.worker.terminate();
    if (this.closed) return;
    if (respawn && this.respawnsWithoutProgress < MAX_RESPAWNS_WITHOUT_PROGRESS) {
      this.respawnsWithoutProgress++;
      this.spawn(handle.lane);
    }
    if (this.workers.size === 0) {
      for (const task of this.queue.splice(0)) this.fail(task.job, err);
      for (const waiter of this.readyWaiters.splice(0)) waiter.reject(err);
    }
    this.settleReadyWaiters();
    this.dispatch();
  }

  private settleReadyWaiters(): void {
    if (this.workers.size > 0 && [...this.workers].every((w) => w.ready)) for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
  }

  private onMessage(handle: WorkerHandle, message: WorkerReply): void {
    if (message.type === "ready") {
      handle.ready = true;
      clearTimeout(handle.startTimer);
      this.settleReadyWaiters();
      this.dispatch();
      return;
    }
    const running = handle.running.get(message.id);
    if (!running) return; // its batch already failed
    handle.running.delete(message.id);
    clearTimeout(running.timer);
    const { task } = running;
    const { job } = task;
    if (message.type === "done") {
      this.respawnsWithoutProgress = 0;
      job.indices[task.slot] = task.datasetIndex;
      if (--job.remaining === 0 && !job.settled) {
        job.settled = true;
        job.resolve({
          epoch: job.epoch,
          globals: new Float32Array(job.globals.buffer, 0, batchFloats(this.config, job.batchSize).globals),
          locals: new Float32Array(job.locals.buffer, 0, this.config.localCrops * job.batchSize * 3 * this.config.localSize ** 2),
          indices: job.indices,
          requested: job.requested,
          skipped: job.skipped,
        });
      }
    } else if (message.type === "unreadable") {
      job.skipped++;
      const n = this.dataset.files.length;
      this.log?.warn({ index: task.datasetIndex, path: this.pathOf(task.datasetIndex), reason: message.reason }, "skipping unreadable image");
      if (task.attempts >= n) {
        this.fail(job, new DataFolderError(this.dataset.root, "unreadable", `none of its ${n} images could be decoded (last: ${message.reason})`));
      } else if (!job.settled) {
        // Deterministic replacement: the next index, wrapping; its crops are keyed by its own index.
        this.queue.unshift({ job, slot: task.slot, datasetIndex: (task.datasetIndex + 1) % n, attempts: task.attempts + 1 });
      }
    } else {
      this.fail(job, new AugmentWorkerError(`failed on ${this.pathOf(task.datasetIndex)}: ${message.message}`));
    }
    this.dispatch();
  }

  private fail(job: Job, err: Error): void {
    if (job.settled) return;
    job.settled = true;
    job.reject(err);
  }

  private pathOf(index: number): string {
    return path.join(this.dataset.root, this.dataset.files[index]);
  }

  private dispatch(): void {
    for (const handle of this.workers) {
      if (!handle.ready) continue;
      while (handle.running.size < this.tasksPerThread && this.queue.length > 0) {
        const task = this.queue.shift() as Task;
        if (task.job.settled) continue;
        const id = this.nextTaskId++;
        const file = this.pathOf(task.datasetIndex);
        const timer = setTimeout(() => {
          this.log?.error({ path: file, index: task.datasetIndex, timeoutMs: this.timeoutMs }, "augment worker stuck; replacing it");
          this.retire(handle, new AugmentTimeoutError(`image ${file} (dataset index ${task.datasetIndex}; its worker was terminated and replaced)`, this.timeoutMs), true);
        }, this.timeoutMs);
        handle.running.set(id, { task, timer });
        const message: ImageTask = {
          type: "task",
          id,
          path: file,
          datasetIndex: task.datasetIndex,
          batch: task.job.id,
          epoch: task.job.epoch,
          slot: task.slot,
          batchSize: task.job.batchSize,
          globals: task.job.globals,
          locals: task.job.locals,
        };
        handle.worker.postMessage(message);
      }
    }
  }
}
