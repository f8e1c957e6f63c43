/** Typed failures of the collectives; every field is something a caller can act on. */

export type CollectiveOperation = "allReduce" | "broadcast.send" | "broadcast.receive";

/** Base class: the operation, step and this process's rank when it failed. */
export class CollectiveError extends Error {
  readonly operation: CollectiveOperation;
  readonly step: number;
  readonly rank: number;
  /**
   * False once the operation has written into the caller's buffer: after a failed
   * all-reduce with bufferIntact === false, refill the buffer before running it again.
   */
  readonly bufferIntact: boolean;

  constructor(message: string, fields: { operation: CollectiveOperation; step: number; rank: number; bufferIntact: boolean }) {
    super(message);
    this.name = new.target.name;
    this.operation = fields.operation;
    this.step = fields.step;
    this.rank = fields.rank;
    this.bufferIntact = fields.bufferIntact;
  }
}

/**
 * A peer stopped making progress (died, stalled or was never started) for `timeoutMs`.
 * `peerRank` is the peer this rank was waiting on; in a ring every rank downstream of a dead
 * peer stalls too, so the dead one is the rank named by its successor. In the direct
 * same-host all-reduce, where a rank waits on every peer, it is the peer heard from least
 * recently (the others stalled waiting for it).
 */
export class CollectiveTimeoutError extends CollectiveError {
  readonly peerRank: number;
  readonly peerEndpoint: string;
  /** "receive": nothing valid arrived from the peer; "send": the peer stopped accepting data. */
  readonly direction: "receive" | "send";
  readonly timeoutMs: number;
  /** Messages this rank had received and expected when it gave up. */
  readonly received: number;
  readonly expected: number;

  constructor(fields: {
    operation: CollectiveOperation; step: number; rank: number; bufferIntact: boolean;
    peerRank: number; peerEndpoint: string; direction: "receive" | "send"; timeoutMs: number; received: number; expected: number;
  }) {
    const verb = fields.direction === "receive" ? `received nothing valid from` : `could not send to`;
    super(
      `${fields.operation} step ${fields.step}: rank ${fields.rank} ${verb} rank ${fields.peerRank} (${fields.peerEndpoint}) ` +
        `for ${fields.timeoutMs} ms (${fields.received}/${fields.expected} messages received); the peer died or stalled`,
      fields,
    );
    this.peerRank = fields.peerRank;
    this.peerEndpoint = fields.peerEndpoint;
    this.direction = fields.direction;
    this.timeoutMs = fields.timeoutMs;
    this.received = fields.received;
    this.expected = fields.expected;
  }
}

/** The operation was cancelled by abort(); `reason` is what the caller passed. */
export class CollectiveAbortedError extends CollectiveError {
  readonly reason: string;

  constructor(fields: { operation: CollectiveOperation; step: number; rank: number; bufferIntact: boolean; reason: string }) {
    super(`${fields.operation} step ${fields.step} on rank ${fields.rank} aborted: ${fields.reason}`, fields);
    this.reason = fields.reason;
  }
}

/**
 * The ranks disagree on something that must be identical everywhere (tensor length), so
 * retrying cannot help; fix the configuration.
 */
export class CollectiveMismatchError extends CollectiveError {
  readonly peerRank: number;
  readonly localElements: number;
  readonly peerElements: number;

  constructor(fields: {
    operation: CollectiveOperation; step: number; rank: number; bufferIntact: boolean;
    peerRank: number; localElements: number; peerElements: number;
  }) {
    super(
      `${fields.operation} step ${fields.step}: rank ${fields.peerRank} sends a tensor of ${fields.peerElements} ` +
        `float32 elements but rank ${fields.rank} has ${fields.localElements}`,
      fields,
    );
    this.peerRank = fields.peerRank;
    this.localElements = fields.localElements;
    this.peerElements = fields.peerElements;
  }
}

/** Invalid options or call arguments, or a call in the wrong state (names the option). */
export class CollectiveUsageError extends Error {
  readonly option: string;

  constructor(option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = "CollectiveUsageError";
    this.option = option;
  }
}
