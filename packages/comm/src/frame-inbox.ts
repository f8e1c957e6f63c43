/**
 * The receiving end of a collective member: a bound ZeroMQ Pull socket read with a deadline,
 * and the log and counters of rejected frames.
 */
import { rmSync } from "fs";
import type { Logger } from "pino";
import * as zmq from "zeromq";
import type { FrameRejection, RejectionReason } from "./frame";

export interface InboxStats {
  /** Chunk messages applied; a shared-memory doorbell announcing a run of chunks counts once per chunk. */
  framesAccepted: number;
  framesRejected: number;
  rejectedByReason: Partial<Record<RejectionReason, number>>;
}

export class FrameInbox {
  readonly endpoint: string;
  readonly stats: InboxStats = { framesAccepted: 0, framesRejected: 0, rejectedByReason: {} };
  private readonly socket: zmq.Pull;
  private readonly logger: Logger;
  private closed = false;

  constructor(endpoint: string, highWaterMark: number, logger: Logger) {
    this.endpoint = endpoint;
    this.logger = logger;
    this.socket = new zmq.Pull({ receiveHighWaterMark: highWaterMark, linger: 0 });
  }

  async bind(): Promise<void> {
    await this.socket.bind(this.endpoint);
  }

  /**
   * Next multipart message, or null if none arrived before `deadline` (ms since epoch) or
   * the inbox was closed meanwhile.
   */
  async receive(deadline: number): Promise<Buffer[] | null> {
    const remaining = deadline - Date.now();
    if (remaining <= 0 || this.closed) return null;
    // 0 would mean "do not wait at all" to ZeroMQ, so wait at least 1 ms.
    this.socket.receiveTimeout = Math.max(1, Math.ceil(remaining));
    try {
      return await this.socket.receive();
    } catch (err) {
      if ((err as { code?: string }).code === "EAGAIN" || this.closed) return null;
      throw err;
    }
  }

  /** Counts `chunks` accepted chunk messages (a shared-memory doorbell may announce several at once). */
  accepted(chunks = 1): void {
    this.stats.framesAccepted += chunks;
  }

  reject(rejection: FrameRejection): void {
    this.stats.framesRejected++;
    this.stats.rejectedByReason[rejection.reason] = (this.stats.rejectedByReason[rejection.reason] ?? 0) + 1;
    const h = rejection.header;
    this.logger.warn(
      {
        reason: rejection.reason,
        detail: rejection.detail,
        ...(h && { sender: h.senderRank, step: h.step, ringStep: h.ringStep, chunk: h.chunk, payloadBytes: h.payloadBytes }),
      },
      "rejected frame",
    );
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    // libzmq leaves the socket file of an ipc endpoint behind; the binder owns it.
    if (this.endpoint.startsWith("ipc://")) rmSync(this.endpoint.slice("ipc://".length), { force: true });
  }
}
