import { dino, PROTOCOL_VERSION } from "@dino-coord/proto";
import { ProtocolError } from "./errors";

export type Envelope = dino.control.Envelope;
export type EnvelopeBody = NonNullable<Envelope["body"]>;
/** An envelope plus its raw payload frames. */
export interface ControlMessage {
  envelope: Envelope;
  payloads: Buffer[];
}

/** The multipart frames of one control message: the Envelope, then raw float32 payloads. */
export function encodeControl(body: dino.control.IEnvelope, payloads: readonly Float32Array[] = []): Array<Uint8Array> {
  const envelope = dino.control.Envelope.encode({ ...body, protocolVersion: PROTOCOL_VERSION }).finish();
  return [envelope, ...payloads.map((p) => new Uint8Array(p.buffer, p.byteOffset, p.byteLength))];
}

export function decodeControl(frames: readonly Buffer[]): ControlMessage {
  if (frames.length === 0) throw new ProtocolError("empty control message");
  let envelope: Envelope;
  try {
    envelope = dino.control.Envelope.decode(frames[0]);
  } catch (err) {
    throw new ProtocolError(`undecodable control envelope: ${(err as Error).message}`);
  }
  if (envelope.protocolVersion !== PROTOCOL_VERSION) {
    throw new ProtocolError(`peer speaks control protocol version ${envelope.protocolVersion}, this dino-coord speaks ${PROTOCOL_VERSION}: run the same dino-coord version everywhere`);
  }
  if (!envelope.body) throw new ProtocolError("control envelope has no body");
  return { envelope, payloads: frames.slice(1) };
}

/**
 * Copies a received payload frame into `target` (a ZeroMQ frame need not be 4-byte
 * aligned, so it is copied bytewise rather than viewed as floats).
 */
export function readPayload(frame: Buffer | undefined, target: Float32Array, what: string): void {
  if (!frame) throw new ProtocolError(`missing payload frame: ${what}`);
  if (frame.byteLength !== target.byteLength) {
    throw new ProtocolError(`payload ${what} has ${frame.byteLength} bytes, expected ${target.byteLength} (configurations differ?)`);
  }
  new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(frame);
}

/** Hash of a float buffer's bytes (32-bit FNV-1a over 32-bit words): replicas must agree bitwise. */
export function checksumOf(data: Float32Array): string {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) {
    h ^= words[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${h.toString(16).padStart(8, "0")}:${data.length}`;
}

/** Promise that rejects with `onTimeout()` after `ms`; the timer never keeps the process alive. */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
