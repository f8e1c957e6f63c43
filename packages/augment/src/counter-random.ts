/**
 * Counter-based random numbers: the k-th draw of a stream is a pure function of
 * (key, k), so a crop's parameters depend only on (seed, epoch, datasetIndex, cropIndex),
 * never on the worker, thread count or batch position that computes it.
 *
 * The generator is SplitMix64 (Steele, Lea, Flood 2014): draw k = mix64(key + (k+1)·γ).
 * Keys of a tuple are chained with the same finalizer, which is a bijection on 64 bits,
 * so distinct tuples give unrelated streams. PyTorch's and Python's generators
 * (Philox/MT19937) are not reproduced: crops match the reference in distribution, not
 * draw for draw.
 */

const MASK64 = (1n << 64n) - 1n;
const GOLDEN_GAMMA = 0x9e3779b97f4a7c15n;
const TWO_POW_MINUS_53 = 2 ** -53;

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** Hash an ordered tuple of non-negative integers (and a domain tag) into a 64-bit key. */
export function streamKey(domain: number, ...parts: number[]): bigint {
  let key = mix64((BigInt(domain) * GOLDEN_GAMMA) & MASK64);
  for (const part of parts) {
    if (!Number.isSafeInteger(part) || part < 0) throw new RangeError(`random key part must be a non-negative safe integer, got ${part}`);
    key = mix64((key + GOLDEN_GAMMA + BigInt(part)) & MASK64);
  }
  return key;
}

/** Domain tags keep the sampler's and the crops' streams apart even for equal numbers. */
export const RandomDomain = { sampler: 1, crop: 2, synth: 3 } as const;

export class CounterRandom {
  private counter = 0n;
  constructor(private readonly key: bigint) {}

  /** Stream of the crop `cropIndex` of dataset item `datasetIndex` in `epoch`. */
  static forCrop(seed: number, epoch: number, datasetIndex: number, cropIndex: number): CounterRandom {
    return new CounterRandom(streamKey(RandomDomain.crop, seed, epoch, datasetIndex, cropIndex));
  }

  /** Uniform in [0, 1) with 53 random bits. */
  next(): number {
    this.counter += 1n;
    const bits = mix64((this.key + this.counter * GOLDEN_GAMMA) & MASK64);
    return Number(bits >> 11n) * TWO_POW_MINUS_53;
  }

  /** Uniform in [low, high), like torch's uniform_ and Python's random.uniform. */
  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  /** Integer uniform in [low, high), like torch.randint(low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low));
  }

  /** Random permutation of 0..n-1 (Fisher-Yates), like torch.randperm(n) in distribution. */
  permutation(n: number): Uint32Array {
    const perm = new Uint32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    return perm;
  }
}
