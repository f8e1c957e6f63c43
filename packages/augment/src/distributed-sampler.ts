import { AugmentConfigError } from "./errors";
import { CounterRandom, RandomDomain, streamKey } from "./counter-random";

/**
 * PyTorch's DistributedSampler(shuffle=True) followed by DataLoader(drop_last=True), as a
 * pure function of its inputs so any worker can recompute its shard and a resumed run
 * can continue at any batch. The permutation comes from our seeded generator (keyed by
 * seed + epoch, as torch seeds its generator with seed + epoch), not torch.randperm.
 */
export interface ShardSpec {
  datasetSize: number;
  world: number;
  rank: number;
  seed: number;
  epoch: number;
}

export interface BatchSpec extends ShardSpec {
  batchSize: number;
}

function check(spec: ShardSpec): void {
  const { datasetSize, world, rank, seed, epoch } = spec;
  if (!Number.isInteger(datasetSize) || datasetSize < 1) throw new AugmentConfigError(`datasetSize must be a positive integer, got ${datasetSize}`);
  if (!Number.isInteger(world) || world < 1) throw new AugmentConfigError(`world must be a positive integer, got ${world}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw new AugmentConfigError(`rank must be in [0, ${world}), got ${rank}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new AugmentConfigError(`seed must be a non-negative integer, got ${seed}`);
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new AugmentConfigError(`epoch must be a non-negative integer, got ${epoch}`);
}

/** The shuffled order of the whole dataset for one epoch (torch: randperm with seed + epoch). */
export function epochPermutation(datasetSize: number, seed: number, epoch: number): Uint32Array {
  return new CounterRandom(streamKey(RandomDomain.sampler, seed + epoch)).permutation(datasetSize);
}

/** Samples per rank: ceil(N / W) (the permutation is padded by repeating its head). */
export function samplesPerRank(datasetSize: number, world: number): number {
  return Math.ceil(datasetSize / world);
}

/** Full batches per rank and epoch; the incomplete last batch is dropped. */
export function batchesPerEpoch(spec: { datasetSize: number; world: number; batchSize: number }): number {
  return Math.floor(samplesPerRank(spec.datasetSize, spec.world) / spec.batchSize);
}

/** The dataset indices rank `rank` visits in `epoch`, in order (before batching). */
export function shardIndices(spec: ShardSpec): Uint32Array {
  check(spec);
  return stridedShard(epochPermutation(spec.datasetSize, spec.seed, spec.epoch), spec.world, spec.rank);
}

/** padded[i] = perm[i mod N] (torch's head repetition, also when padding exceeds N); rank r takes r, r+W, …. */
export function stridedShard(perm: Uint32Array, world: number, rank: number): Uint32Array {
  const n = perm.length;
  const shard = new Uint32Array(samplesPerRank(n, world));
  for (let k = 0; k < shard.length; k++) shard[k] = perm[(rank + k * world) % n];
  return shard;
}

/** All full batches of rank `rank` in `epoch`: batch k is the slice [k·B, (k+1)·B) of its shard. */
export function shardBatchIndices(spec: BatchSpec): Uint32Array[] {
  const shard = shardIndices(spec);
  checkBatchSize(spec.batchSize);
  const batches: Uint32Array[] = [];
  for (let k = 0; (k + 1) * spec.batchSize <= shard.length; k++) batches.push(shard.slice(k * spec.batchSize, (k + 1) * spec.batchSize));
  return batches;
}

/** Batch `batch` of epoch `epoch` for rank `rank` (for resuming mid-epoch). */
export function shardBatch(spec: BatchSpec & { batch: number }): Uint32Array {
  const shard = shardIndices(spec);
  checkBatchSize(spec.batchSize);
  const count = Math.floor(shard.length / spec.batchSize);
  if (!Number.isInteger(spec.batch) || spec.batch < 0 || spec.batch >= count) {
    throw new AugmentConfigError(`batch must be in [0, ${count}) for ${spec.datasetSize} images, world ${spec.world}, batch size ${spec.batchSize}; got ${spec.batch}`);
  }
  return shard.slice(spec.batch * spec.batchSize, (spec.batch + 1) * spec.batchSize);
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new AugmentConfigError(`batchSize must be a positive integer, got ${batchSize}`);
}
