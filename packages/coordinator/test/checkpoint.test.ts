import * as fs from "node:fs";
import { join } from "node:path";
import { dinoParamSpecs, encodeSafetensors, readSafetensors, readSafetensorsFile, tinyDemoConfig } from "@dino-coord/model";
import {
  CheckpointCorruptError,
  CheckpointModelMismatchError,
  checkpointName,
  listCheckpoints,
  loadLatestValidCheckpoint,
  NoValidCheckpointError,
  readCheckpoint,
  removeScratch,
  verifyCheckpoint,
  writeCheckpoint,
  type LoadedCheckpoint,
  type TrainingState,
} from "../src/checkpoint";
import { sha256Hex } from "../src/checkpoint/manifest";
import { recordingLogger, removeRunDirs, temporaryRunDir, trainingState } from "./checkpoint-fixtures";

afterAll(removeRunDirs);

const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function expectSameState(loaded: LoadedCheckpoint, written: TrainingState): void {
  expect(loaded.student.specs).toEqual(written.student.specs);
  expect(bytesOf(loaded.student.data).equals(bytesOf(written.student.data))).toBe(true);
  expect(bytesOf(loaded.teacher.data).equals(bytesOf(written.teacher.data))).toBe(true);
  expect(bytesOf(loaded.optimizer.expAvg).equals(bytesOf(written.optimizer.expAvg))).toBe(true);
  expect(bytesOf(loaded.optimizer.expAvgSq).equals(bytesOf(written.optimizer.expAvgSq))).toBe(true);
  expect(Array.from(loaded.optimizer.steps)).toEqual(Array.from(written.optimizer.steps));
  expect(bytesOf(loaded.center).equals(bytesOf(written.center))).toBe(true);
  expect({ step: loaded.step, epoch: loaded.epoch, iterInEpoch: loaded.iterInEpoch, rng: loaded.rng, loss: loaded.loss, schedule: loaded.schedule, elapsedSeconds: loaded.elapsedSeconds }).toEqual({
    step: written.step,
    epoch: written.epoch,
    iterInEpoch: written.iterInEpoch,
    rng: written.rng,
    loss: written.loss,
    schedule: written.schedule,
    elapsedSeconds: written.elapsedSeconds,
  });
  expect(loaded.runConfig).toEqual(JSON.parse(JSON.stringify(written.runConfig)));
}

/** Rewrites one file of a checkpoint and its manifest entry, as a buggy writer would (hashes then match). */
function rewriteConsistently(folder: string, file: string, bytes: Buffer): void {
  fs.writeFileSync(join(folder, file), bytes);
  const manifest = JSON.parse(fs.readFileSync(join(folder, "manifest.json"), "utf8"));
  manifest.files[file] = { bytes: bytes.byteLength, sha256: sha256Hex(bytes) };
  fs.writeFileSync(join(folder, "manifest.json"), JSON.stringify(manifest));
}

