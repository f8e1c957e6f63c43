/**
 * Resume is exact: a run interrupted at any moment (SIGKILL of the whole process group right
 * after a checkpoint, during a step, during a checkpoint write; SIGTERM) and resumed ends with
 * bitwise the student, teacher, center (and optimizer state, log.txt, losses) of the run that
 * was never interrupted. Tiny model, 8 images, 2 workers of batch 2: 2 steps per epoch, 3 epochs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesizeImageFolder } from "@dino-coord/augment";
import { readLatestPointer } from "../src/checkpoint";
import { CLI, initialStateOf, isAlive, waitFor, workerPids, type CliResult } from "./cli-helpers";

let root: string;
let dataPath: string;
let reference: string;
const TOTAL_STEPS = 6;
const FINAL = "checkpoint-00000006";

const TINY = ["--device", "cpu", "--preset", "tiny", "--local-crops-number", "2", "--num-workers", "1", "--threads-per-worker", "1", "--warmup-epochs", "0", "--lr", "0.01", "--freeze-last-layer", "0"];
const RUN = () => [...TINY, "--gpus", "2", "--batch-size-per-gpu", "2", "--epochs", "3", "--data-path", dataPath];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "dino-resume-"));
  await synthesizeImageFolder({ out: join(root, "data"), classes: 2, perClass: 4, size: 40, seed: 3 });
  dataPath = join(root, "data", "train");
  reference = join(root, "reference");
  const result = await runCli(["launch", ...RUN(), "--save-every-steps", "3", "--output-dir", reference]);
  expect(result.code).toBe(0);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * The launcher in its own process group, so the test can SIGKILL it together with its workers.
 * A run still going after `timeoutMs` is killed and reported with its output.
 */
function startGroup(args: string[], timeoutMs = 45_000, env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"], detached: true, env });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d) => (stdout += d));
  child.stderr?.on("data", (d) => (stderr += d));
  const done = new Promise<CliResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      process.kill(-child.pid!, "SIGKILL");
      reject(new Error(`dino-coord ${args.join(" ")} still ran after ${timeoutMs / 1000} s; stderr: ${stderr}`));
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

const runCli = (args: string[]): Promise<CliResult> => startGroup(args).done;

/** Sends `signal` to the run (the process group, or the launcher only) as soon as `condition` holds; checks on every change of `dir` and every 5 ms. */
async function signalWhen(run: { child: ChildProcess; done: Promise<CliResult> }, dir: string, condition: () => boolean, what: string, signal: NodeJS.Signals = "SIGKILL", group = true): Promise<CliResult> {
  let fired = false;
  let watcher: ReturnType<typeof watch> | undefined;
  const check = () => {
    if (fired) return;
    let hit = false;
    try {
      hit = condition();
    } catch {
      hit = false;
    }
    if (!hit) return;
    fired = true;
    process.kill(group ? -run.child.pid! : run.child.pid!, signal);
  };
  const timer = setInterval(() => {
    if (!watcher && existsSync(dir)) watcher = watch(dir, check);
    check();
  }, 5);
  const result = await run.done;
  clearInterval(timer);
  watcher?.close();
  if (!fired) throw new Error(`the run ended before ${what}: ${result.stderr}`);
  return result;
}

const metricsLines = (dir: string) =>
  existsSync(join(dir, "metrics.jsonl")) ? readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n").filter((l) => l.endsWith("}")).length : 0;

/**
 * The resumed run ends exactly where the uninterrupted one did. `metricsMayLackOneStep`: a stop
 * checkpoint saved while the workers were still confirming an applied update has that step's
 * state but not its metrics line (its timings were never measured).
 */
function expectSameAsReference(dir: string, options: { metricsMayLackOneStep?: boolean } = {}): void {
  for (const file of ["student.safetensors", "teacher.safetensors", "center.safetensors", "optimizer.safetensors"]) {
    const ours = readFileSync(join(dir, FINAL, file));
    const theirs = readFileSync(join(reference, FINAL, file));
    if (!ours.equals(theirs)) throw new Error(`${file} of ${dir} differs from the uninterrupted run's`);
  }
  // The hidden state too: every step's loss and log.txt's epoch means (running sums restored).
  const steps = (d: string) => readFileSync(join(d, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss: number; lr: number });
  const all = steps(reference);
  expect(steps(dir).map((s) => [s.step, s.loss, s.lr])).toEqual(steps(dir).map((s) => [s.step, all[s.step].loss, all[s.step].lr]));
  const done = steps(dir).map((s) => s.step);
  if (options.metricsMayLackOneStep && done.length === TOTAL_STEPS - 1) expect(new Set(done).size).toBe(TOTAL_STEPS - 1);
  else expect(done).toEqual([...Array(TOTAL_STEPS).keys()]);
  expect(readFileSync(join(dir, "log.txt"), "utf8")).toBe(readFileSync(join(reference, "log.txt"), "utf8"));
}

