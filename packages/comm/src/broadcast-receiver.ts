/** Receiver (rank 1..N) of a chunked, pipelined chain broadcast; see broadcast-chain.ts. */
import { FrameType, type FrameHeader } from "@dino-coord/proto";
import type { Logger } from "pino";
import { ackFrame, BROADCAST, broadcastHeader, chunkCount, type MessageDecoder } from "./broadcast-chain";
import { CollectiveAbortedError, CollectiveMismatchError, CollectiveTimeoutError } from "./errors";
import { FrameRejection, parseFrame } from "./frame";
import { FrameInbox, type InboxStats } from "./frame-inbox";
import { groupId } from "./group-id";
import { MemberLifecycle } from "./member-lifecycle";
import { checkRank, checkStep, checkTensor, type CollectiveOptions, resolveOptions, type ResolvedOptions } from "./options";
import { PayloadKernels } from "./payload-kernels";
import { SendQueue } from "./send-queue";

export interface BroadcastReceiverOptions<M> extends CollectiveOptions {
  /** Position in the chain, 1..endpoints.length-1 (rank 0 is the root). */
  rank: number;
  metaCodec: MessageDecoder<M>;
}

export class BroadcastReceiver<M> {
  readonly rank: number;
  readonly groupId: number;
  private readonly options: ResolvedOptions;
  private readonly metaCodec: MessageDecoder<M>;
  private readonly logger: Logger;
  private readonly kernels: PayloadKernels;
  private readonly inbox: FrameInbox;
  private readonly outbox: SendQueue;
  private readonly isLast: boolean;
  private readonly member: MemberLifecycle;
  private seen = new Uint8Array(0);

  constructor(options: BroadcastReceiverOptions<M>) {
    this.options = resolveOptions(options, 2);
    const size = this.options.endpoints.length;
    checkRank(options.rank, size, 1);
    this.rank = options.rank;
    this.metaCodec = options.metaCodec;
    this.isLast = this.rank === size - 1;
    this.groupId = groupId("broadcast", this.options.endpoints, this.options.epoch);
    this.logger = this.options.logger.child({ component: "broadcast-receiver", rank: this.rank, groupId: this.groupId });
    this.kernels = new PayloadKernels(this.options.chunkBytes);
    const { endpoints, highWaterMark, timeoutMs, closeLingerMs } = this.options;
    this.inbox = new FrameInbox(endpoints[this.rank], highWaterMark, this.logger);
    this.outbox = new SendQueue(endpoints[this.isLast ? 0 : this.rank + 1], highWaterMark, timeoutMs, closeLingerMs);
    this.member = new MemberLifecycle({ inbox: this.inbox, outbox: this.outbox }, this.logger, "broadcast aborted", closeLingerMs);
  }

  get stats(): InboxStats {
    return this.inbox.stats;
  }

  start(): Promise<void> {
    return this.member.start();
  }

  /** Fills `into` (which must have the root's length) with step `step`'s tensor and returns its metadata. */
  async receive(into: Float32Array, step: number): Promise<M> {
    checkTensor("into", into);
    checkStep(step);
    this.member.ensureReady("receive");
    return this.member.exclusive(() => this.run(into, step));
  }

  abort(reason?: string): void {
    this.member.abort(reason);
  }

  close(): Promise<void> {
    return this.member.close();
  }

  private async run(into: Float32Array, step: number): Promise<M> {
    const { groupId, kernels, inbox, outbox, rank, member } = this;
    const { timeoutMs, chunkBytes, endpoints } = this.options;
    const chunkElements = chunkBytes / 4;
    const chunks = chunkCount(into.length, chunkElements);
    if (this.seen.length < chunks) this.seen = new Uint8Array(chunks);
    this.seen.fill(0, 0, chunks);
    const bytes = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
    let received = 0;
    let bufferIntact = true;
    let meta: M | undefined;
    let lastProgressAt = Date.now();

    while (received < chunks) {
      const parts = await inbox.receive(lastProgressAt + timeoutMs);
      if (member.abortReason !== null) throw new CollectiveAbortedError({ operation: "broadcast.receive", step, rank, bufferIntact, reason: member.abortReason });
      if (outbox.failure || parts === null) {
        const direction = outbox.failure ? "send" : "receive";
        const peerRank = direction === "send" ? (this.isLast ? 0 : rank + 1) : rank - 1;
        throw new CollectiveTimeoutError({
          operation: "broadcast.receive", step, rank, bufferIntact, peerRank, peerEndpoint: endpoints[peerRank], direction, timeoutMs, received, expected: chunks,
        });
      }
      const frame = parseFrame(parts, BROADCAST, groupId);
      if (frame instanceof FrameRejection) {
        inbox.reject(frame);
        continue;
      }
      const { header: h, payload } = frame;
      const problem = this.check(h, step, into.length, chunkElements, chunks, bufferIntact);
      if (problem) {
        inbox.reject(problem);
        continue;
      }
      if (kernels.checksum(payload) !== h.payloadCrc32) {
        inbox.reject(new FrameRejection("bad-checksum", "payload checksum does not match the header", h));
        continue;
      }
      if (h.chunk === 0) {
        try {
          meta = this.metaCodec.decode(h.meta);
        } catch (err) {
          inbox.reject(new FrameRejection("malformed", `metadata does not decode: ${(err as Error).message}`, h));
          continue;
        }
      }
      bytes.set(payload, h.chunk * chunkBytes);
      bufferIntact = false;
      this.seen[h.chunk] = 1;
      received++;
      lastProgressAt = Date.now();
      inbox.accepted();
      if (!this.isLast) {
        const header = broadcastHeader({
          groupId, step, senderRank: rank, chunk: h.chunk, payloadBytes: h.payloadBytes, payloadCrc32: h.payloadCrc32,
          totalElements: h.totalElements, ...(h.chunk === 0 && { meta: h.meta }),
        });
        outbox.enqueue([header, payload]);
      }
    }
    if (this.isLast) outbox.enqueue(ackFrame(groupId, step, rank));
    return meta as M;
  }

  private check(h: FrameHeader, step: number, length: number, chunkElements: number, chunks: number, bufferIntact: boolean): FrameRejection | null {
    if (h.type !== FrameType.FRAME_TYPE_DATA) return new FrameRejection("malformed", `frame type ${h.type}, a receiver expects data`, h);
    if (h.senderRank !== this.rank - 1) return new FrameRejection("unknown-sender", `sender rank ${h.senderRank}, expected ${this.rank - 1}`, h);
    if (h.step < step) return new FrameRejection("stale-step", `step ${h.step} while receiving step ${step}`, h);
    if (h.step > step) return new FrameRejection("future-step", `step ${h.step} while receiving step ${step}`, h);
    if (h.totalElements !== length) {
      throw new CollectiveMismatchError({
        operation: "broadcast.receive", step, rank: this.rank, bufferIntact, peerRank: h.senderRank, localElements: length, peerElements: h.totalElements,
      });
    }
    if (h.chunk >= chunks) return new FrameRejection("out-of-range", `chunk ${h.chunk} of ${chunks}`, h);
    const expectedBytes = (Math.min((h.chunk + 1) * chunkElements, length) - h.chunk * chunkElements) * 4;
    if (h.payloadBytes !== expectedBytes) return new FrameRejection("wrong-length", `${h.payloadBytes} payload bytes, chunk has ${expectedBytes}`, h);
    if (this.seen[h.chunk]) return new FrameRejection("duplicate", `chunk ${h.chunk} already applied`, h);
    return null;
  }
}
