import { gradients, MissingGradientRuleError } from "../src/autodiff/backward";
import { gradientRules } from "../src/autodiff/rules";
import { Graph } from "../src/graph/graph";
import { numel, Shape, Tensor } from "../src/graph/tensor";
import { CompiledGraph } from "../src/runtime/compiled-graph";
import { checkGradients, failures, FLOAT32_NOISE, forwardOps, GradientCase, InputSpec } from "./gradient-check";

const x = (shape: Shape, sample: InputSpec["sample"] = "normal"): InputSpec => ({ shape, sample });
const s = (shape: Shape): string => `[${shape.join(",")}]`;

/** Runs the finite-difference check and fails with the per-input errors when it is off. */
async function expectGradientsMatch(c: GradientCase): Promise<void> {
  const report = await checkGradients(c);
  expect(failures(report)).toEqual([]);
  // A check against an all-zero gradient would pass for a rule that returns zeros.
  for (const e of report.errors) expect(e.analyticNorm).toBeGreaterThan(1e-3);
}

const run = (cases: readonly GradientCase[]) => test.each(cases.map((c) => [c.name, c] as const))("%s", (_, c) => expectGradientsMatch(c));

// Shape pairs for the broadcasting binary ops: equal, scalar on either side, missing
// leading dims on either side, size-1 dims on both sides at once.
const BROADCAST_PAIRS: ReadonlyArray<readonly [Shape, Shape]> = [
  [[2, 3, 4], [2, 3, 4]],
  [[2, 3, 4], []],
  [[], [3, 4]],
  [[2, 3, 4], [4]],
  [[4], [2, 3, 4]],
  [[2, 3, 4], [3, 1]],
  [[2, 1, 4], [1, 3, 1]],
  [[3, 1], [1, 4]],
  [[1], [2, 3]],
];

const binaryOps: ReadonlyArray<readonly [string, (g: Graph, a: Tensor, b: Tensor) => Tensor]> = [
  ["Add", (g, a, b) => g.add(a, b)],
  ["Sub", (g, a, b) => g.sub(a, b)],
  ["Mul", (g, a, b) => g.mul(a, b)],
  ["Div", (g, a, b) => g.div(a, b)],
  ["Max", (g, a, b) => g.max(a, b)],
];

const ELEMENTWISE: GradientCase[] = [
  ...binaryOps.flatMap(([op, f]) =>
    BROADCAST_PAIRS.map(([sa, sb]): GradientCase => ({
      name: `${op} ${s(sa)} ${s(sb)}`,
      // Max: the smaller operand lies near the middle of the other's values, so that each
      // side wins somewhere and both gradients are non-zero.
      inputs: {
        a: x(sa, op === "Max" && numel(sa) < numel(sb) ? "centered" : "normal"),
        b: x(sb, op === "Div" ? "nonzero" : op === "Max" && numel(sb) < numel(sa) ? "centered" : "normal"),
      },
      build: (g, { a, b }) => f(g, a, b),
    })),
  ),
  { name: "Sum [2,3,4] [3,1] []", inputs: { a: x([2, 3, 4]), b: x([3, 1]), c: x([]) }, build: (g, { a, b, c }) => g.sum([a, b, c]) },
  { name: "Identity", inputs: { a: x([2, 3]) }, build: (g, { a }) => g.identity(a) },
  { name: "Neg", inputs: { a: x([2, 3, 4]) }, build: (g, { a }) => g.neg(a) },
  { name: "Exp", inputs: { a: x([2, 3, 4]) }, build: (g, { a }) => g.exp(a) },
  { name: "Log (positive inputs)", inputs: { a: x([2, 3, 4], "positive") }, build: (g, { a }) => g.log(a) },
  { name: "Sqrt (positive inputs)", inputs: { a: x([2, 3, 4], "positive") }, build: (g, { a }) => g.sqrt(a) },
  ...[2, 3, -1].map((p): GradientCase => ({ name: `Pow x^${p}`, inputs: { a: x([2, 3, 4]) }, build: (g, { a }) => g.pow(a, p) })),
  ...[0.5, -1.5, 2.5].map((p): GradientCase => ({
    name: `Pow x^${p} (positive inputs)`,
    inputs: { a: x([2, 3, 4], "positive") },
    build: (g, { a }) => g.pow(a, p),
  })),
  {
    name: "Pow [2,3,4] ^ constant [4] exponents",
    inputs: { a: x([2, 3, 4], "positive") },
    build: (g, { a }) => g.pow(a, g.constant([2, 0.5, -1, 3], [4])),
  },
  {
    name: "Pow scalar ^ constant [3] exponents (base broadcast)",
    inputs: { a: x([], "positive") },
    build: (g, { a }) => g.pow(a, g.constant([2, 0.5, 3], [3])),
  },
];

