import { CollectiveKind, FrameHeader, FrameType, type IFrameHeader, PROTOCOL_VERSION } from "@dino-coord/proto";
import * as fs from "fs";
import * as path from "path";
import * as zmq from "zeromq";
import { allocateCollectiveTensor, allocateSharedTensor, CollectiveTimeoutError, RingAllReduce } from "../src";
import { sharedMapping } from "../src/shared-mapping";
import { SharedMemoryFiles } from "../src/shared-memory-files";
import { sharedTensorLocation } from "../src/shared-tensor";
import { bytesOfArray, capturingLogger, closeAll, endpointsFor, expectCloseToSum, randomValues, silentLogger, startRing } from "./support/rings";

/** Each rank's tensor lives in a different kind of memory: shared, collective, plain, in turn. */
function tensorFor(rank: number, length: number): Float32Array {
  if (rank % 3 === 0) return allocateSharedTensor(length + 5).subarray(5);
  if (rank % 3 === 1) return allocateCollectiveTensor(length);
  return new Float32Array(length);
}

function doorbell(fields: IFrameHeader): Buffer[] {
  return [Buffer.from(FrameHeader.encode({ protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, ...fields }).finish()), Buffer.alloc(0)];
}

/** Polls `done` until it holds (a test that never gets there fails with the timeout). */
async function waitUntil(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("direct same-host all-reduce", () => {
  it("sums for N = 1..8 over consecutive steps of changing length, each rank at its own pace, bitwise equal on every rank", async () => {
    for (const n of [1, 2, 3, 5, 8]) {
      const rings = await startRing(await endpointsFor(n, "ipc"), { chunkBytes: 4096 });
      try {
        const full = 3001 + n;
        const buffers = rings.map((_, r) => tensorFor(r, full));
        // Steps of a training run: a frozen last layer reduces only a prefix of the buffer.
        const lengths = [full, 1000, full, 1, n + 1, full];
        const inputs = lengths.map((length, step) => rings.map((_, r) => randomValues(length, 1000 * n + 10 * step + r)));
        const results = lengths.map(() => rings.map(() => new Float32Array(0)));
        // No rank waits for the others between steps, so fast ranks announce their next input
        // while slow ones still read sums.
        await Promise.all(
          rings.map(async (ring, r) => {
            for (const [step, length] of lengths.entries()) {
              const values = buffers[r].subarray(0, length);
              values.set(inputs[step][r]);
              await ring.allReduce(values, step);
              results[step][r] = Float32Array.from(values);
            }
          }),
        );
        for (const [step, outputs] of results.entries()) {
          expectCloseToSum(outputs[0], inputs[step]);
          outputs.forEach((o, r) => expect({ n, step, r, equal: bytesOfArray(o).equals(bytesOfArray(outputs[0])) }).toEqual({ n, step, r, equal: true }));
        }
        rings.forEach((ring) => expect(ring.stats.framesRejected).toBe(0));
        rings.forEach((ring) => expect(ring.stats.framesAccepted).toBe(lengths.length * 2 * (n - 1)));
      } finally {
        await closeAll(rings);
      }
    }
  });

  it("rejects forged, foreign and malformed doorbells before reading anything, and still completes with the right sums", async () => {
    const n = 3;
    const length = 3000;
    const endpoints = await endpointsFor(n, "ipc");
    const { logger, lines } = capturingLogger();
    const rings = await startRing(endpoints, { logger, chunkBytes: 4096 });
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[1]);
    try {
      const target = rings[1];
      const step = 7;
      const input = { type: FrameType.FRAME_TYPE_SHARED_INPUT_READY, groupId: target.groupId, step, senderRank: 0, payloadBytes: length * 4, totalElements: length };
      const sum = { ...input, type: FrameType.FRAME_TYPE_SHARED_SUM_READY, payloadBytes: 1000 * 4, payloadCrc32: 1 };
      const queued = [
        doorbell({ ...input, sharedTensorFile: "../../../etc/passwd" }), // an input rank 0 never announced
        doorbell({ ...input, payloadBytes: 4 }), // another length than rank 1's
        doorbell({ ...input, step: step - 1 }),
        doorbell({ ...input, senderRank: 9 }),
        doorbell({ ...input, groupId: target.groupId ^ 1 }),
        doorbell(sum), // a sum before its sender's input
        doorbell({ ...sum, step: step + 1 }),
        doorbell({ ...sum, type: FrameType.FRAME_TYPE_SHARED_MEMORY_DATA }), // the ring's doorbell
      ];
      for (const frame of queued) await rogue.send(frame);

      const inputs = rings.map((_, r) => randomValues(length, 500 + r));
      // Shared tensors: rank 0 reads rank 1's input where it lies, in rank 1's tensor.
      const outputs = rings.map((_, r) => {
        const tensor = allocateSharedTensor(length);
        tensor.set(inputs[r]);
        return tensor;
      });
      // Rank 1 starts first and works through the queued frames; then rank 0 joins, and both
      // wait for rank 2's input: a forged sum of rank 0 now would overwrite rank 1's share of
      // segment 0 before rank 0 has read it.
      const running = [target.allReduce(outputs[1], step)];
      await waitUntil(() => target.stats.framesRejected === queued.length);
      running.push(rings[0].allReduce(outputs[0], step));
      await waitUntil(() => target.stats.framesAccepted === 1 && rings[0].stats.framesAccepted === 1);
      await rogue.send(doorbell(sum));
      await rogue.send(doorbell({ ...sum, payloadBytes: 8 }));
      await waitUntil(() => target.stats.framesRejected === queued.length + 2);
      await Promise.all([...running, rings[2].allReduce(outputs[2], step)]);

      expectCloseToSum(outputs[1], inputs);
      outputs.forEach((o) => expect(bytesOfArray(o).equals(bytesOfArray(outputs[0]))).toBe(true));
      expect(target.stats.rejectedByReason).toEqual({
        malformed: 3, "wrong-length": 2, "stale-step": 1, "unknown-sender": 1, "foreign-group": 1, "future-step": 1, "bad-checksum": 1,
      });
      expect(target.stats.framesAccepted).toBe(2 * (n - 1));
      const logged = lines.filter((l) => l.msg === "rejected frame" && l.rank === 1);
      expect(logged).toHaveLength(queued.length + 2);
      expect(logged.find((l) => l.reason === "bad-checksum")?.detail).toMatch(/rank 0 has recorded no such sum for step 7/);
    } finally {
      rogue.close();
      await closeAll(rings);
    }
  });

  it("fails with a typed timeout, not a hang, when ranks disagree on the same-host schedule, and logs why", async () => {
    const endpoints = await endpointsFor(2, "ipc");
    const { logger, lines } = capturingLogger();
    const rings = [
      new RingAllReduce({ rank: 0, endpoints, timeoutMs: 500, logger, sameHostSchedule: "ring" }),
      new RingAllReduce({ rank: 1, endpoints, timeoutMs: 500, logger }),
    ];
    await Promise.all(rings.map((ring) => ring.start()));
    const started = Date.now();
    const results = await Promise.allSettled(rings.map((ring, r) => ring.allReduce(randomValues(100, r), 0)));
    expect(Date.now() - started).toBeLessThan(500 + 1500);
    results.forEach((result) => expect((result as PromiseRejectedResult).reason).toBeInstanceOf(CollectiveTimeoutError));
    const reasons = lines.filter((l) => l.msg === "rejected frame").map((l) => String(l.detail));
    expect(reasons.some((d) => /same sharedMemory and sameHostSchedule/.test(d))).toBe(true);
    await closeAll(rings);
  });

  it("keeps a bounded number of peers' tensor files open when peers bring new tensors every step", async () => {
    const rings = await startRing(await endpointsFor(2, "ipc"), { chunkBytes: 4096 });
    const openDescriptors = () => fs.readdirSync("/proc/self/fd").length;
    try {
      const before = openDescriptors();
      for (let step = 0; step < 150; step++) {
        const inputs = [0, 1].map((r) => randomValues(64, 10 * step + r));
        const outputs = inputs.map((x) => {
          const tensor = allocateSharedTensor(x.length);
          tensor.set(x);
          return tensor;
        });
        await Promise.all(rings.map((ring, r) => ring.allReduce(outputs[r], step)));
        expect(bytesOfArray(outputs[1]).equals(bytesOfArray(outputs[0]))).toBe(true);
      }
      // Two members, each holding at most 64 of the other's files.
      expect(openDescriptors() - before).toBeLessThanOrEqual(2 * 64);
    } finally {
      await closeAll(rings);
    }
  });

  it("refuses an unknown schedule by name", () => {
    expect(() => new RingAllReduce({ rank: 0, endpoints: ["ipc:///tmp/a", "ipc:///tmp/b"], timeoutMs: 100, logger: silentLogger, sameHostSchedule: "tree" as "ring" })).toThrow(
      /sameHostSchedule/,
    );
  });
});