async function expectNoProcessesLeft(dir: string): Promise<void> {
  const pids = workerPids(dir, 2);
  expect(pids).toHaveLength(2);
  await waitFor(() => pids.every((p) => !isAlive(p)), 5000, "the workers to be gone");
}

/** A copy of the finished reference run whose `latest` points at an earlier checkpoint. */
function referenceAt(name: string, latest: string, remove: string[]): string {
  const dir = join(root, name);
  cpSync(reference, dir, { recursive: true });
  for (const r of remove) rmSync(join(dir, r), { recursive: true, force: true });
  writeFileSync(join(dir, "latest"), `${latest}\n`);
  return dir;
}

describe("resume after a crash is bitwise exact", () => {
  it("killed (SIGKILL, whole process group) right after the checkpoint at step k = 3, then resumed for the remaining 3 steps", async () => {
    const out = join(root, "after-checkpoint");
    // Without shared memory (as across hosts): the workers keep student replicas, and the
    // result still equals the reference run's, whose workers read the coordinator's student.
    const replicas = { ...process.env, DINO_COMM_SHM_DIR: "" };
    const run = startGroup(["launch", ...RUN(), "--save-every-steps", "3", "--output-dir", out], 45_000, replicas);
    const killed = await signalWhen(run, out, () => readLatestPointer(out) === "checkpoint-00000003", "the step-3 checkpoint");
    expect(killed.signal).toBe("SIGKILL");
    await expectNoProcessesLeft(out);
    expect(existsSync(join(out, FINAL))).toBe(false);
    const resumed = await startGroup(["resume", out], 45_000, replicas).done;
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`resuming from ${join(out, "checkpoint-00000003")} (step 3, epoch 1, iteration 1)`);
    expectSameAsReference(out);
    // The resumed replicas got the student and both AdamW moments (teacher and center came with the broadcast).
    const { bytesPerWorker, params, sharedStudent } = initialStateOf(out);
    expect(sharedStudent).toBe(false);
    expect(bytesPerWorker).toBeGreaterThanOrEqual(3 * 4 * params);
    expect(bytesPerWorker).toBeLessThan(4 * 4 * params);
  });

  it("killed during a step: resumes from the last checkpoint and trains the lost steps again", async () => {
    const out = join(root, "during-step");
    const run = startGroup(["launch", ...RUN(), "--save-every-steps", "0", "--output-dir", out]);
    // Steps 0-2 done (metrics written), step 3 in flight; the last checkpoint is the end of epoch 0 (step 2).
    await signalWhen(run, out, () => metricsLines(out) >= 3, "step 2 to finish");
    expect(readLatestPointer(out)).toBe("checkpoint-00000002");
    expect(metricsLines(out)).toBe(3);
    const resumed = await runCli(["launch", ...RUN(), "--save-every-steps", "0", "--resume", out]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`resuming from ${join(out, "checkpoint-00000002")}`);
    expectSameAsReference(out);
    // On one host the resumed workers read the coordinator's student: nothing to send.
    const { bytesPerWorker, sharedStudent } = initialStateOf(out);
    expect(sharedStudent).toBe(true);
    expect(bytesPerWorker).toBeLessThan(1024);
  });

  it("killed while writing a checkpoint: the previous checkpoint is used", async () => {
    // Every step checkpoints; the kill comes as soon as the write of the step-4 or later one starts.
    let out = "";
    let before: string | undefined;
    for (let attempt = 0; attempt < 3 && before === undefined; attempt++) {
      out = join(root, `during-write-${attempt}`);
      const run = startGroup(["launch", ...RUN(), "--save-every-steps", "1", "--output-dir", out]);
      let pointer: string | undefined;
      await signalWhen(run, out, () => {
        const writing = readdirSync(out).some((n) => /^\.tmp-checkpoint-0000000[3-5]/.test(n));
        if (writing) pointer = readLatestPointer(out);
        return writing;
      }, "a checkpoint write");
      // Proof that the kill hit the write: its scratch folder is still there (else try again).
      if (readdirSync(out).some((n) => n.startsWith(".tmp-checkpoint-"))) before = pointer;
    }
    expect(before).toMatch(/^checkpoint-0000000[2-4]$/);
    const resumed = await runCli(["resume", out]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`resuming from ${join(out, before!)}`);
    expect(readdirSync(out).filter((n) => n.startsWith("."))).toEqual([]);
    expectSameAsReference(out);
  });

  it("a corrupted latest checkpoint (one flipped bit) is detected: resume falls back to the newest valid one and says so", async () => {
    const out = referenceAt("corrupted", "checkpoint-00000004", [FINAL]);
    const student = join(out, "checkpoint-00000004", "student.safetensors");
    const bytes = readFileSync(student);
    bytes[bytes.length - 100] ^= 0x10;
    writeFileSync(student, bytes);
    const resumed = await runCli(["resume", out]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toMatch(/checkpoint \S+checkpoint-00000004 is damaged \(student\.safetensors: .*\), skipping it/);
    expect(resumed.stderr).toContain(`resuming from the newest valid checkpoint, ${join(out, "checkpoint-00000003")} (step 3)`);
    const log = readFileSync(join(out, "logs", "coordinator.log"), "utf8");
    expect(log).toMatch(/checkpoint-00000004 is damaged, skipping it/);
    expectSameAsReference(out);
  });
});

