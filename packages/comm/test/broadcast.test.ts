import { CollectiveKind, FrameHeader, FrameType, PROTOCOL_VERSION } from "@dino-coord/proto";
import * as fs from "fs";
import * as zmq from "zeromq";
import { allocateCollectiveTensor, BroadcastReceiver, BroadcastRoot, CollectiveMismatchError, CollectiveTimeoutError } from "../src";
import { SharedMemoryFiles } from "../src/shared-memory-files";
import { sharedTensorLocation } from "../src/shared-tensor";
import { bytesOfArray, capturingLogger, closeAll, endpointsFor, randomValues, silentLogger } from "./support/rings";

/** Metadata: any generated protobufjs message class works as the codec; FrameHeader is at hand. */
const metaCodec = FrameHeader;

async function startGroup(endpoints: string[], options: { chunkBytes?: number; timeoutMs?: number; logger?: typeof silentLogger } = {}) {
  const common = { endpoints, timeoutMs: 10_000, logger: silentLogger, ...options };
  const root = new BroadcastRoot({ ...common, metaCodec });
  const receivers = endpoints.slice(1).map((_, i) => new BroadcastReceiver({ ...common, rank: i + 1, metaCodec }));
  await Promise.all([root.start(), ...receivers.map((r) => r.start())]);
  return { root, receivers };
}

