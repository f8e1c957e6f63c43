/** Options shared by the collectives, and their validation. */
import type { Logger } from "pino";
import { CollectiveUsageError } from "./errors";

export interface CollectiveOptions {
  /** One endpoint per rank (`tcp://host:port` between hosts, `ipc:///path` within one); rank r binds endpoints[r]. */
  endpoints: readonly string[];
  /** A peer that makes no progress for this long fails the operation with CollectiveTimeoutError. */
  timeoutMs: number;
  /** Parent logger; the collective logs through a child with its component name and rank. */
  logger: Logger;
  /** Payload bytes per message (multiple of 4); must be the same on every rank. Default 1 MiB. */
  chunkBytes?: number;
  /** Membership epoch: bump it when the coordinator rebuilds the group so old frames are foreign. Default 0. */
  epoch?: number;
  /** ZeroMQ high-water mark in messages, per socket. Default 64. */
  highWaterMark?: number;
  /** How long close() lets ZeroMQ finish sending queued frames. Default min(timeoutMs, 5000). */
  closeLingerMs?: number;
  /**
   * All-reduce ranks and the broadcast root: when every endpoint is `ipc://` (all members on
   * this host), move payloads through files in /dev/shm and send only headers over ZeroMQ.
   * Default true. Under the ring schedule a member accepts both forms, so members may differ;
   * the direct same-host all-reduce (RingAllReduce's default) needs it on every member.
   * DINO_COMM_SHM_DIR="" disables it process-wide (every member must then see the same value).
   */
  sharedMemory?: boolean;
}

export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_HIGH_WATER_MARK = 64;
const MAX_UINT32 = 0xffffffff;

export interface ResolvedOptions {
  endpoints: readonly string[];
  timeoutMs: number;
  logger: Logger;
  chunkBytes: number;
  epoch: number;
  highWaterMark: number;
  closeLingerMs: number;
  sharedMemory: boolean;
}

export function resolveOptions(options: CollectiveOptions, minEndpoints: number): ResolvedOptions {
  const { endpoints, timeoutMs, logger } = options;
  if (!Array.isArray(endpoints) || endpoints.length < minEndpoints || endpoints.some((e) => typeof e !== "string" || !/^(tcp|ipc):\/\/.+/.test(e))) {
    throw new CollectiveUsageError("endpoints", `need at least ${minEndpoints} endpoint strings of the form tcp://host:port or ipc:///path, got ${JSON.stringify(endpoints)}`);
  }
  if (new Set(endpoints).size !== endpoints.length) throw new CollectiveUsageError("endpoints", `every rank needs its own endpoint, got ${JSON.stringify(endpoints)}`);
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new CollectiveUsageError("timeoutMs", `must be a positive number of milliseconds, got ${timeoutMs}`);
  if (!logger || typeof logger.child !== "function") throw new CollectiveUsageError("logger", "a pino Logger is required");
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 4 || chunkBytes % 4 !== 0 || chunkBytes > 1 << 30) {
    throw new CollectiveUsageError("chunkBytes", `must be a positive multiple of 4 up to 1 GiB, got ${chunkBytes}`);
  }
  const epoch = options.epoch ?? 0;
  if (!Number.isInteger(epoch) || epoch < 0) throw new CollectiveUsageError("epoch", `must be a non-negative integer, got ${epoch}`);
  const highWaterMark = options.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  if (!Number.isInteger(highWaterMark) || highWaterMark < 1) throw new CollectiveUsageError("highWaterMark", `must be a positive integer, got ${highWaterMark}`);
  const closeLingerMs = options.closeLingerMs ?? Math.min(timeoutMs, 5000);
  const sharedMemory = options.sharedMemory ?? true;
  if (typeof sharedMemory !== "boolean") throw new CollectiveUsageError("sharedMemory", `must be a boolean, got ${JSON.stringify(sharedMemory)}`);
  return { endpoints: [...endpoints], timeoutMs, logger, chunkBytes, epoch, highWaterMark, closeLingerMs, sharedMemory };
}

export function checkRank(rank: number, worldSize: number, first = 0): void {
  if (!Number.isInteger(rank) || rank < first || rank >= worldSize) {
    throw new CollectiveUsageError("rank", `must be an integer in [${first}, ${worldSize - 1}], got ${rank}`);
  }
}

export function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0 || step > MAX_UINT32) throw new CollectiveUsageError("step", `must be an integer in [0, 2^32-1], got ${step}`);
}

export function checkTensor(name: string, values: Float32Array): void {
  // Tag check rather than instanceof, so arrays from another realm (vm context, jest) pass.
  if (!ArrayBuffer.isView(values) || Object.prototype.toString.call(values) !== "[object Float32Array]") {
    throw new CollectiveUsageError(name, "must be a Float32Array");
  }
  if (values.length > MAX_UINT32) throw new CollectiveUsageError(name, `has ${values.length} elements; at most 2^32-1 are supported`);
}