// Erf has no float64 kernel: the builder casts to float32 and back, so its forward has
// float32 rounding (see FLOAT32_NOISE). Both float64→float32 and float32→float64 Casts
// are on the path.
const CASTS: GradientCase[] = [
  { name: "Erf (float64 → float32 → Erf → float64)", inputs: { a: x([2, 3, 4]) }, build: (g, { a }) => g.erf(a), precision: FLOAT32_NOISE },
  {
    name: "Cast float64 → float32 → float64",
    inputs: { a: x([2, 3, 4]) },
    build: (g, { a }) => g.cast(g.cast(a, "float32"), "float64"),
    precision: FLOAT32_NOISE,
  },
  {
    // A lone Cast: on the round trips above, a sign error in the Cast rule would cancel.
    name: "Cast float32 input → float64",
    inputs: { a: { shape: [2, 3, 4], dtype: "float32" } },
    build: (g, { a }) => g.exp(g.cast(a, "float64")),
    precision: FLOAT32_NOISE,
  },
  {
    // The rules must build their constants in their operands' dtype, not the graph's.
    name: "float32 ops inside a float64 graph (Sqrt, ReduceMean, Exp, Div, Pow, Max, Softmax, gelu)",
    inputs: { a: x([2, 3, 4], "positive"), b: x([4], "positive") },
    build: (g, { a, b }) => {
      const [a32, b32] = [g.cast(a, "float32"), g.cast(b, "float32")];
      const y = g.sqrt(g.max(g.div(g.exp(a32), b32), g.pow(b32, 2)));
      return g.cast(g.add(g.gelu(g.softmax(y, 1)), g.reduceMean(y, [0, 2])), "float64");
    },
    precision: FLOAT32_NOISE,
  },
];

const MATMUL_SHAPES: ReadonlyArray<readonly [Shape, Shape]> = [
  [[3, 4], [4, 5]],
  [[2, 3, 4], [4, 5]], // batched × 2-D: the rule folds the batch into one GEMM
  [[2, 2, 3, 4], [2, 2, 4, 5]],
  [[2, 1, 3, 4], [3, 4, 5]], // batch dims broadcast on both sides
  [[3, 4], [2, 4, 5]],
  [[1, 3, 4], [2, 4, 5]],
  [[2, 3, 4], [2, 4, 5]],
];

const GEMM_BIASES: ReadonlyArray<Shape | undefined> = [undefined, [5], [1, 5], [3, 5], [3, 1], []];

const PRODUCTS: GradientCase[] = [
  ...MATMUL_SHAPES.map(([sa, sb]): GradientCase => ({
    name: `MatMul ${s(sa)} × ${s(sb)}`,
    inputs: { a: x(sa), b: x(sb) },
    build: (g, { a, b }) => g.matmul(a, b),
  })),
  ...[false, true].flatMap((transA) =>
    [false, true].flatMap((transB) =>
      GEMM_BIASES.map((bias): GradientCase => ({
        name: `Gemm transA=${transA} transB=${transB} bias ${bias ? s(bias) : "none"}`,
        // y = op(a)·op(b) + c is [3,5] with inner dim 4.
        inputs: {
          a: x(transA ? [4, 3] : [3, 4]),
          b: x(transB ? [5, 4] : [4, 5]),
          ...(bias ? { c: x(bias) } : {}),
        },
        build: (g, { a, b, c }) => g.gemm(a, b, c, { transA, transB }),
      })),
    ),
  ),
  { name: "linear [6,4] → [6,5] with bias", inputs: { v: x([6, 4]), w: x([5, 4]), c: x([5]) }, build: (g, { v, w, c }) => g.linear(v, w, c) },
  { name: "linear [2,3,4] → [2,3,5] no bias", inputs: { v: x([2, 3, 4]), w: x([5, 4]) }, build: (g, { v, w }) => g.linear(v, w) },
  { name: "linear [2,2,3,4] → [2,2,3,5] with bias", inputs: { v: x([2, 2, 3, 4]), w: x([5, 4]), c: x([5]) }, build: (g, { v, w, c }) => g.linear(v, w, c) },
];

