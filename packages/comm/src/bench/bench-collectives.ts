/**
 * Benchmarks of the collectives with one forked process per member (as in a real run),
 * reporting figures comparable with NCCL's tests: for all-reduce the bus bandwidth is
 * 2(N-1)/N * bytes / time, for broadcast bytes / time.
 */
import { type ChildProcess, fork } from "child_process";
import * as path from "path";
import { freeIpcEndpoint, freeTcpEndpoint } from "../endpoints";
import { DEFAULT_CHUNK_BYTES } from "../options";
import { RECOMMENDED_PROCESS_ENV } from "../process-env";
import type { BenchRole, ChildMessage, ParentMessage } from "./bench-protocol";

export interface BenchOptions {
  /** All-reduce: ranks. Broadcast: receivers (plus one root process). */
  world: number;
  /** Tensor size in MiB of float32. */
  mb: number;
  transport: "ipc" | "tcp";
  /** Timed iterations (median reported). Default 10. */
  iters?: number;
  /** Untimed iterations first. Default 2. */
  warmup?: number;
  chunkBytes?: number;
  timeoutMs?: number;
  /** All-reduce over ipc: payloads through /dev/shm (default) or through the sockets. */
  sharedMemory?: boolean;
}

export interface BenchResult {
  collective: "allreduce" | "broadcast";
  world: number;
  mb: number;
  transport: "ipc" | "tcp";
  iters: number;
  chunk_bytes: number;
  median_s: number;
  min_s: number;
  /** CPU time (user + system, all threads) of all members per iteration, median: robust to a busy machine. */
  cpu_s: number;
  algbw_GBps: number;
  busbw_GBps: number;
}

const WORKER_SCRIPT = path.join(__dirname, "bench-worker.js");

export function benchAllReduce(options: BenchOptions): Promise<BenchResult> {
  const roles: BenchRole[] = Array.from({ length: options.world }, () => "all-reduce");
  return runBench("allreduce", roles, options, (n) => (2 * (n - 1)) / n);
}

export function benchBroadcast(options: BenchOptions): Promise<BenchResult> {
  const roles: BenchRole[] = ["broadcast-root", ...Array.from({ length: options.world }, (): BenchRole => "broadcast-receiver")];
  return runBench("broadcast", roles, options, () => 1);
}

async function runBench(
  collective: BenchResult["collective"],
  roles: BenchRole[],
  options: BenchOptions,
  busFactor: (n: number) => number,
): Promise<BenchResult> {
  const { world, mb, transport } = options;
  const iters = options.iters ?? 10;
  const warmup = options.warmup ?? 2;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (!Number.isInteger(world) || world < 1) throw new Error(`--world must be a positive integer, got ${world}`);
  if (!(mb > 0)) throw new Error(`--mb must be positive, got ${mb}`);
  if (transport !== "ipc" && transport !== "tcp") throw new Error(`--transport must be ipc or tcp, got ${transport}`);
  if (!Number.isInteger(iters) || iters < 1) throw new Error(`--iters must be a positive integer, got ${iters}`);
  const bytes = Math.floor((mb * 2 ** 20) / 4) * 4;
  const endpoints = await Promise.all(roles.map(() => (transport === "ipc" ? Promise.resolve(freeIpcEndpoint()) : freeTcpEndpoint())));

  // Members run as a deployment should run them: with the recommended allocator settings
  // (the caller's environment wins).
  const env = { ...RECOMMENDED_PROCESS_ENV, ...process.env };
  const children = roles.map(() => fork(WORKER_SCRIPT, [], { env, stdio: ["ignore", "inherit", "inherit", "ipc"] }));
  const members = children.map((child) => new MemberChannel(child, timeoutMs));
  try {
    const sharedMemory = options.sharedMemory ?? true;
    roles.forEach((role, rank) => members[rank].send({ type: "init", role, rank, endpoints, elements: bytes / 4, chunkBytes, timeoutMs, sharedMemory }));
    await Promise.all(members.map((m) => m.next("ready")));
    const times: number[] = [];
    const cpuTimes: number[] = [];
    for (let iteration = 0; iteration < warmup + iters; iteration++) {
      members.forEach((m) => m.send({ type: "prepare", iteration }));
      await Promise.all(members.map((m) => m.next("prepared")));
      members.forEach((m) => m.send({ type: "run", iteration }));
      const done = await Promise.all(members.map((m) => m.next("done")));
      // The collective is finished when its slowest member is.
      if (iteration >= warmup) {
        const reports = done as Array<Extract<ChildMessage, { type: "done" }>>;
        times.push(Math.max(...reports.map((d) => d.seconds)));
        cpuTimes.push(reports.reduce((sum, d) => sum + d.cpuSeconds, 0));
      }
    }
    members.forEach((m) => m.send({ type: "finish" }));
    await Promise.all(members.map((m) => m.exited()));
    const median = medianOf(times);
    const algbw = bytes / median / 1e9;
    return {
      collective, world, mb, transport, iters, chunk_bytes: chunkBytes,
      median_s: round(median), min_s: round(Math.min(...times)), cpu_s: round(medianOf(cpuTimes)), algbw_GBps: round(algbw), busbw_GBps: round(algbw * busFactor(world)),
    };
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}

/** Typed, timed request/response over a forked member's IPC channel. */
class MemberChannel {
  private readonly inbox: ChildMessage[] = [];
  private waiter: (() => void) | null = null;
  private exitError: Error | null = null;
  private readonly exitPromise: Promise<void>;

  constructor(
    private readonly child: ChildProcess,
    private readonly timeoutMs: number,
  ) {
    child.on("message", (m: ChildMessage) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.exitPromise = new Promise((resolve) =>
      child.once("exit", (code, signal) => {
        if (code !== 0) this.exitError = new Error(`benchmark member ${child.pid} exited with ${signal ?? `code ${code}`}`);
        resolve();
        this.waiter?.();
      }),
    );
  }

  send(message: ParentMessage): void {
    this.child.send(message);
  }

  async next(type: ChildMessage["type"]): Promise<ChildMessage> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const message = this.inbox.shift();
      if (message?.type === "error") throw new Error(`benchmark member ${this.child.pid} failed: ${message.message}`);
      if (message?.type === type) return message;
      if (message) throw new Error(`benchmark member ${this.child.pid} sent ${message.type}, expected ${type}`);
      if (this.exitError) throw this.exitError;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`benchmark member ${this.child.pid} sent no ${type} within ${this.timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  async exited(): Promise<void> {
    await Promise.race([this.exitPromise, new Promise((resolve) => setTimeout(resolve, this.timeoutMs).unref())]);
    if (this.exitError) throw this.exitError;
  }
}
