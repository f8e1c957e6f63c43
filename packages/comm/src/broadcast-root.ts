/** Root (rank 0) of a chunked, pipelined chain broadcast; see broadcast-chain.ts. */
import { FrameType } from "@dino-coord/proto";
import type { Logger } from "pino";
import { BROADCAST, broadcastHeader, chunkCount, type MessageEncoder } from "./broadcast-chain";
import { allocateCollectiveTensor, kernelsHolding } from "./collective-tensor";
import { CollectiveAbortedError, CollectiveTimeoutError } from "./errors";
import { bytesOf, FrameRejection, parseFrame } from "./frame";
import { FrameInbox, type InboxStats } from "./frame-inbox";
import { groupId } from "./group-id";
import { type MemberChannels, MemberLifecycle } from "./member-lifecycle";
import { checkStep, checkTensor, type CollectiveOptions, resolveOptions, type ResolvedOptions } from "./options";
import { PayloadKernels } from "./payload-kernels";
import { SendQueue } from "./send-queue";
import { exportChunk, SHARED_MEMORY_RUN_BYTES } from "./shared-memory-chunks";
import { SharedMemoryFiles } from "./shared-memory-files";
import { allocateSharedTensor, sharedTensorLocation } from "./shared-tensor";

const EMPTY = Buffer.alloc(0);

export interface BroadcastRootOptions<M> extends CollectiveOptions {
  metaCodec: MessageEncoder<M>;
}

export class BroadcastRoot<M> {
  readonly rank = 0;
  readonly groupId: number;
  private readonly options: ResolvedOptions;
  private readonly metaCodec: MessageEncoder<M>;
  private readonly logger: Logger;
  private readonly kernels: PayloadKernels;
  private readonly inbox: FrameInbox;
  private readonly outbox: SendQueue;
  /** `files` is set when every member is on this host: the tensor then goes through the root's file. */
  private readonly channels: MemberChannels;
  private readonly member: MemberLifecycle;

  constructor(options: BroadcastRootOptions<M>) {
    this.options = resolveOptions(options, 2);
    this.metaCodec = options.metaCodec;
    this.groupId = groupId("broadcast", this.options.endpoints, this.options.epoch);
    this.logger = this.options.logger.child({ component: "broadcast-root", rank: 0, receivers: this.receivers, groupId: this.groupId });
    this.kernels = new PayloadKernels(this.options.chunkBytes);
    const { endpoints, highWaterMark, timeoutMs, closeLingerMs } = this.options;
    this.inbox = new FrameInbox(endpoints[0], highWaterMark, this.logger);
    this.outbox = new SendQueue(endpoints[1], highWaterMark, timeoutMs, closeLingerMs);
    this.channels = { inbox: this.inbox, outbox: this.outbox };
    this.member = new MemberLifecycle(this.channels, this.logger, "broadcast aborted", closeLingerMs);
  }

  get receivers(): number {
    return this.options.endpoints.length - 1;
  }

  get stats(): InboxStats {
    return this.inbox.stats;
  }

  start(): Promise<void> {
    return this.member.start({ open: () => this.open() });
  }

  private async open(): Promise<void> {
    const { endpoints, epoch, sharedMemory } = this.options;
    await this.inbox.bind();
    const directory = sharedMemory && endpoints.every((e) => e.startsWith("ipc://")) ? SharedMemoryFiles.usableDirectory() : null;
    if (directory !== null) {
      const files = new SharedMemoryFiles(directory, endpoints, epoch, 0, "broadcast");
      this.channels.files = files;
      files.create();
    }
    this.outbox.connect();
  }

  /**
   * Sends `values` and `meta` to every receiver; resolves once the last receiver has all of
   * it, after which `values` may be changed.
   */
  async send(values: Float32Array, meta: M, step: number): Promise<void> {
    await this.sendChecked(values, meta, step, false);
  }

  /**
   * A tensor for sendInPlace: in shared memory when every member is on this host (so the
   * receivers can read it where it lies), else a collective tensor. Call after start().
   */
  allocateTensor(length: number): Float32Array {
    this.member.ensureReady("allocateTensor");
    return this.channels.files ? allocateSharedTensor(length) : allocateCollectiveTensor(length);
  }

  /**
   * Like send, but where `values` lies in shared memory (allocateTensor) and every member is
   * on this host, receivers get `values` itself: nothing is copied, and receivers that use
   * receiveInPlace go on reading it after this resolves. So change `values` only once the
   * caller knows every receiver is done with it: for instance after a later collective that
   * each receiver enters only after its last read.
   */
  async sendInPlace(values: Float32Array, meta: M, step: number): Promise<void> {
    await this.sendChecked(values, meta, step, true);
  }

  /**
   * Where `values` lies for this group's receivers to read it in place
   * (BroadcastReceiver.viewRootTensor): set when it is a tensor from allocateTensor and every
   * member is on this host. For data the root shares once, not per step.
   */
  inPlaceLocation(values: Float32Array): { file: string; byteOffset: number } | undefined {
    const location = this.channels.files ? sharedTensorLocation(values) : undefined;
    return location && location.directory === this.channels.files?.directory ? { file: location.name, byteOffset: location.byteOffset } : undefined;
  }

