/** Typed checkpoint errors: each names the checkpoint, the file and what a user can do. */

/** A checkpoint file is missing, truncated, altered or inconsistent. */
export class CheckpointCorruptError extends Error {
  override readonly name = "CheckpointCorruptError";
  constructor(
    /** The checkpoint folder. */
    readonly checkpoint: string,
    /** The damaged file, relative to the folder (e.g. `teacher.safetensors`). */
    readonly file: string,
    readonly problem: string,
  ) {
    super(`checkpoint ${checkpoint}: ${file}: ${problem}`);
  }
}

/** The checkpoint is intact but was written for other parameter shapes than the model asked for. */
export class CheckpointModelMismatchError extends Error {
  override readonly name = "CheckpointModelMismatchError";
  constructor(
    readonly checkpoint: string,
    readonly problem: string,
  ) {
    super(`checkpoint ${checkpoint} does not fit this model: ${problem}`);
  }
}

/** A run dir has checkpoints but none of them is readable. */
export class NoValidCheckpointError extends Error {
  override readonly name = "NoValidCheckpointError";
  constructor(
    readonly runDir: string,
    readonly skipped: readonly { path: string; reason: string }[],
  ) {
    super(
      `no valid checkpoint in ${runDir}; ${skipped.length} damaged: ` +
        skipped.map((s) => `${s.path} (${s.reason})`).join("; ") +
        ". Nothing was deleted: inspect them with `dino-coord checkpoint verify`.",
    );
  }
}

/** The requested run configuration differs from the checkpoint's in settings that change the result. */
export class ResumeConfigError extends Error {
  override readonly name = "ResumeConfigError";
  constructor(
    message: string,
    readonly differences: readonly { key: string; saved: unknown; requested: unknown }[],
  ) {
    super(message);
  }
}
