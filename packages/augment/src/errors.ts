/** Typed errors of the augment package; each carries what a user needs to act. */

export type DataFolderProblem = "missing" | "not-a-directory" | "no-classes" | "no-images" | "empty-class" | "unreadable";

/** The data folder cannot be used as an ImageNet-layout (ImageFolder) dataset. */
export class DataFolderError extends Error {
  override readonly name = "DataFolderError";
  constructor(
    readonly path: string,
    readonly problem: DataFolderProblem,
    detail: string,
  ) {
    super(`data folder ${path}: ${detail}`);
  }
}

/** A wait on worker threads exceeded its timeout (a stuck image's worker is terminated and replaced). */
export class AugmentTimeoutError extends Error {
  override readonly name = "AugmentTimeoutError";
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
  ) {
    super(`augment: ${what} did not finish within ${timeoutMs} ms`);
  }
}

/** A worker thread crashed, exited, or reported an internal error. */
export class AugmentWorkerError extends Error {
  override readonly name = "AugmentWorkerError";
  constructor(message: string) {
    super(`augment worker: ${message}`);
  }
}

/** The pool was closed while a request was pending or after close(). */
export class AugmentPoolClosedError extends Error {
  override readonly name = "AugmentPoolClosedError";
  constructor() {
    super("augment pool is closed");
  }
}

/** An argument is out of range (bad config, bad sampler parameters). */
export class AugmentConfigError extends Error {
  override readonly name = "AugmentConfigError";
  constructor(message: string) {
    super(message);
  }
}
