import * as fs from "node:fs";
import { join } from "node:path";
import { readSafetensors, readSafetensorsFile } from "@dino-coord/model";
import {
  assertResumeConfig,
  CHECKPOINT_POLICY_DEFAULTS,
  CheckpointCorruptError,
  compareResumeConfig,
  epochCheckpointDue,
  exportWeights,
  listCheckpoints,
  pruneCheckpoints,
  ResumeConfigError,
  saveCheckpoint,
  settingClass,
  stepCheckpointDue,
  writeCheckpoint,
} from "../src/checkpoint";
import { runConfig, removeRunDirs, temporaryRunDir, trainingState } from "./checkpoint-fixtures";

afterAll(removeRunDirs);

describe("pruneCheckpoints", () => {
  it("keeps the last K step checkpoints and every pinned one", () => {
    const runDir = temporaryRunDir();
    for (const step of [1, 2, 3, 4, 5, 6]) writeCheckpoint(runDir, trainingState(step, { pinned: step === 2 || step === 4 }));
    const result = pruneCheckpoints(runDir, 2);
    expect(result.removed).toEqual(["checkpoint-00000001", "checkpoint-00000003"]);
    expect(result.kept).toEqual(["checkpoint-00000002", "checkpoint-00000004", "checkpoint-00000005", "checkpoint-00000006"]);
    expect(listCheckpoints(runDir).map((l) => [l.step, l.pinned])).toEqual([[2, true], [4, true], [5, false], [6, false]]);
    expect(fs.readdirSync(runDir).filter((n) => n.startsWith("."))).toEqual([]);
    expect(() => pruneCheckpoints(runDir, 0)).toThrow(/keep-last must be a positive integer/);
  });

  it("never prunes the checkpoint latest points to, and a damaged newer folder does not push the last good one out", () => {
    const runDir = temporaryRunDir();
    for (const step of [1, 2, 3]) writeCheckpoint(runDir, trainingState(step));
    fs.writeFileSync(join(runDir, "latest"), "checkpoint-00000001\n");
    fs.rmSync(join(runDir, "checkpoint-00000003", "state.json")); // damaged
    const result = pruneCheckpoints(runDir, 1);
    expect(result.kept).toEqual(["checkpoint-00000001", "checkpoint-00000002", "checkpoint-00000003"]);
    expect(result.removed).toEqual([]);
  });

  it("saveCheckpoint writes then applies retention", () => {
    const runDir = temporaryRunDir();
    for (const step of [10, 20, 30]) saveCheckpoint(runDir, trainingState(step), { keepLast: 2 });
    expect(listCheckpoints(runDir).map((l) => l.name)).toEqual(["checkpoint-00000020", "checkpoint-00000030"]);
  });
});

describe("save policy", () => {
  it("saves every N steps and at every epoch end, pinning the saveckp-freq epochs like checkpoint{epoch:04}.pth", () => {
    const policy = { ...CHECKPOINT_POLICY_DEFAULTS, saveEverySteps: 100, saveckpFreq: 20 };
    expect([99, 100, 200, 0].map((s) => stepCheckpointDue(policy, s).save)).toEqual([false, true, true, false]);
    expect(stepCheckpointDue({ ...policy, saveEverySteps: 0 }, 100).save).toBe(false);
    expect([0, 1, 19, 20, 40].map((e) => epochCheckpointDue(policy, e))).toEqual([
      { save: true, pinned: true },
      { save: true, pinned: false },
      { save: true, pinned: false },
      { save: true, pinned: true },
      { save: true, pinned: true },
    ]);
  });
});

