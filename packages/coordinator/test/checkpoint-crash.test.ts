import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { join } from "node:path";
import { loadLatestValidCheckpoint, readLatestPointer, verifyCheckpoint } from "../src/checkpoint";
import { removeRunDirs, temporaryRunDir } from "./checkpoint-fixtures";

afterAll(removeRunDirs);

/** The built library: a child process must run it outside jest so it can be SIGKILLed mid-write. */
const BUILT = join(__dirname, "..", "dist", "checkpoint", "index.js");

/** Writes checkpoints of steps start, start+1, … (every value of the student = its step) and prunes, until killed. */
const WRITER = `
const { dinoParamSpecs, ParamStore, tinyDemoConfig } = require("@dino-coord/model");
const { writeCheckpoint, pruneCheckpoints } = require(process.env.BUILT);
const specs = dinoParamSpecs(tinyDemoConfig());
const student = new ParamStore(specs);
const teacher = new ParamStore(specs);
for (let step = Number(process.env.START); ; step++) {
  student.data.fill(step);
  teacher.data.fill(-step);
  writeCheckpoint(process.env.RUN_DIR, {
    step, epoch: 0, iterInEpoch: step, student, teacher,
    optimizer: { expAvg: new Float32Array(student.size), expAvgSq: new Float32Array(student.size), steps: new Int32Array(specs.length) },
    center: new Float32Array(256), runConfig: { seed: 0 }, rng: { seed: 0, counter: step }, pinned: step % 7 === 0,
  });
  pruneCheckpoints(process.env.RUN_DIR, 2);
}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("crash while writing (SIGKILL)", () => {
  it("always leaves a loadable, intact latest checkpoint", async () => {
    if (!fs.existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`npx tsc -p tsconfig.json\` in packages/coordinator first`);
    const runDir = temporaryRunDir();
    let start = 1;
    const killDelays = [0, 5, 17, 40, 75, 110, 160, 230];
    for (const delay of killDelays) {
      const child = spawn(process.execPath, ["-e", WRITER], { cwd: join(__dirname, ".."), env: { ...process.env, BUILT, RUN_DIR: runDir, START: String(start) }, stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      // Let it commit at least one checkpoint of this round, then kill at some point of a later write.
      const deadline = Date.now() + 20_000;
      while (readLatestPointer(runDir) === undefined || Number(readLatestPointer(runDir)!.slice(-8)) < start) {
        if (Date.now() > deadline) throw new Error(`writer made no checkpoint in 20 s: ${stderr}`);
        await sleep(2);
      }
      await sleep(delay);
      child.kill("SIGKILL");
      await exited;
      expect(stderr).toBe("");

      const resumed = loadLatestValidCheckpoint(runDir)!;
      expect(resumed.skipped).toEqual([]);
      expect(resumed.checkpoint.name).toBe(readLatestPointer(runDir));
      const step = resumed.checkpoint.step;
      expect(step).toBeGreaterThanOrEqual(start);
      expect(resumed.checkpoint.student.data.every((v) => v === step)).toBe(true);
      expect(resumed.checkpoint.teacher.data.every((v) => v === -step)).toBe(true);
      // Every folder under a checkpoint name is complete, whatever moment the kill hit.
      for (const name of fs.readdirSync(runDir).filter((n) => n.startsWith("checkpoint-"))) {
        expect(verifyCheckpoint(join(runDir, name)).problems).toEqual([]);
      }
      start = step + 1;
    }
  });
});