describe("Broadcast", () => {
  it.each([
    [1, "ipc", [0, 1, 4099]],
    [3, "tcp", [0, 1, 1_000_003]],
    [5, "ipc", [17, 40_000]],
  ] as const)("delivers the root's tensor and metadata bitwise to %i receiver(s) over %s, step after step", async (receiverCount, transport, lengths) => {
    const { root, receivers } = await startGroup(await endpointsFor(receiverCount + 1, transport), { chunkBytes: 16 * 1024 });
    try {
      for (const [step, length] of lengths.entries()) {
        const source = randomValues(length, 40 + step);
        const meta = FrameHeader.create({ step: 1000 + step, chunk: length });
        const targets = receivers.map(() => new Float32Array(length).fill(NaN));
        const [, ...metas] = await Promise.all([root.send(source, meta, step), ...receivers.map((r, i) => r.receive(targets[i], step))]);
        for (const target of targets) expect(bytesOfArray(target).equals(bytesOfArray(source))).toBe(true);
        for (const m of metas) expect(FrameHeader.toObject(m)).toEqual({ step: 1000 + step, chunk: length });
      }
    } finally {
      await closeAll([root, ...receivers]);
    }
  });

  it("delivers from and into collective tensors (read and checksummed where they lie) over ipc, mixed with plain arrays", async () => {
    const { root, receivers } = await startGroup(await endpointsFor(4, "ipc"), { chunkBytes: 16 * 1024 });
    const inTensor = (values: Float32Array) => {
      const tensor = allocateCollectiveTensor(values.length + 1).subarray(1);
      tensor.set(values);
      return tensor;
    };
    try {
      for (const [step, length] of [5, 4099, 300_001].entries()) {
        const values = randomValues(length, 60 + step);
        const source = step % 2 ? values : inTensor(values);
        const targets = receivers.map((_, i) => (i % 2 ? new Float32Array(length) : inTensor(new Float32Array(length).fill(NaN))));
        await Promise.all([root.send(source, FrameHeader.create({ step }), step), ...receivers.map((r, i) => r.receive(targets[i], step))]);
        for (const target of targets) expect(bytesOfArray(target).equals(bytesOfArray(values))).toBe(true);
      }
    } finally {
      await closeAll([root, ...receivers]);
    }
  });

  it("hands the current state to a worker that joins late, over a group of just the root and it", async () => {
    const { root, receivers } = await startGroup(await endpointsFor(3, "ipc"));
    const teacher = randomValues(100_000, 7);
    await Promise.all([root.send(teacher, FrameHeader.create({ step: 9 }), 9), ...receivers.map((r) => r.receive(new Float32Array(teacher.length), 9))]);

    const late = await startGroup(await endpointsFor(2, "ipc"));
    try {
      const state = new Float32Array(teacher.length);
      const [, meta] = await Promise.all([late.root.send(teacher, FrameHeader.create({ step: 9 }), 9), late.receivers[0].receive(state, 9)]);
      expect(bytesOfArray(state).equals(bytesOfArray(teacher))).toBe(true);
      expect(meta.step).toBe(9);
    } finally {
      await closeAll([root, ...receivers, late.root, ...late.receivers]);
    }
  });

  it("rejects and logs stale, corrupted and foreign frames at a receiver and still completes", async () => {
    const endpoints = await endpointsFor(3, "ipc");
    const { logger, lines } = capturingLogger();
    const { root, receivers } = await startGroup(endpoints, { chunkBytes: 1024, logger });
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[2]);
    try {
      const payload = bytesOfArray(randomValues(256, 1));
      const fields = {
        protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_BROADCAST, type: FrameType.FRAME_TYPE_DATA,
        groupId: receivers[1].groupId, step: 3, senderRank: 1, chunk: 3, payloadBytes: payload.length, payloadCrc32: 1, totalElements: 1024,
      };
      const header = (f: Partial<typeof fields>) => Buffer.from(FrameHeader.encode({ ...fields, ...f }).finish());
      for (const frame of [[header({})], [header({ step: 2 }), payload], [header({}), payload], [header({ senderRank: 0 }), payload], [header({ groupId: 1 }), payload]]) {
        await rogue.send(frame);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      const source = randomValues(1024, 2);
      const target = new Float32Array(1024);
      // Receiver 2 starts first, so it works through the queued frames before real data can
      // arrive (ZeroMQ reads its pipes in turn; one shared-memory doorbell may carry everything).
      const pending = receivers[1].receive(target, 3);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([root.send(source, FrameHeader.create({ step: 3 }), 3), receivers[0].receive(new Float32Array(1024), 3), pending]);
      expect(bytesOfArray(target).equals(bytesOfArray(source))).toBe(true);
      expect(receivers[1].stats.rejectedByReason).toEqual({ malformed: 1, "stale-step": 1, "bad-checksum": 1, "unknown-sender": 1, "foreign-group": 1 });
      expect(lines.filter((l) => l.msg === "rejected frame" && l.rank === 2)).toHaveLength(5);
    } finally {
      rogue.close();
      await closeAll([root, ...receivers]);
    }
  });

  it("over ipc, reads the root's shared-memory file, rejecting a doorbell whose file bytes do not match and a run not ending on a chunk", async () => {
    const endpoints = await endpointsFor(3, "ipc");
    const { root, receivers } = await startGroup(endpoints, { chunkBytes: 1024 });
    const rootFile = new SharedMemoryFiles(SharedMemoryFiles.usableDirectory()!, endpoints, 0, 0, "broadcast").pathOf(0);
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[2]);
    try {
      const first = randomValues(4096, 11);
      await Promise.all([root.send(first, FrameHeader.create({ step: 0 }), 0), ...receivers.map((r) => r.receive(new Float32Array(4096), 0))]);
      // The root's file now holds step 0's tensor: doorbells for step 1 must not make receiver 2
      // take those bytes, nor anything that is not a run of whole chunks.
      const doorbell = (payloadBytes: number, checksum: number) => [
        Buffer.from(
          FrameHeader.encode({
            protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_BROADCAST, type: FrameType.FRAME_TYPE_SHARED_MEMORY_DATA,
            groupId: receivers[1].groupId, step: 1, senderRank: 1, chunk: 1, payloadBytes, payloadCrc32: checksum, totalElements: 4096,
          }).finish(),
        ),
        Buffer.alloc(0),
      ];
      await rogue.send(doorbell(2048, 1));
      await rogue.send(doorbell(1000, 1));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const source = randomValues(4096, 12);
      const target = new Float32Array(4096);
      const pending = receivers[1].receive(target, 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const [, , meta] = await Promise.all([root.send(source, FrameHeader.create({ step: 1 }), 1), receivers[0].receive(new Float32Array(4096), 1), pending]);
      expect(bytesOfArray(target).equals(bytesOfArray(source))).toBe(true);
      expect(meta.step).toBe(1);
      expect(receivers[1].stats.rejectedByReason).toEqual({ "bad-checksum": 1, "wrong-length": 1 });
      expect(receivers[1].stats.framesAccepted).toBe(2 * 16);
      expect(fs.existsSync(rootFile)).toBe(true);
    } finally {
      rogue.close();
      await closeAll([root, ...receivers]);
    }
    expect(fs.existsSync(rootFile)).toBe(false);
  });

  it("in place over ipc: a receiver that asks reads the root's own tensor (later changes show through), a plain receiver gets a copy", async () => {
    const { root, receivers } = await startGroup(await endpointsFor(3, "ipc"), { chunkBytes: 16 * 1024 });
    try {
      const length = 300_001;
      const tensor = root.allocateTensor(length);
      tensor.set(randomValues(length, 21));
      const copy = new Float32Array(length);
      const [, viewed, meta] = await Promise.all([
        root.sendInPlace(tensor, FrameHeader.create({ step: 5 }), 5),
        receivers[0].receiveInPlace(length, 5),
        receivers[1].receive(copy, 5),
      ]);
      expect(bytesOfArray(viewed.values).equals(bytesOfArray(tensor))).toBe(true);
      expect(bytesOfArray(copy).equals(bytesOfArray(tensor))).toBe(true);
      expect(viewed.meta.step).toBe(5);
      expect(meta.step).toBe(5);
      // The root changes its tensor, as the coordinator does once every worker is done reading it.
      tensor[length - 1] = 1234.5;
      expect(viewed.values[length - 1]).toBe(1234.5);
      expect(copy[length - 1]).not.toBe(1234.5);
      const [, again] = await Promise.all([
        root.sendInPlace(tensor, FrameHeader.create({ step: 6 }), 6),
        receivers[0].receiveInPlace(length, 6),
        receivers[1].receive(copy, 6),
      ]);
      expect(again.values).toBe(viewed.values); // the same view, no new mapping per step
      expect(copy[length - 1]).toBe(1234.5);
      // Shared once, read in place at every receiver: what the coordinator does with its student.
      const location = root.inPlaceLocation(tensor.subarray(1000))!;
      expect(location.file).toMatch(/^dino-comm-tensor-/);
      const once = receivers[1].viewRootTensor(location, length - 1000);
      expect(bytesOfArray(once).equals(bytesOfArray(tensor.subarray(1000)))).toBe(true);
      tensor[1000] = -7;
      expect(once[0]).toBe(-7);
      expect(() => receivers[1].viewRootTensor({ ...location, file: "dino-comm-tensor-0-0-00" }, 10)).toThrow(/cannot read the root's shared tensor dino-comm-tensor-0-0-00: .*cannot be opened/);
      expect(() => receivers[1].viewRootTensor(location, length + 1)).toThrow(/ends before byte/);
      expect(root.inPlaceLocation(new Float32Array(10))).toBeUndefined();
    } finally {
      await closeAll([root, ...receivers]);
    }
  });

  it.each(["ipc", "tcp"] as const)("in place over %s falls back to copies where the tensor is not in shared memory or a member is elsewhere", async (transport) => {
    const { root, receivers } = await startGroup(await endpointsFor(3, transport), { chunkBytes: 16 * 1024 });
    try {
      const length = 40_000;
      // Over ipc, a plain array is not in shared memory; over tcp, allocateTensor gives none.
      const tensor = transport === "ipc" ? new Float32Array(length) : root.allocateTensor(length);
      tensor.set(randomValues(length, 22));
      const results = await Promise.all([root.sendInPlace(tensor, FrameHeader.create({ step: 0 }), 0), ...receivers.map((r) => r.receiveInPlace(length, 0))]);
      tensor[0] = 99;
      expect(root.inPlaceLocation(tensor)).toBeUndefined();
      if (transport === "tcp") expect(() => receivers[0].viewRootTensor({ file: "dino-comm-tensor-1-0-00", byteOffset: 0 }, 1)).toThrow(/not every member of this group is on this host/);
      for (const { values } of results.slice(1) as Array<{ values: Float32Array }>) {
        expect(values[0]).not.toBe(99);
        expect(bytesOfArray(values.subarray(1)).equals(bytesOfArray(tensor.subarray(1)))).toBe(true);
      }
    } finally {
      await closeAll([root, ...receivers]);
    }
  });

  it("rejects in-place doorbells that name no shared tensor, a short one, a misaligned offset or the wrong length, and still completes", async () => {
    const endpoints = await endpointsFor(3, "ipc");
    const { root, receivers } = await startGroup(endpoints, { chunkBytes: 16 * 1024 });
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[2]);
    try {
      const length = 4096;
      const tensor = root.allocateTensor(length);
      tensor.set(randomValues(length, 23));
      const small = root.allocateTensor(16);
      const nameOf = (t: Float32Array) => sharedTensorLocation(t)!.name;
      const doorbell = (fields: { sharedTensorFile: string; sharedTensorOffset?: number; payloadBytes?: number }) => [
        Buffer.from(
          FrameHeader.encode({
            protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_BROADCAST, type: FrameType.FRAME_TYPE_SHARED_TENSOR_READY,
            groupId: receivers[1].groupId, step: 1, senderRank: 1, chunk: 0, payloadBytes: length * 4, totalElements: length, sharedTensorOffset: 0, ...fields,
          }).finish(),
        ),
        Buffer.alloc(0),
      ];
      await rogue.send(doorbell({ sharedTensorFile: "../../etc/passwd" }));
      await rogue.send(doorbell({ sharedTensorFile: "dino-comm-tensor-0-0-deadbeef" })); // no such file
      await rogue.send(doorbell({ sharedTensorFile: nameOf(small) })); // ends before the tensor's bytes
      await rogue.send(doorbell({ sharedTensorFile: nameOf(tensor), sharedTensorOffset: 2 }));
      await rogue.send(doorbell({ sharedTensorFile: nameOf(tensor), payloadBytes: 400 }));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const pending = receivers[1].receiveInPlace(length, 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const [, , received] = await Promise.all([root.sendInPlace(tensor, FrameHeader.create({ step: 1 }), 1), receivers[0].receiveInPlace(length, 1), pending]);
      expect(bytesOfArray(received.values).equals(bytesOfArray(tensor))).toBe(true);
      expect(receivers[1].stats.rejectedByReason).toEqual({ malformed: 3, "wrong-length": 2 });
    } finally {
      rogue.close();
      await closeAll([root, ...receivers]);
    }
  });

  it("fails the root with CollectiveTimeoutError when a receiver never answers, and a receiver given the wrong length with a mismatch error", async () => {
    const endpoints = await endpointsFor(3, "ipc");
    const root = new BroadcastRoot({ endpoints, timeoutMs: 400, logger: silentLogger, metaCodec });
    const first = new BroadcastReceiver({ endpoints, rank: 1, timeoutMs: 400, logger: silentLogger, metaCodec });
    await Promise.all([root.start(), first.start()]); // rank 2 never starts
    const started = Date.now();
    const [sent, received] = await Promise.allSettled([root.send(randomValues(1000, 1), FrameHeader.create(), 0), first.receive(new Float32Array(999), 0)]);
    expect(Date.now() - started).toBeLessThan(400 + 1500);
    expect((sent as PromiseRejectedResult).reason).toBeInstanceOf(CollectiveTimeoutError);
    expect((received as PromiseRejectedResult).reason).toBeInstanceOf(CollectiveMismatchError);
    expect((received as PromiseRejectedResult).reason).toMatchObject({ localElements: 999, peerElements: 1000 });
  });
});
