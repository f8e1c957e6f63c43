import { CollectiveKind, FrameHeader, FrameType, PROTOCOL_VERSION } from "@dino-coord/proto";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import * as zmq from "zeromq";
import { allocateCollectiveTensor, allocateSharedTensor, CollectiveTimeoutError, type RingAllReduceOptions, PayloadKernels, RingAllReduce, RingLayout } from "../src";
import { SharedMemoryFiles } from "../src/shared-memory-files";
import { sharedMapping, sharedMappingStatus } from "../src/shared-mapping";
import { ForkedMember } from "./support/forked-member";
import { bytesOfArray, closeAll, endpointsFor, expectCloseToSum, randomValues, silentLogger, startRing } from "./support/rings";

/** All-reduces copies of `inputs` in tensors from `allocate`, 3 elements in (off vector boundaries). */
async function allReduceIn(allocate: (length: number) => Float32Array, rings: RingAllReduce[], inputs: Float32Array[], step: number): Promise<Float32Array[]> {
  const outputs = inputs.map((x) => {
    const tensor = allocate(x.length + 3).subarray(3);
    tensor.set(x);
    return tensor;
  });
  await Promise.all(rings.map((ring, r) => ring.allReduce(outputs[r], step)));
  return outputs;
}

/** In plain arrays. */
const allReduceAll = allReduceIn.bind(null, (length) => new Float32Array(length));
/** In collective tensors (checksummed and added in place in the kernels' memory). */
const allReduceAllInPlace = allReduceIn.bind(null, allocateCollectiveTensor);
/** In shared tensors (same-host peers read them where they lie). */
const allReduceAllShared = allReduceIn.bind(null, allocateSharedTensor);

/** Starts ranks whose files are read and written with pread/pwrite instead of being mapped. */
async function startUnmappedRing(endpoints: string[], options: Partial<RingAllReduceOptions>, ranks?: number[]): Promise<RingAllReduce[]> {
  process.env.DINO_COMM_SHM_MMAP = "0";
  sharedMapping(true);
  try {
    return await startRing(endpoints, options, ranks);
  } finally {
    delete process.env.DINO_COMM_SHM_MMAP;
    sharedMapping(true);
  }
}

/** Two steps of 10,007 elements: the sums are right and every rank ends with the same bytes. */
async function expectRanksAgree(rings: RingAllReduce[], reduce: typeof allReduceAll, seed: number): Promise<void> {
  for (const step of [0, 1]) {
    const inputs = rings.map((_, r) => randomValues(10_007, seed + 10 * step + r));
    const outputs = await reduce(rings, inputs, step);
    expectCloseToSum(outputs[0], inputs);
    outputs.forEach((o) => expect(bytesOfArray(o).equals(bytesOfArray(outputs[0]))).toBe(true));
  }
}

function filesOf(endpoints: string[], epoch = 0): SharedMemoryFiles {
  return new SharedMemoryFiles(SharedMemoryFiles.usableDirectory()!, endpoints, epoch, 0);
}

const shmAvailable = SharedMemoryFiles.usableDirectory() !== null;

