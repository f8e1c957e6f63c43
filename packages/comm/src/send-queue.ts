/**
 * The sending end of a collective member: a connected ZeroMQ Push socket fed through a FIFO,
 * because ZeroMQ allows only one pending send per socket and collectives enqueue chunks
 * while still receiving. A send blocked at the high-water mark for `timeoutMs` fails the
 * queue (the peer died or stalled).
 */
import * as zmq from "zeromq";

export class SendQueue {
  readonly endpoint: string;
  private readonly socket: zmq.Push;
  private readonly pending: Buffer[][] = [];
  private head = 0;
  private draining = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  /** First send failure (EAGAIN after timeoutMs), if any; later sends are refused. */
  failure: Error | null = null;
  /** When a message was last handed to ZeroMQ (ms since epoch): progress for deadlines. */
  lastProgressAt = Date.now();

  constructor(endpoint: string, highWaterMark: number, timeoutMs: number, lingerMs: number) {
    this.endpoint = endpoint;
    this.socket = new zmq.Push({ sendHighWaterMark: highWaterMark, sendTimeout: timeoutMs, linger: lingerMs });
  }

  connect(): void {
    this.socket.connect(this.endpoint);
  }

  get length(): number {
    return this.pending.length - this.head;
  }

  enqueue(parts: Buffer[]): void {
    if (this.closed || this.failure) return;
    this.pending.push(parts);
    if (!this.draining) void this.drain();
  }

  /** Resolves when every queued message has been handed to ZeroMQ (or sending failed). */
  idle(): Promise<void> {
    if (this.length === 0 || this.failure || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.head < this.pending.length && !this.closed) {
        const parts = this.pending[this.head];
        this.pending[this.head++] = [];
        await this.socket.send(parts);
        this.lastProgressAt = Date.now();
      }
    } catch (err) {
      if (!this.closed) this.failure = err as Error;
    } finally {
      this.pending.length = 0;
      this.head = 0;
      this.draining = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /** Closes the socket; queued messages still in ZeroMQ are kept for the socket's linger time. */
  close(lingerMs?: number): void {
    if (this.closed) return;
    this.closed = true;
    if (lingerMs !== undefined) this.socket.linger = lingerMs;
    this.socket.close();
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const wake of waiters) wake();
  }
}
