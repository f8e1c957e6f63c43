import * as fs from "node:fs";
import { join } from "node:path";
import { readSafetensors } from "@dino-coord/model";
import { writeCheckpoint } from "../src/checkpoint";
import { alignColumns, checkpointExport, checkpointLs, checkpointShow, checkpointVerify, formatBytes } from "../src/commands/checkpoint";
import { runCli } from "./cli-helpers";
import { removeRunDirs, temporaryRunDir, trainingState } from "./checkpoint-fixtures";

afterAll(removeRunDirs);

function runWithThree(): { runDir: string; paths: string[] } {
  const runDir = temporaryRunDir();
  const paths = [3, 6, 9].map((step) => writeCheckpoint(runDir, trainingState(step, { pinned: step === 6 })));
  return { runDir, paths };
}

describe("checkpoint command functions", () => {
  it("ls prints an aligned table with a valid column, and JSON with --json", () => {
    const { runDir, paths } = runWithThree();
    fs.truncateSync(join(paths[0], "center.safetensors"), 3);
    const table = checkpointLs(runDir);
    expect(table.exitCode).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+STEP\s+EPOCH\s+ITER\s+TIME\s+SIZE\s+LOSS\s+VALID\s+PINNED\s+LATEST$/);
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(/^checkpoint-00000003\s+3\s+0\s+3\s+\S+Z\s+[\d.]+ MiB\s+10\.4700\s+NO \(center.safetensors\)$/);
    expect(lines[2]).toMatch(/checkpoint-00000006 .* yes\s+pinned$/);
    expect(lines[3]).toMatch(/checkpoint-00000009 .* yes\s+<- latest$/);
    // Columns line up: STEP is right-aligned under its header.
    const stepEnd = lines[0].indexOf("STEP") + 4;
    for (const line of lines.slice(1)) expect(line[stepEnd - 1]).toMatch(/\d/);

    const json = JSON.parse(checkpointLs(runDir, { json: true }).stdout);
    expect(json.map((l: { step: number; valid: boolean; pinned: boolean; latest: boolean }) => [l.step, l.valid, l.pinned, l.latest])).toEqual([
      [3, false, false, false],
      [6, true, true, false],
      [9, true, false, true],
    ]);
    expect(checkpointLs(join(runDir, "nope")).exitCode).toBe(1);
    expect(checkpointLs(temporaryRunDir()).stdout).toMatch(/no checkpoints in/);
  });

  it("show prints progress, tensor sizes and per-network norms; a run dir means its latest", () => {
    const { runDir } = runWithThree();
    const text = checkpointShow(runDir);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toMatch(/progress\s+step 9, epoch 1, next iteration 4 of the epoch, loss 10.41/);
    expect(text.stdout).toMatch(/tensors\s+38 per network/);
    expect(text.stdout).toMatch(/L2 norms\s+student [\d.]+ \(backbone [\d.]+, head [\d.]+\)/);
    expect(text.stdout).toContain('"batchSizePerGpu": 4');
    const json = JSON.parse(checkpointShow(join(runDir, "checkpoint-00000006"), { json: true }).stdout);
    expect(json).toMatchObject({ step: 6, pinned: true, tensors: { perNetwork: 38 } });
    const state = trainingState(6);
    let sum = 0;
    for (const v of state.teacher.data) sum += v * v;
    expect(json.norms.teacher.total).toBeCloseTo(Math.sqrt(sum), 6);
  });

  it("verify exits 0 when intact and 1 naming the damaged file, for one checkpoint or a whole run dir", () => {
    const { runDir, paths } = runWithThree();
    expect(checkpointVerify(paths[1])).toMatchObject({ exitCode: 0, stderr: "" });
    expect(checkpointVerify(runDir).stdout.trim().split("\n")).toHaveLength(3);
    const bytes = fs.readFileSync(join(paths[1], "teacher.safetensors"));
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(join(paths[1], "teacher.safetensors"), bytes);
    const one = checkpointVerify(paths[1]);
    expect(one.exitCode).toBe(1);
    expect(one.stderr).toMatch(/DAMAGED .*checkpoint-00000006: teacher.safetensors: sha256/);
    const all = checkpointVerify(runDir);
    expect(all.exitCode).toBe(1);
    expect(all.stdout.trim().split("\n")).toHaveLength(2);
    fs.writeFileSync(join(runDir, "latest"), "checkpoint-00000042\n");
    expect(checkpointVerify(runDir).stderr).toMatch(/latest: does not name an existing checkpoint folder/);
    expect(checkpointVerify(join(runDir, "missing")).exitCode).toBe(1);
  });

  it("export writes the teacher backbone", () => {
    const { runDir, paths } = runWithThree();
    const out = join(runDir, "backbone.safetensors");
    const result = checkpointExport(paths[2], { which: "teacher", backboneOnly: true, out });
    expect(result).toMatchObject({ exitCode: 0, stdout: expect.stringMatching(/wrote 30 tensors .* teacher backbone/) });
    expect(readSafetensors(out).has("blocks.0.attn.qkv.weight")).toBe(true);
  });

  it("formats sizes and aligns columns", () => {
    expect([0, 1023, 2048, 5 * 1024 ** 3].map(formatBytes)).toEqual(["0 B", "1023 B", "2.0 KiB", "5.0 GiB"]);
    expect(alignColumns([["A", "N"], ["long", "12"]], new Set([1]))).toBe("A      N\nlong  12\n");
  });
});

describe("dino-coord checkpoint (built CLI)", () => {
  it("exit codes: verify 0 / 1 naming the file, export with a bad --which is a usage error", async () => {
    const { runDir, paths } = runWithThree();
    const good = await runCli(["checkpoint", "verify", runDir]);
    expect(good.code).toBe(0);
    fs.rmSync(join(paths[2], "optimizer.safetensors"));
    const bad = await runCli(["checkpoint", "verify", runDir]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/checkpoint-00000009: optimizer.safetensors: is missing/);
    const ls = await runCli(["checkpoint", "ls", runDir, "--json"]);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout).map((l: { valid: boolean }) => l.valid)).toEqual([true, true, false]);
    const usage = await runCli(["checkpoint", "export", paths[0], "--which", "both", "--out", join(runDir, "x.safetensors")]);
    expect(usage.code).not.toBe(0);
    expect(usage.stderr).toMatch(/--which takes teacher or student, got "both"/);
    const exported = await runCli(["checkpoint", "export", paths[0], "--which", "teacher", "--out", join(runDir, "t.safetensors")]);
    expect(exported.code).toBe(0);
    expect(readSafetensors(join(runDir, "t.safetensors")).size).toBe(38);
  });
});