describe("RingAllReduce through shared memory (all ranks on one host)", () => {
  it("has a tmpfs directory on this machine (the path below is otherwise never taken)", () => {
    expect(shmAvailable).toBe(true);
  });

  it("maps the files with the native helper built by the package build (else payloads take the slower pread/pwrite)", () => {
    expect(sharedMappingStatus()).toBe("loaded");
    expect(filesOf(["ipc:///tmp/unused-0", "ipc:///tmp/unused-1"]).mapped).toBe(true);
  });

  it("gives results bitwise identical to the socket path, for N = 2..5 and odd lengths, direct or ring, mapped or not, in shared, collective or plain tensors; keeps one file per rank", async () => {
    for (const n of [2, 3, 4, 5]) {
      const endpoints = await endpointsFor(n, "ipc");
      const direct = await startRing(endpoints, { chunkBytes: 256 });
      const ring = await startRing(await endpointsFor(n, "ipc"), { chunkBytes: 256, sameHostSchedule: "ring" });
      const unmapped = await startUnmappedRing(await endpointsFor(n, "ipc"), { chunkBytes: 256 });
      const unmappedRing = await startUnmappedRing(await endpointsFor(n, "ipc"), { chunkBytes: 256, sameHostSchedule: "ring" });
      const sockets = await startRing(await endpointsFor(n, "ipc"), { chunkBytes: 256, sharedMemory: false });
      try {
        const files = filesOf(endpoints);
        for (let r = 0; r < n; r++) expect(fs.existsSync(files.pathOf(r))).toBe(true);
        for (const [step, length] of [1, n - 1, n, 17 * n + 3, 5003, 40_001].entries()) {
          const inputs = direct.map((_, r) => randomValues(length, 77 * n + 10 * step + r));
          const outputs = [
            ...(await allReduceAll(direct, inputs, 3 * step)),
            ...(await allReduceAllInPlace(direct, inputs, 3 * step + 1)),
            ...(await allReduceAllShared(direct, inputs, 3 * step + 2)),
            ...(await allReduceAll(ring, inputs, 2 * step)),
            ...(await allReduceAllInPlace(ring, inputs, 2 * step + 1)),
            ...(await allReduceAllInPlace(unmapped, inputs, 2 * step)),
            ...(await allReduceAllShared(unmapped, inputs, 2 * step + 1)),
            ...(await allReduceAllInPlace(unmappedRing, inputs, step)),
          ];
          const viaSockets = await allReduceAll(sockets, inputs, step);
          expectCloseToSum(outputs[0], inputs);
          const reference = bytesOfArray(viaSockets[0]);
          [...outputs, ...viaSockets].forEach((o, r) => expect({ r, length, equal: bytesOfArray(o).equals(reference) }).toEqual({ r, length, equal: true }));
        }
        await closeAll(direct);
        for (let r = 0; r < n; r++) expect(fs.existsSync(files.pathOf(r))).toBe(false);
      } finally {
        await closeAll([...direct, ...ring, ...unmapped, ...unmappedRing, ...sockets]);
      }
    }
  });

  it("works when some ranks map the files and others pread them", async () => {
    const n = 4;
    const endpoints = await endpointsFor(n, "ipc");
    const rings = [...(await startRing(endpoints, { chunkBytes: 512 }, [0, 2])), ...(await startUnmappedRing(endpoints, { chunkBytes: 512 }, [1, 3]))];
    rings.sort((a, b) => a.rank - b.rank);
    try {
      await expectRanksAgree(rings, allReduceAllInPlace, 900);
    } finally {
      await closeAll(rings);
    }
  });

  it("works when some ranks send through sockets and others through shared memory", async () => {
    const n = 4;
    const endpoints = await endpointsFor(n, "ipc");
    const rings = [0, 1, 2, 3].map(
      (rank) => new RingAllReduce({ rank, endpoints, timeoutMs: 10_000, logger: silentLogger, chunkBytes: 512, sharedMemory: rank % 2 === 0, sameHostSchedule: "ring" }),
    );
    await Promise.all(rings.map((r) => r.start()));
    try {
      await expectRanksAgree(rings, allReduceAll, 500);
    } finally {
      await closeAll(rings);
    }
  });

  it("never applies file contents that do not match the doorbell's checksum (stale data) or a file too short, and still completes", async () => {
    const n = 2;
    const chunkBytes = 64;
    const length = 40; // 20 elements per segment -> chunks of 16 and 4 elements
    const endpoints = await endpointsFor(n, "ipc");
    const rings = await startRing(endpoints, { chunkBytes, sameHostSchedule: "ring" });
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[1]);
    try {
      const layout = new RingLayout(length, n, chunkBytes / 4);
      const kernels = new PayloadKernels(chunkBytes);
      const doorbell = (step: number, checksum: number) => [
        Buffer.from(
          FrameHeader.encode({
            protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, type: FrameType.FRAME_TYPE_SHARED_MEMORY_DATA,
            groupId: rings[1].groupId, step, senderRank: 0, ringStep: 0, chunk: 0, payloadBytes: 64, payloadCrc32: checksum, totalElements: length,
          }).finish(),
        ),
        Buffer.alloc(0),
      ];

      // Before any operation rank 0's file is empty: the read comes up short.
      await rogue.send(doorbell(0, kernels.checksum(bytesOfArray(randomValues(16, 1)))));
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Rank 1 starts first, so it reads the rogue doorbell before rank 0 writes anything.
      const first = rings.map((_, r) => randomValues(length, 10 + r));
      const outputs0 = first.map((x) => Float32Array.from(x));
      const pending1 = rings[1].allReduce(outputs0[1], 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([rings[0].allReduce(outputs0[0], 0), pending1]);
      expectCloseToSum(outputs0[1], first);
      expect(rings[1].stats.rejectedByReason).toEqual({ "wrong-length": 1 });

      // Now the file holds step 0's bytes. A doorbell for step 1 whose checksum is that of
      // other data must not make rank 1 add the stale bytes.
      const fresh = bytesOfArray(randomValues(16, 2));
      await rogue.send(doorbell(1, kernels.checksum(fresh)));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = rings.map((_, r) => randomValues(length, 20 + r));
      const outputs1 = second.map((x) => Float32Array.from(x));
      const pending = rings[1].allReduce(outputs1[1], 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([rings[0].allReduce(outputs1[0], 1), pending]);
      expectCloseToSum(outputs1[1], second);
      expect(bytesOfArray(outputs1[0]).equals(bytesOfArray(outputs1[1]))).toBe(true);
      expect(rings[1].stats.rejectedByReason).toEqual({ "wrong-length": 1, "bad-checksum": 1 });
      expect(rings[1].stats.framesAccepted).toBe(2 * layout.expectedMessages(1));
    } finally {
      rogue.close();
      await closeAll(rings);
    }
  });

  it("rejects an all-gather doorbell for a segment this rank has not added into yet, even when the file matches its checksum, and a run not ending on a chunk", async () => {
    const n = 3;
    const chunkBytes = 64;
    const length = 120; // 40 elements per segment -> chunks of 16, 16 and 8 elements
    const endpoints = await endpointsFor(n, "ipc");
    const rings = await startRing(endpoints, { chunkBytes, sameHostSchedule: "ring" });
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[1]);
    try {
      const kernels = new PayloadKernels(chunkBytes);
      const first = rings.map((_, r) => randomValues(length, 80 + r));
      const firstSum = await allReduceAll(rings, first, 0);
      // Rank 1 receives segment 0 at ring step 3 (all-gather), from the file of its owner, rank 2,
      // which still holds step 0's sum there: a doorbell for step 1 with that checksum would pass
      // the checksum, but rank 1 has not added its share of segment 0 for step 1 yet.
      const layout = new RingLayout(length, n, chunkBytes / 4);
      expect(layout.receivedSegment(1, 3)).toBe(0);
      const staleChunk = bytesOfArray(firstSum[1].subarray(layout.chunkStart(0, 0), layout.chunkEnd(0, 0)));
      const doorbell = (ringStep: number, payloadBytes: number, checksum: number) => [
        Buffer.from(
          FrameHeader.encode({
            protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, type: FrameType.FRAME_TYPE_SHARED_MEMORY_DATA,
            groupId: rings[1].groupId, step: 1, senderRank: 0, ringStep, chunk: 0, payloadBytes, payloadCrc32: checksum, totalElements: length,
          }).finish(),
        ),
        Buffer.alloc(0),
      ];
      await rogue.send(doorbell(3, staleChunk.length, kernels.checksum(staleChunk)));
      await rogue.send(doorbell(0, 100, 1)); // 25 elements: chunk 0 and part of chunk 1
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = rings.map((_, r) => randomValues(length, 90 + r));
      const outputs = second.map((x) => Float32Array.from(x));
      const pending1 = rings[1].allReduce(outputs[1], 1);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([rings[0].allReduce(outputs[0], 1), rings[2].allReduce(outputs[2], 1), pending1]);
      expectCloseToSum(outputs[1], second);
      outputs.forEach((o) => expect(bytesOfArray(o).equals(bytesOfArray(outputs[0]))).toBe(true));
      expect(rings[1].stats.rejectedByReason).toEqual({ malformed: 1, "wrong-length": 1 });
      expect(rings[1].stats.framesAccepted).toBe(2 * layout.expectedMessages(1));
    } finally {
      rogue.close();
      await closeAll(rings);
    }
  });

  it("rejects a doorbell naming a rank that has no file, and a doorbell with a non-empty payload frame", async () => {
    const endpoints = await endpointsFor(2, "ipc");
    // Rank 0 sends through sockets, so it has no file to read from.
    const rings = [
      new RingAllReduce({ rank: 0, endpoints, timeoutMs: 10_000, logger: silentLogger, sharedMemory: false, sameHostSchedule: "ring" }),
      new RingAllReduce({ rank: 1, endpoints, timeoutMs: 10_000, logger: silentLogger, sameHostSchedule: "ring" }),
    ];
    await Promise.all(rings.map((r) => r.start()));
    const rogue = new zmq.Push({ linger: 0 });
    rogue.connect(endpoints[1]);
    try {
      const header = Buffer.from(
        FrameHeader.encode({
          protocolVersion: PROTOCOL_VERSION, kind: CollectiveKind.COLLECTIVE_KIND_ALL_REDUCE, type: FrameType.FRAME_TYPE_SHARED_MEMORY_DATA,
          groupId: rings[1].groupId, step: 0, senderRank: 0, ringStep: 0, chunk: 0, payloadBytes: 400, payloadCrc32: 1, totalElements: 200,
        }).finish(),
      );
      await rogue.send([header, Buffer.alloc(0)]);
      await rogue.send([header, Buffer.alloc(400)]);
      await new Promise((resolve) => setTimeout(resolve, 50));
      // Rank 1 starts first, so it handles the rogue frames before rank 0's real chunk 0.
      const inputs = [0, 1].map((r) => randomValues(200, 40 + r));
      const outputs = inputs.map((x) => Float32Array.from(x));
      const pending = rings[1].allReduce(outputs[1], 0);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await Promise.all([rings[0].allReduce(outputs[0], 0), pending]);
      expectCloseToSum(outputs[1], inputs);
      expect(rings[1].stats.rejectedByReason).toEqual({ malformed: 1, "wrong-length": 1 });
    } finally {
      rogue.close();
      await closeAll(rings);
    }
  });

  it("replaces a file left behind by a killed process of the same group", async () => {
    const endpoints = await endpointsFor(2, "ipc");
    const files = filesOf(endpoints);
    fs.writeFileSync(files.pathOf(0), Buffer.alloc(1000, 0x7f));
    const rings = await startRing(endpoints, { chunkBytes: 128 });
    try {
      const inputs = [0, 1].map((r) => randomValues(250, 60 + r));
      const outputs = await allReduceAll(rings, inputs, 0);
      expectCloseToSum(outputs[0], inputs);
      expect(rings[1].stats.framesRejected).toBe(0);
    } finally {
      await closeAll(rings);
    }
    expect(fs.existsSync(files.pathOf(0))).toBe(false);
  });

  it("removes files of dead processes of this pid namespace when a rank starts, and leaves the others", async () => {
    const directory = SharedMemoryFiles.usableDirectory()!;
    const namespace = fs.readlinkSync("/proc/self/ns/pid");
    const deadPid = spawnSync(process.execPath, ["-e", ""]).pid!;
    const write = (name: string, pid: number, ns: string) => {
      const file = path.join(directory, `dino-comm-test${process.pid}${name}-0`);
      fs.writeFileSync(file, `DINOSHM1\n${pid}\n${ns}\n`);
      return file;
    };
    const dead = write("dead", deadPid, namespace);
    const alive = write("alive", process.pid, namespace);
    const foreign = write("foreign", deadPid, "pid:[1]");
    try {
      const rings = await startRing(await endpointsFor(2, "ipc"));
      await closeAll(rings);
      expect([dead, alive, foreign].map((f) => fs.existsSync(f))).toEqual([false, true, true]);
    } finally {
      for (const file of [dead, alive, foreign]) fs.rmSync(file, { force: true });
    }
  });

  it.each(["direct", "ring"] as const)("%s schedule: fails with CollectiveTimeoutError within the timeout when the peer process dies in the middle of a transfer", async (sameHostSchedule) => {
    const endpoints = await endpointsFor(3, "ipc");
    const length = 1_000_000;
    const chunkBytes = 16 * 1024;
    const timeoutMs = 3000;
    const child = new ForkedMember();
    const rings = await startRing(endpoints, { timeoutMs, chunkBytes, sameHostSchedule }, [0, 1]);
    try {
      child.send({ type: "init", rank: 2, endpoints, timeoutMs, chunkBytes, sameHostSchedule });
      await child.next("ready");
      const inputs = [0, 1].map((r) => new Float32Array(length).fill(r + 1));
      child.send({ type: "run", length, seed: 2, step: 0 });
      // Rank 2 can get no further than its first send while rank 1 has not started (a ring chunk,
      // or its input doorbell): kill it once rank 0 has taken that, then let rank 1 join.
      const first = rings[0].allReduce(inputs[0], 0);
      const expected = new RingLayout(length, 3, chunkBytes / 4).expectedMessages(0);
      const pollStarted = Date.now();
      while (rings[0].stats.framesAccepted === 0 && Date.now() - pollStarted < 10_000) await new Promise((resolve) => setTimeout(resolve, 1));
      child.kill();
      const killedAt = Date.now();
      const results = await Promise.allSettled([first, rings[1].allReduce(inputs[1], 0)]);
      expect(rings[0].stats.framesAccepted).toBeLessThan(expected);
      expect(Date.now() - killedAt).toBeLessThan(timeoutMs + 1500);
      const errors = results.map((r) => (r as PromiseRejectedResult).reason);
      errors.forEach((e) => expect(e).toBeInstanceOf(CollectiveTimeoutError));
      expect(errors[0]).toMatchObject({ rank: 0, peerRank: 2, step: 0, direction: "receive" });
      expect(errors[0].received).toBeGreaterThan(0);
    } finally {
      child.kill();
      await child.exited();
      await closeAll(rings);
    }
    // The killed process could not remove its own file; the next rank to start removes it.
    expect(fs.existsSync(filesOf(endpoints).pathOf(2))).toBe(true);
    await closeAll(await startRing(await endpointsFor(2, "ipc")));
    expect(fs.existsSync(filesOf(endpoints).pathOf(2))).toBe(false);
  });
});
