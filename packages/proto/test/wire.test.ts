import * as fs from "fs";
import * as path from "path";
import * as protobuf from "protobufjs";
import { CollectiveKind, FrameHeader, FrameType, PROTOCOL_VERSION, dino } from "../src";

const protoDir = path.join(__dirname, "..", "proto");

/** Fully qualified names of every message and enum declared under a protobufjs namespace. */
function declaredTypes(ns: protobuf.NamespaceBase): string[] {
  const names: string[] = [];
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type || nested instanceof protobuf.Enum) names.push(nested.fullName);
    if (nested instanceof protobuf.Namespace || nested instanceof protobuf.Type) names.push(...declaredTypes(nested));
  }
  return names;
}

function generatedLookup(fullName: string): unknown {
  let node: unknown = { dino };
  for (const part of fullName.replace(/^\./, "").split(".")) node = (node as Record<string, unknown>)?.[part];
  return node;
}

describe("generated wire module", () => {
  it("contains every message and enum of every .proto file in proto/", () => {
    const files = fs.readdirSync(protoDir).filter((f) => f.endsWith(".proto"));
    expect(files).toContain("collective.proto");
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(protoDir, target));
    root.loadSync(files.map((f) => path.join(protoDir, f)));
    const names = declaredTypes(root);
    expect(names).toContain(".dino.collective.FrameHeader");
    for (const name of names) expect({ name, generated: generatedLookup(name) !== undefined }).toEqual({ name, generated: true });
  });

  it("round-trips a frame header with every field set", () => {
    const fields = {
      protocolVersion: PROTOCOL_VERSION,
      kind: CollectiveKind.COLLECTIVE_KIND_BROADCAST,
      type: FrameType.FRAME_TYPE_DATA,
      groupId: 0xfedcba98,
      step: 123456,
      senderRank: 15,
      ringStep: 29,
      chunk: 7,
      payloadBytes: 1 << 20,
      payloadCrc32: 0x89abcdef,
      totalElements: 43_000_000,
      meta: Uint8Array.from([1, 2, 3, 250]),
      sharedTensorFile: "dino-comm-tensor-12-0-ab12cd34",
      sharedTensorOffset: 0xfffff000,
    };
    const bytes = FrameHeader.encode(fields).finish();
    const decoded = FrameHeader.decode(bytes);
    expect(FrameHeader.toObject(decoded, { defaults: true, bytes: Array })).toEqual({ ...fields, meta: [1, 2, 3, 250] });
  });

  it("keeps fixed-size fields fixed so header length does not depend on checksum values", () => {
    const base = { protocolVersion: PROTOCOL_VERSION, step: 1, payloadBytes: 4096 };
    const low = FrameHeader.encode({ ...base, groupId: 1, payloadCrc32: 1 }).finish().length;
    const high = FrameHeader.encode({ ...base, groupId: 0xffffffff, payloadCrc32: 0xffffffff }).finish().length;
    expect(low).toBe(high);
  });

  it("rejects truncated bytes with a protobufjs error instead of returning a partial header", () => {
    const bytes = FrameHeader.encode({ protocolVersion: PROTOCOL_VERSION, meta: new Uint8Array(10) }).finish();
    expect(() => FrameHeader.decode(bytes.subarray(0, bytes.length - 3))).toThrow(RangeError);
  });

  it("exports a positive integer protocol version", () => {
    expect(Number.isInteger(PROTOCOL_VERSION) && PROTOCOL_VERSION > 0).toBe(true);
  });
});
