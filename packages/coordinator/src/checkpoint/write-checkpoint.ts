/**
 * Writes a checkpoint so that a crash at any moment leaves the previous one intact:
 * all files go into a temporary folder in the run dir (same filesystem, so the rename is
 * atomic), each fsynced, the manifest last, the folder fsynced, then renamed into place
 * and the run dir fsynced; only then is the `latest` pointer replaced (temp file, fsync,
 * rename, fsync). One writer per run dir.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { safetensorsParts, type ParamStore, type TensorToWrite } from "@dino-coord/model";
import { fsyncDirectory, replaceFileAtomically, writeFileDurably } from "./durable-files";
import {
  CENTER_FILE,
  checkpointName,
  LATEST_FILE,
  MANIFEST_FILE,
  OPTIMIZER_FILE,
  scratchName,
  STATE_FILE,
  STUDENT_FILE,
  TEACHER_FILE,
  TEMPORARY_PREFIX,
  TRASH_PREFIX,
} from "./layout";
import { manifestEntry, MANIFEST_FORMAT, type Manifest } from "./manifest";
import { centerTensors, optimizerTensors } from "./tensor-files";
import { STATE_FORMAT, STATE_FORMAT_VERSION, type CheckpointStateFile, type TrainingState } from "./training-state";
import { writerVersions } from "./versions";

/** Throws unless teacher, optimizer and center fit the student's layout. */
function checkStateLayout(state: TrainingState): void {
  const { student, teacher, optimizer } = state;
  for (const key of ["step", "epoch", "iterInEpoch"] as const) {
    if (!Number.isSafeInteger(state[key]) || state[key] < 0) throw new RangeError(`checkpoint ${key} must be a non-negative integer, got ${state[key]}`);
  }
  const sameSpecs =
    teacher.specs.length === student.specs.length &&
    teacher.specs.every((s, i) => s.name === student.specs[i].name && s.shape.join() === student.specs[i].shape.join());
  if (!sameSpecs) throw new Error("cannot write checkpoint: teacher and student have different parameter layouts");
  student.checkLayout(optimizer.expAvg, "optimizer exp_avg");
  student.checkLayout(optimizer.expAvgSq, "optimizer exp_avg_sq");
  if (optimizer.steps.length !== student.specs.length) {
    throw new Error(`cannot write checkpoint: ${optimizer.steps.length} optimizer step counters for ${student.specs.length} parameters`);
  }
  if (state.center.length === 0) throw new Error("cannot write checkpoint: the center vector is empty");
  for (const [key, value] of Object.entries(state.rng)) {
    if (!Number.isFinite(value)) throw new Error(`cannot write checkpoint: rng.${key} is ${value}, not a finite number`);
  }
  for (const [key, value] of Object.entries(state.extra ?? {})) {
    if (!Number.isFinite(value)) throw new Error(`cannot write checkpoint: extra.${key} is ${value}, not a finite number`);
  }
}

/** Removes what interrupted checkpoint writes and prunes left behind (`.tmp-checkpoint-*`, `.tmp-latest-*`, `.trash-checkpoint-*`); returns their names. */
export function removeScratch(runDir: string): string[] {
  if (!fs.existsSync(runDir)) return [];
  const ours = [`${TEMPORARY_PREFIX}checkpoint-`, `${TEMPORARY_PREFIX}${LATEST_FILE}-`, `${TRASH_PREFIX}checkpoint-`];
  const scratch = fs.readdirSync(runDir).filter((name) => ours.some((prefix) => name.startsWith(prefix)));
  for (const name of scratch) fs.rmSync(join(runDir, name), { recursive: true, force: true });
  return scratch;
}

function networkMetadata(network: string, state: TrainingState): Record<string, string> {
  // "format": "pt" tells safetensors' torch loader these are PyTorch-convention tensors.
  return { format: "pt", network, step: String(state.step), epoch: String(state.epoch) };
}

function wasPinned(folder: string): boolean {
  try {
    return (JSON.parse(fs.readFileSync(join(folder, STATE_FILE), "utf8")) as { pinned?: unknown }).pinned === true;
  } catch {
    return false;
  }
}

/** Writes `checkpoint-<step>/` under `runDir` (created if needed), points `latest` at it, and returns its path. */
export function writeCheckpoint(runDir: string, state: TrainingState): string {
  checkStateLayout(state);
  fs.mkdirSync(runDir, { recursive: true });
  removeScratch(runDir);
  const name = checkpointName(state.step);
  const target = join(runDir, name);
  // Re-saving a step (after a fallback past a damaged checkpoint) keeps a per-epoch mark.
  const pinned = state.pinned === true || (fs.existsSync(target) && wasPinned(target));

  const temporary = join(runDir, scratchName(TEMPORARY_PREFIX, name));
  fs.mkdirSync(temporary);
  try {
    const manifest: Manifest = { format: MANIFEST_FORMAT, formatVersion: 1, files: {} };
    const put = (file: string, bytes: Uint8Array | readonly Uint8Array[]): void => {
      writeFileDurably(join(temporary, file), bytes);
      manifest.files[file] = manifestEntry(bytes);
    };
    const tensorFile = (file: string, tensors: Map<string, TensorToWrite>, metadata?: Record<string, string>): void => {
      put(file, safetensorsParts(tensors, metadata));
    };
    const network = (store: ParamStore): Map<string, TensorToWrite> => store.toTensorMap();
    tensorFile(STUDENT_FILE, network(state.student), networkMetadata("student", state));
    tensorFile(TEACHER_FILE, network(state.teacher), networkMetadata("teacher", state));
    tensorFile(OPTIMIZER_FILE, optimizerTensors(state.student, state.optimizer), { optimizer: "adamw", step: String(state.step) });
    tensorFile(CENTER_FILE, centerTensors(state.center));

    const stateFile: CheckpointStateFile = {
      format: STATE_FORMAT,
      formatVersion: STATE_FORMAT_VERSION,
      step: state.step,
      epoch: state.epoch,
      iterInEpoch: state.iterInEpoch,
      pinned,
      loss: state.loss !== undefined && Number.isFinite(state.loss) ? state.loss : null,
      savedAt: new Date().toISOString(),
      elapsedSeconds: state.elapsedSeconds ?? null,
      rng: { ...state.rng },
      schedule: state.schedule ? { ...state.schedule } : null,
      runConfig: JSON.parse(JSON.stringify(state.runConfig)) as Record<string, unknown>,
      versions: writerVersions(),
      params: state.student.specs.map((s) => ({ name: s.name, shape: [...s.shape], trainable: s.trainable, decay: s.decay })),
      centerDim: state.center.length,
      ...(state.extra ? { extra: { ...state.extra } } : {}),
    };
    put(STATE_FILE, Buffer.from(JSON.stringify(stateFile, null, 2) + "\n", "utf8"));
    // The manifest is the last file: a folder with a matching manifest is complete.
    writeFileDurably(join(temporary, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
    fsyncDirectory(temporary);
  } catch (err) {
    fs.rmSync(temporary, { recursive: true, force: true });
    throw err;
  }

  let trash: string | undefined;
  if (fs.existsSync(target)) {
    // A directory cannot be renamed over a non-empty one: move the old one aside first.
    trash = join(runDir, scratchName(TRASH_PREFIX, name));
    fs.renameSync(target, trash);
  }
  fs.renameSync(temporary, target);
  fsyncDirectory(runDir);
  replaceFileAtomically(join(runDir, LATEST_FILE), name + "\n");
  if (trash) fs.rmSync(trash, { recursive: true, force: true });
  return target;
}
