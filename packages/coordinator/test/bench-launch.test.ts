import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { synthesizeImageFolder } from "@dino-coord/augment";
import { runCli } from "./cli-helpers";

let root: string;
let dataPath: string;
const IMAGES = 16;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "dino-bench-launch-test-"));
  await synthesizeImageFolder({ out: join(root, "data"), classes: 2, perClass: IMAGES / 2, size: 40, seed: 5 });
  dataPath = join(root, "data", "train");
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const benchFolders = () => readdirSync(tmpdir()).filter((n) => n.startsWith("dino-bench-launch-") && !n.startsWith("dino-bench-launch-test-"));
const LAUNCH = ["--preset", "tiny", "--gpus", "2", "--device", "cpu", "--batch-size-per-gpu", "2", "--local-crops-number", "2", "--num-workers", "1", "--epochs", "1"];

describe("dino-coord bench launch", () => {
  it("times whole runs from the outside and splits them by the runs' own logs", async () => {
    const before = new Set(benchFolders());
    const result = await runCli(["bench", "launch", "--runs", "2", "--", ...LAUNCH, "--data-path", dataPath]);
    expect(result.code).toBe(0);
    const figures = JSON.parse(result.stdout);
    expect(figures.runs).toHaveLength(2);
    for (const run of figures.runs) {
      // 16 images on 2 workers with 2 each: 4 steps of 4 images.
      expect(run.images).toBe(IMAGES);
      expect(run.images_per_s).toBeCloseTo(run.images / run.wall_s, 2);
      expect(run.startup_s).toBeGreaterThan(0);
      expect(run.steps_s).toBeGreaterThanOrEqual(run.first_step_s);
      expect(run.startup_s + run.steps_s + run.after_steps_s).toBeCloseTo(run.wall_s, 2);
      expect(run.after_steps_s).toBeGreaterThan(0);
      // The launcher, its workers and their threads: more CPU than one core in the run's wall time would be unusual, none impossible.
      expect(run.cpu_s).toBeGreaterThan(0.1);
    }
    expect(figures.wall_s.min).toBeLessThanOrEqual(figures.wall_s.max);
    // The runs' temporary folders are gone.
    expect(benchFolders().filter((n) => !before.has(n))).toEqual([]);
  });

  it("refuses an --output-dir among the launch flags, and reports a failed launch with its output", async () => {
    const own = await runCli(["bench", "launch", "--", ...LAUNCH, "--data-path", dataPath, "--output-dir", join(root, "x")]);
    expect(own.code).toBe(1);
    expect(own.stderr).toContain("leave --output-dir out of the launch flags");
    const missing = await runCli(["bench", "launch", "--", ...LAUNCH, "--data-path", join(root, "nowhere")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/dino-coord launch exited with code 1; its last output:[\s\S]*nowhere/);
  });

  it("stops a run that outlives --timeout-s", async () => {
    const slow = await runCli(["bench", "launch", "--timeout-s", "1", "--", ...LAUNCH, "--data-path", dataPath, "--epochs", "50"]);
    expect(slow.code).toBe(1);
    expect(slow.stderr).toContain("ran past --timeout-s (1 s)");
  });
});
