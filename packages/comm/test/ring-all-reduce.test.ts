import { CollectiveKind, FrameHeader, FrameType, PROTOCOL_VERSION } from "@dino-coord/proto";
import * as zmq from "zeromq";
import {
  CollectiveAbortedError,
  CollectiveMismatchError,
  CollectiveTimeoutError,
  CollectiveUsageError,
  PayloadKernels,
  RingAllReduce,
  RingLayout,
} from "../src";
import { bytesOfArray, capturingLogger, closeAll, endpointsFor, expectCloseToSum, randomValues, silentLogger, startRing } from "./support/rings";

async function allReduceAll(rings: RingAllReduce[], inputs: Float32Array[], step: number): Promise<Float32Array[]> {
  const outputs = inputs.map((x) => Float32Array.from(x));
  await Promise.all(rings.map((ring, r) => ring.allReduce(outputs[r], step)));
  return outputs;
}

function expectBitwiseEqual(outputs: Float32Array[]): void {
  const first = bytesOfArray(outputs[0]);
  outputs.forEach((o, r) => expect({ rank: r, equal: bytesOfArray(o).equals(first) }).toEqual({ rank: r, equal: true }));
}

describe("RingAllReduce sums", () => {
  for (let n = 1; n <= 8; n++) {
    it(`sums over ${n} in-process rank(s) for lengths 0, 1, < N, not a multiple of N, and multi-chunk; all ranks bitwise equal`, async () => {
      const rings = await startRing(await endpointsFor(n, n % 2 ? "ipc" : "tcp"), { chunkBytes: 64 });
      try {
        const lengths = [0, 1, Math.max(0, n - 1), 17 * n + 3, 5003];
        for (const [step, length] of lengths.entries()) {
          const inputs = rings.map((_, r) => randomValues(length, 1000 * n + 10 * step + r));
          const outputs = await allReduceAll(rings, inputs, step);
          expectCloseToSum(outputs[0], inputs);
          expectBitwiseEqual(outputs);
        }
      } finally {
        await closeAll(rings);
      }
    });
  }

  it("sums a large tensor in the default chunk size over tcp, repeatedly on the same ring", async () => {
    const n = 3;
    const rings = await startRing(await endpointsFor(n, "tcp"));
    try {
      for (const step of [7, 8]) {
        const inputs = rings.map((_, r) => randomValues(1_000_003, step * 10 + r));
        const outputs = await allReduceAll(rings, inputs, step);
        expectCloseToSum(outputs[0], inputs);
        expectBitwiseEqual(outputs);
      }
    } finally {
      await closeAll(rings);
    }
  });

  it("gives the coordinator the sum when it joins as one more member contributing zeros", async () => {
    const workers = 3;
    const rings = await startRing(await endpointsFor(workers + 1, "ipc"), { chunkBytes: 256 });
    try {
      const inputs = Array.from({ length: workers }, (_, r) => randomValues(2000, 50 + r));
      const outputs = await allReduceAll(rings, [...inputs, new Float32Array(2000)], 1);
      expectCloseToSum(outputs[workers], inputs);
      expectBitwiseEqual(outputs);
    } finally {
      await closeAll(rings);
    }
  });

  it("lets the caller reuse its buffer as soon as allReduce resolves", async () => {
    const n = 3;
    const rings = await startRing(await endpointsFor(n, "ipc"), { chunkBytes: 1024 });
    try {
      const buffers = rings.map(() => new Float32Array(10_000));
      for (let step = 0; step < 4; step++) {
        buffers.forEach((b, r) => b.set(randomValues(b.length, step * 10 + r)));
        const inputs = buffers.map((b) => Float32Array.from(b));
        await Promise.all(rings.map((ring, r) => ring.allReduce(buffers[r], step)));
        expectCloseToSum(buffers[0], inputs);
        expectBitwiseEqual(buffers);
        // Overwrite immediately: a frame still referencing the buffer would carry garbage.
        buffers.forEach((b) => b.fill(NaN));
      }
    } finally {
      await closeAll(rings);
    }
  });
});

