/**
 * The student update of the reference `train_one_epoch`: per-parameter gradient clipping
 * (`utils.clip_gradients`), the last-layer freeze (`utils.cancel_gradients_last_layer`)
 * and `torch.optim.AdamW` over the two `get_params_groups` groups. Everything runs in
 * place over flat Float32Arrays in the ParamStore layout.
 *
 * Precision: parameters and moments are stored in float32 like PyTorch's, but each
 * element's update is computed in float64 and rounded once when stored, where PyTorch
 * rounds after every operation. The two differ by a few float32 ulps of each value, far
 * inside the 1e-4 relative tolerance the reference fixtures are checked at.
 *
 * The element loops run as WebAssembly SIMD kernels (simd/optimizer-kernels.ts) that
 * compute the same float64 operations in the same order, so they match the scalar loops
 * here bit for bit; the scalar loops remain for runtimes without WebAssembly SIMD.
 */
import { ParamSpec, ParamStore } from "./param-store";
import { CHUNK_ELEMENTS, OptimizerKernels, sharedKernels } from "./simd/optimizer-kernels";

// A local binding: a global `Math` lookup in the inner loop is slow under jest's vm sandbox.
const { sqrt } = Math;

/**
 * Σ x[i]² over [begin, end) in float64, summed as the SIMD kernel does: one running sum of
 * the even-indexed (relative to begin) and one of the odd-indexed squares, added at the
 * end, then the odd last element's square. A fixed order, so every process gets the same bits.
 */
function sumOfSquaresInterleaved(x: Float32Array, begin: number, end: number, kernels: OptimizerKernels | null): number {
  const pairedEnd = begin + ((end - begin) & ~1);
  let even = 0;
  let odd = 0;
  if (kernels) {
    [even, odd] = kernels.sumOfSquaresLanes(x, begin, pairedEnd);
  } else {
    for (let i = begin; i < pairedEnd; i += 2) {
      even += x[i] * x[i];
      odd += x[i + 1] * x[i + 1];
    }
  }
  let sum = even + odd;
  if (pairedEnd < end) sum += x[pairedEnd] * x[pairedEnd];
  return sum;
}

function scaleInPlace(x: Float32Array, begin: number, end: number, factor: number, kernels: OptimizerKernels | null): void {
  if (!kernels) {
    for (let i = begin; i < end; i++) x[i] *= factor;
    return;
  }
  for (let start = begin; start < end; start += CHUNK_ELEMENTS) {
    const chunk = x.subarray(start, Math.min(start + CHUNK_ELEMENTS, end));
    kernels.scalePairs(kernels.load(chunk, kernels.regionA), chunk.length >> 1, factor);
    if (chunk.length & 1) kernels.floats[(kernels.regionA >> 2) + chunk.length - 1] *= factor;
    kernels.unload(kernels.regionA, chunk);
  }
}

/**
 * Reference `clip_gradients`: for every trainable tensor, norm = ‖g‖₂ (accumulated in
 * float64, in the fixed order of sumOfSquaresInterleaved) and, when
 * clip / (norm + 1e-6) < 1, g ← g · clip / (norm + 1e-6).
 * Returns the norms before clipping, one per trainable tensor in spec order.
 */
export function clipGradientsPerParam(grads: Float32Array, store: ParamStore, clip: number): Float64Array {
  store.checkLayout(grads, "gradient buffer");
  if (!(clip > 0)) throw new RangeError(`gradient clip must be positive, got ${clip}`);
  const norms = new Float64Array(store.specs.filter((s) => s.trainable).length);
  const kernels = sharedKernels();
  let normIndex = 0;
  store.specs.forEach((spec, index) => {
    if (!spec.trainable) return;
    const [begin, end] = store.rangeAt(index);
    const norm = Math.sqrt(sumOfSquaresInterleaved(grads, begin, end, kernels));
    norms[normIndex++] = norm;
    const clipCoef = clip / (norm + 1e-6);
    if (clipCoef < 1) scaleInPlace(grads, begin, end, clipCoef, kernels);
  });
  return norms;
}

