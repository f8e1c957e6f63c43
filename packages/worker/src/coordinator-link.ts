import type { Logger } from "pino";
import type { Dealer } from "zeromq";
import { decodeControl, encodeControl, type ControlMessage } from "./control-channel";
import { ControlTimeoutError, CoordinatorLostError, RunAbortedError } from "./errors";
import { Outbox } from "./outbox";

interface Waiter {
  resolve: (m: ControlMessage) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A worker's control connection (ZeroMQ Dealer): one receive loop files the coordinator's
 * messages, `next()` waits for one with a timeout, and heartbeats go both ways once
 * `startHeartbeats()` is called. An Abort or a silent coordinator fails the link: every
 * pending and later `next()` rejects, and `onFailure` listeners (the collectives) are told.
 */
export class CoordinatorLink {
  readonly outbox: Outbox;
  private readonly queue: ControlMessage[] = [];
  private waiter?: Waiter;
  private failure?: Error;
  private readonly listeners: Array<(err: Error) => void> = [];
  private timers: NodeJS.Timeout[] = [];
  private lastSeen = Date.now();
  private closed = false;

  constructor(
    private readonly dealer: Dealer,
    private readonly coordinator: string,
    private readonly log: Logger,
  ) {
    this.outbox = new Outbox(dealer);
    void this.receiveLoop();
  }

  get error(): Error | undefined {
    return this.failure;
  }

  send(body: Parameters<typeof encodeControl>[0], payloads: readonly Float32Array[] = []): Promise<void> {
    return this.outbox.send(encodeControl(body, payloads));
  }

  onFailure(listener: (err: Error) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Sends a heartbeat every timeout / 4 and fails the link when the coordinator has sent
   * nothing for `timeoutMs`. A watchdog tick that comes late (the event loop was blocked,
   * e.g. building sessions) gives the receive loop a chance to file queued messages first.
   */
  startHeartbeats(timeoutMs: number, beat: () => Parameters<typeof encodeControl>[0]): void {
    const interval = Math.max(100, timeoutMs / 4);
    this.lastSeen = Date.now();
    let lastTick = Date.now();
    const heartbeat = setInterval(() => this.send(beat()).catch(() => undefined), interval);
    const watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastTick > 2 * interval) this.lastSeen = Math.max(this.lastSeen, now - interval);
      lastTick = now;
      if (now - this.lastSeen > timeoutMs) this.fail(new CoordinatorLostError(this.coordinator, now - this.lastSeen));
    }, interval);
    for (const timer of [heartbeat, watchdog]) timer.unref();
    this.timers.push(heartbeat, watchdog);
  }

  /** The next message from the coordinator (heartbeats excluded) within `timeoutMs`. */
  next(what: string, timeoutMs: number): Promise<ControlMessage> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift() as ControlMessage);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<ControlMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new ControlTimeoutError(what, timeoutMs));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    if (this.waiter) {
      clearTimeout(this.waiter.timer);
      this.waiter.reject(err);
      this.waiter = undefined;
    }
    for (const listener of this.listeners) listener(err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearInterval(timer);
    if (this.waiter) clearTimeout(this.waiter.timer);
    this.dealer.close();
  }

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.dealer) {
        this.lastSeen = Date.now();
        let message: ControlMessage;
        try {
          message = decodeControl(frames);
        } catch (err) {
          this.fail(err as Error);
          continue;
        }
        const body = message.envelope.body;
        if (body === "heartbeat") continue;
        if (body === "abort") {
          this.fail(new RunAbortedError(message.envelope.abort?.reason ?? "unknown reason"));
          continue;
        }
        if (this.waiter) {
          const { resolve, timer } = this.waiter;
          this.waiter = undefined;
          clearTimeout(timer);
          resolve(message);
        } else {
          this.queue.push(message);
        }
      }
    } catch (err) {
      if (!this.closed) {
        this.log.warn({ err: (err as Error).message }, "control socket failed");
        this.fail(err as Error);
      }
    }
  }
}
