/**
 * Collective messages are two ZeroMQ frames: a protobuf FrameHeader and the raw payload
 * bytes (empty for a shared-memory doorbell, whose payload lies in a file). This file holds the structural checks every collective applies before looking at
 * what a frame means.
 */
import { CollectiveKind, FrameHeader, FrameType, type IFrameHeader, PROTOCOL_VERSION } from "@dino-coord/proto";

export type RejectionReason =
  | "malformed"
  | "protocol-version"
  | "foreign-group"
  | "unknown-sender"
  | "stale-step"
  | "future-step"
  | "out-of-range"
  | "wrong-length"
  | "bad-checksum"
  | "duplicate";

/** Why an incoming frame was dropped; the frame is never applied. */
export class FrameRejection {
  constructor(
    readonly reason: RejectionReason,
    readonly detail: string,
    readonly header?: FrameHeader,
  ) {}
}

/** Frame types whose payload lies in shared memory: their payload frame is empty. */
const DOORBELL_TYPES = new Set<FrameType>([
  FrameType.FRAME_TYPE_SHARED_MEMORY_DATA, FrameType.FRAME_TYPE_SHARED_INPUT_READY, FrameType.FRAME_TYPE_SHARED_SUM_READY, FrameType.FRAME_TYPE_SHARED_TENSOR_READY,
]);

export interface Frame {
  header: FrameHeader;
  payload: Buffer;
}

export function encodeHeader(fields: IFrameHeader): Buffer {
  const bytes = FrameHeader.encode({ protocolVersion: PROTOCOL_VERSION, ...fields }).finish();
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Zero-copy Buffer over a range of a typed array's memory (ZeroMQ sends Buffers without copying). */
export function bytesOf(values: Float32Array, start: number, end: number): Buffer {
  return Buffer.from(values.buffer, values.byteOffset + start * 4, (end - start) * 4);
}

/**
 * Checks that `parts` is a header + payload pair of this protocol version, collective kind
 * and group, with a payload of the length the header announces.
 */
export function parseFrame(parts: Buffer[], kind: CollectiveKind, groupId: number): Frame | FrameRejection {
  if (parts.length !== 2) return new FrameRejection("malformed", `expected 2 frames (header, payload), got ${parts.length}`);
  let header: FrameHeader;
  try {
    header = FrameHeader.decode(parts[0]);
  } catch (err) {
    return new FrameRejection("malformed", `header does not decode: ${(err as Error).message}`);
  }
  if (header.protocolVersion !== PROTOCOL_VERSION) {
    return new FrameRejection("protocol-version", `protocol version ${header.protocolVersion}, expected ${PROTOCOL_VERSION}`, header);
  }
  if (header.kind !== kind || header.groupId !== groupId) {
    return new FrameRejection("foreign-group", `kind ${header.kind} group ${header.groupId}, expected kind ${kind} group ${groupId}`, header);
  }
  const payload = parts[1];
  // A shared-memory doorbell carries its payload in a file; its payload frame is empty.
  const inlineBytes = DOORBELL_TYPES.has(header.type) ? 0 : header.payloadBytes;
  if (payload.length !== inlineBytes) {
    return new FrameRejection("wrong-length", `payload frame of ${payload.length} bytes, header says ${inlineBytes}`, header);
  }
  return { header, payload };
}