  private async sendChecked(values: Float32Array, meta: M, step: number, inPlace: boolean): Promise<void> {
    checkTensor("values", values);
    checkStep(step);
    this.member.ensureReady("send");
    await this.member.exclusive(() => this.run(values, meta, step, inPlace));
  }

  abort(reason?: string): void {
    this.member.abort(reason);
  }

  close(): Promise<void> {
    return this.member.close();
  }

  private async run(values: Float32Array, meta: M, step: number, inPlace: boolean): Promise<void> {
    const { groupId, kernels, inbox, outbox, member } = this;
    const { timeoutMs, chunkBytes, endpoints } = this.options;
    const chunkElements = chunkBytes / 4;
    const metaBytes = this.metaCodec.encode(meta).finish();
    // In place: one doorbell naming where `values` lies. Otherwise, through shared memory: one
    // copy into the root's file, and a doorbell per run of chunks.
    const shared = inPlace ? this.inPlaceLocation(values) : undefined;
    const files = shared ? undefined : this.channels.files;
    const chunks = shared ? 0 : chunkCount(values.length, chunkElements);
    if (shared) {
      const header = broadcastHeader({
        type: FrameType.FRAME_TYPE_SHARED_TENSOR_READY, groupId, step, senderRank: 0, chunk: 0, payloadBytes: values.byteLength,
        totalElements: values.length, meta: metaBytes, sharedTensorFile: shared.file, sharedTensorOffset: shared.byteOffset,
      });
      outbox.enqueue([header, EMPTY]);
    }
    const runChunks = files ? Math.max(1, Math.floor(SHARED_MEMORY_RUN_BYTES / chunkBytes)) : 0;
    files?.reserve(values.byteLength);
    for (let chunk = 0; files && chunk < chunks; chunk += runChunks) {
      const start = chunk * chunkElements;
      const payload = bytesOf(values, start, Math.min(start + runChunks * chunkElements, values.length));
      const header = broadcastHeader({
        type: FrameType.FRAME_TYPE_SHARED_MEMORY_DATA, groupId, step, senderRank: 0, chunk, payloadBytes: payload.length,
        payloadCrc32: exportChunk(files, kernelsHolding(values) ?? kernels, payload, start * 4), totalElements: values.length, ...(chunk === 0 && { meta: metaBytes }),
      });
      outbox.enqueue([header, EMPTY]);
    }
    for (let chunk = 0; !files && chunk < chunks; chunk++) {
      const start = chunk * chunkElements;
      const payload = bytesOf(values, start, Math.min(start + chunkElements, values.length));
      const header = broadcastHeader({
        groupId, step, senderRank: 0, chunk, payloadBytes: payload.length, payloadCrc32: kernels.checksum(payload),
        totalElements: values.length, ...(chunk === 0 && { meta: metaBytes }),
      });
      outbox.enqueue([header, payload]);
    }

    const last = this.receivers;
    const opStart = Date.now();
    for (;;) {
      const deadline = () => Math.max(opStart, outbox.lastProgressAt) + timeoutMs;
      const parts = await inbox.receive(deadline());
      if (member.abortReason !== null) throw new CollectiveAbortedError({ operation: "broadcast.send", step, rank: 0, bufferIntact: true, reason: member.abortReason });
      const sendStalled = outbox.failure !== null;
      if (parts === null || sendStalled) {
        // A slow chain still accepting data moves the deadline; only real silence fails.
        if (!sendStalled && Date.now() < deadline()) continue;
        const waitingOnFirst = sendStalled || outbox.length > 0;
        const peerRank = waitingOnFirst ? 1 : last;
        throw new CollectiveTimeoutError({
          operation: "broadcast.send", step, rank: 0, bufferIntact: true, peerRank, peerEndpoint: endpoints[peerRank],
          direction: waitingOnFirst ? "send" : "receive", timeoutMs, received: 0, expected: 1,
        });
      }
      const frame = parseFrame(parts, BROADCAST, groupId);
      if (frame instanceof FrameRejection) {
        inbox.reject(frame);
        continue;
      }
      const h = frame.header;
      let problem: FrameRejection | null = null;
      if (h.type !== FrameType.FRAME_TYPE_ACK) problem = new FrameRejection("malformed", `frame type ${h.type}, the root expects only acknowledgements`, h);
      else if (h.senderRank !== last) problem = new FrameRejection("unknown-sender", `acknowledgement from rank ${h.senderRank}, expected ${last}`, h);
      else if (h.step < step) problem = new FrameRejection("stale-step", `acknowledgement for step ${h.step} while sending step ${step}`, h);
      else if (h.step > step) problem = new FrameRejection("future-step", `acknowledgement for step ${h.step} while sending step ${step}`, h);
      if (problem) {
        inbox.reject(problem);
        continue;
      }
      inbox.accepted();
      return;
    }
  }
}
