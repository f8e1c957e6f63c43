/**
 * ToTensor + Normalize as float32 tables: value v of channel c becomes
 * ((v / 255) − mean[c]) / std[c], each step rounded to float32 like torch's float32
 * tensors. Solarize (ImageOps.solarize, threshold 128: v ≥ 128 → 255 − v) is folded into
 * a second table set, so the last pass is one lookup per sample.
 */

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

const f32 = Math.fround;

export function solarize(v: number): number {
  return v >= 128 ? 255 - v : v;
}

export function normalizeValue(v: number, channel: number): number {
  return f32(f32(f32(v / 255) - f32(IMAGENET_MEAN[channel])) / f32(IMAGENET_STD[channel]));
}

/** [channel·256 + v] → normalized float; second half for solarized pixels. */
export const NORMALIZE_TABLE: Float32Array = (() => {
  const table = new Float32Array(2 * 3 * 256);
  for (let c = 0; c < 3; c++) {
    for (let v = 0; v < 256; v++) {
      table[c * 256 + v] = normalizeValue(v, c);
      table[768 + c * 256 + v] = normalizeValue(solarize(v), c);
    }
  }
  return table;
})();

/**
 * Write interleaved RGB `px` (size × size) as normalized CHW float32 at out[offset..],
 * mirrored horizontally when `flip` (flip commutes with every op before it: the point
 * ops, the contrast mean and PIL's symmetric box blur).
 */
export function writeNormalizedChw(px: Uint8Array, size: number, flip: boolean, solarized: boolean, out: Float32Array, offset: number): void {
  writeChwThroughTable(px, size, flip, NORMALIZE_TABLE, solarized ? 768 : 0, out, offset);
}

/**
 * writeNormalizedChw of lut(px) (a per-sample 8-bit table still to apply: the colour
 * jitter's last brightness / contrast steps), folding the table into the normalize
 * table: no pass of its own. `scratch` holds 768 floats.
 */
export function writeNormalizedChwLookup(px: Uint8Array, size: number, flip: boolean, solarized: boolean, lut: Uint8Array, out: Float32Array, offset: number, scratch: Float32Array): void {
  const t = solarized ? 768 : 0;
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) scratch[c * 256 + v] = NORMALIZE_TABLE[t + c * 256 + lut[v]];
  writeChwThroughTable(px, size, flip, scratch, 0, out, offset);
}

/** writeNormalizedChw of grayscale(lut(px)) (PIL convert("L") replicated to three channels). */
export function writeNormalizedChwGray(px: Uint8Array, size: number, flip: boolean, solarized: boolean, lut: Uint8Array, out: Float32Array, offset: number): void {
  const plane = size * size;
  const table = NORMALIZE_TABLE;
  const t = solarized ? 768 : 0;
  for (let y = 0; y < size; y++) {
    const row = offset + y * size;
    let i = y * size * 3;
    for (let k = 0; k < size; k++, i += 3) {
      const x = flip ? size - 1 - k : k;
      const l = (lut[px[i]] * 19595 + lut[px[i + 1]] * 38470 + lut[px[i + 2]] * 7471 + 0x8000) >> 16;
      out[row + x] = table[t + l];
      out[row + plane + x] = table[t + 256 + l];
      out[row + 2 * plane + x] = table[t + 512 + l];
    }
  }
}

function writeChwThroughTable(px: Uint8Array, size: number, flip: boolean, table: Float32Array, t: number, out: Float32Array, offset: number): void {
  const plane = size * size;
  const t1 = t + 256;
  const t2 = t + 512;
  for (let y = 0; y < size; y++) {
    const row = offset + y * size;
    let i = y * size * 3;
    if (flip) {
      for (let x = size - 1; x >= 0; x--, i += 3) {
        out[row + x] = table[t + px[i]];
        out[row + plane + x] = table[t1 + px[i + 1]];
        out[row + 2 * plane + x] = table[t2 + px[i + 2]];
      }
    } else {
      for (let x = 0; x < size; x++, i += 3) {
        out[row + x] = table[t + px[i]];
        out[row + plane + x] = table[t1 + px[i + 1]];
        out[row + 2 * plane + x] = table[t2 + px[i + 2]];
      }
    }
  }
}
