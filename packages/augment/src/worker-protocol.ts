import type { AugmentConfig } from "./augment-config";

/** Messages between AugmentPool and its worker threads (augment-worker.ts). */

export interface WorkerInit {
  config: AugmentConfig;
  seed: number;
  /** libvips threads per worker (sharp.concurrency). */
  vipsThreads: number;
  /** The worker's pixel area in the batch memories (batch-memory.ts). */
  lane: number;
  /** Whether to run libvips' threads at a lower priority (decode-thread-priority.ts): the pool leaves cores spare. */
  lowerDecodePriority: boolean;
}

export interface ImageTask {
  type: "task";
  id: number;
  path: string;
  datasetIndex: number;
  /** The batch (its memories are the same for all its tasks). */
  batch: number;
  epoch: number;
  slot: number;
  batchSize: number;
  /** The batch's output memories (batch-memory.ts): globals [2B,3,G,G], locals [L·B,3,l,l] from offset 0. */
  globals: WebAssembly.Memory;
  locals: WebAssembly.Memory;
}

export type WorkerReply =
  | { type: "ready" }
  | { type: "done"; id: number }
  | { type: "unreadable"; id: number; reason: string }
  | { type: "failed"; id: number; message: string };
