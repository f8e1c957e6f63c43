/** Typed errors of the control protocol; each says what went wrong and what to do. */

/** A peer did not send the expected message in time. */
export class ControlTimeoutError extends Error {
  override readonly name = "ControlTimeoutError";
  constructor(
    readonly waitingFor: string,
    readonly timeoutMs: number,
  ) {
    super(`timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for ${waitingFor}`);
  }
}

/** A peer sent something this version of dino-coord cannot read or did not expect. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  constructor(message: string) {
    super(message);
  }
}

/** The coordinator aborted the run (another worker failed, a signal, a non-finite loss…). */
export class RunAbortedError extends Error {
  override readonly name = "RunAbortedError";
  constructor(readonly reason: string) {
    super(`run aborted by the coordinator: ${reason}`);
  }
}

/** The coordinator sent nothing, not even a heartbeat, for the heartbeat timeout. */
export class CoordinatorLostError extends Error {
  override readonly name = "CoordinatorLostError";
  constructor(
    readonly coordinator: string,
    readonly silentMs: number,
  ) {
    super(`no message or heartbeat from the coordinator at ${coordinator} for ${(silentMs / 1000).toFixed(1)} s (it died, hung, or the network is down); stopping`);
  }
}