const SHAPE_OPS: GradientCase[] = [
  ...[[6, 4], [4, 6], [24], [2, 12, 1]].map((to): GradientCase => ({
    name: `Reshape [2,3,4] → ${s(to)}`,
    inputs: { a: x([2, 3, 4]) },
    build: (g, { a }) => g.reshape(a, to),
  })),
  ...([
    [[3, 4], [1, 0]],
    [[2, 3, 4], [2, 0, 1]],
    [[2, 3, 4], [1, 2, 0]],
    [[2, 3, 4, 5], [0, 2, 1, 3]],
    [[2, 3, 4, 5], [3, 1, 0, 2]],
  ] as const).map(([shape, perm]): GradientCase => ({
    name: `Transpose ${s(shape)} perm ${s(perm)}`,
    inputs: { a: x(shape) },
    build: (g, { a }) => g.transpose(a, perm),
  })),
  ...([
    [[3, 1], [2, 3, 4]],
    [[], [2, 3]],
    [[4], [2, 3, 4]],
    [[1, 3, 1], [2, 3, 4]],
    [[2, 3, 4], [2, 3, 4]],
  ] as const).map(([from, to]): GradientCase => ({
    name: `Expand ${s(from)} → ${s(to)}`,
    inputs: { a: x(from) },
    build: (g, { a }) => g.expand(a, to),
  })),
  ...([
    [[[2, 3], [4, 3]], 0],
    [[[2, 1, 4], [2, 3, 4], [2, 2, 4]], 1],
    [[[2, 3, 1], [2, 3, 4]], -1],
  ] as const).map(([shapes, axis]): GradientCase => ({
    name: `Concat ${shapes.map(s).join(" ")} axis ${axis}`,
    inputs: Object.fromEntries(shapes.map((shape, i) => [`p${i}`, x(shape)])),
    build: (g, parts) => g.concat(Object.values(parts), axis),
  })),
  ...([
    [[2, 7, 3], [2, 4, 1], 1, []],
    [[2, 7, 3], [2, 4, 1], 1, [1]], // an output that does not reach the loss
    [[6, 2], [1, 5], 0, [0]],
    [[2, 3, 5], [2, 2, 1], -1, [0, 2]],
  ] as const).map(([shape, sizes, axis, unused]): GradientCase => ({
    name: `Split ${s(shape)} into ${s(sizes)} axis ${axis}${unused.length ? ` outputs ${s(unused)} unused` : ""}`,
    inputs: { a: x(shape) },
    build: (g, { a }) => g.split(a, sizes, axis).filter((_, i) => !(unused as readonly number[]).includes(i)),
  })),
  ...([
    [[2, 5, 3], 1, 1, 4],
    [[2, 5, 3], 0, 1, 2],
    [[2, 5, 3], -1, 0, 2],
    [[6], 0, 0, 6],
  ] as const).map(([shape, axis, start, end]): GradientCase => ({
    name: `Slice ${s(shape)} axis ${axis} [${start}:${end}]`,
    inputs: { a: x(shape) },
    build: (g, { a }) => g.slice(a, axis, start, end),
  })),
  ...([
    [[2, 3], [1, 0, 2, 1]],
    [[2, 3, 4], [0, 1, 2, 1, 0, 3]],
    [[3], [0, 2]],
  ] as const).map(([shape, pads]): GradientCase => ({
    name: `Pad ${s(shape)} pads ${s(pads)}`,
    inputs: { a: x(shape) },
    build: (g, { a }) => g.pad(a, pads),
  })),
];

const REDUCE_AXES: ReadonlyArray<readonly number[]> = [[0], [1], [-1], [0, 2], [0, 1, 2]];

