/**
 * Where a checkpoint's pieces live inside a run dir. Names are the on-disk contract that
 * `ls`, pruning, loading and the `latest` pointer all agree on.
 *
 *   <runDir>/checkpoint-00001234/   one folder per checkpoint, step zero-padded so names sort
 *   <runDir>/latest                 the name of the last committed folder (written last)
 *   <runDir>/.tmp-checkpoint-…      a checkpoint being written (never read; removed by the next write)
 *   <runDir>/.trash-checkpoint-…    a folder on its way out (replaced or pruned; never read)
 *
 * Per-epoch checkpoints (`--saveckp-freq`, the reference's `checkpoint{epoch:04}.pth`) use
 * the same folder naming and carry `"pinned": true` in state.json: pruning never removes them.
 */
import { join } from "node:path";

export const STUDENT_FILE = "student.safetensors";
export const TEACHER_FILE = "teacher.safetensors";
export const OPTIMIZER_FILE = "optimizer.safetensors";
export const CENTER_FILE = "center.safetensors";
export const STATE_FILE = "state.json";
export const MANIFEST_FILE = "manifest.json";
export const LATEST_FILE = "latest";

/** Every file the manifest must cover (all but the manifest itself). */
export const CHECKPOINT_FILES = [STUDENT_FILE, TEACHER_FILE, OPTIMIZER_FILE, CENTER_FILE, STATE_FILE] as const;

const STEP_DIGITS = 8;
const CHECKPOINT_NAME = /^checkpoint-(\d{8,})$/;
export const TEMPORARY_PREFIX = ".tmp-";
export const TRASH_PREFIX = ".trash-";

export function checkpointName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`checkpoint step must be a non-negative integer, got ${step}`);
  return `checkpoint-${String(step).padStart(STEP_DIGITS, "0")}`;
}

/** The step of a checkpoint folder name, or undefined for anything else in the run dir. */
export function stepOfCheckpointName(name: string): number | undefined {
  const match = CHECKPOINT_NAME.exec(name);
  return match ? Number(match[1]) : undefined;
}

export function checkpointPath(runDir: string, step: number): string {
  return join(runDir, checkpointName(step));
}

/** A unique name for a sibling that is being written or removed. */
export function scratchName(prefix: string, name: string): string {
  return `${prefix}${name}-${process.pid}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
