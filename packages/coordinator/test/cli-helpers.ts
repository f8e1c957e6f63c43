import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The compiled CLI: these tests run the real processes (launcher, forked workers), so build first. */
export const CLI = join(__dirname, "..", "dist", "cli.js");

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function startCli(args: string[]): { child: ChildProcess; done: Promise<CliResult> } {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -p tsconfig.json\` in packages/coordinator first`);
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => (stdout += d));
  child.stderr?.on("data", (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export function runCli(args: string[]): Promise<CliResult> {
  return startCli(args).done;
}

/** Process ids recorded in the pino logs of a run's workers. */
export function workerPids(outputDir: string, count: number): number[] {
  const pids: number[] = [];
  for (let i = 0; i < count; i++) {
    const path = join(outputDir, "logs", `worker-${i}.log`);
    if (!existsSync(path)) continue;
    const first = readFileSync(path, "utf8").split("\n")[0];
    if (first) pids.push(JSON.parse(first).pid as number);
  }
  return pids;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The coordinator's log lines of a run directory (a resumed run appends to the first run's). */
function coordinatorLog(outputDir: string): Array<Record<string, unknown>> {
  return readFileSync(join(outputDir, "logs", "coordinator.log"), "utf8").split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/** Bytes the coordinator sent each worker in its InitialState, by the latest (re)start, whether it shared its student, and the model's parameter count. */
export function initialStateOf(outputDir: string): { bytesPerWorker: number; params: number; sharedStudent: boolean } {
  const lines = coordinatorLog(outputDir);
  const sent = lines.filter((l) => l.msg === "initial weights drawn, initial state sent" || l.msg === "checkpoint state sent").pop();
  const ready = lines.filter((l) => l.msg === "all workers ready, training").pop();
  if (!sent || !ready) throw new Error(`${outputDir}/logs/coordinator.log does not say what the initial state carried`);
  return { bytesPerWorker: sent.bytesPerWorker as number, params: ready.params as number, sharedStudent: sent.sharedStudent as boolean };
}