describe("resume under another configuration", () => {
  it("refuses a change that would alter the result, naming the setting, and touches nothing", async () => {
    const out = referenceAt("changed", "checkpoint-00000004", [FINAL]);
    const metricsBefore = readFileSync(join(out, "metrics.jsonl"), "utf8");
    const viaResume = await runCli(["resume", out, "--batch-size-per-gpu", "1"]);
    expect(viaResume.code).toBe(1);
    expect(viaResume.stderr).toMatch(/settings that change the result differ \(pass --allow-config-change to accept them\): batchSizePerGpu: 2 in the checkpoint, 1 now/);
    const viaLaunch = await runCli(["launch", ...RUN(), "--seed", "5", "--resume", out]);
    expect(viaLaunch.code).toBe(1);
    expect(viaLaunch.stderr).toMatch(/seed: 0 in the checkpoint, 5 now/);
    // The model's shape: never, whatever the flag says.
    const model = await runCli(["launch", ...RUN(), "--out-dim", "128", "--resume", out, "--allow-config-change"]);
    expect(model.code).toBe(1);
    expect(model.stderr).toMatch(/the model differs, which is never accepted .*model\.outDim: 256 in the checkpoint, 128 now/);
    expect(readFileSync(join(out, "metrics.jsonl"), "utf8")).toBe(metricsBefore);
    expect(readLatestPointer(out)).toBe("checkpoint-00000004");
  });

  it("--allow-config-change accepts a harmless change (threads per worker)", async () => {
    const out = referenceAt("threads", "checkpoint-00000004", [FINAL]);
    const resumed = await runCli(["resume", out, "--threads-per-worker", "2", "--allow-config-change"]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain("resuming from");
    expect(JSON.parse(readFileSync(join(out, FINAL, "state.json"), "utf8")).runConfig.threadsPerWorker).toBe(2);
    expect(readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(TOTAL_STEPS);
  });
});

describe("SIGTERM checkpoints before exiting", () => {
  it("checkpoints after the step in flight, exits 143 with no process left, and the resumed run is exact", async () => {
    const out = join(root, "sigterm");
    const run = startGroup(["launch", ...RUN(), "--save-every-steps", "0", "--output-dir", out]);
    let doneAtSignal = 0;
    const stopped = await signalWhen(run, out, () => (doneAtSignal = metricsLines(out)) >= 3, "step 2 to finish", "SIGTERM", false);
    expect(stopped.code).toBe(143);
    expect(stopped.stderr).toMatch(/interrupted by SIGTERM; all workers stopped/);
    const saved = /SIGTERM: checkpoint saved in (\S+)/.exec(stopped.stderr)?.[1];
    // The step in flight when the signal came finished within the grace period, and no other started.
    expect(saved).toBe(join(out, `checkpoint-${String(doneAtSignal + 1).padStart(8, "0")}`));
    expect(metricsLines(out)).toBe(doneAtSignal + 1);
    await expectNoProcessesLeft(out);
    const resumed = await runCli(["resume", out]);
    expect(resumed.code).toBe(0);
    expectSameAsReference(out);
  });

  it("with no grace left, checkpoints the last completed state at once; the resumed run is still exact", async () => {
    const out = join(root, "sigterm-no-grace");
    const run = startGroup(["launch", ...RUN(), "--save-every-steps", "0", "--term-grace-s", "0", "--output-dir", out]);
    const stopped = await signalWhen(run, out, () => metricsLines(out) >= 3, "step 2 to finish", "SIGTERM", false);
    expect(stopped.code).toBe(143);
    const saved = /SIGTERM: checkpoint saved in (\S+)/.exec(stopped.stderr)?.[1];
    expect(saved).toMatch(/checkpoint-0000000[34]$/);
    await expectNoProcessesLeft(out);
    const resumed = await runCli(["resume", out]);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`resuming from ${saved}`);
    expectSameAsReference(out, { metricsMayLackOneStep: true });
  });
});
