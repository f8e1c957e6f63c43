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
 * Same host (every endpoint ipc://), by default: no ring at all. Each rank sums one segment
 * straight from every rank's input in shared memory and the others copy it from there
 * (direct-all-reduce.ts): less than half the memory traffic of a ring through memory, and
 * the same bytes, because the additions keep the ring's order.
 *
 * Same host with sameHostSchedule "ring": payloads go through SharedMemoryFiles instead, and
 * ZeroMQ carries only the header as a doorbell. A doorbell announces a run of whole chunks, up
 * to SHARED_MEMORY_RUN_BYTES: one ZeroMQ round trip per run, not per chunk, because with many
 * members on few cores process wake-ups cost as much as the bytes. During
 * reduce-scatter the receiver streams the sender's file through the kernels' scratch block by
 * block (shared-memory-chunks.ts), adding its share and writing the sums to its own file;
 * during all-gather every rank reads a finished segment straight from its owner's file and
 * only forwards the doorbell. The summation order is the same as over sockets. Nothing is kept
 * referencing the caller's array: its bytes are copied into the file. An array from
 * allocateCollectiveTensor is checksummed, added and copied where it lies (fewer copies).
 *
 * The coordinator receives the reduced sum by joining the ring as one more member that
 * contributes zeros.
 */
import { CollectiveKind, FrameType, type FrameHeader } from "@dino-coord/proto";
import type { Logger } from "pino";
import { DirectAllReduce } from "./direct-all-reduce";
import { CollectiveAbortedError, CollectiveMismatchError, CollectiveTimeoutError, CollectiveUsageError } from "./errors";
import { allocateCollectiveTensor, kernelsHolding } from "./collective-tensor";
import { bytesOf, encodeHeader, FrameRejection, parseFrame } from "./frame";
import { FrameInbox, type InboxStats } from "./frame-inbox";
import { groupId } from "./group-id";
import { type MemberChannels, MemberLifecycle } from "./member-lifecycle";
import { checkRank, checkStep, checkTensor, type CollectiveOptions, resolveOptions, type ResolvedOptions } from "./options";
import { PayloadKernels } from "./payload-kernels";
import { RingLayout } from "./ring-layout";
import { SendQueue } from "./send-queue";
import { exportChunk, gatherChunk, reduceChunk, SHARED_MEMORY_RUN_BYTES } from "./shared-memory-chunks";
import { SharedMemoryFiles } from "./shared-memory-files";
import { allocateSharedTensor } from "./shared-tensor";

const EMPTY = Buffer.alloc(0);

export interface RingAllReduceOptions extends CollectiveOptions {
  /** This process's position in the ring, 0..endpoints.length-1. */
  rank: number;
  /**
   * With sharedMemory on one host: "direct" (default) sums each segment straight from every
   * member's input (direct-all-reduce.ts, least memory traffic); "ring" runs the ring through
   * the files, and then members may differ in sharedMemory. Must be the same on every rank.
   */
  sameHostSchedule?: "direct" | "ring";
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
  private readonly sameHostSchedule: "direct" | "ring";
  /** Set when every member is on this host and the schedule is direct. */
  private direct?: DirectAllReduce;

  constructor(options: RingAllReduceOptions) {
    this.options = resolveOptions(options, 1);
    this.worldSize = this.options.endpoints.length;
    checkRank(options.rank, this.worldSize);
    this.rank = options.rank;
    this.sameHostSchedule = options.sameHostSchedule ?? "direct";
    if (this.sameHostSchedule !== "direct" && this.sameHostSchedule !== "ring") {
      throw new CollectiveUsageError("sameHostSchedule", `must be "direct" or "ring", got ${JSON.stringify(options.sameHostSchedule)}`);
    }
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
        if (this.sameHostSchedule === "direct") this.startDirect(files);
      }
    }
    outbox.connect();
    for (const other of this.channels.otherOutboxes ?? []) other.connect();
  }

  /** The direct schedule sends to every peer, so it needs a send queue to each. */
  private startDirect(files: SharedMemoryFiles): void {
    const { endpoints, highWaterMark, timeoutMs, closeLingerMs } = this.options;
    const outboxes = endpoints.map((endpoint, peer) =>
      peer === this.rank ? undefined : peer === this.nextRank ? this.channels.outbox! : new SendQueue(endpoint, highWaterMark, timeoutMs, closeLingerMs),
    );
    this.channels.otherOutboxes = outboxes.filter((outbox): outbox is SendQueue => outbox !== undefined && outbox !== this.channels.outbox);
    this.direct = new DirectAllReduce({
      rank: this.rank, worldSize: this.worldSize, groupId: this.groupId, endpoints, timeoutMs, files,
      inbox: this.channels.inbox!, outboxes, abortReason: () => this.member.abortReason,
    });
  }

  /**
   * A zeroed tensor of `length` elements that this ring reduces fastest (call after start()):
   * one that same-host peers read in place when the schedule is direct, else a collective
   * tensor. A shared tensor takes room in /dev/shm, so members on other hosts get none.
   */
  allocateTensor(length: number): Float32Array {
    return this.direct ? allocateSharedTensor(length) : allocateCollectiveTensor(length);
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
    if (this.direct) return this.direct.run(values, step, kernelsHolding(values) ?? this.kernels);
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
    const streamKernels = kernelsHolding(values) ?? kernels;
    /** Sends `payload` (the chunk at byte `start`, received or summed here) as the ring step `ringStep` message. */
    const send = (ringStep: number, chunk: number, payload: Buffer, start: number, checksum: number) => {
      if (files) {
        files.write(payload, start);
        outbox.enqueue([header(ringStep, chunk, payload.length, checksum, SHARED), EMPTY]);
      } else {
        outbox.enqueue([header(ringStep, chunk, payload.length, checksum), payload]);
      }
    };

    const ownChunks = layout.chunkCount(rank);
    if (files) {
      // Through shared memory a doorbell announces a run of chunks; every rank passes the run on
      // as it came, so a segment costs a few ZeroMQ round trips instead of one per chunk.
      const runChunks = Math.max(1, Math.floor(SHARED_MEMORY_RUN_BYTES / this.options.chunkBytes));
      for (let chunk = 0; chunk < ownChunks; chunk += runChunks) {
        const start = layout.chunkStart(rank, chunk);
        const payload = bytesOf(values, start, layout.chunkEnd(rank, Math.min(chunk + runChunks, ownChunks) - 1));
        outbox.enqueue([header(0, chunk, payload.length, exportChunk(files, streamKernels, payload, start * 4), SHARED), EMPTY]);
      }
    } else {
      for (let chunk = 0; chunk < ownChunks; chunk++) {
        const payload = bytesOf(values, layout.chunkStart(rank, chunk), layout.chunkEnd(rank, chunk));
        outbox.enqueue([header(0, chunk, payload.length, kernels.checksum(payload)), payload]);
      }
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
      const chunks = layout.chunksCovered(segment, h.chunk, h.payloadBytes);
      if (this.seen.subarray(slot, slot + chunks).includes(1)) {
        inbox.reject(new FrameRejection("duplicate", `ring step ${ringStep} chunks ${h.chunk}..${h.chunk + chunks - 1} (some) already applied`, h));
        continue;
      }
      const start = layout.chunkStart(segment, h.chunk) * 4;
      if (h.type === SHARED) {
        if (!peerFiles) {
          inbox.reject(new FrameRejection("malformed", "shared-memory payload, but not every rank of this group is on this host", h));
          continue;
        }
        const local = bytes.subarray(start, start + h.payloadBytes);
        let checksum: number;
        let socketPayload: Buffer | undefined;
        if (layout.isReduceScatter(ringStep)) {
          // The sums go to this rank's file when it sends through shared memory, else into a
          // buffer that becomes the socket payload.
          const sink = files ? "own-file" : Buffer.allocUnsafe(local.length);
          const result = reduceChunk(peerFiles, streamKernels, h.senderRank, local, start, h.payloadCrc32, sink);
          if (result === null || typeof result === "object") {
            inbox.reject(result === null ? new FrameRejection("bad-checksum", "shared-memory payload checksum does not match the header", h) : new FrameRejection(result.reason, result.detail, h));
            continue;
          }
          checksum = result;
          if (sink !== "own-file") socketPayload = sink;
          if (ringStep === worldSize - 2) {
            // Only now is the sum known good, so only now may it replace this rank's share in
            // the caller's array (a bad chunk must leave that share for the good one).
            if (sink === "own-file") files!.readOwn(local, start);
            else local.set(sink);
            bufferIntact = false;
            this.openPeerFiles();
          }
        } else {
          // The finished chunk streams into the caller's array before its checksum is known, so
          // the region must hold nothing still needed: this rank's share of a segment it has
          // already added into (a legitimate all-gather chunk always comes after that), or of its
          // own segment once copied to its file. Sent through a socket, that share may still be
          // referenced by ZeroMQ, so it is gathered into a private buffer first.
          const segmentIsOwn = segment === rank;
          const addedSlot = layout.reduceScatterStep(rank, segment) * chunkSlots + h.chunk;
          if (!segmentIsOwn && this.seen.subarray(addedSlot, addedSlot + chunks).includes(0)) {
            inbox.reject(new FrameRejection("malformed", `all-gather of segment ${segment} chunk ${h.chunk} before this rank added its share`, h));
            continue;
          }
          const target = segmentIsOwn && !files ? Buffer.allocUnsafe(local.length) : local;
          bufferIntact = false;
          const owner = (segment - 1 + worldSize) % worldSize;
          const result = gatherChunk(peerFiles, streamKernels, owner, target, start, h.payloadCrc32);
          if (result !== true) {
            inbox.reject(result === false ? new FrameRejection("bad-checksum", "shared-memory payload checksum does not match the header", h) : new FrameRejection(result.reason, result.detail, h));
            continue;
          }
          if (target !== local) local.set(target);
          checksum = h.payloadCrc32;
        }
        this.seen.fill(1, slot, slot + chunks);
        received += chunks;
        lastProgressAt = Date.now();
        inbox.accepted(chunks);
        if (ringStep + 1 < layout.ringSteps) {
          if (!socketPayload) {
            outbox.enqueue([header(ringStep + 1, h.chunk, local.length, checksum, SHARED), EMPTY]);
          } else if (chunks === 1) {
            outbox.enqueue([header(ringStep + 1, h.chunk, local.length, checksum), socketPayload]);
          } else {
            // Socket frames carry one chunk each: split the run's sums, checksumming each chunk.
            for (let chunk = h.chunk; chunk < h.chunk + chunks; chunk++) {
              const payload = socketPayload.subarray((layout.chunkStart(segment, chunk) * 4) - start, (layout.chunkEnd(segment, chunk) * 4) - start);
              outbox.enqueue([header(ringStep + 1, chunk, payload.length, kernels.checksum(payload)), payload]);
            }
          }
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
    if (h.type !== FrameType.FRAME_TYPE_DATA && h.type !== FrameType.FRAME_TYPE_SHARED_MEMORY_DATA) {
      return new FrameRejection("malformed", `frame type ${h.type} in a ring all-reduce: every rank must use the same sharedMemory and sameHostSchedule options`, h);
    }
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
    // A shared-memory doorbell may announce a run of whole chunks; a socket frame carries one.
    const fits = h.type === FrameType.FRAME_TYPE_SHARED_MEMORY_DATA ? layout.chunksCovered(segment, h.chunk, h.payloadBytes) > 0 : h.payloadBytes === expectedBytes;
    if (!fits) return new FrameRejection("wrong-length", `${h.payloadBytes} payload bytes, chunk has ${expectedBytes}`, h);
    return null;
  }
}
