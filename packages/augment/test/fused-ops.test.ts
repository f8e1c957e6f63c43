import {
  applyColorOps,
  blend,
  BlurScratch,
  ColorScratch,
  drawCropPlan,
  gaussianBlurPil,
  hueShift,
  JitterOp,
  luma,
  MultiCropRenderer,
  resolveAugmentConfig,
  shiftHue,
  writeNormalizedChw,
  type ColorJitterParams,
  type CropPlan,
} from "../src";
import { noise } from "./fixtures";

const f32 = Math.fround;

/** torchvision's ColorJitter + RandomGrayscale on a PIL image, one op and one full pass at a time, from the per-sample formulas. */
function unfusedColorOps(px: Uint8Array, jitter: ColorJitterParams | null, grayscale: boolean): void {
  const pixels = px.length / 3;
  const perPixel = (fn: (r: number, g: number, b: number, o: number) => void) => {
    for (let o = 0; o < px.length; o += 3) fn(px[o], px[o + 1], px[o + 2], o);
  };
  for (const op of jitter?.order ?? []) {
    const j = jitter as ColorJitterParams;
    if (op === JitterOp.Brightness) {
      for (let i = 0; i < px.length; i++) px[i] = blend(0, px[i], f32(j.brightness));
    } else if (op === JitterOp.Contrast) {
      let sum = 0;
      perPixel((r, g, b) => (sum += luma(r, g, b)));
      const mean = Math.trunc(sum / pixels + 0.5);
      for (let i = 0; i < px.length; i++) px[i] = blend(mean, px[i], f32(j.contrast));
    } else if (op === JitterOp.Saturation) {
      perPixel((r, g, b, o) => {
        const l = luma(r, g, b);
        px[o] = blend(l, r, f32(j.saturation));
        px[o + 1] = blend(l, g, f32(j.saturation));
        px[o + 2] = blend(l, b, f32(j.saturation));
      });
    } else {
      perPixel((r, g, b, o) => shiftHue(r, g, b, hueShift(j.hue), px, o));
    }
  }
  if (grayscale) perPixel((r, g, b, o) => px.fill(luma(r, g, b), o, o + 3));
}

/** Noise, smooth ramps and exact grays (hue's s = 0 path) in one size × size image. */
function testImage(size: number, seed: number): Uint8Array {
  const px = new Uint8Array(noise(size, size, 3, seed)); // a plain array: Buffer's slice() would alias, not copy
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 3;
      if (y % 3 === 0) px.fill((x * 23 + seed) & 255, o, o + 3);
      else if (y % 3 === 1) px.set([(x * 9) & 255, (y * 17) & 255, (x * y + seed) & 255], o);
    }
  }
  return px;
}

const ORDERS: JitterOp[][] = (() => {
  const out: JitterOp[][] = [];
  const permute = (prefix: JitterOp[], rest: JitterOp[]) => {
    if (rest.length === 0) out.push(prefix);
    rest.forEach((op, i) => permute([...prefix, op], [...rest.slice(0, i), ...rest.slice(i + 1)]));
  };
  permute([], [JitterOp.Brightness, JitterOp.Contrast, JitterOp.Saturation, JitterOp.Hue]);
  return out;
})();

describe("fused pixel ops equal the op-at-a-time reference", () => {
  it("applyColorOps: every jitter order, with and without grayscale, extreme factors too", () => {
    const scratch = new ColorScratch();
    let seed = 1;
    for (const order of ORDERS) {
      for (const [brightness, contrast, saturation, hue] of [[1.3, 0.7, 1.15, 0.07], [0.6, 1.4, 0.8, -0.1], [1.4, 1.4, 1.2, 0.1], [1, 1, 1, 0]]) {
        for (const grayscale of [false, true]) {
          const jitter = { order, brightness, contrast, saturation, hue };
          const px = testImage(13, seed++);
          const expected = px.slice();
          unfusedColorOps(expected, jitter, grayscale);
          if (brightness !== 1) expect(Array.from(expected)).not.toEqual(Array.from(px)); // the ops did something
          applyColorOps(px, 13 * 13, jitter, grayscale, scratch);
          expect(Array.from(px)).toEqual(Array.from(expected));
        }
      }
    }
  });

  it("the table-driven hue pass equals shiftHue on every table entry and a spread of colours", () => {
    // Every (minimal channel, excess, excess) hue-table entry appears as a colour whose minimum is 0;
    // the other colours step every channel by 5 from varying offsets, so S and V vary too.
    // (All 2^24 colours were compared for six shifts when the tables were introduced; too slow for CI.)
    const colours: number[] = [];
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) colours.push(a, b, 0, a, 0, b, 0, a, b);
    for (let r = 0; r < 256; r += 5) for (let g = 1; g < 256; g += 5) for (let b = 2; b < 256; b += 5) colours.push(r, g, b, 255 - r, b, g);
    const base = Uint8Array.from(colours);
    const n = base.length / 3;
    const ref = new Uint8Array(3);
    for (const hue of [0.1, -0.05, 0.5]) {
      const shift = hueShift(hue);
      const px = base.slice();
      applyColorOps(px, n, { order: [JitterOp.Hue], brightness: 1, contrast: 1, saturation: 1, hue }, false, new ColorScratch());
      let mismatches = 0;
      for (let i = 0; i < n; i++) {
        shiftHue(base[3 * i], base[3 * i + 1], base[3 * i + 2], shift, ref, 0);
        if (ref[0] !== px[3 * i] || ref[1] !== px[3 * i + 1] || ref[2] !== px[3 * i + 2]) mismatches++;
      }
      expect(mismatches).toBe(0);
    }
  });

  it("MultiCropRenderer.finish (last colour step folded into the blur input or the tensor write) equals ops → blur → write", () => {
    const size = 12;
    const config = resolveAugmentConfig({ globalSize: size, localSize: size });
    const renderer = new MultiCropRenderer(config, 3);
    const blur = new BlurScratch(size);
    const plans: CropPlan[] = [];
    for (let i = 0; plans.length < 400; i++) {
      const plan = drawCropPlan(config, 3, 0, i, i % 3, 50, 40);
      plans.push(plan, { ...plan, blurRadius: plan.blurRadius > 0 ? 0 : 1.1, flip: !plan.flip, solarize: !plan.solarize });
    }
    const kinds = new Set<string>();
    plans.forEach((plan, k) => {
      const px = testImage(size, k + 100);
      const expected = px.slice();
      unfusedColorOps(expected, plan.jitter, plan.grayscale);
      if (plan.blurRadius > 0) gaussianBlurPil(expected, size, size, plan.blurRadius, blur);
      const want = new Float32Array(3 * size * size + 5);
      writeNormalizedChw(expected, size, plan.flip, plan.solarize, want, 5);
      const got = new Float32Array(3 * size * size + 5);
      renderer.finish(px, plan, got, 5);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      const last = plan.jitter?.order[3];
      kinds.add(`${plan.blurRadius > 0}/${plan.grayscale}/${last === JitterOp.Brightness || last === JitterOp.Contrast}`);
    });
    expect(kinds.size).toBe(8); // every combination of blur, grayscale and a pending lookup was exercised
  });
});
