export { DEFAULT_AUGMENT_CONFIG, resolveAugmentConfig, cropCount, type AugmentConfig } from "./augment-config";
export { AugmentPool, type AugmentPoolOptions, type AugmentedBatch } from "./augment-pool";
export { benchAugment, type BenchAugmentOptions, type BenchAugmentResult } from "./bench-augment";
export { applyColorOps, blend, ColorScratch, hueShift, luma, shiftHue } from "./color-ops";
export { CounterRandom, streamKey } from "./counter-random";
export { AUGMENT_PROBABILITIES, drawCropPlan, JitterOp, viewKind, type ColorJitterParams, type CropPlan } from "./crop-plan";
export { cmykToRgb, decodeRgb, isFourComponentJpeg, UnreadableImageError, type RgbImage } from "./decode-image";
export {
  batchesPerEpoch,
  epochPermutation,
  samplesPerRank,
  shardBatch,
  shardBatchIndices,
  shardIndices,
  stridedShard,
  type BatchSpec,
  type ShardSpec,
} from "./distributed-sampler";
export { AugmentConfigError, AugmentPoolClosedError, AugmentTimeoutError, AugmentWorkerError, DataFolderError, type DataFolderProblem } from "./errors";
export { BlurScratch, boxRadiusForGaussian, boxWeights, gaussianBlurPil } from "./gaussian-blur";
export { IMAGE_EXTENSIONS, INDEX_CACHE_FILE, scanImageFolder, type ImageFolderDataset, type ScanOptions } from "./image-folder";
export { cropOffset, MultiCropRenderer, type BatchSlot } from "./multi-crop";
export { IMAGENET_MEAN, IMAGENET_STD, NORMALIZE_TABLE, normalizeValue, solarize, writeNormalizedChw } from "./normalize";
export { randomResizedCropBox, RATIO, roundHalfEven, type CropBox } from "./random-resized-crop";
export { synthesizeImageFolder, type SynthOptions } from "./synth-images";