describe("RingAllReduce bad input", () => {
  it("rejects and logs garbage, wrong checksum, wrong length, stale step, unknown sender and foreign frames, and still completes", async () => {
    const n = 3;
    const chunkBytes = 64;
    const length = 120; // 40 elements per segment -> 3 chunks of <= 16 elements
    const endpoints = await endpointsFor(n, "ipc");
    const { logger, lines } = capturingLogger();
    // The ring's own frames: through the direct same-host schedule they are foreign (direct-all-reduce.test.ts).
    const rings = await startRing(endpoints, { chunkBytes, logger, sameHostSchedule: "ring" });
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[1]);
    try {
      const target = rings[1];
      const layout = new RingLayout(length, n, chunkBytes / 4);
      const lastStep = layout.ringSteps - 1;
      const segment = layout.receivedSegment(1, lastStep);
      const chunkLength = layout.chunkEnd(segment, 0) - layout.chunkStart(segment, 0);
      const payload = bytesOfArray(randomValues(chunkLength, 9));
      const checksum = new PayloadKernels(chunkBytes).checksum(payload);
      const step = 5;
      const legit = {
        protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, type: FrameType.FRAME_TYPE_DATA,
        groupId: target.groupId, step, senderRank: 0, ringStep: lastStep, chunk: 0, payloadBytes: payload.length,
        payloadCrc32: checksum, totalElements: length,
      };
      const header = (fields: Partial<typeof legit>) => Buffer.from(FrameHeader.encode({ ...legit, ...fields }).finish());
      const frames: Buffer[][] = [
        [Buffer.from("garbage")],
        [Buffer.from([0xff, 0xff, 0xff]), payload],
        [header({ payloadCrc32: checksum ^ 0x5a5a }), payload],
        [header({}), payload.subarray(4)],
        [header({ payloadBytes: payload.length - 4 }), payload.subarray(4)],
        [header({ step: step - 1 }), payload],
        [header({ senderRank: 2 }), payload],
        [header({ groupId: target.groupId ^ 1 }), payload],
        [header({ protocolVersion: PROTOCOL_VERSION + 1 }), payload],
        [header({ ringStep: layout.ringSteps }), payload],
      ];
      for (const frame of frames) await rogue.send(frame);
      await new Promise((resolve) => setTimeout(resolve, 100));

      const inputs = rings.map((_, r) => randomValues(length, 70 + r));
      // Rank 1 starts first, so it works through the queued frames before a real chunk can
      // arrive: ZeroMQ reads its pipes in turn, and a shared-memory doorbell may announce all
      // of a segment's chunks at once, so the operation could otherwise end with frames unread.
      const outputs = inputs.map((x) => Float32Array.from(x));
      const pending = target.allReduce(outputs[1], step);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([rings[0].allReduce(outputs[0], step), rings[2].allReduce(outputs[2], step), pending]);
      expectCloseToSum(outputs[0], inputs);
      expectBitwiseEqual(outputs);

      expect(target.stats.rejectedByReason).toEqual({
        malformed: 2,
        "bad-checksum": 1,
        "wrong-length": 2,
        "stale-step": 1,
        "unknown-sender": 1,
        "foreign-group": 1,
        "protocol-version": 1,
        "out-of-range": 1,
      });
      expect(target.stats.framesAccepted).toBe(layout.expectedMessages(1));
      const logged = lines.filter((l) => l.msg === "rejected frame" && l.rank === 1).map((l) => l.reason);
      expect(logged).toHaveLength(frames.length);
      expect(new Set(logged)).toEqual(new Set(Object.keys(target.stats.rejectedByReason)));
    } finally {
      rogue.close();
      await closeAll(rings);
    }
  });

  it("fails with a typed mismatch error when ranks disagree on the tensor length", async () => {
    const rings = await startRing(await endpointsFor(2, "ipc"), { timeoutMs: 2000 });
    const results = await Promise.allSettled([rings[0].allReduce(new Float32Array(10), 0), rings[1].allReduce(new Float32Array(12), 0)]);
    const errors = results.map((r) => (r.status === "rejected" ? r.reason : null));
    expect(errors[0]).toBeInstanceOf(CollectiveMismatchError);
    expect(errors[0]).toMatchObject({ rank: 0, peerRank: 1, localElements: 10, peerElements: 12 });
    await closeAll(rings);
  });

  it("validates options and call order with usage errors naming the option", async () => {
    const endpoints = await endpointsFor(2, "ipc");
    expect(() => new RingAllReduce({ rank: 2, endpoints, timeoutMs: 100, logger: silentLogger })).toThrow(CollectiveUsageError);
    expect(() => new RingAllReduce({ rank: 0, endpoints: ["nope"], timeoutMs: 100, logger: silentLogger })).toThrow(/endpoints/);
    expect(() => new RingAllReduce({ rank: 0, endpoints, timeoutMs: 100, logger: silentLogger, chunkBytes: 6 })).toThrow(/chunkBytes/);
    const ring = new RingAllReduce({ rank: 0, endpoints, timeoutMs: 100, logger: silentLogger });
    await expect(ring.allReduce(new Float32Array(4), 0)).rejects.toThrow(/start\(\) first/);
    await ring.start();
    await expect(ring.allReduce(new Float32Array(4), -1)).rejects.toThrow(/step/);
    await ring.close();
  });
});

