import { AUGMENT_PROBABILITIES, CounterRandom, drawCropPlan, resolveAugmentConfig, JitterOp } from "../src";

const config = resolveAugmentConfig();
const N = 20000;

/** Half-width of a ~4.5-sigma band for a rate p over n draws: fails only on a real bias. */
const band = (p: number, n: number) => 4.5 * Math.sqrt((p * (1 - p)) / n) + 1e-9;

function plans(cropIndex: number, width = 1000, height = 800) {
  return Array.from({ length: N }, (_, i) => drawCropPlan(config, 0, 0, i, cropIndex, width, height));
}

describe("random transforms follow the reference distributions", () => {
  const global1 = plans(0);
  const global2 = plans(1);
  const local = plans(2);
  const rate = (xs: boolean[]) => xs.filter(Boolean).length / xs.length;

  it("flips with p = 0.5, jitters with p = 0.8, grays with p = 0.2", () => {
    for (const ps of [global1, global2, local]) {
      expect(Math.abs(rate(ps.map((p) => p.flip)) - 0.5)).toBeLessThan(band(0.5, N));
      expect(Math.abs(rate(ps.map((p) => p.jitter !== null)) - 0.8)).toBeLessThan(band(0.8, N));
      expect(Math.abs(rate(ps.map((p) => p.grayscale)) - 0.2)).toBeLessThan(band(0.2, N));
    }
  });

  it("blurs with p = 1.0 / 0.1 / 0.5 and radius uniform in [0.1, 2.0]", () => {
    expect(global1.every((p) => p.blurRadius > 0)).toBe(true);
    expect(Math.abs(rate(global2.map((p) => p.blurRadius > 0)) - 0.1)).toBeLessThan(band(0.1, N));
    expect(Math.abs(rate(local.map((p) => p.blurRadius > 0)) - 0.5)).toBeLessThan(band(0.5, N));
    const radii = global1.map((p) => p.blurRadius);
    expect(Math.min(...radii)).toBeGreaterThanOrEqual(0.1);
    expect(Math.max(...radii)).toBeLessThan(2.0);
    const mean = radii.reduce((a, b) => a + b, 0) / N;
    expect(Math.abs(mean - 1.05)).toBeLessThan(4.5 * (1.9 / Math.sqrt(12 * N)));
    const lowQuarter = radii.filter((r) => r < 0.1 + 1.9 / 4).length / N;
    expect(Math.abs(lowQuarter - 0.25)).toBeLessThan(band(0.25, N));
  });

  it("solarizes global crop 2 only, with p = 0.2", () => {
    expect(Math.abs(rate(global2.map((p) => p.solarize)) - AUGMENT_PROBABILITIES.solarize)).toBeLessThan(band(0.2, N));
    expect(global1.some((p) => p.solarize) || local.some((p) => p.solarize)).toBe(false);
  });

  it("draws jitter factors uniformly in their ranges and the order uniformly", () => {
    const jitters = local.flatMap((p) => (p.jitter ? [p.jitter] : []));
    const check = (values: number[], lo: number, hi: number) => {
      expect(Math.min(...values)).toBeGreaterThanOrEqual(lo);
      expect(Math.max(...values)).toBeLessThan(hi);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      expect(Math.abs(mean - (lo + hi) / 2)).toBeLessThan(4.5 * ((hi - lo) / Math.sqrt(12 * values.length)));
    };
    check(jitters.map((j) => j.brightness), 0.6, 1.4);
    check(jitters.map((j) => j.contrast), 0.6, 1.4);
    check(jitters.map((j) => j.saturation), 0.8, 1.2);
    check(jitters.map((j) => j.hue), -0.1, 0.1);
    for (const op of [JitterOp.Brightness, JitterOp.Contrast, JitterOp.Saturation, JitterOp.Hue]) {
      const first = jitters.filter((j) => j.order[0] === op).length / jitters.length;
      expect(Math.abs(first - 0.25)).toBeLessThan(band(0.25, jitters.length));
    }
    expect(jitters.every((j) => [...j.order].sort().join() === "0,1,2,3")).toBe(true);
  });

  it("samples crop area uniformly in scale and aspect ratio log-uniformly in (3/4, 4/3)", () => {
    const W = 1000;
    const H = 800;
    const areas = local.map((p) => (p.box.width * p.box.height) / (W * H));
    const logRatios = local.map((p) => Math.log(p.box.width / p.box.height));
    // Local scale (0.05, 0.4) always fits a 1000 × 800 image: no rejection, so the law is exactly uniform.
    expect(Math.min(...areas)).toBeGreaterThan(0.05 * 0.98);
    expect(Math.max(...areas)).toBeLessThan(0.4 * 1.02);
    const meanArea = areas.reduce((a, b) => a + b, 0) / N;
    expect(Math.abs(meanArea - 0.225)).toBeLessThan(0.003);
    const belowHalfway = areas.filter((a) => a < 0.225).length / N;
    expect(Math.abs(belowHalfway - 0.5)).toBeLessThan(band(0.5, N) + 0.01);
    const lo = Math.log(3 / 4);
    const hi = Math.log(4 / 3);
    expect(Math.min(...logRatios)).toBeGreaterThan(lo - 0.02);
    expect(Math.max(...logRatios)).toBeLessThan(hi + 0.02);
    const meanLog = logRatios.reduce((a, b) => a + b, 0) / N;
    expect(Math.abs(meanLog)).toBeLessThan(0.005);
    const lowerThird = logRatios.filter((r) => r < lo + (hi - lo) / 3).length / N;
    expect(Math.abs(lowerThird - 1 / 3)).toBeLessThan(band(1 / 3, N) + 0.01);
    // Boxes lie inside the image and cover its positions.
    expect(local.every((p) => p.box.left >= 0 && p.box.top >= 0 && p.box.left + p.box.width <= W && p.box.top + p.box.height <= H)).toBe(true);
    const globalAreas = global1.map((p) => (p.box.width * p.box.height) / (W * H));
    expect(Math.min(...globalAreas)).toBeGreaterThan(0.4 * 0.98);
    expect(global1.every((p) => p.size === 224) && local.every((p) => p.size === 96)).toBe(true);
  });

  it("keys every draw by (seed, epoch, datasetIndex, cropIndex) only", () => {
    const a = drawCropPlan(config, 5, 2, 17, 3, 640, 480);
    expect(drawCropPlan(config, 5, 2, 17, 3, 640, 480)).toEqual(a);
    expect(drawCropPlan(config, 5, 2, 17, 4, 640, 480)).not.toEqual(a);
    expect(drawCropPlan(config, 5, 3, 17, 3, 640, 480)).not.toEqual(a);
    expect(drawCropPlan(config, 6, 2, 17, 3, 640, 480)).not.toEqual(a);
    const r = CounterRandom.forCrop(1, 2, 3, 4);
    const first = [r.next(), r.next(), r.next()];
    const again = CounterRandom.forCrop(1, 2, 3, 4);
    expect([again.next(), again.next(), again.next()]).toEqual(first);
  });
});
