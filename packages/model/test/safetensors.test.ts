import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsFile,
  SafetensorsFormatError,
  writeSafetensors,
} from "../src/safetensors";

const FIXTURE = path.join(__dirname, "data", "dino-step-small", "inputs.safetensors");

/** Builds a file from a raw header object and data bytes, for corrupt variants. */
function rawFile(header: unknown, data: Uint8Array, headerText?: string): Buffer {
  const json = Buffer.from(headerText ?? JSON.stringify(header), "utf8");
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectFormatError(bytes: Uint8Array, pattern: RegExp): void {
  let caught: unknown;
  try {
    readSafetensors(bytes, "bad.safetensors");
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SafetensorsFormatError);
  const error = caught as SafetensorsFormatError;
  expect(error.message).toContain("bad.safetensors");
  expect(error.problem).toMatch(pattern);
}

describe("readSafetensors on the reference fixture", () => {
  const tensors = readSafetensors(FIXTURE);

  it("reads crops, center and student parameters with their shapes", () => {
    const crop = tensors.get("crop.0")!;
    expect(crop.dtype).toBe("F32");
    expect(crop.shape).toEqual([3, 3, 32, 32]);
    expect(crop.data).toBeInstanceOf(Float32Array);
    expect(crop.data.length).toBe(3 * 3 * 32 * 32);
    expect(tensors.get("crop.2")!.shape).toEqual([3, 3, 16, 16]);
    expect(tensors.get("center")!.shape).toEqual([1, 48]);
    expect(tensors.get("student.backbone.patch_embed.proj.weight")!.shape).toEqual([24, 3, 8, 8]);
  });

  it("decodes the bytes at the right offsets", () => {
    const bytes = fs.readFileSync(FIXTURE);
    const headerLength = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"));
    const [begin] = header["crop.1"].data_offsets as number[];
    const crop = tensors.get("crop.1")!.data as Float32Array;
    for (const i of [0, 1, 1234, crop.length - 1]) {
      expect(crop[i]).toBe(bytes.readFloatLE(8 + headerLength + begin + 4 * i));
    }
    // Normalised images: finite values, not all equal.
    expect(crop.every(Number.isFinite)).toBe(true);
    expect(new Set(crop.slice(0, 100)).size).toBeGreaterThan(10);
  });

  it("returns independent aligned arrays (copies, not views of the file)", () => {
    const a = tensors.get("center")!.data as Float32Array;
    expect(a.byteOffset).toBe(0);
    expect(a.buffer.byteLength).toBe(a.byteLength);
  });
});

describe("writeSafetensors / readSafetensors round trip", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "safetensors-test-"));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("round-trips every dtype, empty tensors, scalars and metadata", () => {
    const tensors = new Map<string, { shape: number[]; data: Float32Array | Float64Array | BigInt64Array | Int32Array }>([
      ["f32", { shape: [2, 3], data: Float32Array.from([1.5, -2, 3.25, 0, Math.fround(1e-30), -0]) }],
      ["f64", { shape: [3], data: Float64Array.from([Math.PI, -1e300, 5e-324]) }],
      ["i64", { shape: [2], data: BigInt64Array.from([-(2n ** 62n), 123n]) }],
      ["i32", { shape: [1, 1, 2], data: Int32Array.from([-7, 2 ** 31 - 1]) }],
      ["empty", { shape: [0, 4], data: new Float32Array(0) }],
      ["scalar", { shape: [], data: Float64Array.from([42]) }],
    ]);
    const file = path.join(dir, "roundtrip.safetensors");
    writeSafetensors(file, tensors, { format: "pt", note: "ünïcode" });
    const back = readSafetensorsFile(file);
    expect(back.metadata).toEqual({ format: "pt", note: "ünïcode" });
    expect([...back.tensors.keys()]).toEqual([...tensors.keys()]);
    for (const [name, tensor] of tensors) {
      const read = back.tensors.get(name)!;
      expect(read.shape).toEqual(tensor.shape);
      expect(read.data.constructor).toBe(tensor.data.constructor);
      expect(Array.from(read.data as ArrayLike<number | bigint>)).toEqual(Array.from(tensor.data as ArrayLike<number | bigint>));
    }
    expect(back.tensors.get("f32")!.dtype).toBe("F32");
    expect(back.tensors.get("f64")!.dtype).toBe("F64");
    expect(back.tensors.get("i64")!.dtype).toBe("I64");
    expect(back.tensors.get("i32")!.dtype).toBe("I32");
  });

  it("pads the header with spaces so the data starts 8-byte aligned", () => {
    for (const name of ["a", "ab", "abc", "abcdefg"]) {
      const bytes = encodeSafetensors(new Map([[name, { shape: [1], data: Float64Array.from([1]) }]]));
      const headerLength = Number(bytes.readBigUInt64LE(0));
      expect((8 + headerLength) % 8).toBe(0);
      const text = bytes.subarray(8, 8 + headerLength).toString("utf8");
      const json = JSON.stringify(JSON.parse(text));
      expect(text.startsWith(json)).toBe(true);
      expect(text.slice(json.length)).toMatch(/^ {0,7}$/);
      expect(JSON.parse(text)[name].data_offsets).toEqual([0, 8]);
    }
  });

  it("re-encodes the fixture to an equal set of tensors", () => {
    const original = readSafetensors(FIXTURE);
    const again = readSafetensors(encodeSafetensors(original));
    expect(again.size).toBe(original.size);
    for (const [name, tensor] of original) {
      expect(again.get(name)!.shape).toEqual(tensor.shape);
      expect(Buffer.from((again.get(name)!.data as Float32Array).buffer).equals(Buffer.from((tensor.data as Float32Array).buffer))).toBe(true);
    }
  });

  it("rejects a tensor whose data does not match its shape", () => {
    expect(() => encodeSafetensors(new Map([["x", { shape: [2, 2], data: new Float32Array(3) }]]))).toThrow(/4 elements/);
  });
});

