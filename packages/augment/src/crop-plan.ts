import type { AugmentConfig } from "./augment-config";
import { CounterRandom } from "./counter-random";
import { randomResizedCropBox, type CropBox } from "./random-resized-crop";

/** ColorJitter parts, numbered as torchvision's fn_idx. */
export const JitterOp = { Brightness: 0, Contrast: 1, Saturation: 2, Hue: 3 } as const;
export type JitterOp = (typeof JitterOp)[keyof typeof JitterOp];

export interface ColorJitterParams {
  /** Application order of the four parts (a permutation of 0..3, torch.randperm(4)). */
  order: readonly JitterOp[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** Every random decision of one view; the pixel work then is deterministic. */
export interface CropPlan {
  box: CropBox;
  size: number;
  flip: boolean;
  jitter: ColorJitterParams | null;
  grayscale: boolean;
  /** PIL GaussianBlur radius (its sigma); 0 = no blur. */
  blurRadius: number;
  solarize: boolean;
}

/** The reference parameters (main_dino.py DataAugmentationDINO). */
export const AUGMENT_PROBABILITIES = {
  flip: 0.5,
  jitter: 0.8,
  grayscale: 0.2,
  blur: [1.0, 0.1, 0.5] as const, // global 1, global 2, local
  solarize: 0.2, // global 2 only
  blurRadius: [0.1, 2.0] as const,
  brightness: 0.4,
  contrast: 0.4,
  saturation: 0.2,
  hue: 0.1,
};

/** View kind of crop index c: 0 = global 1, 1 = global 2, ≥ 2 = local. */
export function viewKind(cropIndex: number): 0 | 1 | 2 {
  return cropIndex === 0 ? 0 : cropIndex === 1 ? 1 : 2;
}

/**
 * Draw the plan of crop `cropIndex` of an image of width × height. Draws happen in the
 * reference's order (crop, flip, jitter, grayscale, blur, solarize) from the stream keyed
 * by (seed, epoch, datasetIndex, cropIndex).
 */
export function drawCropPlan(
  config: AugmentConfig,
  seed: number,
  epoch: number,
  datasetIndex: number,
  cropIndex: number,
  width: number,
  height: number,
): CropPlan {
  const rng = CounterRandom.forCrop(seed, epoch, datasetIndex, cropIndex);
  const kind = viewKind(cropIndex);
  const p = AUGMENT_PROBABILITIES;
  const box = randomResizedCropBox(rng, width, height, kind === 2 ? config.localScale : config.globalScale);
  const flip = rng.next() < p.flip;
  let jitter: ColorJitterParams | null = null;
  if (rng.next() < p.jitter) {
    const order = Array.from(rng.permutation(4)) as JitterOp[];
    jitter = {
      order,
      brightness: rng.uniform(1 - p.brightness, 1 + p.brightness),
      contrast: rng.uniform(1 - p.contrast, 1 + p.contrast),
      saturation: rng.uniform(1 - p.saturation, 1 + p.saturation),
      hue: rng.uniform(-p.hue, p.hue),
    };
  }
  const grayscale = rng.next() < p.grayscale;
  // utils.GaussianBlur: `random.random() <= prob`, radius = random.uniform(0.1, 2.0).
  const blurRadius = rng.next() <= p.blur[kind] ? rng.uniform(p.blurRadius[0], p.blurRadius[1]) : 0;
  const solarize = kind === 1 && rng.next() < p.solarize;
  return { box, size: kind === 2 ? config.localSize : config.globalSize, flip, jitter, grayscale, blurRadius, solarize };
}
