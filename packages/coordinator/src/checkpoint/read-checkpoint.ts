/** Loads a verified checkpoint back into the coordinator's in-memory state. */
import * as fs from "node:fs";
import { basename, join } from "node:path";
import type { ParamSpec } from "@dino-coord/model";
import { CheckpointCorruptError, CheckpointModelMismatchError } from "./errors";
import { CENTER_FILE, LATEST_FILE, MANIFEST_FILE, OPTIMIZER_FILE, stepOfCheckpointName, STUDENT_FILE, TEACHER_FILE } from "./layout";
import type { Manifest } from "./manifest";
import { CENTER_TENSOR, optimizerStateFromTensors, storeFromTensors } from "./tensor-files";
import type { CheckpointStateFile, TrainingState } from "./training-state";
import { inspectCheckpoint, type CheckpointVerification } from "./verify-checkpoint";

export interface LoadedCheckpoint extends TrainingState {
  /** The checkpoint folder. */
  path: string;
  /** Its name, `checkpoint-<step>`. */
  name: string;
  runConfig: Record<string, unknown>;
  pinned: boolean;
  /** The full state.json (versions, savedAt, params …). */
  stateFile: CheckpointStateFile;
  manifest: Manifest;
}

/** The damage as a typed error naming the first damaged file (the others follow in the message). */
export function corruptErrorOf(verification: CheckpointVerification): CheckpointCorruptError {
  const [first, ...rest] = verification.problems;
  const more = rest.length > 0 ? `; also ${rest.map((p) => `${p.file}: ${p.problem}`).join("; ")}` : "";
  return new CheckpointCorruptError(verification.path, first.file, first.problem + more);
}

/** Differences between the layout a checkpoint declares and the one the model needs. */
export function specMismatches(saved: readonly ParamSpec[], wanted: readonly ParamSpec[]): string[] {
  const problems: string[] = [];
  const savedByName = new Map(saved.map((s) => [s.name, s]));
  const wantedNames = new Set(wanted.map((s) => s.name));
  for (const spec of wanted) {
    const have = savedByName.get(spec.name);
    if (!have) problems.push(`the checkpoint has no "${spec.name}"`);
    else if (have.shape.join() !== spec.shape.join()) problems.push(`"${spec.name}" is [${have.shape.join(", ")}], the model needs [${spec.shape.join(", ")}]`);
    else if (have.trainable !== spec.trainable) problems.push(`"${spec.name}" is ${have.trainable ? "" : "not "}trainable in the checkpoint, ${spec.trainable ? "" : "not "}in the model (norm_last_layer changed?)`);
  }
  for (const spec of saved) if (!wantedNames.has(spec.name)) problems.push(`the model has no "${spec.name}"`);
  if (problems.length === 0 && saved.some((s, i) => s.name !== wanted[i].name)) problems.push("the parameters are in a different order");
  return problems;
}

/**
 * Reads and verifies the checkpoint at `path`. With `specs` (the layout the model will
 * train), a checkpoint for other shapes is refused with CheckpointModelMismatchError;
 * without, the layout recorded in state.json is used. Damage: CheckpointCorruptError.
 */
export function readCheckpoint(path: string, specs?: readonly ParamSpec[]): LoadedCheckpoint {
  const inspection = inspectCheckpoint(path, { keepTensors: true });
  if (!inspection.ok) throw corruptErrorOf(inspection);
  const state = inspection.state!;
  const tensors = inspection.tensors!;
  if (specs) {
    const mismatches = specMismatches(state.params, specs);
    if (mismatches.length > 0) throw new CheckpointModelMismatchError(path, mismatches.slice(0, 5).join("; ") + (mismatches.length > 5 ? `; and ${mismatches.length - 5} more` : ""));
  }
  const layout = specs ?? state.params;
  const student = storeFromTensors(layout, tensors.get(STUDENT_FILE)!);
  const teacher = storeFromTensors(layout, tensors.get(TEACHER_FILE)!);
  return {
    path,
    name: basename(path),
    step: state.step,
    epoch: state.epoch,
    iterInEpoch: state.iterInEpoch,
    student,
    teacher,
    optimizer: optimizerStateFromTensors(student, tensors.get(OPTIMIZER_FILE)!),
    center: tensors.get(CENTER_FILE)!.get(CENTER_TENSOR)!.data as Float32Array,
    runConfig: state.runConfig,
    rng: state.rng,
    schedule: state.schedule ?? undefined,
    loss: state.loss ?? undefined,
    elapsedSeconds: state.elapsedSeconds ?? undefined,
    extra: state.extra,
    pinned: state.pinned,
    stateFile: state,
    manifest: inspection.manifest!,
  };
}

/** The folder name `latest` points to, when it holds a well-formed checkpoint name. */
export function readLatestPointer(runDir: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(join(runDir, LATEST_FILE), "utf8").trim();
  } catch {
    return undefined;
  }
  return stepOfCheckpointName(text) === undefined ? undefined : text;
}

/**
 * A path given to the CLI: a checkpoint folder as is, a run dir as the checkpoint its
 * `latest` points to.
 */
export function resolveCheckpointPath(path: string): string {
  if (fs.existsSync(join(path, MANIFEST_FILE)) || stepOfCheckpointName(basename(path)) !== undefined) return path;
  const latest = readLatestPointer(path);
  return latest ? join(path, latest) : path;
}
