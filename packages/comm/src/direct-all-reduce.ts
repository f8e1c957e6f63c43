/**
 * The all-reduce of members that all share one host: each member sums one segment straight
 * from everybody's input in shared memory, then copies the other segments' sums from their
 * owners. ZeroMQ carries only doorbells, two per member and peer.
 *
 * Why not the ring: through shared memory a ring writes every partial sum to memory and
 * reads it back at the next member, about 5 tensor sizes of memory traffic per member; here
 * a member reads every input's share of its segment once (1 tensor size), writes its sum
 * twice and copies N-1 sums in (2 tensor sizes). With N members on a few cores the
 * collective is bound by memory traffic, so that is what sets its time.
 *
 * The schedule of member r, for a tensor cut into N segments like RingLayout's:
 *   1. announce its input to every peer (INPUT_READY): where it lies, in a shared tensor
 *      (allocateSharedTensor) or else copied into r's group file;
 *   2. once every peer's input is announced: sum segment r over all inputs, in the ring's
 *      order (input r, r+1, ..., r-1; so the bytes equal the ring's over sockets), write the
 *      sum to the start of r's group file and into its own tensor, announce it (SUM_READY
 *      with its checksum);
 *   3. on each peer's SUM_READY: copy that segment's sum into its own tensor, checking the
 *      checksum.
 * Nothing is overwritten while a peer may still read it: member o reads r's share of segment
 * o only before announcing o's sum, and r writes that share (with o's sum) only after the
 * announcement; r's sum is rewritten in the next step only after every peer has announced
 * its input for that step, that is after each has finished this step (the copy of r's input
 * that opens the next step lies past every sum region r has had); and r's caller gets the
 * tensor back only once r holds every sum, so after every owner has read it.
 * A doorbell is accepted only if the sender's announcement record (shared-announcements.ts)
 * says the same, and a SUM_READY only after its sender's INPUT_READY, which a legitimate one
 * always follows (one ZeroMQ pipe keeps order).
 */
import { CollectiveKind, FrameType, type FrameHeader } from "@dino-coord/proto";
import { CollectiveAbortedError, CollectiveError, CollectiveMismatchError, CollectiveTimeoutError } from "./errors";
import { encodeHeader, FrameRejection, parseFrame } from "./frame";
import type { FrameInbox } from "./frame-inbox";
import type { PayloadKernels } from "./payload-kernels";
import type { SendQueue } from "./send-queue";
import { segmentStart } from "./ring-layout";
import { type InputAnnouncement, SharedAnnouncements, SUM_OFFSET } from "./shared-announcements";
import { gatherChunk } from "./shared-memory-chunks";
import type { SharedMemoryFiles, SharedMemoryReadProblem } from "./shared-memory-files";
import { sharedTensorLocation } from "./shared-tensor";

const EMPTY = Buffer.alloc(0);
const PAGE_BYTES = 4096;
const INPUT_READY = FrameType.FRAME_TYPE_SHARED_INPUT_READY;
const SUM_READY = FrameType.FRAME_TYPE_SHARED_SUM_READY;

/** What the direct all-reduce uses of its member (RingAllReduce owns them all). */
export interface DirectMember {
  rank: number;
  worldSize: number;
  groupId: number;
  endpoints: readonly string[];
  timeoutMs: number;
  files: SharedMemoryFiles;
  inbox: FrameInbox;
  /** One send queue per peer, indexed by rank; none for this member. */
  outboxes: ReadonlyArray<SendQueue | undefined>;
  abortReason: () => string | null;
}

export class DirectAllReduce {
  /** Input announcements of later steps from peers that finished this one first. */
  private early: FrameHeader[] = [];
  private readonly tail = new Uint8Array(4);
  /** Bytes of the group file reserved for sums so far (see run). */
  private sumRegionBytes = 0;
  private readonly announcements: SharedAnnouncements;

  constructor(private readonly member: DirectMember) {
    this.announcements = new SharedAnnouncements(member.files);
  }

