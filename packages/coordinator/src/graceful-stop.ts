/**
 * SIGTERM (a Kubernetes eviction) or SIGINT: save a checkpoint, then stop. The step in flight
 * may finish within the grace period (`--term-grace-s`) and is checkpointed after it;
 * otherwise the last completed state, which the coordinator holds anyway, is saved and the
 * run stops at once. Either way the launcher exits 128 + signal number.
 */
import type { Logger } from "pino";

/** The run was stopped by a signal; the launcher exits 128 + signal number. */
export class InterruptedError extends Error {
  override readonly name = "InterruptedError";
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** Saves the last completed training state and returns the checkpoint folder (undefined: nothing to save yet). */
export type LastStateSaver = () => string | undefined;

export class GracefulStop {
  /** The first stop signal received. */
  signal?: NodeJS.Signals;
  /** Where the stop checkpoint went, once saved. */
  savedTo?: string;
  private saver?: LastStateSaver;
  private timer?: NodeJS.Timeout;
  private saved = false;

  constructor(
    private readonly graceMs: number,
    private readonly log: Logger,
    /** Ends the run now (the launcher fails its control server with an InterruptedError). */
    private readonly abort: (error: InterruptedError) => void,
  ) {}

  get requested(): boolean {
    return this.signal !== undefined;
  }

  /** The training loop registers how to save its last completed state once it has one. */
  setSaver(saver: LastStateSaver | undefined): void {
    this.saver = saver;
  }

  /** A signal arrived: let the step in flight finish (the loop calls stopAfterStep), or save the last state when the grace period ends. */
  request(signal: NodeJS.Signals): void {
    if (this.signal !== undefined) {
      // A second signal: stop without waiting for the step.
      this.log.warn({ signal }, "second stop signal, saving the last completed state now");
      this.expire();
      return;
    }
    this.signal = signal;
    if (!this.saver) {
      this.log.warn({ signal }, "stop signal before training started: nothing to checkpoint");
      this.abort(new InterruptedError(signal));
      return;
    }
    this.log.warn({ signal, graceMs: this.graceMs }, "stop signal: checkpointing after the current step");
    process.stderr.write(`dino-coord: ${signal}: checkpointing after the current step (at most ${(this.graceMs / 1000).toFixed(0)} s)\n`);
    this.timer = setTimeout(() => {
      this.log.warn({ graceMs: this.graceMs }, "the current step did not finish within the grace period");
      this.expire();
    }, this.graceMs);
  }

  /** Saves the last completed state, once (later calls return the same folder). */
  saveNow(): string | undefined {
    if (!this.saved && this.saver) {
      this.saved = true;
      try {
        this.savedTo = this.saver();
        if (this.savedTo) process.stderr.write(`dino-coord: ${this.signal ?? "stop"}: checkpoint saved in ${this.savedTo}\n`);
      } catch (err) {
        // Stopping must not wait on a failing disk; the previous checkpoint is still there.
        this.log.error({ err: (err as Error).message }, "could not save the stop checkpoint");
        process.stderr.write(`dino-coord: could not save the stop checkpoint: ${(err as Error).message}\n`);
      }
    }
    return this.savedTo;
  }

  /** Called by the training loop after each completed step: throws InterruptedError once the stop checkpoint is saved. */
  stopAfterStep(): void {
    if (this.signal === undefined) return;
    this.saveNow();
    throw new InterruptedError(this.signal);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private expire(): void {
    this.dispose();
    this.saveNow();
    this.abort(new InterruptedError(this.signal ?? "SIGTERM"));
  }
}
