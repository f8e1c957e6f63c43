import { dino, PROTOCOL_VERSION } from "@dino-coord/proto";
import { checksumOf, decodeControl, encodeControl, readPayload } from "../src/control-channel";
import { ProtocolError } from "../src/errors";

describe("control messages", () => {
  it("round-trip an envelope with raw float payloads", () => {
    const teacher = Float32Array.from([1.5, -2, 3.25]);
    const center = Float32Array.from([0.5]);
    const frames = encodeControl({ plan: { step: 7, epoch: 1, iterInEpoch: 3, lr: 1e-4, teacherTemp: 0.04, freezeLastLayer: true } }, [teacher, center]);
    const message = decodeControl(frames.map((f) => Buffer.from(f)));
    expect(message.envelope.body).toBe("plan");
    expect(message.envelope.plan?.step).toBe(7);
    expect(message.envelope.plan?.freezeLastLayer).toBe(true);
    const t = new Float32Array(3);
    readPayload(message.payloads[0], t, "teacher");
    expect(Array.from(t)).toEqual([1.5, -2, 3.25]);
  });

  it("reject another protocol version with a message saying what to do", () => {
    const bytes = dino.control.Envelope.encode({ protocolVersion: PROTOCOL_VERSION + 1, shutdown: {} }).finish();
    expect(() => decodeControl([Buffer.from(bytes)])).toThrow(/same dino-coord version everywhere/);
  });

  it("copy unaligned payload frames and refuse wrong sizes", () => {
    const backing = Buffer.alloc(13);
    const unaligned = backing.subarray(1, 13);
    Buffer.from(Float32Array.from([1, 2, 3]).buffer).copy(unaligned);
    const out = new Float32Array(3);
    readPayload(unaligned, out, "x");
    expect(Array.from(out)).toEqual([1, 2, 3]);
    expect(() => readPayload(unaligned, new Float32Array(4), "x")).toThrow(ProtocolError);
    expect(() => readPayload(undefined, out, "center")).toThrow(/missing payload frame: center/);
  });

  it("checksum tells replicas apart by a single bit", () => {
    const a = Float32Array.from([1, 2, 3, 4]);
    const b = a.slice();
    expect(checksumOf(a)).toBe(checksumOf(b));
    new Uint32Array(b.buffer)[2] ^= 1;
    expect(checksumOf(a)).not.toBe(checksumOf(b));
  });
});
