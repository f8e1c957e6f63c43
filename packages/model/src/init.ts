/**
 * Parameter initialisation as in the reference (`vision_transformer.py` `_init_weights`,
 * `DINOHead`, PyTorch's default `nn.Linear`/`nn.Conv2d` init), drawn from the
 * counter-based generator so every process gets the same weights from the same seed.
 */
import { ParamSpec, ParamStore } from "./param-store";
import { fillNormal, fillUniform, normalAt, randomKey, RandomKey } from "./random";

export type InitKind =
  /** Normal(0, std) truncated to [−bound, bound] (absolute; the reference's trunc_normal_ uses ±2). */
  | { kind: "normal"; std: number; bound?: number }
  | { kind: "zeros" }
  | { kind: "ones" }
  /** PyTorch's default Linear/Conv init: uniform in ±1/√fanIn (for weight and bias alike). */
  | { kind: "uniform"; fanIn: number };

/** Key-tuple stream id of parameter initialisation (other users of the generator pick other ids). */
export const INIT_STREAM = 1;

/** FNV-1a of the name, so a tensor's draws depend on its name, not its position in the specs. */
function nameHash(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(name, "utf8")) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/** Resampling draws of a truncated normal are rejected with probability ≈ 0 for std 0.02, bound 2; cap it anyway. */
const MAX_RESAMPLES = 1000;

/** Draws are made a piece at a time into this float64 scratch (the values before rounding to float32). */
const draws = new Float64Array(4096);

function fillTruncatedNormal(out: Float32Array, std: number, bound: number, keyOf: (attempt: number) => RandomKey, name: string): void {
  if (!(std > 0) || !(bound > 0)) throw new RangeError(`parameter "${name}": normal init needs std > 0 and bound > 0`);
  const firstKey = keyOf(0);
  for (let start = 0; start < out.length; start += draws.length) {
    const count = Math.min(draws.length, out.length - start);
    fillNormal(firstKey, draws.subarray(0, count), start);
    for (let j = 0; j < count; j++) {
      const i = start + j;
      let value = std * draws[j];
      for (let attempt = 1; Math.abs(value) > bound; attempt++) {
        if (attempt > MAX_RESAMPLES) {
          throw new RangeError(`parameter "${name}": truncated normal (std ${std}, bound ${bound}) keeps rejecting`);
        }
        value = std * normalAt(keyOf(attempt), i);
      }
      out[i] = value;
    }
  }
}

/**
 * Fills every tensor of `store` by its init kind. Tensor `name` draws from the key
 * (seed, INIT_STREAM, hash(name)) (resamples of a truncated normal add the attempt number),
 * element i from counter i.
 */
export function initParams(store: ParamStore, initOf: (spec: ParamSpec) => InitKind, seed: number): void {
  for (const spec of store.specs) {
    const out = store.view(spec.name);
    const init = initOf(spec);
    const hash = nameHash(spec.name);
    switch (init.kind) {
      case "zeros":
        out.fill(0);
        break;
      case "ones":
        out.fill(1);
        break;
      case "normal":
        fillTruncatedNormal(
          out,
          init.std,
          init.bound ?? 2,
          (attempt) => (attempt === 0 ? randomKey(seed, INIT_STREAM, hash) : randomKey(seed, INIT_STREAM, hash, attempt)),
          spec.name,
        );
        break;
      case "uniform": {
        if (!(init.fanIn > 0)) throw new RangeError(`parameter "${spec.name}": uniform init needs fanIn > 0`);
        const bound = 1 / Math.sqrt(init.fanIn);
        const key = randomKey(seed, INIT_STREAM, hash);
        for (let start = 0; start < out.length; start += draws.length) {
          const count = Math.min(draws.length, out.length - start);
          fillUniform(key, draws.subarray(0, count), start);
          for (let j = 0; j < count; j++) out[start + j] = (2 * draws[j] - 1) * bound;
        }
        break;
      }
    }
  }
}

function product(values: readonly number[]): number {
  return values.reduce((a, b) => a * b, 1);
}

/**
 * The reference's init rule for the DINO ViT + head, by `state_dict` name:
 * - `patch_embed.proj.*` and `head.last_layer.weight_v` keep PyTorch's default uniform
 *   init (fan_in = 3·p·p and the bottleneck width); `head.last_layer.weight_g` is 1;
 * - `cls_token`, `pos_embed` and Linear weights (≥2-D `.weight`) are normal(0, 0.02);
 * - LayerNorm weights (1-D `.weight`) are 1; all other biases are 0.
 * `specs` is needed because a bias's uniform bound comes from its weight's fan_in.
 */
export function referenceInitOf(specs: readonly ParamSpec[]): (spec: ParamSpec) => InitKind {
  const shapes = new Map(specs.map((s) => [s.name, s.shape]));
  const fanInOfWeight = (weightName: string): number => {
    const shape = shapes.get(weightName);
    if (shape === undefined || shape.length < 2) {
      throw new Error(`cannot find the weight "${weightName}" that sets the init bound of its bias`);
    }
    return product(shape.slice(1));
  };
  return (spec) => {
    const { name, shape } = spec;
    if (name.endsWith("last_layer.weight_g")) return { kind: "ones" };
    if (name.endsWith("last_layer.weight_v")) return { kind: "uniform", fanIn: product(shape.slice(1)) };
    if (name.endsWith("patch_embed.proj.weight")) return { kind: "uniform", fanIn: product(shape.slice(1)) };
    if (name.endsWith("patch_embed.proj.bias")) {
      return { kind: "uniform", fanIn: fanInOfWeight(name.slice(0, -".bias".length) + ".weight") };
    }
    if (name.endsWith("cls_token") || name.endsWith("pos_embed")) return { kind: "normal", std: 0.02 };
    if (name.endsWith(".bias")) return { kind: "zeros" };
    if (name.endsWith(".weight")) return shape.length === 1 ? { kind: "ones" } : { kind: "normal", std: 0.02 };
    throw new Error(`no reference init rule for parameter "${name}" [${shape.join(", ")}]`);
  };
}