describe("exportWeights", () => {
  it("writes the teacher under reference names, equal to the checkpoint's tensors", () => {
    const runDir = temporaryRunDir();
    const state = trainingState(7);
    const path = writeCheckpoint(runDir, state);
    const out = join(runDir, "teacher.safetensors");
    const result = exportWeights(path, { which: "teacher", out });
    const exported = readSafetensorsFile(out);
    expect(result.tensors).toBe(state.teacher.specs.length);
    expect([...exported.tensors.keys()]).toEqual(state.teacher.specs.map((s) => s.name));
    for (const spec of state.teacher.specs) {
      const tensor = exported.tensors.get(spec.name)!;
      expect(tensor.shape).toEqual(spec.shape);
      expect(Buffer.from((tensor.data as Float32Array).buffer).equals(Buffer.from(state.teacher.view(spec.name).slice().buffer))).toBe(true);
    }
    expect(exported.metadata).toMatchObject({ format: "pt", network: "teacher", step: "7", backbone_only: "false" });
  });

  it("--backbone-only strips the backbone. prefix and drops the head, like the released checkpoints", () => {
    const runDir = temporaryRunDir();
    const state = trainingState(7);
    const path = writeCheckpoint(runDir, state);
    const out = join(runDir, "student-backbone.safetensors");
    exportWeights(path, { which: "student", backboneOnly: true, out });
    const exported = readSafetensors(out);
    const backbone = state.student.specs.filter((s) => s.name.startsWith("backbone."));
    expect([...exported.keys()]).toEqual(backbone.map((s) => s.name.slice("backbone.".length)));
    expect([...exported.keys()]).toEqual(expect.arrayContaining(["cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "norm.weight"]));
    expect([...exported.keys()].some((k) => k.startsWith("head."))).toBe(false);
    expect(Array.from(exported.get("blocks.1.mlp.fc2.weight")!.data as Float32Array)).toEqual(Array.from(state.student.view("backbone.blocks.1.mlp.fc2.weight")));
  });

  it("refuses a damaged checkpoint, naming the file", () => {
    const runDir = temporaryRunDir();
    const path = writeCheckpoint(runDir, trainingState(7));
    fs.truncateSync(join(path, "teacher.safetensors"), 64);
    const out = join(runDir, "out.safetensors");
    expect(() => exportWeights(path, { which: "teacher", out })).toThrow(CheckpointCorruptError);
    expect(() => exportWeights(path, { which: "teacher", out })).toThrow(/teacher.safetensors/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe("compareResumeConfig", () => {
  const saved = runConfig();

  it("accepts an identical config and lets harmless changes pass", () => {
    expect(compareResumeConfig(saved, runConfig())).toEqual({ differences: [], refused: [], ok: true });
    const moved = runConfig(undefined, { outputDir: "/elsewhere", threadsPerWorker: 8, device: "cuda", saveckpFreq: 5, numWorkers: 4, stepTimeoutMs: 1 });
    const comparison = compareResumeConfig(saved, { ...moved, port: 5555, keepLast: 9, logLevel: "debug" });
    expect(comparison.ok).toBe(true);
    expect(comparison.differences.map((d) => [d.key, d.class])).toEqual([
      ["device", "harmless"],
      ["keepLast", "harmless"],
      ["logLevel", "harmless"],
      ["numWorkers", "harmless"],
      ["outputDir", "harmless"],
      ["port", "harmless"],
      ["saveckpFreq", "harmless"],
      ["stepTimeoutMs", "harmless"],
      ["threadsPerWorker", "harmless"],
    ]);
  });

  it("refuses result-changing differences, naming each, unless allowConfigChange", () => {
    const requested = runConfig(undefined, { batchSizePerGpu: 8, seed: 3, localCropsScale: [0.1, 0.4], epochs: 20 });
    const comparison = compareResumeConfig(saved, requested);
    expect(comparison.ok).toBe(false);
    expect(comparison.refused.map((d) => d.key)).toEqual(["batchSizePerGpu", "epochs", "localCropsScale", "seed"]);
    expect(comparison.message).toContain("batchSizePerGpu: 4 in the checkpoint, 8 now");
    expect(comparison.message).toContain("localCropsScale: [0.05,0.4] in the checkpoint, [0.1,0.4] now");
    expect(comparison.message).toContain("--allow-config-change");
    expect(() => assertResumeConfig(saved, requested)).toThrow(ResumeConfigError);

    const allowed = compareResumeConfig(saved, requested, { allowConfigChange: true });
    expect(allowed.ok).toBe(true);
    expect(allowed.differences).toHaveLength(4);
    expect(assertResumeConfig(saved, requested, { allowConfigChange: true })).toHaveLength(4);
  });

  it("always refuses a model change, even with allowConfigChange", () => {
    const requested = runConfig({ ...runConfig().model, patchSize: 16, outDim: 512 }, { gpus: 4 });
    const comparison = compareResumeConfig(saved, requested, { allowConfigChange: true });
    expect(comparison.ok).toBe(false);
    expect(comparison.refused.map((d) => [d.key, d.class])).toEqual([
      ["model.outDim", "model"],
      ["model.patchSize", "model"],
    ]);
    expect(comparison.message).toMatch(/model differs, which is never accepted.*model.outDim: 256 in the checkpoint, 512 now; model.patchSize: 8 in the checkpoint, 16 now/);
    expect(comparison.message).not.toContain("gpus");
    let error: ResumeConfigError | undefined;
    try {
      assertResumeConfig(saved, requested, { allowConfigChange: true });
    } catch (err) {
      error = err as ResumeConfigError;
    }
    expect(error?.differences.map((d) => d.key)).toEqual(["model.outDim", "model.patchSize"]);
  });

  it("classifies flag-shaped configs too, and treats unknown settings as result-changing", () => {
    expect(["arch", "patchSize", "outDim", "normLastLayer", "dropPathRate", "model.depth"].map(settingClass)).toEqual(Array(6).fill("model"));
    expect(["gpus", "seed", "dataPath", "clipGrad", "freezeLastLayer", "teacherTemp", "momentumTeacher", "minLr"].map(settingClass)).toEqual(Array(8).fill("result"));
    const comparison = compareResumeConfig({ ...saved, someNewSetting: 1 }, { ...saved, someNewSetting: 2 });
    expect(comparison.refused.map((d) => d.key)).toEqual(["someNewSetting"]);
  });
});
