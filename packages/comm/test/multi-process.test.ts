import { CollectiveTimeoutError } from "../src";
import { ForkedMember } from "./support/forked-member";
import { closeAll, endpointsFor, expectCloseToSum, randomValues, startRing } from "./support/rings";

describe("RingAllReduce across processes", () => {
  it("sums over 3 forked processes and 1 in-process rank over tcp, bitwise equal everywhere", async () => {
    const n = 4;
    const length = 300_007;
    const endpoints = await endpointsFor(n, "tcp");
    const children = [1, 2, 3].map(() => new ForkedMember());
    try {
      children.forEach((child, i) => child.send({ type: "init", rank: i + 1, endpoints, timeoutMs: 20_000, chunkBytes: 64 * 1024 }));
      await Promise.all(children.map((c) => c.next("ready")));
      const [local] = await startRing(endpoints, { timeoutMs: 20_000, chunkBytes: 64 * 1024 }, [0]);
      const inputs = Array.from({ length: n }, (_, r) => randomValues(length, 900 + r));
      children.forEach((child, i) => child.send({ type: "run", length, seed: 900 + i + 1, step: 1 }));
      const localResult = Float32Array.from(inputs[0]);
      await local.allReduce(localResult, 1);
      const results = await Promise.all(children.map((c) => c.next("result")));
      expectCloseToSum(localResult, inputs);
      const localBytes = Buffer.from(localResult.buffer);
      for (const result of results) expect(Buffer.from(result.base64, "base64").equals(localBytes)).toBe(true);
      await local.close();
      children.forEach((c) => c.send({ type: "exit" }));
      await Promise.all(children.map((c) => c.exited()));
    } finally {
      children.forEach((c) => c.kill());
    }
  });

  it("fails with CollectiveTimeoutError within the timeout when a peer process is killed with SIGKILL", async () => {
    const endpoints = await endpointsFor(3, "ipc");
    const child = new ForkedMember();
    const rings = await startRing(endpoints, { timeoutMs: 1000 }, [0, 1]);
    try {
      child.send({ type: "init", rank: 2, endpoints, timeoutMs: 1000, chunkBytes: 64 * 1024 });
      await child.next("ready");
      // One healthy step first, so the peer was demonstrably alive and connected.
      child.send({ type: "run", length: 10_000, seed: 2, step: 0 });
      const inputs = [0, 1].map((r) => randomValues(10_000, r));
      await Promise.all(rings.map((ring, r) => ring.allReduce(inputs[r], 0)));
      await child.next("result");

      child.kill();
      await child.exited();
      const started = Date.now();
      const results = await Promise.allSettled(rings.map((ring, r) => ring.allReduce(randomValues(10_000, r), 1)));
      const elapsed = Date.now() - started;
      expect(elapsed).toBeLessThan(1000 + 1000);
      const errors = results.map((r) => (r as PromiseRejectedResult).reason);
      errors.forEach((e) => expect(e).toBeInstanceOf(CollectiveTimeoutError));
      // Rank 0 waits on the dead rank 2 directly.
      expect(errors[0]).toMatchObject({ rank: 0, peerRank: 2, step: 1, operation: "allReduce" });
    } finally {
      child.kill();
      await closeAll(rings);
    }
  });
});
