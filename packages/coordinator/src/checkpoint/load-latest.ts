/**
 * Resume: the checkpoint `latest` points to, or, when that one is damaged, the newest
 * one that verifies, saying which were skipped and why. A damaged checkpoint is never
 * deleted here (it may be the only evidence of what went wrong).
 */
import type { ParamSpec } from "@dino-coord/model";
import { CheckpointCorruptError, NoValidCheckpointError } from "./errors";
import { listCheckpoints } from "./list-checkpoints";
import { readCheckpoint, readLatestPointer, type LoadedCheckpoint } from "./read-checkpoint";

/** The subset of a pino logger used here. */
export interface CheckpointLogger {
  warn(details: object, message: string): void;
  info(details: object, message: string): void;
}

export interface SkippedCheckpoint {
  path: string;
  /** The damaged file, relative to the checkpoint folder. */
  file: string;
  reason: string;
}

export interface LatestCheckpoint {
  checkpoint: LoadedCheckpoint;
  /** Newer or pointed-to checkpoints that failed verification, in the order they were tried. */
  skipped: SkippedCheckpoint[];
  /** What `latest` named (undefined when it is missing or malformed). */
  latestPointer?: string;
}

export interface LoadLatestOptions {
  /** The model's layout: a checkpoint for other shapes is refused (CheckpointModelMismatchError), not skipped. */
  specs?: readonly ParamSpec[];
  logger?: CheckpointLogger;
}

/** Undefined when the run dir has no checkpoint (a fresh run); NoValidCheckpointError when all are damaged. */
export function loadLatestValidCheckpoint(runDir: string, options: LoadLatestOptions = {}): LatestCheckpoint | undefined {
  const { logger, specs } = options;
  const listings = listCheckpoints(runDir);
  if (listings.length === 0) return undefined;
  const latestPointer = readLatestPointer(runDir);
  const pointed = listings.find((l) => l.name === latestPointer);
  if (!pointed) {
    logger?.warn({ runDir, latest: latestPointer ?? null }, "the latest pointer is missing or names no checkpoint folder: trying the newest checkpoints");
  }
  // The pointer is the commit point; a newer folder without it is still complete (it was renamed into place whole).
  const candidates = [...(pointed ? [pointed] : []), ...listings.filter((l) => l !== pointed).reverse()];
  const skipped: SkippedCheckpoint[] = [];
  for (const candidate of candidates) {
    try {
      const checkpoint = readCheckpoint(candidate.path, specs);
      if (skipped.length > 0) {
        logger?.warn({ loaded: candidate.path, skipped }, `resuming from ${candidate.name}: ${skipped.length} newer checkpoint(s) are damaged`);
      } else {
        logger?.info({ loaded: candidate.path, step: checkpoint.step }, `resuming from ${candidate.name}`);
      }
      return { checkpoint, skipped, latestPointer };
    } catch (err) {
      if (!(err instanceof CheckpointCorruptError)) throw err;
      skipped.push({ path: candidate.path, file: err.file, reason: err.problem });
      logger?.warn({ path: candidate.path, file: err.file, problem: err.problem }, `checkpoint ${candidate.name} is damaged, skipping it`);
    }
  }
  throw new NoValidCheckpointError(runDir, skipped.map((s) => ({ path: s.path, reason: `${s.file}: ${s.reason}` })));
}