describe("writeCheckpoint / readCheckpoint", () => {
  it("round-trips every tensor, the optimizer state and state.json bit for bit", () => {
    const runDir = temporaryRunDir();
    const state = trainingState(1234, { pinned: true });
    const path = writeCheckpoint(runDir, state);
    expect(path).toBe(join(runDir, "checkpoint-00001234"));
    expect(fs.readFileSync(join(runDir, "latest"), "utf8").trim()).toBe("checkpoint-00001234");
    expect(fs.readdirSync(path).sort()).toEqual(["center.safetensors", "manifest.json", "optimizer.safetensors", "state.json", "student.safetensors", "teacher.safetensors"]);

    const loaded = readCheckpoint(path, dinoParamSpecs(tinyDemoConfig()));
    expectSameState(loaded, state);
    expect(loaded.pinned).toBe(true);
    expect(loaded.stateFile.versions).toEqual({ dinoCoord: "0.1.0", node: process.version, onnxruntimeNode: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(Date.parse(loaded.stateFile.savedAt)).toBeGreaterThan(Date.now() - 60_000);

    // Files a PyTorch user can read: reference state_dict names and shapes.
    const teacher = readSafetensorsFile(join(path, "teacher.safetensors"));
    expect(teacher.tensors.get("backbone.blocks.0.attn.qkv.weight")!.shape).toEqual([144, 48]);
    expect(teacher.metadata).toMatchObject({ format: "pt", network: "teacher", step: "1234" });
    const optimizer = readSafetensors(join(path, "optimizer.safetensors"));
    expect(optimizer.get("exp_avg.backbone.cls_token")!.shape).toEqual([1, 1, 48]);
    expect(optimizer.get("exp_avg_sq.head.last_layer.weight_v")!.shape).toEqual([256, 32]);
    expect(optimizer.get("step.backbone.cls_token")).toMatchObject({ dtype: "I64", shape: [] });
    expect(optimizer.get("step.backbone.cls_token")!.data[0]).toBe(1234n);
    expect(optimizer.get("step.head.last_layer.weight_g")!.data[0]).toBe(0n);
    expect(readSafetensors(join(path, "center.safetensors")).get("center")!.shape).toEqual([1, 256]);

    const manifest = JSON.parse(fs.readFileSync(join(path, "manifest.json"), "utf8"));
    for (const file of ["student.safetensors", "teacher.safetensors", "optimizer.safetensors", "center.safetensors", "state.json"]) {
      const bytes = fs.readFileSync(join(path, file));
      expect(manifest.files[file]).toEqual({ bytes: bytes.byteLength, sha256: sha256Hex(bytes) });
    }
  });

  it("names folders by zero-padded step so they sort, and re-saving a step replaces it", () => {
    expect(checkpointName(7)).toBe("checkpoint-00000007");
    expect(checkpointName(123456789)).toBe("checkpoint-123456789");
    expect(() => checkpointName(-1)).toThrow(RangeError);
    const runDir = temporaryRunDir();
    writeCheckpoint(runDir, trainingState(9, { pinned: true }));
    writeCheckpoint(runDir, trainingState(10));
    const again = trainingState(9, { loss: 1.25 });
    writeCheckpoint(runDir, again);
    expect(readCheckpoint(join(runDir, "checkpoint-00000009")).loss).toBe(1.25);
    expect(readCheckpoint(join(runDir, "checkpoint-00000009")).pinned).toBe(true); // the per-epoch mark survives
    expect(fs.readdirSync(runDir).sort()).toEqual(["checkpoint-00000009", "checkpoint-00000010", "latest"]);
  });

  it("refuses to write inconsistent state and to load into another model", () => {
    const runDir = temporaryRunDir();
    const state = trainingState(1);
    expect(() => writeCheckpoint(runDir, { ...state, optimizer: { ...state.optimizer, steps: new Int32Array(3) } })).toThrow(/3 optimizer step counters/);
    expect(() => writeCheckpoint(runDir, { ...state, step: 1.5 })).toThrow(/step must be a non-negative integer/);
    expect(fs.readdirSync(runDir)).toEqual([]);

    const path = writeCheckpoint(runDir, state);
    const otherModel = dinoParamSpecs(tinyDemoConfig({ outDim: 128 }));
    expect(() => readCheckpoint(path, otherModel)).toThrow(CheckpointModelMismatchError);
    expect(() => readCheckpoint(path, otherModel)).toThrow(/"head.last_layer.weight_v" is \[256, 32\], the model needs \[128, 32\]/);
    // A model change is not damage: no fallback to an older checkpoint.
    expect(() => loadLatestValidCheckpoint(runDir, { specs: otherModel })).toThrow(CheckpointModelMismatchError);
    const frozenDifferently = dinoParamSpecs(tinyDemoConfig({ normLastLayer: false }));
    expect(() => readCheckpoint(path, frozenDifferently)).toThrow(/norm_last_layer/);
  });
});

describe("atomic writes", () => {
  it("ignores a half-written temporary folder and a stale temporary latest, and the next write removes them", () => {
    const runDir = temporaryRunDir();
    const previous = trainingState(10);
    writeCheckpoint(runDir, previous);
    // A crash while writing step 20: temp folder with a partial file, a temp pointer not yet renamed.
    const halfWritten = join(runDir, ".tmp-checkpoint-00000020-4242-abc");
    fs.mkdirSync(halfWritten);
    fs.writeFileSync(join(halfWritten, "student.safetensors"), Buffer.alloc(100));
    fs.writeFileSync(join(runDir, ".tmp-latest-4242-def"), "checkpoint-00000020\n");
    const removing = join(runDir, ".trash-checkpoint-00000005-4242-ghi");
    fs.mkdirSync(removing);

    expect(listCheckpoints(runDir).map((l) => l.name)).toEqual(["checkpoint-00000010"]);
    const logger = recordingLogger();
    const resumed = loadLatestValidCheckpoint(runDir, { logger })!;
    expectSameState(resumed.checkpoint, previous);
    expect(resumed.skipped).toEqual([]);
    expect(logger.warnings).toEqual([]);

    writeCheckpoint(runDir, trainingState(20));
    expect(fs.readdirSync(runDir).sort()).toEqual(["checkpoint-00000010", "checkpoint-00000020", "latest"]);
    expect(removeScratch(runDir)).toEqual([]);
  });

  it("a crash after the folder rename but before the pointer update resumes from the committed one", () => {
    const runDir = temporaryRunDir();
    writeCheckpoint(runDir, trainingState(10));
    const committed = fs.readFileSync(join(runDir, "latest"));
    writeCheckpoint(runDir, trainingState(20));
    fs.writeFileSync(join(runDir, "latest"), committed); // as if the pointer rename never happened
    expect(loadLatestValidCheckpoint(runDir)!.checkpoint.step).toBe(10);
  });

  it("without a latest pointer, resumes from the newest valid checkpoint and says so", () => {
    const runDir = temporaryRunDir();
    writeCheckpoint(runDir, trainingState(10));
    writeCheckpoint(runDir, trainingState(20));
    fs.rmSync(join(runDir, "latest"));
    const logger = recordingLogger();
    expect(loadLatestValidCheckpoint(runDir, { logger })!.checkpoint.step).toBe(20);
    expect(logger.warnings.join()).toMatch(/latest pointer is missing/);
  });

  it("returns undefined for a run with no checkpoint yet", () => {
    const runDir = temporaryRunDir();
    expect(loadLatestValidCheckpoint(runDir)).toBeUndefined();
    expect(loadLatestValidCheckpoint(join(runDir, "never-created"))).toBeUndefined();
  });
});

describe("corruption", () => {
  const damages: Array<[string, string, (folder: string) => void, RegExp]> = [
    ["a truncated file", "teacher.safetensors", (f) => fs.truncateSync(join(f, "teacher.safetensors"), 1000), /bytes, the manifest says .* \(truncated/],
    [
      "a flipped bit",
      "optimizer.safetensors",
      (f) => {
        const path = join(f, "optimizer.safetensors");
        const bytes = fs.readFileSync(path);
        bytes[bytes.length - 7] ^= 0x10;
        fs.writeFileSync(path, bytes);
      },
      /sha256 .* does not match/,
    ],
    ["a missing file", "center.safetensors", (f) => fs.rmSync(join(f, "center.safetensors")), /is missing/],
    ["a missing manifest", "manifest.json", (f) => fs.rmSync(join(f, "manifest.json")), /is missing/],
    [
      "a tensor of the wrong shape",
      "student.safetensors",
      (f) => {
        const tensors = readSafetensors(join(f, "student.safetensors"));
        const qkv = tensors.get("backbone.blocks.1.attn.qkv.weight")!;
        tensors.set("backbone.blocks.1.attn.qkv.weight", { ...qkv, shape: [48, 144] });
        rewriteConsistently(f, "student.safetensors", encodeSafetensors(tensors));
      },
      /tensor "backbone.blocks.1.attn.qkv.weight" has shape \[48, 144\], expected \[144, 48\]/,
    ],
    [
      "a state.json with a bad field",
      "state.json",
      (f) => {
        const state = JSON.parse(fs.readFileSync(join(f, "state.json"), "utf8"));
        state.step = -3;
        rewriteConsistently(f, "state.json", Buffer.from(JSON.stringify(state)));
      },
      /step is -3/,
    ],
  ];

  it.each(damages)("%s: verify names %s, loading falls back to the previous checkpoint", (_what, file, damage, problem) => {
    const runDir = temporaryRunDir();
    const previous = trainingState(10);
    writeCheckpoint(runDir, previous);
    const latest = writeCheckpoint(runDir, trainingState(20));
    expect(verifyCheckpoint(latest).ok).toBe(true);
    damage(latest);

    const verification = verifyCheckpoint(latest);
    expect(verification.ok).toBe(false);
    expect(verification.problems[0].file).toBe(file);
    expect(verification.problems[0].problem).toMatch(problem);

    let thrown: unknown;
    try {
      readCheckpoint(latest);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(CheckpointCorruptError);
    expect((thrown as CheckpointCorruptError).file).toBe(file);
    expect((thrown as Error).message).toContain(latest);

    const logger = recordingLogger();
    const resumed = loadLatestValidCheckpoint(runDir, { specs: dinoParamSpecs(tinyDemoConfig()), logger })!;
    expectSameState(resumed.checkpoint, previous);
    expect(resumed.skipped).toEqual([{ path: latest, file, reason: expect.stringMatching(problem) }]);
    expect(logger.warnings.join("\n")).toMatch(/checkpoint-00000020 is damaged/);
    expect(logger.warnings.join("\n")).toMatch(/resuming from checkpoint-00000010: 1 newer checkpoint\(s\) are damaged/);
    expect(fs.existsSync(latest)).toBe(true); // kept for inspection
  });

  it("throws NoValidCheckpointError naming every damaged checkpoint when none is valid", () => {
    const runDir = temporaryRunDir();
    const a = writeCheckpoint(runDir, trainingState(1));
    const b = writeCheckpoint(runDir, trainingState(2));
    fs.rmSync(join(a, "state.json"));
    fs.truncateSync(join(b, "student.safetensors"), 10);
    expect(() => loadLatestValidCheckpoint(runDir)).toThrow(NoValidCheckpointError);
    expect(() => loadLatestValidCheckpoint(runDir)).toThrow(/checkpoint-00000002 \(student.safetensors: .*checkpoint-00000001 \(state.json: is missing/);
  });
});
