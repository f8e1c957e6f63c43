import type { Logger } from "pino";
import { Router } from "zeromq";
import type { dino } from "@dino-coord/proto";
import { ControlTimeoutError, decodeControl, encodeControl, Outbox, type ControlMessage, type EnvelopeBody } from "@dino-coord/worker";

/** A control message from a worker, with its ZeroMQ routing identity and (once known) rank. */
export interface Incoming extends ControlMessage {
  identity: Buffer;
  rank?: number;
}

/** A worker reported a failure, went silent, or its process died. */
export class WorkerFailedError extends Error {
  override readonly name = "WorkerFailedError";
  constructor(
    readonly rank: number | undefined,
    detail: string,
  ) {
    super(`worker${rank === undefined ? "" : ` ${rank}`} failed: ${detail}`);
  }
}

interface Waiter {
  match: (m: Incoming) => boolean;
  resolve: (m: Incoming) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The coordinator's control socket (ZeroMQ Router): one receive loop files incoming
 * messages, `next()` waits for a matching one with a timeout, heartbeats and failure
 * reports are handled here, and `fail()` wakes every waiter with the run's error.
 */
export class ControlServer {
  private readonly router = new Router({ linger: 0, mandatory: true });
  private readonly outbox = new Outbox(this.router);
  private readonly backlog: Incoming[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly ranks = new Map<string, number>();
  private readonly identities = new Map<number, Buffer>();
  private readonly lastSeen = new Map<number, number>();
  private failure?: Error;
  private readonly failureListeners: Array<(err: Error) => void> = [];
  private watchdog?: NodeJS.Timeout;
  private heartbeats?: NodeJS.Timeout;
  private closed = false;
  endpoint = "";
  /** Bytes of every control message sent so far (routing identity excluded). */
  bytesSent = 0;

  constructor(
    private readonly log: Logger,
    private readonly heartbeatTimeoutMs: number,
  ) {}

  async bind(address: string): Promise<string> {
    // A send to a stalled worker (full queue) must fail rather than block the run forever.
    this.router.sendTimeout = this.heartbeatTimeoutMs;
    await this.router.bind(address);
    this.endpoint = this.router.lastEndpoint ?? address;
    void this.receiveLoop();
    return this.endpoint;
  }

  get error(): Error | undefined {
    return this.failure;
  }

  assignRank(identity: Buffer, rank: number): void {
    this.ranks.set(identity.toString("hex"), rank);
    this.identities.set(rank, identity);
    this.lastSeen.set(rank, Date.now());
  }

  /** Declare a worker dead when it sends nothing (not even a heartbeat) for the heartbeat timeout. */
  startWatchdog(): void {
    this.watchdog = setInterval(() => {
      const now = Date.now();
      for (const [rank, seen] of this.lastSeen) {
        if (now - seen > this.heartbeatTimeoutMs) {
          this.fail(new WorkerFailedError(rank, `no message or heartbeat for ${(this.heartbeatTimeoutMs / 1000).toFixed(0)} s (process hung, killed, or network down)`));
        }
      }
    }, Math.max(100, this.heartbeatTimeoutMs / 4));
    this.watchdog.unref();
  }

  /**
   * Heartbeats to every worker with a rank, every heartbeat timeout / 4, so a worker
   * notices a dead coordinator (its watchdog) even while it waits on a collective.
   */
  startHeartbeats(): void {
    if (this.heartbeats) return;
    this.heartbeats = setInterval(() => {
      for (const [rank, identity] of this.identities) this.sendToIdentity(identity, { heartbeat: { rank } }).catch(() => undefined);
    }, Math.max(100, this.heartbeatTimeoutMs / 4));
    this.heartbeats.unref();
  }

  /** `listener` runs once with the run's error when the run fails (e.g. to abort the collectives). */
  onFailure(listener: (err: Error) => void): void {
    this.failureListeners.push(listener);
  }

  async sendTo(rank: number, body: dino.control.IEnvelope, payloads: readonly Float32Array[] = []): Promise<void> {
    const identity = this.identities.get(rank);
    if (!identity) throw new Error(`no worker with rank ${rank}`);
    try {
      await this.sendToIdentity(identity, body, payloads);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === "EHOSTUNREACH") throw new WorkerFailedError(rank, "disconnected from the coordinator (process died or network dropped)");
      if (code === "EAGAIN") throw new WorkerFailedError(rank, `did not take a message for ${(this.heartbeatTimeoutMs / 1000).toFixed(0)} s (stalled)`);
      throw err;
    }
  }

  async sendToIdentity(identity: Buffer, body: dino.control.IEnvelope, payloads: readonly Float32Array[] = []): Promise<void> {
    const frames = encodeControl(body, payloads);
    for (const frame of frames) this.bytesSent += frame.byteLength;
    await this.outbox.send([identity, ...frames]);
  }

  async broadcast(ranks: number, body: dino.control.IEnvelope, payloads: readonly Float32Array[] = []): Promise<void> {
    for (let r = 0; r < ranks; r++) await this.sendTo(r, body, payloads);
  }

  /** The next message of kind `body` (from `rank`, when given), within `timeoutMs`. */
  next(body: EnvelopeBody, what: string, timeoutMs: number, rank?: number): Promise<Incoming> {
    const match = (m: Incoming) => m.envelope.body === body && (rank === undefined || m.rank === rank);
    if (this.failure) return Promise.reject(this.failure);
    const index = this.backlog.findIndex(match);
    if (index >= 0) return Promise.resolve(this.backlog.splice(index, 1)[0]);
    return new Promise<Incoming>((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new ControlTimeoutError(what, timeoutMs));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Fail the run: every pending and later `next()` rejects with `err` (the first failure wins). */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const waiter of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(err);
    }
    this.waiters.clear();
    for (const listener of this.failureListeners) listener(err);
  }

  /** The workers were told to shut down: their silence is expected from now on. */
  stopWatching(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.heartbeats) clearInterval(this.heartbeats);
  }

  /** Tell every registered worker to stop (best effort, bounded in time). */
  async abortAll(reason: string): Promise<void> {
    const sends = [...this.identities.values()].map((id) => this.sendToIdentity(id, { abort: { reason } }).catch(() => undefined));
    await Promise.race([Promise.all(sends), new Promise((r) => setTimeout(r, 1000).unref())]);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.heartbeats) clearInterval(this.heartbeats);
    for (const waiter of this.waiters) clearTimeout(waiter.timer);
    this.router.close();
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const [identity, ...frames] of this.router) {
        let message: ControlMessage;
        try {
          message = decodeControl(frames);
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, "dropping an unreadable control message");
          continue;
        }
        const rank = this.ranks.get(identity.toString("hex"));
        if (rank !== undefined) this.lastSeen.set(rank, Date.now());
        const incoming: Incoming = { ...message, identity, rank };
        const body = message.envelope.body;
        if (body === "heartbeat") continue;
        if (body === "failure") {
          this.fail(new WorkerFailedError(rank, message.envelope.failure?.message ?? "no reason given"));
          continue;
        }
        const waiter = [...this.waiters].find((w) => w.match(incoming));
        if (waiter) {
          this.waiters.delete(waiter);
          clearTimeout(waiter.timer);
          waiter.resolve(incoming);
        } else {
          this.backlog.push(incoming);
        }
      }
    } catch (err) {
      if (!this.closed) this.fail(err as Error);
    }
  }
}
