/**
 * How a ring all-reduce cuts a tensor of `length` float32 elements: N contiguous segments
 * (sizes differ by at most one element, some empty when length < N), each cut into chunks
 * of at most `chunkElements`. Every rank computes the same layout.
 *
 * Schedule (ring steps t = 0..2N-3, data flows rank r -> r+1):
 *   reduce-scatter, t < N-1: rank r sends segment r-t and receives segment r-t-1, adds its
 *     own values and, at t = N-2, holds the finished sum of segment r+1 (it owns it);
 *   all-gather, t >= N-1: rank r receives finished segment r-(t-N+1) and stores it.
 * What a rank receives at step t is exactly what it sends at step t+1, so each chunk is
 * forwarded as soon as it has been processed, and chunks of consecutive steps overlap.
 */
/** First element of `segment` when `length` elements are cut into `worldSize` segments (sizes differ by at most one). */
export function segmentStart(segment: number, length: number, worldSize: number): number {
  return Math.floor((segment * length) / worldSize);
}

export class RingLayout {
  readonly length: number;
  readonly worldSize: number;
  readonly chunkElements: number;
  /** Total ring steps: reduce-scatter (N-1) plus all-gather (N-1). */
  readonly ringSteps: number;

  constructor(length: number, worldSize: number, chunkElements: number) {
    this.length = length;
    this.worldSize = worldSize;
    this.chunkElements = chunkElements;
    this.ringSteps = 2 * (worldSize - 1);
  }

  segmentStart(segment: number): number {
    return segmentStart(segment, this.length, this.worldSize);
  }

  chunkCount(segment: number): number {
    return Math.ceil((this.segmentStart(segment + 1) - this.segmentStart(segment)) / this.chunkElements);
  }

  /** Element range [start, end) of chunk `chunk` of `segment`. */
  chunkStart(segment: number, chunk: number): number {
    return this.segmentStart(segment) + chunk * this.chunkElements;
  }

  chunkEnd(segment: number, chunk: number): number {
    return Math.min(this.chunkStart(segment, chunk) + this.chunkElements, this.segmentStart(segment + 1));
  }

  isReduceScatter(ringStep: number): boolean {
    return ringStep < this.worldSize - 1;
  }

  /** Segment that `rank` receives at `ringStep` (and sends on at ringStep + 1). */
  receivedSegment(rank: number, ringStep: number): number {
    const n = this.worldSize;
    const back = this.isReduceScatter(ringStep) ? ringStep + 1 : ringStep - (n - 1);
    return (((rank - back) % n) + n) % n;
  }

  /**
   * Number of whole chunks of `segment` that `bytes` payload bytes starting at chunk `chunk`
   * cover exactly (a shared-memory doorbell may announce such a run), or 0 if they do not.
   */
  chunksCovered(segment: number, chunk: number, bytes: number): number {
    if (bytes <= 0 || bytes % 4 !== 0) return 0;
    const count = Math.ceil(bytes / 4 / this.chunkElements);
    const last = chunk + count - 1;
    if (last >= this.chunkCount(segment)) return 0;
    return (this.chunkEnd(segment, last) - this.chunkStart(segment, chunk)) * 4 === bytes ? count : 0;
  }

  /** Reduce-scatter step at which `rank` adds its share of `segment` (N-1, no such step, for its own segment r). */
  reduceScatterStep(rank: number, segment: number): number {
    const n = this.worldSize;
    return (((rank - segment - 1) % n) + n) % n;
  }

  /** Segment that `rank` sends at `ringStep`. */
  sentSegment(rank: number, ringStep: number): number {
    return ringStep === 0 ? rank : this.receivedSegment(rank, ringStep - 1);
  }

  /** Number of chunk messages `rank` receives over a whole all-reduce. */
  expectedMessages(rank: number): number {
    let total = 0;
    for (let t = 0; t < this.ringSteps; t++) total += this.chunkCount(this.receivedSegment(rank, t));
    return total;
  }

  /** Largest chunk count of any segment (sizes the received-chunk bitmap). */
  maxChunksPerSegment(): number {
    return Math.ceil(Math.ceil(this.length / this.worldSize) / this.chunkElements);
  }
}
