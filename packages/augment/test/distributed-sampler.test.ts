import { batchesPerEpoch, epochPermutation, shardBatch, shardBatchIndices, shardIndices, stridedShard, AugmentConfigError } from "../src";

describe("DistributedSampler + drop_last sharding", () => {
  it("pads by repeating the permutation's head and strides by world size (hand-computed)", () => {
    const perm = Uint32Array.from([4, 2, 0, 3, 1]); // N = 5, W = 3 → total 6, padded [4,2,0,3,1,4]
    expect(Array.from(stridedShard(perm, 3, 0))).toEqual([4, 3]);
    expect(Array.from(stridedShard(perm, 3, 1))).toEqual([2, 1]);
    expect(Array.from(stridedShard(perm, 3, 2))).toEqual([0, 4]);
  });

  it("repeats the permutation several times when padding exceeds N (torch's general case)", () => {
    const perm = Uint32Array.from([1, 0]); // N = 2, W = 5 → padded [1,0,1,0,1]
    expect([0, 1, 2, 3, 4].map((r) => Array.from(stridedShard(perm, 5, r)))).toEqual([[1], [0], [1], [0], [1]]);
  });

  it("is a permutation seeded by seed + epoch", () => {
    const p = epochPermutation(100, 7, 3);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(Array.from(epochPermutation(100, 7, 3))).toEqual(Array.from(p));
    expect(Array.from(epochPermutation(100, 10, 0))).toEqual(Array.from(p)); // torch seeds with seed + epoch
    expect(Array.from(epochPermutation(100, 7, 4))).not.toEqual(Array.from(p));
  });

  it("covers every index once across ranks when N divides, drops incomplete batches", () => {
    const spec = { datasetSize: 103, world: 4, seed: 1, epoch: 2, batchSize: 5 };
    const seen: number[] = [];
    for (let rank = 0; rank < 4; rank++) {
      const shard = shardIndices({ ...spec, rank });
      expect(shard.length).toBe(26); // ceil(103 / 4)
      seen.push(...shard);
      const batches = shardBatchIndices({ ...spec, rank });
      expect(batches.length).toBe(5); // floor(26 / 5), last 1 dropped
      expect(batchesPerEpoch(spec)).toBe(5);
      batches.forEach((b, k) => {
        expect(Array.from(b)).toEqual(Array.from(shard.slice(k * 5, k * 5 + 5)));
        expect(Array.from(shardBatch({ ...spec, rank, batch: k }))).toEqual(Array.from(b));
      });
    }
    expect(new Set(seen).size).toBe(103); // 104 slots, one padded repeat
    const perm = epochPermutation(103, 1, 2);
    expect(seen.filter((i) => i === perm[0]).length).toBe(2); // the padding repeats the head
  });

  it("rejects bad parameters with typed errors", () => {
    expect(() => shardIndices({ datasetSize: 10, world: 2, rank: 2, seed: 0, epoch: 0 })).toThrow(AugmentConfigError);
    expect(() => shardIndices({ datasetSize: 0, world: 1, rank: 0, seed: 0, epoch: 0 })).toThrow(AugmentConfigError);
    expect(() => shardBatch({ datasetSize: 10, world: 1, rank: 0, seed: 0, epoch: 0, batchSize: 4, batch: 2 })).toThrow(/batch must be in \[0, 2\)/);
  });
});
