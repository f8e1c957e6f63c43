import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shardBatchIndices, synthesizeImageFolder } from "@dino-coord/augment";
import { dinoParamSpecs, initParams, ParamStore, readSafetensors, referenceInitOf } from "@dino-coord/model";
import { readLatestPointer } from "../src/checkpoint";

/** The run's last checkpoint folder (the checkpoint module's `latest` pointer). */
function latest(runDir: string): string {
  const name = readLatestPointer(runDir);
  if (!name) throw new Error(`${runDir} has no checkpoint`);
  return join(runDir, name);
}
import { initialStateOf, isAlive, runCli, startCli, waitFor, workerPids } from "./cli-helpers";

let root: string;
let dataPath: string;
const IMAGES = 8;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "dino-launch-"));
  await synthesizeImageFolder({ out: join(root, "data"), classes: 2, perClass: IMAGES / 2, size: 40, seed: 3 });
  dataPath = join(root, "data", "train");
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Tiny model, stochastic depth on (the preset's 0.1), no warm-up so both steps move the weights. */
const TINY = ["--device", "cpu", "--preset", "tiny", "--local-crops-number", "2", "--num-workers", "1", "--threads-per-worker", "1", "--warmup-epochs", "0", "--lr", "0.01", "--freeze-last-layer", "0"];

/** The coordinator's end-of-training log line: frame counters of its ring member and broadcast root, control bytes per step. */
function collectiveStats(runDir: string): { ring: { framesAccepted: number; framesRejected: number }; broadcast: { framesAccepted: number }; controlBytesPerStep: number } {
  const line = readFileSync(join(runDir, "logs", "coordinator.log"), "utf8").split("\n").find((l) => l.includes('"collective stats"'));
  if (!line) throw new Error(`${runDir}/logs/coordinator.log has no collective stats`);
  return JSON.parse(line);
}

/** The control endpoint an external-workers coordinator logged, once it listens. */
async function listeningEndpoint(runDir: string): Promise<string> {
  let endpoint = "";
  await waitFor(() => {
    if (!existsSync(join(runDir, "logs", "coordinator.log"))) return false;
    const line = readFileSync(join(runDir, "logs", "coordinator.log"), "utf8").split("\n").find((l) => l.includes("coordinator listening"));
    if (line) endpoint = JSON.parse(line).endpoint.replace("0.0.0.0", "127.0.0.1");
    return endpoint !== "";
  }, 20_000, "the coordinator to listen");
  return endpoint;
}

function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

describe("dino-coord launch", () => {
  it("N=2 workers with batch b train the same model as N=1 with batch 2b on the same images", async () => {
    // The global set of images of step k is the same in both runs: DistributedSampler gives rank r
    // the permutation positions r, r+W, r+2W, …, and batch k of a rank is its positions
    // [k·b, (k+1)·b), i.e. permutation positions {r + W·j : k·b <= j < (k+1)·b}. For W=2 the two
    // ranks together cover positions [2kb, 2kb + 2b), exactly batch k of the W=1 run with batch 2b
    // (the dataset size is a multiple of 2, so there is no padding). Crops and drop-path masks are
    // keyed by dataset index, so every image gets the same views and masks in both runs.
    for (let k = 0; k < 2; k++) {
      const union = [...shardBatchIndices({ datasetSize: IMAGES, world: 2, rank: 0, seed: 0, epoch: 0, batchSize: 2 })[k], ...shardBatchIndices({ datasetSize: IMAGES, world: 2, rank: 1, seed: 0, epoch: 0, batchSize: 2 })[k]];
      const single = Array.from(shardBatchIndices({ datasetSize: IMAGES, world: 1, rank: 0, seed: 0, epoch: 0, batchSize: 4 })[k]);
      expect(union.sort()).toEqual(single.sort());
    }
    const two = join(root, "two");
    const one = join(root, "one");
    const [a, b] = await Promise.all([
      runCli(["launch", ...TINY, "--gpus", "2", "--batch-size-per-gpu", "2", "--epochs", "1", "--data-path", dataPath, "--output-dir", two]),
      runCli(["launch", ...TINY, "--gpus", "1", "--batch-size-per-gpu", "4", "--epochs", "1", "--data-path", dataPath, "--output-dir", one]),
    ]);
    expect(a.stderr).toMatch(/done/);
    expect(b.stderr).toMatch(/done/);
    expect([a.code, b.code]).toEqual([0, 0]);
    const steps = (dir: string) => readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(steps(two)).toHaveLength(2);
    expect(steps(one)).toHaveLength(2);
    // The gradients went around the ring (the workers and the coordinator, W = N + 1 members,
    // 2(W-1) messages per member and step) and the teacher down the broadcast chain (one
    // acknowledgement per step reaches the root); after the initial states, the control socket
    // carries only plans and heartbeats, nothing model-sized (a star would send 2 × 4P bytes
    // per worker and step).
    for (const [dir, world] of [[two, 2], [one, 1]] as const) {
      const stats = collectiveStats(dir);
      expect(stats.ring.framesAccepted).toBeGreaterThanOrEqual(2 * world * 2);
      expect(stats.ring.framesRejected).toBe(0);
      expect(stats.broadcast.framesAccepted).toBe(2);
      expect(stats.controlBytesPerStep).toBeLessThan(1024 * world);
      // On one host the workers read the coordinator's student, teacher and center where they
      // lie: the initial state carries no weights.
      expect(initialStateOf(dir)).toMatchObject({ sharedStudent: true });
      expect(initialStateOf(dir).bytesPerWorker).toBeLessThan(1024);
      const worker = readFileSync(join(dir, "logs", "worker-0.log"), "utf8").split("\n").find((l) => l.includes('"shutdown"'));
      expect(JSON.parse(worker ?? "{}").ring?.framesAccepted).toBe(stats.ring.framesAccepted);
      // The workers were told to shut down before the final checkpoint was written (they exit meanwhile).
      const saved = readFileSync(join(dir, "logs", "coordinator.log"), "utf8").split("\n").filter((l) => l.includes('"checkpoint saved"')).pop();
      expect(JSON.parse(worker ?? "{}").time).toBeLessThanOrEqual(JSON.parse(saved ?? "{}").time);
    }
    // Same loss and schedule values (lr scales with the global batch, 4 in both).
    steps(two).forEach((s, i) => {
      expect(s.lr).toBe(steps(one)[i].lr);
      expect(Math.abs(s.loss - steps(one)[i].loss)).toBeLessThan(1e-5 * Math.abs(s.loss));
    });
    // Not bitwise: the N=2 run sums per-rank means of the gradient and of the teacher-output
    // columns in a different order (and with different ONNX Runtime reduction tiling) than
    // the N=1 run's single batch mean; float32 summation is not associative.
    //
    // One exception: the key projection. Adding a constant to every key adds the same number
    // to all of a query's attention logits, which softmax ignores, so the key bias's gradient
    // is analytically zero, and a key-weight column whose input is (nearly) the same on all
    // tokens gets a (nearly) zero gradient: what backward returns there is mostly rounding
    // noise. AdamW normalises it (update ≈ lr·g/|g| on the first steps), so noise becomes
    // up to ±lr whatever the summation order. Those parameters barely affect any output.
    // Key bias: only that bound; key weight rows: 1e-4 instead of 1e-5.
    const lrSum = steps(two).reduce((acc, s) => acc + s.lr, 0);
    const embed = 48; // tiny preset width
    for (const file of ["student.safetensors", "teacher.safetensors", "center.safetensors"]) {
      const x = readSafetensors(join(latest(two), file));
      const y = readSafetensors(join(latest(one), file));
      expect([...x.keys()]).toEqual([...y.keys()]);
      for (const [name, tensor] of x) {
        let ours = tensor.data as Float32Array;
        let theirs = y.get(name)?.data as Float32Array;
        if (name.endsWith("attn.qkv.bias") || name.endsWith("attn.qkv.weight")) {
          const width = name.endsWith("bias") ? 1 : embed;
          const keyPart = (v: Float32Array) => v.subarray(embed * width, 2 * embed * width);
          const others = (v: Float32Array) => Float32Array.from([...v.subarray(0, embed * width), ...v.subarray(2 * embed * width)]);
          const keyScale = Math.max(...keyPart(theirs).map(Math.abs));
          const keyDiff = maxRelativeDifference(keyPart(ours), keyPart(theirs)) * (keyScale || 1);
          if (width === 1) expect(keyDiff).toBeLessThanOrEqual(2 * lrSum * 1.01);
          else expect(keyDiff / keyScale).toBeLessThan(1e-4);
          ours = others(ours);
          theirs = others(theirs);
        }
        const rel = maxRelativeDifference(ours, theirs);
        if (rel > 1e-5) throw new Error(`${file} ${name}: relative difference ${rel}`);
      }
    }
    // The student did move (the comparison is not between two copies of the initial weights).
    const x = readSafetensors(join(latest(two), "student.safetensors")).get("backbone.cls_token")?.data as Float32Array;
    const t = readSafetensors(join(latest(two), "teacher.safetensors")).get("backbone.cls_token")?.data as Float32Array;
    expect(maxRelativeDifference(x, t)).toBeGreaterThan(1e-4);
    expect(readFileSync(join(two, "log.txt"), "utf8")).toMatch(/"train_loss":.*"train_lr":.*"train_wd":.*"epoch":0/);
    const state = JSON.parse(readFileSync(join(latest(two), "state.json"), "utf8"));
    expect([state.step, state.epoch, state.iterInEpoch, state.runConfig.gpus]).toEqual([2, 1, 0, 2]);
  });

  it("keeps the last layer at its initial weights while frozen and trains it after (the step graph and ring switch)", async () => {
    const out = join(root, "frozen");
    const result = await runCli(["launch", ...TINY, "--freeze-last-layer", "1", "--saveckp-freq", "1", "--gpus", "2", "--batch-size-per-gpu", "2", "--epochs", "2", "--data-path", dataPath, "--output-dir", out]);
    expect(result.code).toBe(0);
    const config = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    const initial = new ParamStore(dinoParamSpecs(config.model));
    initParams(initial, referenceInitOf(initial.specs), config.seed);
    const lastLayerAt = (step: number) => readSafetensors(join(out, `checkpoint-${String(step).padStart(8, "0")}`, "student.safetensors")).get("head.last_layer.weight_v")?.data as Float32Array;
    const frozenEnd = lastLayerAt(IMAGES / 4); // 2 steps per epoch
    expect(frozenEnd).toEqual(initial.view("head.last_layer.weight_v"));
    expect(maxRelativeDifference(lastLayerAt(IMAGES / 2), frozenEnd)).toBeGreaterThan(1e-4);
    const metrics = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(metrics.map((m) => m.epoch)).toEqual([0, 0, 1, 1]);
  });

  it("SIGTERM in the middle of a run stops every process and exits non-zero", async () => {
    const out = join(root, "sigterm");
    const { child, done } = startCli(["launch", ...TINY, "--gpus", "2", "--batch-size-per-gpu", "2", "--epochs", "200", "--data-path", dataPath, "--output-dir", out]);
    await waitFor(() => existsSync(join(out, "metrics.jsonl")) && readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").length > 3, 60_000, "a few steps");
    const pids = workerPids(out, 2);
    expect(pids).toHaveLength(2);
    expect(pids.every(isAlive)).toBe(true);
    child.kill("SIGTERM");
    const result = await done;
    expect(result.code).toBe(143);
    expect(result.stderr).toMatch(/interrupted by SIGTERM; all workers stopped/);
    expect(pids.filter(isAlive)).toEqual([]);
  });

  it("a worker that dies fails the run with a clear error", async () => {
    const out = join(root, "killed");
    const { done } = startCli(["launch", ...TINY, "--gpus", "2", "--batch-size-per-gpu", "2", "--epochs", "200", "--data-path", dataPath, "--output-dir", out]);
    await waitFor(() => existsSync(join(out, "metrics.jsonl")) && readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").length > 2, 60_000, "a few steps");
    const pids = workerPids(out, 2);
    process.kill(pids[1], "SIGKILL");
    const result = await done;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/worker 1 failed: process exited with signal SIGKILL/);
    expect(pids.filter(isAlive)).toEqual([]);
  });

  it("a non-finite loss stops the run with a clear message and keeps the last good state", async () => {
    const out = join(root, "nan");
    // An absurd learning rate without clipping blows the weights up after the first update.
    const result = await runCli(["launch", ...TINY, "--lr", "1e38", "--clip-grad", "0", "--gpus", "2", "--batch-size-per-gpu", "2", "--epochs", "3", "--data-path", dataPath, "--output-dir", out]);
    expect(result.code).toBe(1);
    const match = /loss is (NaN|-?Infinity) at step \d+, stopping training \(the last good state, before this step, is in (\S+)\)/.exec(result.stderr);
    expect(match).not.toBeNull();
    const student = readSafetensors(join(match?.[2] ?? "", "student.safetensors"));
    for (const [name, tensor] of student) if (!(tensor.data as Float32Array).every(Number.isFinite)) throw new Error(`${name} is not finite in the last good state`);
  });

  it("refuses a missing data folder before starting anything", async () => {
    const out = join(root, "missing");
    const result = await runCli(["launch", ...TINY, "--gpus", "2", "--data-path", join(root, "nope"), "--output-dir", out]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`data folder ${join(root, "nope")}`));
    expect(existsSync(out)).toBe(false);
  });

  it("refuses bad flags with a message naming the flag", async () => {
    const result = await runCli(["launch", "--gpus", "0", "--data-path", dataPath]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--gpus must be an integer in \[1, 1024\], got "0"/);
  });

  it("fails with a clear error when an external worker never connects", async () => {
    const start = Date.now();
    const result = await runCli(["launch", ...TINY, "--workers", "external", "--gpus", "2", "--batch-size-per-gpu", "2", "--connect-timeout", "1", "--data-path", dataPath, "--output-dir", join(root, "external")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/waiting for 2 worker\(s\): dino-coord worker --coordinator tcp:/);
    expect(result.stderr).toMatch(/timed out after 1.0 s waiting for 2 worker\(s\) to register \(0 did\)/);
    expect(Date.now() - start).toBeLessThan(15_000);
  });

  it("a worker started separately joins an external run", async () => {
    const out = join(root, "external-ok");
    const launcher = startCli(["launch", ...TINY, "--workers", "external", "--gpus", "1", "--batch-size-per-gpu", "4", "--epochs", "1", "--port", "0", "--data-path", dataPath, "--output-dir", out]);
    const endpoint = await listeningEndpoint(out);
    const worker = await runCli(["worker", "--coordinator", endpoint, "--connect-timeout", "30"]);
    const result = await launcher.done;
    expect(worker.code).toBe(0);
    expect(result.code).toBe(0);
    expect(readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(2);
  });

  it("an external worker stops within the heartbeat timeout when its coordinator dies", async () => {
    const out = join(root, "coordinator-dies");
    const launcher = startCli(["launch", ...TINY, "--workers", "external", "--gpus", "1", "--batch-size-per-gpu", "4", "--epochs", "200", "--heartbeat-timeout", "2", "--data-path", dataPath, "--output-dir", out]);
    const endpoint = await listeningEndpoint(out);
    const worker = startCli(["worker", "--coordinator", endpoint, "--connect-timeout", "30"]);
    await waitFor(() => existsSync(join(out, "metrics.jsonl")) && readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").length > 2, 60_000, "a few steps");
    launcher.child.kill("SIGKILL");
    const killedAt = Date.now();
    const result = await worker.done;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no message or heartbeat from the coordinator at tcp:\/\/127\.0\.0\.1:\d+ for \d\.\d s/);
    expect(Date.now() - killedAt).toBeLessThan(2000 + 4000);
  });
});
