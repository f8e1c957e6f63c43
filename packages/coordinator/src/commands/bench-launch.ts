import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { positiveInt } from "../option-parsers";
import { readRunTimeline } from "../run-timeline";
import { UsageError } from "../run-config";

/** Linux's USER_HZ: /proc reports CPU times in these ticks. */
const TICKS_PER_SECOND = 100;

/** CPU seconds of this process's waited-for children and their descendants (Linux; null elsewhere). */
function childrenCpuSeconds(): number | null {
  if (!existsSync("/proc/self/stat")) return null;
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 16 and 17 of stat(5), cutime and cstime, counted from field 3 (state).
  return (Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND;
}

/** How long a timed-out launch gets to stop its workers after SIGTERM (it checkpoints first) before SIGKILL. */
const STOP_GRACE_MS = 30_000;

/** Runs `dino-coord launch <flags> --output-dir <dir>` to its end; rejects with its last output if it fails or outlives `timeoutMs`. */
function runLaunch(flags: readonly string[], outputDir: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, "..", "cli.js"), "launch", ...flags, "--output-dir", outputDir], { stdio: ["ignore", "ignore", "pipe"] });
    let tail = "";
    child.stderr.on("data", (chunk: Buffer) => (tail = (tail + chunk.toString()).slice(-4000)));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    // SIGTERM lets the launcher stop its workers (no orphans); SIGKILL only if it does not.
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      reject(err);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      if (timedOut) reject(new Error(`dino-coord launch ran past --timeout-s (${timeoutMs / 1000} s) and was stopped; its last output:\n${tail}`));
      else if (code === 0) resolve();
      else reject(new Error(`dino-coord launch exited with ${signal ?? `code ${code}`}; its last output:\n${tail}`));
    });
  });
}

function spread(values: number[]): { min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { min: sorted[0], median: sorted[Math.floor((sorted.length - 1) / 2)], max: sorted[sorted.length - 1] };
}

const seconds = (ms: number) => Math.round(ms) / 1000;

/**
 * `dino-coord bench launch -- <launch flags>`: the whole training command, timed from the
 * outside as a user would (start-up and final checkpoint included), run after run, with where
 * the time went read back from the run's logs. Each run writes to a fresh temporary folder.
 */
export function registerBenchLaunch(program: Command): void {
  const bench = program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks that print JSON figures");
  bench
    .command("launch")
    .description("time whole `dino-coord launch` runs (flags after --), with their start-up, first step, later steps and end")
    .argument("<launch-flags...>", "the flags of `dino-coord launch`, after --, without --output-dir")
    .option("--runs <n>", "runs, one after another", positiveInt("--runs"), 1)
    .option("--timeout-s <s>", "longest a run may take", positiveInt("--timeout-s"), 3600)
    .action(async (flags: string[], o: { runs: number; timeoutS: number }) => {
      if (flags.some((f) => f === "--output-dir" || f.startsWith("--output-dir="))) {
        throw new UsageError("bench launch writes each run to a temporary folder: leave --output-dir out of the launch flags");
      }
      const runs = [];
      for (let i = 0; i < o.runs; i++) {
        const outputDir = mkdtempSync(join(tmpdir(), "dino-bench-launch-"));
        try {
          const cpuBefore = childrenCpuSeconds();
          const spawnedAt = Date.now();
          await runLaunch(flags, outputDir, o.timeoutS * 1000);
          const exitedAt = Date.now();
          const cpuAfter = childrenCpuSeconds();
          const t = readRunTimeline(outputDir);
          const wallMs = exitedAt - spawnedAt;
          runs.push({
            wall_s: seconds(wallMs),
            images: t.images,
            images_per_s: Math.round((t.images / (wallMs / 1000)) * 1000) / 1000,
            startup_s: seconds(t.trainingStartedAt - spawnedAt),
            first_step_s: seconds(t.firstStepMs),
            median_step_s: seconds(t.medianStepMs),
            steps_s: seconds(t.stepsMs),
            // Final checkpoint, shut-down, and what lies between steps (epoch ends).
            after_steps_s: seconds(exitedAt - t.trainingStartedAt - t.stepsMs),
            cpu_s: cpuBefore === null || cpuAfter === null ? null : Math.round((cpuAfter - cpuBefore) * 100) / 100,
          });
        } finally {
          rmSync(outputDir, { recursive: true, force: true });
        }
      }
      const result = {
        command: ["launch", ...flags].join(" "),
        runs,
        wall_s: spread(runs.map((r) => r.wall_s)),
        images_per_s: spread(runs.map((r) => r.images_per_s)),
      };
      process.stdout.write(JSON.stringify(result) + "\n");
    });
}
