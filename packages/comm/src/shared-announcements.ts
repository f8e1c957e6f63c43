/**
 * What a member of the direct same-host all-reduce has announced, recorded at the start of its
 * group file before the doorbell goes out: the step and place of its input, and the step and
 * checksum of its segment's sum. A peer accepts a doorbell only if the sender's record says
 * the same. So a doorbell that its sender never sent (a forged or replayed frame of the
 * group) is rejected before anything is read, which matters because a sum is copied into the
 * receiver's tensor as it is read: applied early, it would overwrite the receiver's input
 * before the segment's owner had read it.
 */
import type { SharedMemoryFiles } from "./shared-memory-files";

/** Bytes of the record; the sum follows at a page boundary (SUM_OFFSET). */
const RECORD_BYTES = 256;
export const SUM_OFFSET = 4096;
const MAX_NAME_BYTES = RECORD_BYTES - 32;
const INPUT_MAGIC = 0x494e5054; // "INPT"
const SUM_MAGIC = 0x53554d53; // "SUMS"

enum Field {
  InputMagic, InputStep, InputOffset, InputBytes, NameBytes, SumMagic, SumStep, SumChecksum,
}

export interface InputAnnouncement {
  step: number;
  /** Shared tensor file name, or "" for the group file. */
  file: string;
  byteOffset: number;
  bytes: number;
}

export interface SumAnnouncement {
  step: number;
  checksum: number;
}

export class SharedAnnouncements {
  private readonly own = new Uint8Array(RECORD_BYTES);
  private readonly ownFields = new Uint32Array(this.own.buffer, 0, 8);
  private readonly peer = new Uint8Array(RECORD_BYTES);
  private readonly peerFields = new Uint32Array(this.peer.buffer, 0, 8);
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();

  constructor(private readonly files: SharedMemoryFiles) {}

  /** Records this member's input; call before sending its doorbell (the file must be reserved). */
  recordInput({ step, file, byteOffset, bytes }: InputAnnouncement): void {
    const name = this.encoder.encode(file);
    if (name.length > MAX_NAME_BYTES) throw new RangeError(`shared tensor file name "${file}" is longer than ${MAX_NAME_BYTES} bytes`);
    // The previous sum stays recorded: a slower peer may still be checking its doorbell.
    this.own.fill(0, 32);
    this.own.set(name, 32);
    this.ownFields.set([INPUT_MAGIC, step, byteOffset, bytes, name.length]);
    this.files.write(this.own, 0);
  }

  /** Records this member's sum (after its input record of the same step); call before sending its doorbell. */
  recordSum({ step, checksum }: SumAnnouncement): void {
    this.ownFields[Field.SumMagic] = SUM_MAGIC;
    this.ownFields[Field.SumStep] = step;
    this.ownFields[Field.SumChecksum] = checksum;
    this.files.write(this.own.subarray(0, 32), 0);
  }

  /** Whether `rank`'s record announces exactly this input. */
  inputMatches(rank: number, input: InputAnnouncement): boolean {
    if (!this.readPeer(rank)) return false;
    const f = this.peerFields;
    const file = this.decoder.decode(this.peer.subarray(32, 32 + Math.min(f[Field.NameBytes], MAX_NAME_BYTES)));
    return f[Field.InputMagic] === INPUT_MAGIC && f[Field.InputStep] === input.step && f[Field.InputOffset] === input.byteOffset && f[Field.InputBytes] === input.bytes && file === input.file;
  }

  /** Whether `rank`'s record announces exactly this sum. */
  sumMatches(rank: number, sum: SumAnnouncement): boolean {
    if (!this.readPeer(rank)) return false;
    const f = this.peerFields;
    return f[Field.SumMagic] === SUM_MAGIC && f[Field.SumStep] === sum.step && f[Field.SumChecksum] === sum.checksum;
  }

  private readPeer(rank: number): boolean {
    return this.files.read(rank, this.peer, 0) === null;
  }
}