const REDUCTIONS: GradientCase[] = [
  ...(["ReduceSum", "ReduceMean"] as const).flatMap((op) =>
    REDUCE_AXES.flatMap((axes) =>
      [true, false].map((keepdims): GradientCase => ({
        name: `${op} [2,3,4] axes ${s(axes)} keepdims=${keepdims}`,
        inputs: { a: x([2, 3, 4]) },
        build: (g, { a }) => (op === "ReduceSum" ? g.reduceSum(a, axes, keepdims) : g.reduceMean(a, axes, keepdims)),
      })),
    ),
  ),
  ...(["Softmax", "LogSoftmax"] as const).flatMap((op) =>
    [0, 1, -1].map((axis): GradientCase => ({
      name: `${op} [2,3,4] axis ${axis}`,
      inputs: { a: x([2, 3, 4]) },
      build: (g, { a }) => (op === "Softmax" ? g.softmax(a, axis) : g.logSoftmax(a, axis)),
    })),
  ),
];

// ONNX Runtime computes LayerNormalization's mean and 1/σ in float32 for float64 inputs
// too (stash_type 1; it has no float64 stash), hence FLOAT32_NOISE; gelu is float32-only
// like Erf, so the builder casts around it.
const NORMS_AND_COMPOSITES: GradientCase[] = [
  ...[[2, 3, 4], [5, 8], [2, 2, 3, 6]].map((shape): GradientCase => ({
    name: `LayerNormalization ${s(shape)}`,
    inputs: { a: x(shape), gamma: x([shape[shape.length - 1]]), beta: x([shape[shape.length - 1]]) },
    build: (g, { a, gamma, beta }) => g.layerNorm(a, gamma, beta, 1e-6),
    precision: FLOAT32_NOISE,
  })),
  { name: "gelu [2,3,4]", inputs: { a: x([2, 3, 4]) }, build: (g, { a }) => g.gelu(a), precision: FLOAT32_NOISE },
  {
    // What smoke.test.ts checked: a pre-norm MLP head into a log-softmax loss.
    name: "layerNorm → gelu → linear → logSoftmax",
    inputs: { a: x([2, 3, 4]), w: x([5, 4]), gamma: x([4]), beta: x([4]) },
    build: (g, { a, w, gamma, beta }) => g.logSoftmax(g.linear(g.gelu(g.layerNorm(a, gamma, beta, 1e-6)), w), -1),
    precision: FLOAT32_NOISE,
  },
];

const ALL_CASES = [...ELEMENTWISE, ...CASTS, ...PRODUCTS, ...SHAPE_OPS, ...REDUCTIONS, ...NORMS_AND_COMPOSITES];

describe("gradient rules match central finite differences (float64)", () => {
  describe("elementwise", () => run(ELEMENTWISE));
  describe("casts", () => run(CASTS));
  describe("MatMul, Gemm, linear", () => run(PRODUCTS));
  describe("shape ops", () => run(SHAPE_OPS));
  describe("reductions and softmax", () => run(REDUCTIONS));
  describe("LayerNormalization and composites", () => run(NORMS_AND_COMPOSITES));

  test("the check fails for a rule that is off by 0.01% (in-memory swap, restored)", async () => {
    const mul = gradientRules.Mul;
    gradientRules.Mul = (g, node, dy) => mul(g, node, dy).map((d) => d && g.mul(d, g.scalar(1.0001, d.dtype)));
    try {
      const report = await checkGradients(ELEMENTWISE.find((c) => c.name === "Mul [2,3,4] [4]")!);
      expect(failures(report).map((e) => e.input)).toEqual(["a", "b"]);
    } finally {
      gradientRules.Mul = mul;
    }
  });

  test("every rule in gradientRules has a case", () => {
    const covered = new Set(ALL_CASES.flatMap((c) => [...forwardOps(c)]));
    expect(Object.keys(gradientRules).filter((op) => !covered.has(op))).toEqual([]);
  });
});

