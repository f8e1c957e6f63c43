/** Messages between the benchmark parent and its forked member processes (Node IPC). */

export type BenchRole = "all-reduce" | "broadcast-root" | "broadcast-receiver";

export interface BenchInit {
  type: "init";
  role: BenchRole;
  rank: number;
  endpoints: string[];
  elements: number;
  chunkBytes: number;
  timeoutMs: number;
  sharedMemory: boolean;
}

export type ParentMessage = BenchInit | { type: "prepare"; iteration: number } | { type: "run"; iteration: number } | { type: "finish" };

export type ChildMessage =
  | { type: "ready" }
  | { type: "prepared" }
  | { type: "done"; iteration: number; seconds: number; cpuSeconds: number }
  | { type: "error"; message: string };
