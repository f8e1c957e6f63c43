import { cropCount, type AugmentConfig } from "./augment-config";
import { applyColorOps, ColorScratch } from "./color-ops";
import { drawCropPlan, type CropPlan } from "./crop-plan";
import { cropResize, type RgbImage } from "./decode-image";
import { BlurScratch, gaussianBlurPil } from "./gaussian-blur";
import { writeNormalizedChw } from "./normalize";

/** Where one image's crops go in a batch: crop-major, globals [2B,3,G,G], locals [L·B,3,l,l]. */
export interface BatchSlot {
  slot: number;
  batchSize: number;
  globals: Float32Array;
  locals: Float32Array;
}

/** Float offset of crop `cropIndex` of batch position `slot` in its (globals or locals) array. */
export function cropOffset(config: AugmentConfig, cropIndex: number, slot: number, batchSize: number): number {
  if (cropIndex < 2) return (cropIndex * batchSize + slot) * 3 * config.globalSize * config.globalSize;
  return ((cropIndex - 2) * batchSize + slot) * 3 * config.localSize * config.localSize;
}

/** Makes the 2 + L views of one decoded image; scratch buffers are reused across images. */
export class MultiCropRenderer {
  private readonly scratch = new ColorScratch();
  private readonly blur: BlurScratch;

  constructor(
    readonly config: AugmentConfig,
    readonly seed: number,
  ) {
    this.blur = new BlurScratch(Math.max(config.globalSize, config.localSize));
  }

  plans(image: RgbImage, epoch: number, datasetIndex: number): CropPlan[] {
    const plans: CropPlan[] = [];
    for (let c = 0; c < cropCount(this.config); c++) plans.push(drawCropPlan(this.config, this.seed, epoch, datasetIndex, c, image.width, image.height));
    return plans;
  }

  async render(image: RgbImage, epoch: number, datasetIndex: number, target: BatchSlot): Promise<void> {
    const plans = this.plans(image, epoch, datasetIndex);
    // Start every resize at once so libvips works on later crops while this thread does the pixel pass of earlier ones.
    const resized = plans.map((p) => cropResize(image, p.box.left, p.box.top, p.box.width, p.box.height, p.size));
    for (const pending of resized) pending.catch(() => undefined); // a failure surfaces at its await below
    for (let c = 0; c < plans.length; c++) {
      const buffer = await resized[c];
      const px = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length); // one array class keeps the hot loops monomorphic
      const out = c < 2 ? target.globals : target.locals;
      this.finish(px, plans[c], out, cropOffset(this.config, c, target.slot, target.batchSize));
    }
  }

  /** The pixel ops after the resize, in the reference's order, then ToTensor + Normalize. */
  finish(px: Uint8Array, plan: CropPlan, out: Float32Array, offset: number): void {
    const { size } = plan;
    applyColorOps(px, size * size, plan.jitter, plan.grayscale, this.scratch);
    if (plan.blurRadius > 0) gaussianBlurPil(px, size, size, plan.blurRadius, this.blur);
    writeNormalizedChw(px, size, plan.flip, plan.solarize, out, offset);
  }
}