describe("the reverse walk", () => {
  test("an op without a rule on the path to the loss raises MissingGradientRuleError", () => {
    const g = new Graph("missing", "float64");
    const a = g.input("a", [3]);
    const [sin] = g.emit("Sin", [a], [a.shape]);
    const loss = g.reduceSum(sin, [0], false);
    let error: unknown;
    try {
      gradients(g, loss, [a]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MissingGradientRuleError);
    expect(error).toMatchObject({ op: "Sin", nodeName: expect.stringContaining("Sin") });
  });

  test("an op without a rule off the path to the loss is fine", () => {
    const g = new Graph("missing-off-path", "float64");
    const a = g.input("a", [3]);
    g.emit("Sin", [a], [a.shape]);
    const loss = g.reduceSum(g.mul(a, a), [0], false);
    expect(() => gradients(g, loss, [a])).not.toThrow();
  });

  test("an op without a rule on a path to the loss that no parameter feeds is fine", () => {
    const g = new Graph("missing-constant-path", "float64");
    const a = g.input("a", [3]);
    const c = g.input("c", [3]);
    const [sinC] = g.emit("Sin", [c], [c.shape]);
    const loss = g.reduceSum(g.mul(a, sinC), [0], false);
    expect(() => gradients(g, loss, [a])).not.toThrow();
    // Also when that op makes the loss itself: the walk skips nodes no parameter feeds.
    expect(() => gradients(g, g.emit("Sin", [g.reduceSum(c, [0], false)], [[]])[0], [a])).not.toThrow();
  });

  test("parameters the loss does not depend on get zeros of their shape", async () => {
    const g = new Graph("unused", "float64");
    const a = g.input("a", [2, 3]);
    const unused = g.input("unused", [4, 5]);
    const offPath = g.input("offPath", [3]);
    g.output(g.exp(g.add(a, offPath)), "side"); // depends on offPath, but not the loss
    const loss = g.reduceSum(g.exp(a), [0, 1], false);
    g.output(loss, "loss");
    const [da, dUnused, dOffPath] = gradients(g, loss, [a, unused, offPath]);
    expect([dUnused.shape, dOffPath.shape]).toEqual([[4, 5], [3]]);
    g.output(da, "da");
    g.output(dUnused, "dUnused");
    g.output(dOffPath, "dOffPath");
    const cg = await CompiledGraph.create(g, { kind: "cpu" }, 1);
    const feeds = { a: Float64Array.from([0.1, -0.2, 0.3, 0.4, -0.5, 0.6]), unused: new Float64Array(20).fill(2), offPath: Float64Array.from([1, 2, 3]) };
    const out = await cg.run(feeds);
    await cg.release();
    expect(Array.from(out.dUnused)).toEqual(new Array(20).fill(0));
    expect(Array.from(out.dOffPath)).toEqual([0, 0, 0]);
    expect(Array.from(out.da)).toEqual(Array.from(feeds.a, Math.exp));
  });

  describe("a tensor used more than once accumulates every contribution", () => {
    run([
      { name: "a·a", inputs: { a: x([2, 3]) }, build: (g, { a }) => g.mul(a, a) },
      { name: "a·b + a + exp(a)", inputs: { a: x([2, 3]), b: x([3]) }, build: (g, { a, b }) => g.add(g.add(g.mul(a, b), a), g.exp(a)) },
      {
        name: "a through two outputs of a graph (split halves and a softmax)",
        inputs: { a: x([4, 3]) },
        build: (g, { a }) => [...g.split(a, [1, 3], 0), g.softmax(a, 0)],
      },
      { name: "a @ aᵀ", inputs: { a: x([3, 4]) }, build: (g, { a }) => g.matmul(a, g.transpose(a, [1, 0])) },
    ]);

    test("exactly: d/da sum(a·a + a) = 2a + 1", async () => {
      const g = new Graph("twice", "float64");
      const a = g.input("a", [4]);
      const loss = g.reduceSum(g.add(g.mul(a, a), a), [0], false);
      const [da] = gradients(g, loss, [a]);
      g.output(da, "da");
      const cg = await CompiledGraph.create(g, { kind: "cpu" }, 1);
      const out = await cg.run({ a: Float64Array.from([1, -2, 0.5, 3]) });
      await cg.release();
      expect(Array.from(out.da)).toEqual([3, -3, 2, 7]);
    });
  });
});
