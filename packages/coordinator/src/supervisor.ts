import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { Logger } from "pino";
import { RECOMMENDED_PROCESS_ENV } from "@dino-coord/comm";

/** The compiled `dino-coord` entry the local workers run (`dino-coord worker …`). */
export function cliEntry(): string {
  return join(__dirname, "cli.js");
}

export interface ExitReport {
  podIndex: number;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Starts and supervises the local worker processes. A worker that exits before
 * `expectExit()` is reported through `onUnexpectedExit`; `stop()` ends all of them
 * (SIGTERM, then SIGKILL after a grace period) so no process outlives the launcher.
 */
export class LocalWorkers {
  private readonly children = new Map<number, ChildProcess>();
  private expecting = false;

  constructor(
    private readonly log: Logger,
    private readonly onUnexpectedExit: (report: ExitReport) => void,
  ) {}

  spawn(count: number, endpoint: string, logDir: string, connectTimeoutMs: number): void {
    for (let podIndex = 0; podIndex < count; podIndex++) {
      const args = ["worker", "--coordinator", endpoint, "--pod-index", String(podIndex), "--log-dir", logDir, "--local", "--connect-timeout", String(connectTimeoutMs / 1000)];
      const child = fork(cliEntry(), args, { stdio: ["ignore", "inherit", "inherit", "ipc"], env: { ...process.env, ...RECOMMENDED_PROCESS_ENV, DINO_COORD_WORKER: "1" } });
      this.children.set(podIndex, child);
      this.log.info({ podIndex, pid: child.pid }, "worker process started");
      child.on("exit", (code, signal) => {
        this.children.delete(podIndex);
        this.log.info({ podIndex, code, signal }, "worker process exited");
        if (!this.expecting) this.onUnexpectedExit({ podIndex, code, signal });
      });
      child.on("error", (err) => this.log.error({ podIndex, err: err.message }, "worker process error"));
    }
  }

  get alive(): number {
    return this.children.size;
  }

  pids(): number[] {
    return [...this.children.values()].map((c) => c.pid ?? -1);
  }

  expectExit(): void {
    this.expecting = true;
  }

  /** Waits up to `graceMs` for the workers to exit by themselves, then SIGTERM, then SIGKILL. */
  async stop(graceMs: number): Promise<void> {
    this.expecting = true;
    await this.waitAll(graceMs);
    for (const child of this.children.values()) child.kill("SIGTERM");
    await this.waitAll(3000);
    for (const child of this.children.values()) child.kill("SIGKILL");
    await this.waitAll(2000);
  }

  private async waitAll(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.children.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }
}
