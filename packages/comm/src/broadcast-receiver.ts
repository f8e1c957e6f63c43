/** Receiver (rank 1..N) of a chunked, pipelined chain broadcast; see broadcast-chain.ts. */
import { FrameType, type FrameHeader } from "@dino-coord/proto";
import type { Logger } from "pino";
import { ackFrame, BROADCAST, broadcastHeader, chunkCount, chunksCovered, type MessageDecoder } from "./broadcast-chain";
import { kernelsHolding } from "./collective-tensor";
import { CollectiveAbortedError, CollectiveMismatchError, CollectiveTimeoutError } from "./errors";
import { FrameRejection, parseFrame } from "./frame";
import { FrameInbox, type InboxStats } from "./frame-inbox";
import { groupId } from "./group-id";
import { type MemberChannels, MemberLifecycle } from "./member-lifecycle";
import { checkRank, checkStep, checkTensor, type CollectiveOptions, resolveOptions, type ResolvedOptions } from "./options";
import { PayloadKernels } from "./payload-kernels";
import { SendQueue } from "./send-queue";
import { gatherChunk } from "./shared-memory-chunks";
import { SharedMemoryFiles } from "./shared-memory-files";

const EMPTY = Buffer.alloc(0);

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
  /** `files` is set when every member is on this host: payloads may then be read from the root's file. */
  private readonly channels: MemberChannels;
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
    this.channels = { inbox: this.inbox, outbox: this.outbox };
    this.member = new MemberLifecycle(this.channels, this.logger, "broadcast aborted", closeLingerMs);
  }

  get stats(): InboxStats {
    return this.inbox.stats;
  }

  start(): Promise<void> {
    return this.member.start({ open: () => this.open() });
  }

  private async open(): Promise<void> {
    const { endpoints, epoch } = this.options;
    await this.inbox.bind();
    const directory = endpoints.every((e) => e.startsWith("ipc://")) ? SharedMemoryFiles.usableDirectory() : null;
    if (directory !== null) this.channels.files = new SharedMemoryFiles(directory, endpoints, epoch, this.rank, "broadcast");
    this.outbox.connect();
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
      let frameMeta: M | undefined;
      if (h.chunk === 0) {
        try {
          frameMeta = this.metaCodec.decode(h.meta);
        } catch (err) {
          inbox.reject(new FrameRejection("malformed", `metadata does not decode: ${(err as Error).message}`, h));
          continue;
        }
      }
      const start = h.chunk * chunkBytes;
      const shared = h.type === FrameType.FRAME_TYPE_SHARED_MEMORY_DATA;
      if (shared) {
        if (!this.channels.files) {
          inbox.reject(new FrameRejection("malformed", "shared-memory payload, but not every member of this group is on this host", h));
          continue;
        }
        // Streams into `into` before the checksum is known: a bad run leaves bytes there that
        // the good run for the same chunks overwrites (`into` holds nothing else of value).
        bufferIntact = false;
        const result = gatherChunk(this.channels.files, kernelsHolding(into) ?? kernels, 0, bytes.subarray(start, start + h.payloadBytes), start, h.payloadCrc32);
        if (result !== true) {
          inbox.reject(result === false ? new FrameRejection("bad-checksum", "shared-memory payload checksum does not match the header", h) : new FrameRejection(result.reason, result.detail, h));
          continue;
        }
      } else {
        if (kernels.checksum(payload) !== h.payloadCrc32) {
          inbox.reject(new FrameRejection("bad-checksum", "payload checksum does not match the header", h));
          continue;
        }
        bytes.set(payload, start);
        bufferIntact = false;
      }
      if (h.chunk === 0) meta = frameMeta;
      const chunksApplied = shared ? chunksCovered(into.length, chunkElements, h.chunk, h.payloadBytes) : 1;
      this.seen.fill(1, h.chunk, h.chunk + chunksApplied);
      received += chunksApplied;
      lastProgressAt = Date.now();
      inbox.accepted(chunksApplied);
      if (!this.isLast) {
        const header = broadcastHeader({
          type: h.type, groupId, step, senderRank: rank, chunk: h.chunk, payloadBytes: h.payloadBytes, payloadCrc32: h.payloadCrc32,
          totalElements: h.totalElements, ...(h.chunk === 0 && { meta: h.meta }),
        });
        outbox.enqueue([header, shared ? EMPTY : payload]);
      }
    }
    if (this.isLast) outbox.enqueue(ackFrame(groupId, step, rank));
    return meta as M;
  }

  private check(h: FrameHeader, step: number, length: number, chunkElements: number, chunks: number, bufferIntact: boolean): FrameRejection | null {
    const shared = h.type === FrameType.FRAME_TYPE_SHARED_MEMORY_DATA;
    if (h.type !== FrameType.FRAME_TYPE_DATA && !shared) return new FrameRejection("malformed", `frame type ${h.type}, a receiver expects data`, h);
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
    // A shared-memory doorbell may announce a run of whole chunks; a socket frame carries one.
    const covered = shared ? chunksCovered(length, chunkElements, h.chunk, h.payloadBytes) : h.payloadBytes === expectedBytes ? 1 : 0;
    if (covered === 0) return new FrameRejection("wrong-length", `${h.payloadBytes} payload bytes, chunk has ${expectedBytes}`, h);
    if (this.seen.subarray(h.chunk, h.chunk + covered).includes(1)) return new FrameRejection("duplicate", `chunks ${h.chunk}..${h.chunk + covered - 1} (some) already applied`, h);
    return null;
  }
}
