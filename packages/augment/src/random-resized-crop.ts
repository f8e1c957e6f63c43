import type { CounterRandom } from "./counter-random";

/** A crop box in source pixels: top-left (left, top), size width × height. */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

export const RATIO: readonly [number, number] = [3 / 4, 4 / 3];

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * torchvision RandomResizedCrop.get_params: 10 attempts of (area fraction uniform in
 * scale, aspect ratio log-uniform in ratio), accepted when the box fits; otherwise a
 * center crop clamped to the ratio range.
 */
export function randomResizedCropBox(
  rng: CounterRandom,
  width: number,
  height: number,
  scale: readonly [number, number],
  ratio: readonly [number, number] = RATIO,
): CropBox {
  const area = width * height;
  const logLow = Math.log(ratio[0]);
  const logHigh = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLow, logHigh));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = rng.int(0, height - h + 1);
      const left = rng.int(0, width - w + 1);
      return { left, top, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w: number;
  let h: number;
  if (inRatio < Math.min(...ratio)) {
    w = width;
    h = roundHalfEven(w / Math.min(...ratio));
  } else if (inRatio > Math.max(...ratio)) {
    h = height;
    w = roundHalfEven(h * Math.max(...ratio));
  } else {
    w = width;
    h = height;
  }
  return { left: Math.floor((width - w) / 2), top: Math.floor((height - h) / 2), width: w, height: h };
}