describe("RingAllReduce failures", () => {
  it("fails with CollectiveTimeoutError naming the silent peer within the timeout, and closes", async () => {
    const endpoints = await endpointsFor(3, "ipc");
    const rings = await startRing(endpoints, { timeoutMs: 400 }, [0, 1]); // rank 2 never starts
    const started = Date.now();
    const results = await Promise.allSettled(rings.map((ring, r) => ring.allReduce(randomValues(300, r), 3)));
    expect(Date.now() - started).toBeLessThan(400 + 1500);
    const error = (results[0] as PromiseRejectedResult).reason;
    expect(error).toBeInstanceOf(CollectiveTimeoutError);
    expect(error).toMatchObject({ operation: "allReduce", step: 3, rank: 0, peerRank: 2, peerEndpoint: endpoints[2], direction: "receive", bufferIntact: true });
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(CollectiveTimeoutError);
    await expect(rings[0].allReduce(new Float32Array(3), 4)).rejects.toThrow(CollectiveUsageError);
  });

  it("aborts a stalled operation and re-runs the same step over a new membership", async () => {
    const length = 5000;
    const inputs = [0, 1, 2, 3].map((r) => randomValues(length, 300 + r));
    const oldRing = await startRing(await endpointsFor(4, "ipc"), { timeoutMs: 10_000, chunkBytes: 1024 }, [0, 1, 2]); // rank 3 "died"
    const buffers = [0, 1, 2].map((r) => Float32Array.from(inputs[r]));
    const running = Promise.allSettled(oldRing.map((ring, r) => ring.allReduce(buffers[r], 42)));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const abortedAt = Date.now();
    oldRing.forEach((ring) => ring.abort("rank 3 replaced"));
    const results = await running;
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    for (const result of results) {
      expect(result.status).toBe("rejected");
      const error = (result as PromiseRejectedResult).reason as CollectiveAbortedError;
      expect(error).toBeInstanceOf(CollectiveAbortedError);
      expect(error.reason).toBe("rank 3 replaced");
      if (!error.bufferIntact) buffers[error.rank].set(inputs[error.rank]);
    }

    // New membership: the three survivors plus a replacement for rank 3, epoch 1.
    const newRing = await startRing(await endpointsFor(4, "tcp"), { epoch: 1, chunkBytes: 1024 });
    try {
      const outputs = [...buffers, Float32Array.from(inputs[3])];
      await Promise.all(newRing.map((ring, r) => ring.allReduce(outputs[r], 42)));
      expectCloseToSum(outputs[0], inputs);
      expectBitwiseEqual(outputs);
    } finally {
      await closeAll(newRing);
    }
  });
});
