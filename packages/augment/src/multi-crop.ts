import { cropCount, type AugmentConfig } from "./augment-config";
import type { BatchTensorWriter } from "./batch-memory";
import { applyColorOpsDeferred, ColorScratch, FinalColorStep } from "./color-ops";
import { drawCropPlan, type CropPlan } from "./crop-plan";
import type { RgbImage } from "./decode-image";
import { BlurScratch, gaussianBlurPil } from "./gaussian-blur";
import { writeNormalizedChw, writeNormalizedChwGray, writeNormalizedChwLookup } from "./normalize";
import { CropResampler } from "./pil-resample";
import { SimdCropPixels } from "./simd-crop-pixels";

/** Where one image's crops go in a batch: crop-major, globals [2B,3,G,G], locals [L·B,3,l,l]. */
export interface BatchSlot {
  slot: number;
  batchSize: number;
  globals: Float32Array;
  locals: Float32Array;
  /** Kernels writing straight into the batch's memories (the pool's workers; batch-memory.ts), else the arrays are written. */
  writers?: { globals: BatchTensorWriter; locals: BatchTensorWriter };
}

/** Float offset of crop `cropIndex` of batch position `slot` in its (globals or locals) array. */
export function cropOffset(config: AugmentConfig, cropIndex: number, slot: number, batchSize: number): number {
  if (cropIndex < 2) return (cropIndex * batchSize + slot) * 3 * config.globalSize * config.globalSize;
  return ((cropIndex - 2) * batchSize + slot) * 3 * config.localSize * config.localSize;
}

/**
 * Makes the 2 + L views of one decoded image; scratch buffers are reused across images.
 * The pixel ops after the resize run on the WebAssembly SIMD kernels (simd-crop-pixels.ts)
 * where available, else on the scalar code; both give the same bits.
 */
export class MultiCropRenderer {
  private readonly scratch = new ColorScratch();
  private readonly blur: BlurScratch;
  private readonly resampler: CropResampler;
  private readonly normalizeTable = new Float32Array(768);
  private readonly simd: SimdCropPixels | null;

  constructor(
    readonly config: AugmentConfig,
    readonly seed: number,
    options: { simd?: boolean } = {},
  ) {
    const maxSize = Math.max(config.globalSize, config.localSize);
    this.blur = new BlurScratch(maxSize);
    this.resampler = new CropResampler(maxSize);
    this.simd = options.simd === false ? null : SimdCropPixels.create(maxSize);
  }

  /** Whether the pixel ops run on the WebAssembly SIMD kernels. */
  get usesSimd(): boolean {
    return this.simd !== null;
  }

  plans(image: RgbImage, epoch: number, datasetIndex: number): CropPlan[] {
    const plans: CropPlan[] = [];
    for (let c = 0; c < cropCount(this.config); c++) plans.push(drawCropPlan(this.config, this.seed, epoch, datasetIndex, c, image.width, image.height));
    return plans;
  }

  /** All crops of `image`, synchronously: PIL's crop + bicubic resize, then the pixel ops, into the batch. */
  render(image: RgbImage, epoch: number, datasetIndex: number, target: BatchSlot): void {
    this.load(image);
    for (let c = 0; c < cropCount(this.config); c++) this.renderCrop(image, epoch, datasetIndex, c, target);
  }

  /** Make `image` the one renderCrop resamples (its pixels are copied once). */
  load(image: RgbImage): void {
    // One array class (not Buffer) keeps the hot loops monomorphic.
    this.resampler.load(new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.length), image.width, image.height);
  }

  /** Crop `cropIndex` of the loaded `image` into the batch (a worker renders crop by crop to keep its event loop turning). */
  renderCrop(image: RgbImage, epoch: number, datasetIndex: number, cropIndex: number, target: BatchSlot): void {
    const plan = drawCropPlan(this.config, this.seed, epoch, datasetIndex, cropIndex, image.width, image.height);
    const { box, size } = plan;
    const px = this.resampler.resize(box.left, box.top, box.width, box.height, size);
    const out = cropIndex < 2 ? target.globals : target.locals;
    const writer = cropIndex < 2 ? target.writers?.globals : target.writers?.locals;
    this.finish(px, plan, out, cropOffset(this.config, cropIndex, target.slot, target.batchSize), writer);
  }

  /**
   * The pixel ops after the resize, in the reference's order, then ToTensor + Normalize.
   * On the scalar path the colour jitter's last lookup (or the grayscale) rides along
   * with the blur's input when there is a blur, else with the tensor write.
   */
  finish(px: Uint8Array, plan: CropPlan, out: Float32Array, offset: number, writer?: BatchTensorWriter): void {
    const { size } = plan;
    const pixelCount = size * size;
    const simd = this.simd;
    if (simd) {
      simd.load(px.subarray(0, pixelCount * 3));
      simd.applyColorOps(pixelCount, plan.jitter, plan.grayscale);
      if (plan.blurRadius > 0) gaussianBlurPil(simd.pixels.subarray(0, pixelCount * 3), size, size, plan.blurRadius, this.blur);
      if (!writer?.write(simd.pixels, size, plan.flip, plan.solarize, offset)) simd.writeNormalized(size, plan.flip, plan.solarize, out, offset);
      return;
    }
    const final = applyColorOpsDeferred(px, pixelCount, plan.jitter, plan.grayscale, this.scratch);
    const lut = this.scratch.pending;
    if (plan.blurRadius > 0) {
      if (final !== FinalColorStep.None) applyFinalStep(px, pixelCount * 3, final, lut);
      gaussianBlurPil(px, size, size, plan.blurRadius, this.blur);
      writeNormalizedChw(px, size, plan.flip, plan.solarize, out, offset);
    } else if (final === FinalColorStep.GrayLookup) writeNormalizedChwGray(px, size, plan.flip, plan.solarize, lut, out, offset);
    else if (final === FinalColorStep.Lookup) writeNormalizedChwLookup(px, size, plan.flip, plan.solarize, lut, out, offset, this.normalizeTable);
    else writeNormalizedChw(px, size, plan.flip, plan.solarize, out, offset);
  }
}

function applyFinalStep(px: Uint8Array, n: number, final: FinalColorStep, lut: Uint8Array): void {
  if (final === FinalColorStep.GrayLookup) {
    for (let o = 0; o < n; o += 3) {
      const l = (lut[px[o]] * 19595 + lut[px[o + 1]] * 38470 + lut[px[o + 2]] * 7471 + 0x8000) >> 16;
      px[o] = l;
      px[o + 1] = l;
      px[o + 2] = l;
    }
  } else {
    for (let i = 0; i < n; i++) px[i] = lut[px[i]];
  }
}