describe("corrupt files give SafetensorsFormatError naming the problem", () => {
  const good = rawFile({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8));

  it("accepts the uncorrupted base file", () => {
    expect(readSafetensors(good).get("x")!.shape).toEqual([2]);
  });

  it("file shorter than the length prefix", () => {
    expectFormatError(good.subarray(0, 5), /shorter than the 8-byte header length/);
  });

  it("header length beyond the end of the file", () => {
    const bytes = Buffer.from(good);
    bytes.writeBigUInt64LE(BigInt(bytes.length), 0);
    expectFormatError(bytes, /runs past the end of the file/);
  });

  it("truncated data", () => {
    expectFormatError(good.subarray(0, good.length - 1), /run past the 7 data bytes/);
  });

  it("bad JSON", () => {
    expectFormatError(rawFile(null, new Uint8Array(8), '{"x": {"dtype": "F32",'), /not valid JSON/);
    expectFormatError(rawFile([1, 2], new Uint8Array(0)), /not a JSON object/);
  });

  it("offsets out of range or reversed", () => {
    expectFormatError(rawFile({ x: { dtype: "F32", shape: [2], data_offsets: [8, 16] } }, new Uint8Array(8)), /run past/);
    expectFormatError(rawFile({ x: { dtype: "F32", shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)), /data_offsets/);
    expectFormatError(rawFile({ x: { dtype: "F32", shape: [2], data_offsets: [-8, 0] } }, new Uint8Array(8)), /data_offsets/);
  });

  it("overlapping tensors", () => {
    const header = {
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    };
    expectFormatError(rawFile(header, new Uint8Array(12)), /"a" \[0, 8\] and "b" \[4, 12\] overlap/);
  });

  it("shape times dtype size differs from the byte range", () => {
    expectFormatError(
      rawFile({ x: { dtype: "F64", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
      /needs 16 bytes but data_offsets \[0, 8\] hold 8/,
    );
  });

  it("unknown dtype, bad shape, bad metadata", () => {
    expectFormatError(rawFile({ x: { dtype: "BF16", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)), /unsupported dtype "BF16"/);
    expectFormatError(rawFile({ x: { dtype: "F32", shape: [1.5], data_offsets: [0, 4] } }, new Uint8Array(4)), /shape/);
    expectFormatError(rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0)), /__metadata__\.a is not a string/);
  });

  it("names the path when reading a file", () => {
    const file = path.join(os.tmpdir(), `corrupt-${process.pid}.safetensors`);
    fs.writeFileSync(file, good.subarray(0, 3));
    try {
      expect(() => readSafetensors(file)).toThrow(file);
    } finally {
      fs.rmSync(file);
    }
    expect(() => readSafetensors(path.join(os.tmpdir(), "does-not-exist.safetensors"))).toThrow(SafetensorsFormatError);
  });
});
