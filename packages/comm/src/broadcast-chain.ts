/**
 * Shared shape of a broadcast group: rank 0 is the root (the coordinator), ranks 1..N are
 * receivers in chain order. Data flows 0 -> 1 -> ... -> N, chunk by chunk, so the root
 * sends every byte once whatever N is, and rank N acknowledges to rank 0 (closing the ring)
 * once it has everything: the root then knows ZeroMQ no longer needs its buffer.
 *
 * Same host (every endpoint ipc://): the root copies the tensor once into its shared-memory
 * file and the chain passes doorbells (headers announcing a run of chunks, see
 * shared-memory-chunks.ts) instead of payloads; every receiver reads the root's file. The root
 * rewrites its file only in its next send(), after the acknowledgement that every receiver is
 * done reading.
 *
 * For a worker that joins late, run a group of just [root endpoint, new worker endpoint].
 */
import { CollectiveKind, FrameType, type IFrameHeader } from "@dino-coord/proto";
import { encodeHeader } from "./frame";

/** Encodes the caller's metadata (a generated protobufjs message class fits). */
export interface MessageEncoder<M> {
  encode(message: M): { finish(): Uint8Array };
}

/** Decodes the caller's metadata (a generated protobufjs message class fits). */
export interface MessageDecoder<M> {
  decode(bytes: Uint8Array): M;
}

export const BROADCAST = CollectiveKind.COLLECTIVE_KIND_BROADCAST;

export function chunkCount(elements: number, chunkElements: number): number {
  return Math.max(1, Math.ceil(elements / chunkElements));
}

export function broadcastHeader(fields: IFrameHeader): Buffer {
  return encodeHeader({ kind: BROADCAST, type: FrameType.FRAME_TYPE_DATA, ringStep: 0, ...fields });
}

/** The acknowledgement the last receiver sends to the root once it holds every chunk. */
export function ackFrame(groupId: number, step: number, senderRank: number): Buffer[] {
  return [encodeHeader({ kind: BROADCAST, type: FrameType.FRAME_TYPE_ACK, groupId, step, senderRank, payloadBytes: 0 }), Buffer.alloc(0)];
}

/**
 * Number of whole chunks that `bytes` payload bytes starting at chunk `chunk` cover exactly in a
 * tensor of `elements` (a shared-memory doorbell may announce such a run), or 0 if they do not.
 */
export function chunksCovered(elements: number, chunkElements: number, chunk: number, bytes: number): number {
  if (elements === 0) return chunk === 0 && bytes === 0 ? 1 : 0;
  if (bytes <= 0 || bytes % 4 !== 0) return 0;
  const count = Math.ceil(bytes / 4 / chunkElements);
  if (chunk + count > chunkCount(elements, chunkElements)) return 0;
  return (Math.min((chunk + count) * chunkElements, elements) - chunk * chunkElements) * 4 === bytes ? count : 0;
}