  /** Replaces `values` by the sum over every member, with `kernels` doing the byte work. */
  async run(values: Float32Array, step: number, kernels: PayloadKernels): Promise<void> {
    const { rank, worldSize, groupId, files, inbox, outboxes, timeoutMs, endpoints } = this.member;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const segmentBytes = (g: number): [number, number] => [segmentStart(g, values.length, worldSize) * 4, segmentStart(g + 1, values.length, worldSize) * 4];
    const header = (type: FrameType, fields: Partial<FrameHeader>) =>
      encodeHeader({ kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, type, groupId, step, senderRank: rank, totalElements: values.length, ...fields });

    // 1. Announce the input; a tensor outside shared memory is copied after the sum region,
    //    which keeps the largest size it has had: a slower peer may still be reading the last
    //    step's sum from it while this copy is written.
    const sumBytes = Math.ceil((Math.ceil(values.length / worldSize) * 4) / PAGE_BYTES) * PAGE_BYTES;
    this.sumRegionBytes = Math.max(this.sumRegionBytes, sumBytes);
    const stagedOffset = SUM_OFFSET + this.sumRegionBytes;
    const shared = sharedTensorLocation(values);
    const inPlace = shared !== undefined && shared.directory === files.directory;
    files.reserve(stagedOffset + (inPlace ? 0 : bytes.length));
    if (!inPlace) files.write(bytes, stagedOffset);
    const input = { step, file: inPlace ? shared.name : "", byteOffset: inPlace ? shared.byteOffset : stagedOffset, bytes: bytes.length };
    this.announcements.recordInput(input);
    const ready = header(INPUT_READY, { payloadBytes: input.bytes, sharedTensorFile: input.file, sharedTensorOffset: input.byteOffset });
    for (const outbox of outboxes) outbox?.enqueue([ready, EMPTY]);

    const inputs: Array<InputAnnouncement | undefined> = new Array(worldSize).fill(undefined);
    const summed = new Uint8Array(worldSize);
    let announced = 1;
    let gathered = 1;
    let received = 0;
    let ownSumSent = false;
    let bufferIntact = true;
    let lastProgressAt = Date.now();
    const lastHeard = new Array<number>(worldSize).fill(0);
    const failure = (direction: "receive" | "send") => {
      const reason = this.member.abortReason();
      if (reason !== null) return new CollectiveAbortedError({ operation: "allReduce", step, rank, bufferIntact, reason });
      // Every peer that owes a doorbell is silent, but a dead one went silent first (the
      // others wait for it): name the one heard from least recently, or that stopped taking frames.
      const peers = Array.from({ length: worldSize }, (_, peer) => peer).filter((peer) => peer !== rank);
      const owing = peers.filter((peer) => !inputs[peer] || !summed[peer]);
      const silent = direction === "send" ? peers.find((peer) => outboxes[peer]?.failure) : owing.sort((a, b) => lastHeard[a] - lastHeard[b])[0];
      const peerRank = silent ?? peers[0];
      return new CollectiveTimeoutError({
        operation: "allReduce", step, rank, bufferIntact, peerRank, peerEndpoint: endpoints[peerRank], direction, timeoutMs, received, expected: 2 * (worldSize - 1),
      });
    };

    while (!ownSumSent || gathered < worldSize) {
      if (!ownSumSent && announced === worldSize) {
        // 2. Every peer is in this step and none can leave it before this sum arrives: open
        //    their files now, so that none is gone when its sum is read.
        files.openPeers();
        const [start, end] = segmentBytes(rank);
        const checksum = this.sumSegment(bytes, start, end, inputs, kernels, step);
        bufferIntact = false;
        this.announcements.recordSum({ step, checksum });
        const done = header(SUM_READY, { payloadBytes: end - start, payloadCrc32: checksum });
        for (const outbox of outboxes) outbox?.enqueue([done, EMPTY]);
        ownSumSent = true;
        lastProgressAt = Date.now();
        continue;
      }
      const parts = this.earlyFrame(step) ?? (await inbox.receive(lastProgressAt + timeoutMs));
      if (this.member.abortReason() !== null) throw failure("receive");
      if (outboxes.some((outbox) => outbox?.failure)) throw failure("send");
      if (parts === null) throw failure("receive");
      const frame = Array.isArray(parts) ? parseFrame(parts, CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, groupId) : { header: parts };
      if (frame instanceof FrameRejection) {
        inbox.reject(frame);
        continue;
      }
      const h = frame.header;
      const sender = h.senderRank;
      const problem = this.checkHeader(h, step);
      if (problem === "early") {
        this.early.push(h);
        continue;
      }
      if (problem) {
        inbox.reject(problem);
        continue;
      }
      if (h.totalElements !== values.length) {
        throw new CollectiveMismatchError({ operation: "allReduce", step, rank, bufferIntact, peerRank: sender, localElements: values.length, peerElements: h.totalElements });
      }
      if (h.type === INPUT_READY) {
        const peerInput = { step: h.step, file: h.sharedTensorFile, byteOffset: h.sharedTensorOffset, bytes: h.payloadBytes };
        const inputProblem = inputs[sender] ? new FrameRejection("duplicate", `input of rank ${sender} already announced`, h) : this.checkInput(h, peerInput, bytes.length);
        if (inputProblem) {
          inbox.reject(inputProblem);
          continue;
        }
        inputs[sender] = peerInput;
        announced++;
      } else {
        const [start, end] = segmentBytes(sender);
        const sumProblem = this.checkSum(h, end - start, summed[sender] === 1, inputs[sender] !== undefined);
        if (sumProblem) {
          inbox.reject(sumProblem);
          continue;
        }
        // 3. The sum streams into this member's share of the segment, which its owner has read.
        bufferIntact = false;
        const result = gatherChunk(files, kernels, sender, bytes.subarray(start, end), SUM_OFFSET, h.payloadCrc32);
        if (result !== true) {
          inbox.reject(result === false ? new FrameRejection("bad-checksum", "shared-memory sum checksum does not match the header", h) : new FrameRejection(result.reason, result.detail, h));
          continue;
        }
        summed[sender] = 1;
        gathered++;
      }
      received++;
      inbox.accepted();
      lastProgressAt = Date.now();
      lastHeard[sender] = performance.now();
    }
  }

