/**
 * `--resume RUN_DIR`: continue a run from its latest valid checkpoint so that the result is
 * bitwise the one of the uninterrupted run. That holds because everything a step depends on
 * is either restored here or a pure function of the restored position:
 *
 * - restored: student, teacher, AdamW moments and per-tensor step counters, center (the
 *   workers get the same student and optimizer state in their InitialState), and the running
 *   sums behind log.txt's epoch means (state.json `extra`);
 * - recomputed: the schedules (functions of the iteration index), the sampler (of dataset
 *   size, world, rank, seed and epoch; a worker starts its shard at the saved position in
 *   the epoch) and every random draw (crops and drop-path masks are counter-based, keyed by
 *   seed, epoch or step, dataset index and crop).
 *
 * A resume under a configuration that would change the result is refused, naming each
 * difference (see checkpoint/resume-config.ts).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { dinoParamSpecs, type AdamW, type ParamStore } from "@dino-coord/model";
import type { RunConfig } from "@dino-coord/worker";
import {
  assertResumeConfig,
  CheckpointModelMismatchError,
  describeDifference,
  loadLatestValidCheckpoint,
  specMismatches,
  type CheckpointLogger,
  type ConfigDifference,
  type LoadedCheckpoint,
  type SkippedCheckpoint,
} from "./checkpoint";
import { UsageError } from "./run-config";

/** Running sums over the current epoch's steps, for log.txt's epoch means. */
export interface EpochSums {
  loss: number;
  lr: number;
  wd: number;
}

const SUM_KEYS = { loss: "epochLossSum", lr: "epochLrSum", wd: "epochWdSum" } as const;

/** The `extra` fields of a checkpoint that carry the epoch sums. */
export function epochSumsExtra(sums: EpochSums): Record<string, number> {
  return { [SUM_KEYS.loss]: sums.loss, [SUM_KEYS.lr]: sums.lr, [SUM_KEYS.wd]: sums.wd };
}

/** Where a resumed run starts, and what it restores besides the tensors. */
export interface ResumePoint {
  checkpoint: LoadedCheckpoint;
  /** Newer checkpoints that were damaged and passed over. */
  skipped: SkippedCheckpoint[];
  /** Differences from the saved configuration that were accepted. */
  accepted: ConfigDifference[];
  sums: EpochSums;
  /** What happened while loading, for the run's log once it exists. */
  notes: Array<{ level: "info" | "warn"; details: object; message: string }>;
}

export interface ResumeOptions {
  allowConfigChange: boolean;
  /** Iterations per epoch of the requested run (from the data set, batch and world size). */
  itersPerEpoch: number;
}

/**
 * Loads the newest valid checkpoint of `runDir` for the run `config`. Damaged newer
 * checkpoints are passed over and reported on stderr; a configuration that would change
 * the result is refused (ResumeConfigError); the model must fit the saved tensors.
 */
export function loadResumePoint(runDir: string, config: RunConfig, options: ResumeOptions): ResumePoint {
  if (!existsSync(runDir)) throw new UsageError(`--resume ${runDir}: no such folder`);
  const notes: ResumePoint["notes"] = [];
  const logger: CheckpointLogger = {
    info: (details, message) => notes.push({ level: "info", details, message }),
    warn: (details, message) => notes.push({ level: "warn", details, message }),
  };
  const latest = loadLatestValidCheckpoint(runDir, { logger });
  if (!latest) throw new UsageError(`--resume ${runDir}: there is no checkpoint in it (no checkpoint-<step>/ folder); start a new run with launch --output-dir instead`);
  const { checkpoint, skipped } = latest;
  for (const s of skipped) {
    process.stderr.write(`dino-coord: warning: checkpoint ${s.path} is damaged (${s.file}: ${s.reason}), skipping it\n`);
  }
  if (skipped.length > 0) {
    process.stderr.write(`dino-coord: warning: resuming from the newest valid checkpoint, ${checkpoint.path} (step ${checkpoint.step}); the lost steps are trained again\n`);
  }

  const accepted = assertResumeConfig(checkpoint.runConfig, config, { allowConfigChange: options.allowConfigChange });
  const changed = accepted.filter((d) => d.class === "result");
  if (changed.length > 0) {
    const text = changed.map(describeDifference).join("; ");
    process.stderr.write(`dino-coord: warning: --allow-config-change: resuming with changed settings (the result will differ from the original run's): ${text}\n`);
    notes.push({ level: "warn", details: { changed }, message: "resuming with changed settings" });
  }
  const mismatches = specMismatches(checkpoint.stateFile.params, dinoParamSpecs(config.model));
  if (mismatches.length > 0) throw new CheckpointModelMismatchError(checkpoint.path, mismatches.slice(0, 5).join("; "));

  const { step, epoch, iterInEpoch } = checkpoint;
  const { itersPerEpoch } = options;
  // iterInEpoch == itersPerEpoch: every step of the epoch was done but the epoch not yet closed (log.txt line, epoch checkpoint).
  if (iterInEpoch > itersPerEpoch || step !== epoch * itersPerEpoch + iterInEpoch) {
    throw new UsageError(
      `--resume ${runDir}: ${checkpoint.name} is at step ${step} = epoch ${epoch}, iteration ${iterInEpoch}, which does not fit this run's ${itersPerEpoch} iterations per epoch (the data set, batch size or number of workers changed)`,
    );
  }
  const extra = checkpoint.extra ?? {};
  const sums: EpochSums = { loss: extra[SUM_KEYS.loss] ?? 0, lr: extra[SUM_KEYS.lr] ?? 0, wd: extra[SUM_KEYS.wd] ?? 0 };
  if (iterInEpoch > 0 && extra[SUM_KEYS.loss] === undefined) {
    notes.push({ level: "warn", details: { checkpoint: checkpoint.path }, message: "the checkpoint has no epoch sums: log.txt's mean for this epoch covers only the resumed steps" });
  }
  return { checkpoint, skipped, accepted, sums, notes };
}

/** Copies the saved tensors into the coordinator's freshly built state (same layout, checked by loadResumePoint). */
export function restoreTrainingState(state: { student: ParamStore; teacher: ParamStore; adamw: AdamW; center: Float32Array }, checkpoint: LoadedCheckpoint): void {
  state.student.data.set(checkpoint.student.data);
  state.teacher.data.set(checkpoint.teacher.data);
  state.adamw.loadState(checkpoint.optimizer);
  if (checkpoint.center.length !== state.center.length) {
    throw new CheckpointModelMismatchError(checkpoint.path, `the center has ${checkpoint.center.length} values, the model's head outputs ${state.center.length}`);
  }
  state.center.set(checkpoint.center);
}

/**
 * Before a resumed run appends to log.txt and metrics.jsonl, drops what came after the
 * checkpoint: the steps lost since (they run again) and a line half-written by a kill.
 */
export function trimRunOutput(outputDir: string, checkpoint: { step: number; epoch: number }): void {
  const keep = (file: string, wanted: (entry: Record<string, unknown>) => boolean): void => {
    const path = join(outputDir, file);
    if (!existsSync(path)) return;
    const lines = readFileSync(path, "utf8").split("\n");
    const kept = lines.filter((line) => {
      try {
        return wanted(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return false; // empty or cut off
      }
    });
    const temporary = `${path}.tmp-${process.pid}`;
    writeFileSync(temporary, kept.map((l) => `${l}\n`).join(""));
    renameSync(temporary, path);
  };
  keep("metrics.jsonl", (m) => typeof m.step === "number" && m.step < checkpoint.step);
  keep("log.txt", (l) => typeof l.epoch === "number" && l.epoch < checkpoint.epoch);
}
