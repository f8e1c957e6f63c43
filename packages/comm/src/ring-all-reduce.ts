/**
 * Ring all-reduce (reduce-scatter, then all-gather) over ZeroMQ, in place on a Float32Array.
 *
 * Rank r binds a Pull socket at endpoints[r] and pushes to endpoints[r+1]. The schedule is
 * in RingLayout: every received chunk is checked, added (or stored), and forwarded
 * straight away, so sending, receiving and adding of different chunks overlap.
 *
 * Determinism: the sum of a segment is accumulated once, along the fixed ring order, by
 * the ranks it passes through; its owner's bytes are then copied to every other rank. So
 * all ranks end with bitwise identical results for a given membership.
 *
 * Zero copy: a rank's own segment is sent as a Buffer view of the caller's array; everything
 * forwarded later is the received ZeroMQ buffer itself (the sum is written into it). The
 * caller's array is therefore referenced by ZeroMQ only for the step-0 sends, and those
 * have provably reached the next rank once the operation completes (the finished segment
 * that comes back around depends on them), so the caller may reuse the array immediately.
 *
 * Same host (every endpoint ipc://): payloads go through SharedMemoryFiles instead, and
 * ZeroMQ carries only the header as a doorbell. During reduce-scatter the receiver reads the
 * sender's file into the kernels' scratch, adds and verifies there, and writes the sum to its
 * own file; during all-gather every rank reads a finished segment straight from its owner's
 * file and only forwards the doorbell. The summation order is the same as over sockets.
 * Nothing is kept referencing the caller's array: its bytes are copied into the file.
 *
 * The coordinator receives the reduced sum by joining the ring as one more member that
 * contributes zeros.
 */
import { CollectiveKind, FrameType, type FrameHeader } from "@dino-coord/proto";
import type { Logger } from "pino";
import { CollectiveAbortedError, CollectiveMismatchError, CollectiveTimeoutError } from "./errors";
import { bytesOf, encodeHeader, FrameRejection, parseFrame } from "./frame";
import { FrameInbox, type InboxStats } from "./frame-inbox";
import { groupId } from "./group-id";
import { type MemberChannels, MemberLifecycle } from "./member-lifecycle";
import { checkRank, checkStep, checkTensor, type CollectiveOptions, resolveOptions, type ResolvedOptions } from "./options";
import { PayloadKernels } from "./payload-kernels";
import { RingLayout } from "./ring-layout";
import { SendQueue } from "./send-queue";
import { SharedMemoryFiles } from "./shared-memory-files";

const EMPTY = Buffer.alloc(0);

export interface RingAllReduceOptions extends CollectiveOptions {
  /** This process's position in the ring, 0..endpoints.length-1. */
  rank: number;
}

export class RingAllReduce {
  readonly rank: number;
  readonly worldSize: number;
  /** Identity of this membership; frames carrying another group id are rejected. */
  readonly groupId: number;
  private readonly options: ResolvedOptions;
  private readonly logger: Logger;
  private readonly kernels: PayloadKernels;
  /** `files` is set when every rank is on this host: peers' payloads may arrive through shared memory. */
  private readonly channels: MemberChannels = {};
  private readonly member: MemberLifecycle;
  private layout?: RingLayout;
  private seen = new Uint8Array(0);
  /** Whether this rank sends its payloads through its own shared-memory file. */
  private sendsShared = false;

  constructor(options: RingAllReduceOptions) {
    this.options = resolveOptions(options, 1);
    this.worldSize = this.options.endpoints.length;
    checkRank(options.rank, this.worldSize);
    this.rank = options.rank;
    this.groupId = groupId("all-reduce", this.options.endpoints, this.options.epoch);
    this.logger = this.options.logger.child({ component: "ring-all-reduce", rank: this.rank, worldSize: this.worldSize, groupId: this.groupId });
    this.kernels = new PayloadKernels(this.options.chunkBytes);
    this.member = new MemberLifecycle(this.channels, this.logger, "ring aborted", this.options.closeLingerMs);
  }

