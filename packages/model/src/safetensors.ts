/**
 * The safetensors file format (https://github.com/huggingface/safetensors):
 * 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`,
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header.
 *
 * Reading copies every tensor into its own typed array: offsets in the file need not be
 * aligned to the element size, and a copy lets the file buffer be dropped.
 */
import * as fs from "fs";

export type SafetensorsDtype = "F32" | "F64" | "I64" | "I32";

export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array;

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

export interface SafetensorsFile {
  tensors: Map<string, SafetensorsTensor>;
  metadata: Record<string, string>;
}

/** The file is not a well-formed safetensors file; `source` names it, `problem` says why. */
export class SafetensorsFormatError extends Error {
  constructor(
    readonly source: string,
    readonly problem: string,
  ) {
    super(`${source}: not a valid safetensors file: ${problem}`);
    this.name = "SafetensorsFormatError";
  }
}

const BYTES_PER_ELEMENT: Record<SafetensorsDtype, number> = { F32: 4, F64: 8, I64: 8, I32: 4 };

/** A header larger than this is certainly corruption, not a real model (the reference caps at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(BYTES_PER_ELEMENT, value);
}

function dtypeOf(data: TensorData): SafetensorsDtype {
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Float64Array) return "F64";
  if (data instanceof BigInt64Array) return "I64";
  return "I32";
}

function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/** Copies little-endian bytes into a fresh typed array (the host is assumed little-endian, like Node on x86/ARM). */
function decode(dtype: SafetensorsDtype, bytes: Uint8Array): TensorData {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  switch (dtype) {
    case "F32":
      return new Float32Array(copy.buffer);
    case "F64":
      return new Float64Array(copy.buffer);
    case "I64":
      return new BigInt64Array(copy.buffer);
    case "I32":
      return new Int32Array(copy.buffer);
  }
}

/** Reads a whole safetensors file (a path or its bytes), including `__metadata__`. */
export function readSafetensorsFile(input: string | Uint8Array, sourceName?: string): SafetensorsFile {
  const source = sourceName ?? (typeof input === "string" ? input : "<buffer>");
  let bytes: Uint8Array;
  if (typeof input === "string") {
    try {
      bytes = fs.readFileSync(input);
    } catch (err) {
      throw new SafetensorsFormatError(source, `cannot read file: ${(err as Error).message}`);
    }
  } else {
    bytes = input;
  }
  const fail = (problem: string): never => {
    throw new SafetensorsFormatError(source, problem);
  };

  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) fail(`header length ${headerLength} is implausibly large`);
  const headerEnd = 8 + Number(headerLength);
  if (headerEnd > bytes.length) {
    fail(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes): truncated?`);
  }

  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, Number(headerLength)).toString("utf8"));
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) fail("header is not a JSON object");

  const dataLength = bytes.length - headerEnd;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) fail("__metadata__ is not an object");
      for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof value !== "string") fail(`__metadata__.${key} is not a string`);
        metadata[key] = value as string;
      }
      continue;
    }
    if (raw === null || typeof raw !== "object") fail(`tensor "${name}": entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (!isDtype(dtype)) fail(`tensor "${name}": unsupported dtype ${JSON.stringify(dtype)} (F32, F64, I64, I32 are)`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as number[];
    if (end > dataLength) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] run past the ${dataLength} data bytes: truncated?`);
    }
    const expectedBytes = elementCount(shape as number[]) * BYTES_PER_ELEMENT[dtype as SafetensorsDtype];
    if (end - begin !== expectedBytes) {
      fail(
        `tensor "${name}": shape [${(shape as number[]).join(", ")}] of ${dtype} needs ${expectedBytes} bytes ` +
          `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], begin, end });
  }

  const byOffset = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < byOffset.length; i++) {
    const previous = byOffset[i - 1];
    const current = byOffset[i];
    if (current.begin < previous.end) {
      fail(
        `tensors "${previous.name}" [${previous.begin}, ${previous.end}] and ` +
          `"${current.name}" [${current.begin}, ${current.end}] overlap`,
      );
    }
  }

  const tensors = new Map<string, SafetensorsTensor>();
  for (const entry of entries) {
    const slice = bytes.subarray(headerEnd + entry.begin, headerEnd + entry.end);
    tensors.set(entry.name, { dtype: entry.dtype, shape: entry.shape, data: decode(entry.dtype, slice) });
  }
  return { tensors, metadata };
}

/** Reads the tensors of a safetensors file (a path or its bytes). */
export function readSafetensors(input: string | Uint8Array, sourceName?: string): Map<string, SafetensorsTensor> {
  return readSafetensorsFile(input, sourceName).tensors;
}

/** A tensor to write: the dtype follows from the typed array. */
export interface TensorToWrite {
  shape: readonly number[];
  data: TensorData;
}

/**
 * A safetensors file as its parts: the 8-byte header length with the JSON header, then each
 * tensor's bytes as a view of its data (no copy), in the map's order. Writing the parts one
 * after the other gives the file; a checkpoint of a large model is never assembled in memory.
 */
export function safetensorsParts(
  tensors: ReadonlyMap<string, TensorToWrite> | Iterable<[string, TensorToWrite]>,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata };
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === "__metadata__") throw new Error(`"__metadata__" is reserved and cannot name a tensor`);
    if (Object.prototype.hasOwnProperty.call(header, name)) throw new Error(`tensor "${name}" given twice`);
    const count = elementCount(tensor.shape);
    if (count !== tensor.data.length) {
      throw new Error(
        `tensor "${name}": shape [${tensor.shape.join(", ")}] has ${count} elements but data has ${tensor.data.length}`,
      );
    }
    const dtype = dtypeOf(tensor.data);
    header[name] = { dtype, shape: [...tensor.shape], data_offsets: [offset, offset + tensor.data.byteLength] };
    parts.push(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    offset += tensor.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  const jsonBytes = Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  const headerBytes = Buffer.from(json, "utf8");
  const prefix = Buffer.allocUnsafe(8 + headerBytes.length);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(prefix, 8);
  return [prefix, ...parts];
}

/** Serialises tensors (in the map's order) and string metadata to safetensors bytes. */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, TensorToWrite> | Iterable<[string, TensorToWrite]>,
  metadata?: Record<string, string>,
): Buffer {
  return Buffer.concat(safetensorsParts(tensors, metadata));
}

/** Writes tensors and optional string metadata to `path` (through a temporary file, so a crash leaves no half file). */
export function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, TensorToWrite> | Iterable<[string, TensorToWrite]>,
  metadata?: Record<string, string>,
): void {
  const bytes = encodeSafetensors(tensors, metadata);
  const temporary = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, bytes);
  fs.renameSync(temporary, path);
}