describe("allocateSharedTensor", () => {
  it("returns zeros in a file of the shared-memory directory that peers can open by name; subarrays keep their place", () => {
    const tensor = allocateSharedTensor(1000);
    expect(tensor.every((x) => x === 0)).toBe(true);
    const location = sharedTensorLocation(tensor)!;
    expect(location.directory).toBe(SharedMemoryFiles.usableDirectory());
    expect(location.name).toMatch(/^dino-comm-tensor-/);
    tensor[10] = 2.5;
    const file = fs.readFileSync(path.join(location.directory, location.name));
    expect(file.readFloatLE(file.length - 4000 + 40)).toBe(2.5);
    expect(sharedTensorLocation(tensor.subarray(10))!.byteOffset).toBe(location.byteOffset + 40);
    expect(sharedTensorLocation(new Float32Array(4))).toBeUndefined();
  });

  it("falls back to a collective tensor where files cannot be mapped", () => {
    process.env.DINO_COMM_SHM_MMAP = "0";
    sharedMapping(true);
    try {
      const tensor = allocateSharedTensor(100);
      expect(tensor.length).toBe(100);
      expect(sharedTensorLocation(tensor)).toBeUndefined();
    } finally {
      delete process.env.DINO_COMM_SHM_MMAP;
      sharedMapping(true);
    }
    expect(() => allocateSharedTensor(-1)).toThrow(RangeError);
  });
});