  /** The sum of segment [start, end) over every input, written to this member's file and tensor; returns its checksum. */
  private sumSegment(bytes: Uint8Array, start: number, end: number, inputs: Array<InputAnnouncement | undefined>, kernels: PayloadKernels, step: number): number {
    const { rank, worldSize, files } = this.member;
    kernels.startStream();
    for (let at = start; at < end; at += kernels.blockBytes) {
      const length = Math.min(kernels.blockBytes, end - at);
      const sum = kernels.blockView(length, files.alignmentOf(at - start));
      sum.set(bytes.subarray(at, at + length));
      const addend = kernels.addendView(length);
      for (let k = 1; k < worldSize; k++) {
        const peer = (rank + k) % worldSize;
        const problem = this.readInput(peer, inputs[peer]!, addend, at);
        if (problem) {
          throw new CollectiveError(`allReduce step ${step}: rank ${rank} could not read the input of rank ${peer} it had checked: ${problem.detail}`, {
            operation: "allReduce", step, rank, bufferIntact: true,
          });
        }
        kernels.addBlock(sum, addend);
      }
      kernels.checksumBlock(sum);
      files.write(sum, SUM_OFFSET + at - start);
      bytes.set(sum, at);
    }
    return kernels.streamChecksum(end - start);
  }

  private readInput(peer: number, input: InputAnnouncement, target: Uint8Array, at: number): SharedMemoryReadProblem | null {
    const { files } = this.member;
    return input.file === "" ? files.read(peer, target, input.byteOffset + at) : files.readNamed(input.file, target, input.byteOffset + at);
  }

  /** Whether a frame of this group is a doorbell of this step from a peer ("early": of the next step, kept for it). */
  private checkHeader(h: FrameHeader, step: number): FrameRejection | "early" | null {
    const { rank, worldSize } = this.member;
    if (h.type !== INPUT_READY && h.type !== SUM_READY) {
      return new FrameRejection("malformed", `frame type ${h.type} in a direct same-host all-reduce: every rank must use the same sharedMemory and sameHostSchedule options`, h);
    }
    if (h.senderRank >= worldSize || h.senderRank === rank) return new FrameRejection("unknown-sender", `sender rank ${h.senderRank} in a group of ${worldSize} (this is rank ${rank})`, h);
    if (h.step < step) return new FrameRejection("stale-step", `step ${h.step} while reducing step ${step}`, h);
    if (h.step > step) {
      // A peer that finished this step may announce its next input before this member has
      // read every sum; a sum of a later step cannot be legitimate yet.
      if (h.type === INPUT_READY && this.early.length < 2 * worldSize) return "early";
      return new FrameRejection("future-step", `step ${h.step} while reducing step ${step}`, h);
    }
    return null;
  }

  /** A sum is taken once, after its sender's input, at its segment's length, if its sender recorded it. */
  private checkSum(h: FrameHeader, segmentBytes: number, alreadySummed: boolean, inputKnown: boolean): FrameRejection | null {
    const sender = h.senderRank;
    if (alreadySummed) return new FrameRejection("duplicate", `sum of segment ${sender} already applied`, h);
    if (!inputKnown) return new FrameRejection("malformed", `sum of segment ${sender} before rank ${sender}'s input`, h);
    if (h.payloadBytes !== segmentBytes) return new FrameRejection("wrong-length", `${h.payloadBytes} bytes, segment ${sender} has ${segmentBytes}`, h);
    if (!this.announcements.sumMatches(sender, { step: h.step, checksum: h.payloadCrc32 })) {
      return new FrameRejection("bad-checksum", `rank ${sender} has recorded no such sum for step ${h.step}`, h);
    }
    return null;
  }

  /** An announced input must be readable to its end; the files it lies in never shrink. */
  private checkInput(h: FrameHeader, input: InputAnnouncement, inputBytes: number): FrameRejection | null {
    if (input.bytes !== inputBytes) return new FrameRejection("wrong-length", `input of ${input.bytes} bytes, this rank's has ${inputBytes}`, h);
    if (!this.announcements.inputMatches(h.senderRank, input)) return new FrameRejection("malformed", `rank ${h.senderRank} has recorded no such input for step ${input.step}`, h);
    const problem = this.readInput(h.senderRank, input, this.tail, inputBytes - this.tail.length);
    return problem && new FrameRejection(problem.reason, problem.detail, h);
  }

  /** An input announcement of `step` that arrived during an earlier step, if any (stale ones are dropped). */
  private earlyFrame(step: number): FrameHeader | undefined {
    if (this.early.length === 0) return undefined;
    for (const h of this.early) if (h.step < step) this.member.inbox.reject(new FrameRejection("stale-step", `input of step ${h.step} kept for a step never run`, h));
    this.early = this.early.filter((h) => h.step >= step);
    const index = this.early.findIndex((h) => h.step === step);
    return index < 0 ? undefined : this.early.splice(index, 1)[0];
  }
}
