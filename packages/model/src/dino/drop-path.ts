import { randomKey, uniformAt } from "../random";
import { DinoModelConfig, dropPathRateOf } from "./config";

/** Stream id of stochastic-depth draws in the counter-based generator. */
export const DROP_PATH_STREAM = 2;

/**
 * Stochastic-depth multipliers for one crop group, [depth, 2, crops·batch] (crop-major
 * rows): 0 where a residual branch is dropped, 1/keep where it is kept, as the
 * reference's `drop_path` (keep + U[0,1) floored). Each draw is keyed by
 * (seed, step, dataset index, crop, block, branch) so it follows the sample — the same
 * on any worker, at any position in any local batch.
 */
export function fillDropPathMasks(
  out: Float32Array,
  c: DinoModelConfig,
  { seed, step, sampleIndices, firstCrop, crops }: { seed: number; step: number; sampleIndices: ArrayLike<number>; firstCrop: number; crops: number },
): Float32Array {
  const batch = sampleIndices.length;
  const rows = crops * batch;
  if (out.length !== c.depth * 2 * rows) throw new RangeError(`drop-path buffer has ${out.length} entries, expected ${c.depth * 2 * rows}`);
  for (let crop = 0; crop < crops; crop++) {
    for (let b = 0; b < batch; b++) {
      const key = randomKey(seed, DROP_PATH_STREAM, step, sampleIndices[b], firstCrop + crop);
      for (let block = 0; block < c.depth; block++) {
        const keep = 1 - dropPathRateOf(c, block);
        for (let branch = 0; branch < 2; branch++) {
          const kept = Math.floor(keep + uniformAt(key, block * 2 + branch)) >= 1;
          out[(block * 2 + branch) * rows + crop * batch + b] = kept ? 1 / keep : 0;
        }
      }
    }
  }
  return out;
}
