import type { AugmentConfig } from "./augment-config";

/** Messages between AugmentPool and its worker threads (augment-worker.ts). */

export interface WorkerInit {
  config: AugmentConfig;
  seed: number;
  /** libvips threads per worker (sharp.concurrency). */
  vipsThreads: number;
}

export interface ImageTask {
  type: "task";
  id: number;
  path: string;
  datasetIndex: number;
  epoch: number;
  slot: number;
  batchSize: number;
  globals: SharedArrayBuffer;
  locals: SharedArrayBuffer;
}

export type WorkerReply =
  | { type: "ready" }
  | { type: "done"; id: number }
  | { type: "unreadable"; id: number; reason: string }
  | { type: "failed"; id: number; message: string };