  /** Binds this rank's endpoint and connects to the next rank (peers may start in any order). */
  async start(): Promise<void> {
    await this.member.start({ create: () => this.createChannels(), open: () => this.openChannels() });
    this.logger.debug({ endpoint: this.options.endpoints[this.rank] }, "ring member started");
  }

  /** A ring of one has nobody to talk to, so it gets no sockets. */
  private createChannels(): void {
    if (this.worldSize === 1) return;
    const { endpoints, highWaterMark, timeoutMs, closeLingerMs } = this.options;
    this.channels.inbox = new FrameInbox(endpoints[this.rank], highWaterMark, this.logger);
    this.channels.outbox = new SendQueue(endpoints[this.nextRank], highWaterMark, timeoutMs, closeLingerMs);
  }

  private async openChannels(): Promise<void> {
    const { inbox, outbox } = this.channels;
    if (!inbox || !outbox) return;
    const { endpoints } = this.options;
    await inbox.bind();
    const directory = endpoints.every((e) => e.startsWith("ipc://")) ? SharedMemoryFiles.usableDirectory() : null;
    if (directory !== null) {
      const files = new SharedMemoryFiles(directory, endpoints, this.options.epoch, this.rank);
      this.channels.files = files;
      if (this.options.sharedMemory) {
        files.create();
        this.sendsShared = true;
      }
    }
    outbox.connect();
  }

  /** Counters of accepted and rejected frames (rejections are also logged at warn). */
  get stats(): InboxStats {
    return this.channels.inbox?.stats ?? { framesAccepted: 0, framesRejected: 0, rejectedByReason: {} };
  }

  /**
   * Replaces `values` by the element-wise sum of every rank's `values` (same length and
   * step on all ranks). On failure the instance is closed (build a new ring to retry) and
   * the error says whether `values` still holds this rank's input.
   */
  async allReduce(values: Float32Array, step: number): Promise<void> {
    checkTensor("values", values);
    checkStep(step);
    this.member.ensureReady("allReduce", " (call start() first)");
    if (this.worldSize === 1 || values.length === 0) return;
    await this.member.exclusive(() => this.run(values, step));
  }

  /** Cancels the operation in progress (it rejects with CollectiveAbortedError) and closes the sockets. */
  abort(reason?: string): void {
    this.member.abort(reason);
  }

  /** Lets queued frames reach the next rank (bounded by closeLingerMs), then closes. */
  close(): Promise<void> {
    return this.member.close();
  }

  private get nextRank(): number {
    return (this.rank + 1) % this.worldSize;
  }

  private get previousRank(): number {
    return (this.rank - 1 + this.worldSize) % this.worldSize;
  }

  private layoutFor(length: number): RingLayout {
    if (this.layout?.length !== length) {
      this.layout = new RingLayout(length, this.worldSize, this.options.chunkBytes / 4);
      const bits = this.layout.ringSteps * this.layout.maxChunksPerSegment();
      if (this.seen.length < bits) this.seen = new Uint8Array(bits);
    }
    return this.layout;
  }

