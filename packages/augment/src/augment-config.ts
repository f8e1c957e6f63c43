import { AugmentConfigError } from "./errors";

/** Multi-crop sizes and scales (main_dino.py: --global_crops_scale, --local_crops_scale, --local_crops_number). */
export interface AugmentConfig {
  globalSize: number;
  localSize: number;
  localCrops: number;
  globalScale: readonly [number, number];
  localScale: readonly [number, number];
}

export const DEFAULT_AUGMENT_CONFIG: AugmentConfig = Object.freeze({
  globalSize: 224,
  localSize: 96,
  localCrops: 8,
  globalScale: [0.4, 1] as const,
  localScale: [0.05, 0.4] as const,
});

export function resolveAugmentConfig(partial: Partial<AugmentConfig> = {}): AugmentConfig {
  const config = { ...DEFAULT_AUGMENT_CONFIG, ...partial };
  const positive = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new AugmentConfigError(`${name} must be a positive integer, got ${v}`);
  };
  positive("globalSize", config.globalSize);
  positive("localSize", config.localSize);
  if (!Number.isInteger(config.localCrops) || config.localCrops < 0) throw new AugmentConfigError(`localCrops must be a non-negative integer, got ${config.localCrops}`);
  for (const name of ["globalScale", "localScale"] as const) {
    const [lo, hi] = config[name];
    if (!(lo > 0 && lo <= hi && hi <= 1)) throw new AugmentConfigError(`${name} must satisfy 0 < low <= high <= 1, got (${lo}, ${hi})`);
  }
  return config;
}

/** Floats of one image's crops: [2 globals, localCrops locals] each 3·size·size. */
export function cropCount(config: AugmentConfig): number {
  return 2 + config.localCrops;
}
