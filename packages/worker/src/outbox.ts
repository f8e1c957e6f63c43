import type { Dealer, Router } from "zeromq";

/**
 * A ZeroMQ socket accepts one send at a time ("socket busy" otherwise); heartbeats and
 * step messages come from different places, so every send goes through one chain.
 */
export class Outbox {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly socket: Dealer | Router) {}

  send(frames: Array<Uint8Array | Buffer>): Promise<void> {
    const next = this.chain.then(() => this.socket.send(frames));
    this.chain = next.catch(() => undefined);
    return next;
  }
}
