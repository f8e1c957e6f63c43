/** Shapes of the DINO networks: a ViT backbone and the DINO projection head. */
export interface DinoModelConfig {
  imgSize: number; // global crop side; pos_embed is sized for it
  localCropSize: number;
  patchSize: number;
  embedDim: number;
  depth: number;
  numHeads: number;
  mlpRatio: number;
  layerNormEps: number;
  headHiddenDim: number;
  headBottleneckDim: number;
  headLayers: number;
  outDim: number;
  normLastLayer: boolean;
  dropPathRate: number;
}

/** The shapes one step runs on: per-worker batch and crop counts. */
export interface StepShape {
  batchSize: number;
  globalCrops: 2; // the teacher sees exactly the two global views
  localCrops: number;
}

export class ModelConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModelConfigError";
  }
}

const BACKBONES = {
  vit_tiny: { embedDim: 192, numHeads: 3 },
  vit_small: { embedDim: 384, numHeads: 6 },
  vit_base: { embedDim: 768, numHeads: 12 },
} as const;
export type Arch = keyof typeof BACKBONES;
export const ARCHS = Object.keys(BACKBONES) as Arch[];

/** A reference architecture with main_dino.py's defaults (224/96 crops, 65536-d head). */
export function dinoPreset(arch: Arch, overrides: Partial<DinoModelConfig> = {}): DinoModelConfig {
  const backbone = BACKBONES[arch];
  if (!backbone) throw new ModelConfigError(`unknown arch "${arch}": expected one of ${ARCHS.join(", ")}`);
  return validateModelConfig({
    imgSize: 224,
    localCropSize: 96,
    patchSize: 16,
    depth: 12,
    mlpRatio: 4,
    layerNormEps: 1e-6,
    headHiddenDim: 2048,
    headBottleneckDim: 256,
    headLayers: 3,
    outDim: 65536,
    normLastLayer: true,
    dropPathRate: 0.1,
    ...backbone,
    ...overrides,
  });
}

/** A small ViT for demos and tests on a laptop CPU: 32-px global, 16-px local crops. */
export function tinyDemoConfig(overrides: Partial<DinoModelConfig> = {}): DinoModelConfig {
  return validateModelConfig({
    imgSize: 32,
    localCropSize: 16,
    patchSize: 8,
    embedDim: 48,
    depth: 2,
    numHeads: 3,
    mlpRatio: 4,
    layerNormEps: 1e-6,
    headHiddenDim: 64,
    headBottleneckDim: 32,
    headLayers: 3,
    outDim: 256,
    normLastLayer: true,
    dropPathRate: 0.1,
    ...overrides,
  });
}

export function validateModelConfig(c: DinoModelConfig): DinoModelConfig {
  const positive = ["imgSize", "localCropSize", "patchSize", "embedDim", "depth", "numHeads", "headHiddenDim", "headBottleneckDim", "headLayers", "outDim"] as const;
  for (const k of positive) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new ModelConfigError(`${k} must be a positive integer, got ${c[k]}`);
  }
  if (c.imgSize % c.patchSize || c.localCropSize % c.patchSize) {
    throw new ModelConfigError(`crop sizes ${c.imgSize}/${c.localCropSize} must be multiples of the patch size ${c.patchSize}`);
  }
  if (c.embedDim % c.numHeads) throw new ModelConfigError(`embed dim ${c.embedDim} is not divisible by ${c.numHeads} heads`);
  if (!(c.dropPathRate >= 0 && c.dropPathRate < 1)) throw new ModelConfigError(`drop path rate must be in [0, 1), got ${c.dropPathRate}`);
  if (!Number.isInteger(c.embedDim * c.mlpRatio)) throw new ModelConfigError(`mlp ratio ${c.mlpRatio} gives a fractional width`);
  return c;
}

/** Stochastic depth rate of block i: linspace(0, rate, depth)[i], as the reference. */
export function dropPathRateOf(c: DinoModelConfig, block: number): number {
  return c.depth === 1 ? 0 : (c.dropPathRate * block) / (c.depth - 1);
}