  private async run(values: Float32Array, step: number): Promise<void> {
    const inbox = this.channels.inbox!;
    const outbox = this.channels.outbox!;
    const peerFiles = this.channels.files;
    const layout = this.layoutFor(values.length);
    const { rank, worldSize, groupId, kernels, member } = this;
    const { timeoutMs } = this.options;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const header = (ringStep: number, chunk: number, payloadBytes: number, checksum: number, type = FrameType.FRAME_TYPE_DATA) =>
      encodeHeader({
        kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, type, groupId, step, senderRank: rank,
        ringStep, chunk, payloadBytes, payloadCrc32: checksum, totalElements: values.length,
      });
    const SHARED = FrameType.FRAME_TYPE_SHARED_MEMORY_DATA;
    // With an empty segment some rank might never open a peer's file before that peer closes it.
    const files = this.sendsShared && values.length >= worldSize ? peerFiles : undefined;
    files?.reserve(values.byteLength);
    /** Sends `payload` (the chunk at byte `start`) as the ring step `ringStep` message. */
    const send = (ringStep: number, chunk: number, payload: Uint8Array, start: number, checksum: number) => {
      if (files) {
        files.write(payload, start);
        outbox.enqueue([header(ringStep, chunk, payload.length, checksum, SHARED), EMPTY]);
      } else {
        outbox.enqueue([header(ringStep, chunk, payload.length, checksum), Buffer.isBuffer(payload) ? payload : Buffer.from(payload)]);
      }
    };

    for (let chunk = 0; chunk < layout.chunkCount(rank); chunk++) {
      const payload = bytesOf(values, layout.chunkStart(rank, chunk), layout.chunkEnd(rank, chunk));
      const checksum = kernels.checksum(payload);
      // checksum() left a copy in the scratch, still in cache: write that one to the file.
      send(0, chunk, files ? kernels.scratch(payload.length) : payload, layout.chunkStart(rank, chunk) * 4, checksum);
    }

    const expected = layout.expectedMessages(rank);
    const chunkSlots = layout.maxChunksPerSegment();
    this.seen.fill(0);
    let received = 0;
    let lastProgressAt = Date.now();
    let bufferIntact = true;
    const failure = (direction: "receive" | "send") => {
      if (member.abortReason !== null) return new CollectiveAbortedError({ operation: "allReduce", step, rank, bufferIntact, reason: member.abortReason });
      const peerRank = direction === "receive" ? this.previousRank : this.nextRank;
      return new CollectiveTimeoutError({
        operation: "allReduce", step, rank, bufferIntact, peerRank, peerEndpoint: this.options.endpoints[peerRank],
        direction, timeoutMs, received, expected,
      });
    };

    while (received < expected) {
      const parts = await inbox.receive(lastProgressAt + timeoutMs);
      if (member.abortReason !== null) throw failure("receive");
      if (outbox.failure) throw failure("send");
      if (parts === null) throw failure("receive");

      const frame = parseFrame(parts, CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, groupId);
      if (frame instanceof FrameRejection) {
        inbox.reject(frame);
        continue;
      }
      const { header: h, payload } = frame;
      const problem = this.check(h, step, layout, values.length, bufferIntact);
      if (problem) {
        inbox.reject(problem);
        continue;
      }
      const ringStep = h.ringStep;
      const segment = layout.receivedSegment(rank, ringStep);
      const slot = ringStep * chunkSlots + h.chunk;
      if (this.seen[slot]) {
        inbox.reject(new FrameRejection("duplicate", `ring step ${ringStep} chunk ${h.chunk} already applied`, h));
        continue;
      }
      const start = layout.chunkStart(segment, h.chunk) * 4;
      if (h.type === SHARED) {
        // Reduce-scatter data is in the sender's file, all-gather data in the segment owner's.
        const source = layout.isReduceScatter(ringStep) ? h.senderRank : (segment - 1 + worldSize) % worldSize;
        const scratch = kernels.scratch(h.payloadBytes);
        const problem = peerFiles
          ? peerFiles.read(source, scratch, start)
          : { reason: "malformed" as const, detail: "shared-memory payload, but not every rank of this group is on this host" };
        if (problem) {
          inbox.reject(new FrameRejection(problem.reason, problem.detail, h));
          continue;
        }
        let checksum: number;
        if (layout.isReduceScatter(ringStep)) {
          const sum = kernels.accumulateScratchVerified(bytes.subarray(start, start + scratch.length), h.payloadCrc32);
          if (sum === null) {
            inbox.reject(new FrameRejection("bad-checksum", "shared-memory payload checksum does not match the header", h));
            continue;
          }
          checksum = sum;
          if (ringStep === worldSize - 2) {
            bytes.set(scratch, start);
            bufferIntact = false;
            this.openPeerFiles();
          }
        } else {
          if (kernels.checksumScratch(scratch.length) !== h.payloadCrc32) {
            inbox.reject(new FrameRejection("bad-checksum", "shared-memory payload checksum does not match the header", h));
            continue;
          }
          checksum = h.payloadCrc32;
          bytes.set(scratch, start);
          bufferIntact = false;
        }
        this.seen[slot] = 1;
        received++;
        lastProgressAt = Date.now();
        inbox.accepted();
        if (ringStep + 1 < layout.ringSteps) {
          if (!layout.isReduceScatter(ringStep)) outbox.enqueue([header(ringStep + 1, h.chunk, scratch.length, checksum, SHARED), EMPTY]);
          else if (files) send(ringStep + 1, h.chunk, scratch, start, checksum);
          else outbox.enqueue([header(ringStep + 1, h.chunk, scratch.length, checksum), Buffer.from(scratch)]);
        }
        continue;
      }
      let checksum: number;
      if (layout.isReduceScatter(ringStep)) {
        const sum = kernels.accumulateVerified(payload, bytes.subarray(start, start + payload.length), h.payloadCrc32);
        if (sum === null) {
          inbox.reject(new FrameRejection("bad-checksum", "payload checksum does not match the header", h));
          continue;
        }
        checksum = sum;
        if (ringStep === worldSize - 2) {
          bytes.set(payload, start);
          bufferIntact = false;
          this.openPeerFiles();
        }
      } else {
        if (kernels.checksum(payload) !== h.payloadCrc32) {
          inbox.reject(new FrameRejection("bad-checksum", "payload checksum does not match the header", h));
          continue;
        }
        checksum = h.payloadCrc32;
        bytes.set(payload, start);
        bufferIntact = false;
      }
      this.seen[slot] = 1;
      received++;
      lastProgressAt = Date.now();
      inbox.accepted();
      if (ringStep + 1 < layout.ringSteps) {
        if (layout.isReduceScatter(ringStep)) send(ringStep + 1, h.chunk, payload, start, checksum);
        else outbox.enqueue([header(ringStep + 1, h.chunk, payload.length, checksum), payload]);
      }
    }
  }