/** Reference `cancel_gradients_last_layer`: true when this parameter's gradient is dropped this epoch. */
/** A tensor of the DINO head's weight-normalised last layer (`head.last_layer.weight_g` / `weight_v`). */
export function isLastLayer(name: string): boolean {
  return name.includes("last_layer");
}

export function isLastLayerFrozen(name: string, epoch: number, freezeLastLayer: number): boolean {
  return epoch < freezeLastLayer && isLastLayer(name);
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export interface AdamWStepOptions {
  lr: number;
  /** Weight decay of the decay group (`decay: true` specs); the other group always uses 0. */
  weightDecay: number;
  /** Parameters whose gradient is dropped this step (PyTorch `grad = None`): no update, step count unchanged. */
  skip?: (spec: ParamSpec) => boolean;
}

/** Optimizer state for checkpoints; `expAvg`/`expAvgSq` use the ParamStore layout, `steps` has one count per spec. */
export interface AdamWState {
  expAvg: Float32Array;
  expAvgSq: Float32Array;
  steps: Int32Array;
}

/** `state()` could not be loaded: wrong sizes for this parameter layout. */
export class OptimizerStateError extends Error {
  constructor(readonly problem: string) {
    super(`optimizer state does not fit this model: ${problem}`);
    this.name = "OptimizerStateError";
  }
}

/**
 * torch.optim.AdamW (amsgrad off, maximize off), single-tensor math, with a step counter
 * per tensor as PyTorch keeps one per parameter: a tensor skipped while frozen starts its
 * bias correction at t = 1 when it is first updated.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** First moment (PyTorch `exp_avg`), allocated once (inside the kernels' wasm memory when SIMD is used). */
  readonly expAvg: Float32Array;
  /** Second moment (PyTorch `exp_avg_sq`), allocated once (inside the kernels' wasm memory when SIMD is used). */
  readonly expAvgSq: Float32Array;
  /** Number of updates each tensor has had (PyTorch `state[p]["step"]`). */
  readonly steps: Int32Array;
  /**
   * The SIMD kernels, whose memory holds the moments after two chunk regions, so each step
   * copies only parameter and gradient chunks in (and parameters out); null: scalar loops.
   */
  private readonly kernels: OptimizerKernels | null;

  constructor(
    readonly store: ParamStore,
    options: AdamWOptions = {},
  ) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    const momentBytes = Math.ceil((store.size * 4) / 16) * 16;
    this.kernels = OptimizerKernels.create(2 * momentBytes);
    if (this.kernels) {
      this.expAvg = new Float32Array(this.kernels.memory, this.kernels.extraStart, store.size);
      this.expAvgSq = new Float32Array(this.kernels.memory, this.kernels.extraStart + momentBytes, store.size);
    } else {
      this.expAvg = new Float32Array(store.size);
      this.expAvgSq = new Float32Array(store.size);
    }
    this.steps = new Int32Array(store.specs.length);
  }

  /** One update of every trainable, not skipped tensor of `params` from `grads` (both in the store layout). */
  step(params: Float32Array, grads: Float32Array, options: AdamWStepOptions): void {
    this.store.checkLayout(params, "parameter buffer");
    this.store.checkLayout(grads, "gradient buffer");
    const { lr, weightDecay, skip } = options;
    if (!Number.isFinite(lr) || !Number.isFinite(weightDecay)) {
      throw new RangeError(`AdamW step needs finite lr and weight decay, got lr ${lr}, weight decay ${weightDecay}`);
    }
    const { beta1, beta2, eps, expAvg, expAvgSq, kernels } = this;
    this.store.specs.forEach((spec, index) => {
      if (!spec.trainable || skip?.(spec)) return;
      const t = ++this.steps[index];
      const decayFactor = 1 - lr * (spec.decay ? weightDecay : 0);
      const biasCorrection1 = 1 - beta1 ** t;
      const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** t);
      const stepSize = lr / biasCorrection1;
      const [begin, end] = this.store.rangeAt(index);
      // The kernel takes whole pairs; an odd last element goes through the scalar loop below.
      let scalarBegin = begin;
      if (kernels) {
        scalarBegin = begin + ((end - begin) & ~1);
        const momentStart = expAvg.byteOffset;
        const momentSqStart = expAvgSq.byteOffset;
        for (let start = begin; start < scalarBegin; start += CHUNK_ELEMENTS) {
          const stop = Math.min(start + CHUNK_ELEMENTS, scalarBegin);
          const paramChunk = params.subarray(start, stop);
          kernels.load(paramChunk, kernels.regionA);
          kernels.load(grads.subarray(start, stop), kernels.regionB);
          kernels.adamwPairs(
            kernels.regionA, kernels.regionB, momentStart + start * 4, momentSqStart + start * 4, (stop - start) >> 1,
            beta1, 1 - beta1, beta2, 1 - beta2, biasCorrection2Sqrt, eps, decayFactor, stepSize,
          );
          kernels.unload(kernels.regionA, paramChunk);
        }
      }
      for (let i = scalarBegin; i < end; i++) {
        const g = grads[i];
        const m = beta1 * expAvg[i] + (1 - beta1) * g;
        const v = beta2 * expAvgSq[i] + (1 - beta2) * g * g;
        expAvg[i] = m;
        expAvgSq[i] = v;
        const denom = sqrt(v) / biasCorrection2Sqrt + eps;
        params[i] = params[i] * decayFactor - (stepSize * m) / denom;
      }
    });
  }

  /** Live views of the state (no copies): copy or write them out before the next step. */
  state(): AdamWState {
    return { expAvg: this.expAvg, expAvgSq: this.expAvgSq, steps: this.steps };
  }

  /** Copies a saved state in, after checking it fits this layout. */
  loadState(state: AdamWState): void {
    if (state.expAvg.length !== this.store.size || state.expAvgSq.length !== this.store.size) {
      throw new OptimizerStateError(
        `moments have ${state.expAvg.length} and ${state.expAvgSq.length} elements, the parameters ${this.store.size}`,
      );
    }
    if (state.steps.length !== this.store.specs.length) {
      throw new OptimizerStateError(
        `${state.steps.length} step counters for ${this.store.specs.length} parameter tensors`,
      );
    }
    if (state.steps.some((s) => s < 0)) throw new OptimizerStateError("a step counter is negative");
    this.expAvg.set(state.expAvg);
    this.expAvgSq.set(state.expAvgSq);
    this.steps.set(state.steps);
  }
}

export interface StudentUpdateOptions {
  lr: number;
  weightDecay: number;
  /** `--clip_grad`; 0 disables clipping, as in the reference. */
  clipGrad: number;
  epoch: number;
  /** `--freeze_last_layer`: the last layer gets no update while epoch < this. */
  freezeLastLayer: number;
}

/**
 * Steps 2–4 of a DINO iteration on averaged gradients: clip each tensor's gradient,
 * drop the last layer's while frozen, then AdamW. Clips `grads` in place; returns the
 * per-tensor gradient norms before clipping (empty when clipping is off).
 */
export function studentUpdate(
  optimizer: AdamW,
  params: Float32Array,
  grads: Float32Array,
  options: StudentUpdateOptions,
): Float64Array {
  const norms = options.clipGrad > 0 ? clipGradientsPerParam(grads, optimizer.store, options.clipGrad) : new Float64Array(0);
  optimizer.step(params, grads, {
    lr: options.lr,
    weightDecay: options.weightDecay,
    skip: (spec) => isLastLayerFrozen(spec.name, options.epoch, options.freezeLastLayer),
  });
  return norms;
}
