import { isLastLayer, paramCount, type ParamSpec } from "@dino-coord/model";

/**
 * What one step all-reduces, in place: [loss | teacher-output column sums (K) | gradient (P)].
 * The gradient comes last and the last layer's tensors are the store's last, so a step with
 * the last layer frozen (its gradient neither computed nor used) reduces a prefix: 61% fewer
 * bytes for ViT-S/16 with the 65536-wide head. Its memory comes from the ring
 * (RingAllReduce.allocateTensor): same-host peers then read it where it lies.
 */
export class StepBuffer {
  readonly data: Float32Array;
  readonly teacherOutputSum: Float32Array;
  readonly gradient: Float32Array;
  /** Elements of the buffer that precede the last layer's gradient. */
  private readonly beforeLastLayer: number;

  /** `specs`: the parameters' layout (a ParamStore's), which the gradient follows. */
  constructor(specs: readonly ParamSpec[], outDim: number, allocate: (length: number) => Float32Array) {
    const P = paramCount(specs);
    this.data = allocate(1 + outDim + P);
    this.teacherOutputSum = this.data.subarray(1, 1 + outDim);
    this.gradient = this.data.subarray(1 + outDim);
    this.beforeLastLayer = 1 + outDim + lastLayerOffset(specs);
  }

  get loss(): number {
    return this.data[0];
  }

  set loss(value: number) {
    this.data[0] = value;
  }

  /** The part of the buffer a step reduces. */
  reduced(lastLayerFrozen: boolean): Float32Array {
    return lastLayerFrozen ? this.data.subarray(0, this.beforeLastLayer) : this.data;
  }

  /**
   * DDP's mean over ranks, after the all-reduce: the loss and the gradient are divided by the
   * world size, the column sums stay sums (the center update divides by the global batch).
   * The coordinator and every worker run exactly this, so their replicas stay bitwise equal.
   */
  averageOver(world: number, lastLayerFrozen: boolean): void {
    const reduced = this.reduced(lastLayerFrozen);
    reduced[0] /= world;
    for (let i = 1 + this.teacherOutputSum.length; i < reduced.length; i++) reduced[i] /= world;
  }
}

/** Offset of the first last-layer tensor in a store of these specs; they must end with all of them. */
export function lastLayerOffset(specs: readonly ParamSpec[]): number {
  const first = specs.findIndex((s) => isLastLayer(s.name));
  if (first < 0) return paramCount(specs);
  const misplaced = specs.slice(first).find((s) => !isLastLayer(s.name));
  if (misplaced) throw new Error(`parameter "${misplaced.name}" follows the last layer's tensors; a frozen-last-layer step reduces only the tensors before them`);
  return paramCount(specs.slice(0, first));
}