  /**
   * Called on a finished sum: every rank has started (the sum went through all of them) and
   * none can finish before this rank has, so all files exist and are kept until then. Opening
   * them now means no all-gather read can miss a file whose owner already closed.
   */
  private openPeerFiles(): void {
    this.channels.files?.openPeers();
  }

  /** Checks that a well-formed frame of this group is the next rank's data for this step. */
  private check(h: FrameHeader, step: number, layout: RingLayout, length: number, bufferIntact: boolean): FrameRejection | null {
    if (h.type !== FrameType.FRAME_TYPE_DATA && h.type !== FrameType.FRAME_TYPE_SHARED_MEMORY_DATA) return new FrameRejection("malformed", `frame type ${h.type} in an all-reduce`, h);
    if (h.senderRank !== this.previousRank) return new FrameRejection("unknown-sender", `sender rank ${h.senderRank}, expected ${this.previousRank}`, h);
    if (h.step < step) return new FrameRejection("stale-step", `step ${h.step} while reducing step ${step}`, h);
    if (h.step > step) return new FrameRejection("future-step", `step ${h.step} while reducing step ${step}`, h);
    if (h.totalElements !== length) {
      throw new CollectiveMismatchError({
        operation: "allReduce", step, rank: this.rank, bufferIntact, peerRank: h.senderRank, localElements: length, peerElements: h.totalElements,
      });
    }
    if (h.ringStep >= layout.ringSteps) return new FrameRejection("out-of-range", `ring step ${h.ringStep} of ${layout.ringSteps}`, h);
    const segment = layout.receivedSegment(this.rank, h.ringStep);
    if (h.chunk >= layout.chunkCount(segment)) return new FrameRejection("out-of-range", `chunk ${h.chunk} of ${layout.chunkCount(segment)} in segment ${segment}`, h);
    const expectedBytes = (layout.chunkEnd(segment, h.chunk) - layout.chunkStart(segment, h.chunk)) * 4;
    if (h.payloadBytes !== expectedBytes) return new FrameRejection("wrong-length", `${h.payloadBytes} payload bytes, chunk has ${expectedBytes}`, h);
    return null;
  }
}
