/** Receiver (rank 1..N) of a chunked, pipelined chain broadcast; see broadcast-chain.ts. */
import { FrameType, type FrameHeader } from "@dino-coord/proto";
import type { Logger } from "pino";
import { ackFrame, BROADCAST, broadcastHeader, chunkCount, chunksCovered, type MessageDecoder } from "./broadcast-chain";
import { allocateCollectiveTensor, kernelsHolding } from "./collective-tensor";
import { CollectiveAbortedError, CollectiveMismatchError, CollectiveTimeoutError, CollectiveUsageError } from "./errors";
import { FrameRejection, parseFrame } from "./frame";
import { FrameInbox, type InboxStats } from "./frame-inbox";
import { groupId } from "./group-id";
import { type MemberChannels, MemberLifecycle } from "./member-lifecycle";
import { checkRank, checkStep, checkTensor, type CollectiveOptions, resolveOptions, type ResolvedOptions } from "./options";
import { PayloadKernels } from "./payload-kernels";
import { SendQueue } from "./send-queue";
import { gatherChunk } from "./shared-memory-chunks";
import { sharedMappingStatus } from "./shared-mapping";
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
  /** receiveInPlace's buffer where the root's tensor is copied rather than read in place. */
  private ownCopy: Float32Array | undefined;
  /** The last in-place view handed out; the same object while the root's tensor stays where it is. */
  private rootView: Float32Array | undefined;

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
    return (await this.member.exclusive(() => this.run(into, step, false))).meta;
  }

  /**
   * Step `step`'s tensor of `length` elements and its metadata. Where the root sent it in place
   * (BroadcastRoot.sendInPlace, every member on this host), `values` is a read-only view of the
   * root's own tensor: reading it costs no copy, it changes when the root changes it, and
   * writing to it crashes the process. Otherwise `values` is this receiver's own buffer, filled
   * as by receive() and reused by the next call.
   */
  async receiveInPlace(length: number, step: number): Promise<{ meta: M; values: Float32Array }> {
    checkStep(step);
    this.member.ensureReady("receive");
    if (this.ownCopy?.length !== length) this.ownCopy = allocateCollectiveTensor(length);
    const into = this.ownCopy;
    return this.member.exclusive(() => this.run(into, step, true));
  }

  /**
   * A read-only view of `length` elements of the root's tensor at a location the root named
   * (BroadcastRoot.inPlaceLocation), for data it shares once rather than per step. Throws a
   * CollectiveUsageError where that cannot be read in place here.
   */
  viewRootTensor(location: { file: string; byteOffset: number }, length: number): Float32Array {
    const cannot = (why: string) => new CollectiveUsageError("viewRootTensor", `cannot read the root's shared tensor ${location.file}: ${why}`);
    const files = this.channels.files;
    if (!files) throw cannot("not every member of this group is on this host (or the group was not started)");
    if (location.byteOffset % 4 !== 0) throw cannot(`offset ${location.byteOffset} is not a multiple of 4`);
    const view = files.viewNamed(location.file, location.byteOffset, length * 4);
    if (view === null) throw cannot(`shared memory cannot be mapped in this process (${sharedMappingStatus()})`);
    if (!(view instanceof Uint8Array)) throw cannot(view.detail);
    return new Float32Array(view.buffer, view.byteOffset, length);
  }

  abort(reason?: string): void {
    this.member.abort(reason);
  }

  close(): Promise<void> {
    return this.member.close();
  }

  private async run(into: Float32Array, step: number, inPlace: boolean): Promise<{ meta: M; values: Float32Array }> {
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
    let values = into;
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
      const shared = h.type === FrameType.FRAME_TYPE_SHARED_MEMORY_DATA || h.type === FrameType.FRAME_TYPE_SHARED_TENSOR_READY;
      if (h.type === FrameType.FRAME_TYPE_SHARED_TENSOR_READY) {
        const result = this.readRootTensor(h, into, inPlace);
        if (result instanceof FrameRejection) {
          inbox.reject(result);
          continue;
        }
        bufferIntact = bufferIntact && result !== into;
        values = result;
      } else if (shared) {
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
          totalElements: h.totalElements, ...(h.chunk === 0 && { meta: h.meta }), sharedTensorFile: h.sharedTensorFile, sharedTensorOffset: h.sharedTensorOffset,
        });
        outbox.enqueue([header, shared ? EMPTY : payload]);
      }
    }
    if (this.isLast) outbox.enqueue(ackFrame(groupId, step, rank));
    return { meta: meta as M, values };
  }

  /**
   * The root's tensor that a FRAME_TYPE_SHARED_TENSOR_READY names: a view of it where it lies
   * (in place, files mapped), else `into` with a copy of it; a rejection if the frame does not
   * name a readable shared tensor.
   */
  private readRootTensor(h: FrameHeader, into: Float32Array, inPlace: boolean): Float32Array | FrameRejection {
    const bytes = new Uint8Array(into.buffer, into.byteOffset, into.byteLength);
    const files = this.channels.files;
    if (!files) return new FrameRejection("malformed", "shared tensor doorbell, but not every member of this group is on this host", h);
    const name = h.sharedTensorFile ?? "";
    const offset = h.sharedTensorOffset ?? 0;
    if (offset % 4 !== 0) return new FrameRejection("malformed", `shared tensor offset ${offset} is not a multiple of 4`, h);
    const view = inPlace ? files.viewNamed(name, offset, bytes.length) : null;
    if (view instanceof Uint8Array) {
      const last = this.rootView;
      if (last && last.buffer === view.buffer && last.byteOffset === view.byteOffset && last.byteLength === view.byteLength) return last;
      return (this.rootView = new Float32Array(view.buffer, view.byteOffset, view.byteLength / 4));
    }
    const problem = view ?? files.readNamed(name, bytes, offset);
    return problem ? new FrameRejection(problem.reason, problem.detail, h) : into;
  }

  private check(h: FrameHeader, step: number, length: number, chunkElements: number, chunks: number, bufferIntact: boolean): FrameRejection | null {
    const shared = h.type === FrameType.FRAME_TYPE_SHARED_MEMORY_DATA;
    const wholeTensor = h.type === FrameType.FRAME_TYPE_SHARED_TENSOR_READY;
    if (h.type !== FrameType.FRAME_TYPE_DATA && !shared && !wholeTensor) return new FrameRejection("malformed", `frame type ${h.type}, a receiver expects data`, h);
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
    // A shared tensor doorbell announces the whole tensor.
    const covered = wholeTensor ? (h.chunk === 0 && h.payloadBytes === length * 4 ? chunks : 0) : shared ? chunksCovered(length, chunkElements, h.chunk, h.payloadBytes) : h.payloadBytes === expectedBytes ? 1 : 0;
    if (covered === 0) return new FrameRejection("wrong-length", `${h.payloadBytes} payload bytes, ${wholeTensor ? `the whole tensor from chunk 0 has ${length * 4}` : `chunk has ${expectedBytes}`}`, h);
    if (this.seen.subarray(h.chunk, h.chunk + covered).includes(1)) return new FrameRejection("duplicate", `chunks ${h.chunk}..${h.chunk + covered - 1} (some) already applied`, h);
    return null;
  }
}
