import { gradients } from "../src/autodiff/backward";
import { Graph } from "../src/graph/graph";
import { numel, Shape, Tensor } from "../src/graph/tensor";
import { normalAt, randomKey, RandomKey, uniformAt } from "../src/random";
import { CompiledGraph } from "../src/runtime/compiled-graph";

/**
 * Finite-difference check of the autodiff: for a small graph `y = op(x…)` it compares
 * the analytic d(loss)/dx with central differences of loss = Σ_k sum(y_k · R_k), where
 * the R_k are fixed random tensors, so that every output element weighs in the loss.
 */

/** Where an input's random values lie: inside the op's smooth domain (log, sqrt, 1/b). */
export type Sample = "normal" | "positive" | "nonzero" | "centered";

export interface InputSpec {
  readonly shape: Shape;
  readonly sample?: Sample;
  /** float64 unless a case needs a float32 input (a lone Cast into float64). */
  readonly dtype?: "float32" | "float64";
}

/** FD step and the bound on ‖fd − analytic‖ / ‖analytic‖. */
export interface Precision {
  readonly step: number;
  readonly tolerance: number;
}

/** Ops whose forward is exact float64: rounding in the central difference is ~1e-10. */
export const FLOAT64: Precision = { step: 1e-6, tolerance: 1e-6 };

/**
 * Ops whose forward ONNX Runtime computes partly in float32 even in a float64 graph (Erf
 * behind Casts, LayerNormalization's mean and 1/σ): the loss carries ~1e-7 relative noise,
 * which a 1e-6 step would amplify to ~0.1, so a larger step and a looser bound.
 */
export const FLOAT32_NOISE: Precision = { step: 1e-3, tolerance: 1e-3 };

/** Keeps the error relative without dividing by zero when the true gradient is zero. */
const ABSOLUTE_FLOOR = 1e-9;

export interface GradientCase {
  readonly name: string;
  readonly inputs: Readonly<Record<string, InputSpec>>;
  /** Builds the ops under test in a float64 graph; every returned tensor enters the loss. */
  readonly build: (g: Graph, x: Readonly<Record<string, Tensor>>) => Tensor | readonly Tensor[];
  readonly precision?: Precision;
}

export interface InputError {
  readonly input: string;
  readonly relativeError: number;
  readonly analyticNorm: number;
  readonly finiteDifferenceNorm: number;
}

export interface GradientReport {
  readonly name: string;
  readonly tolerance: number;
  readonly errors: readonly InputError[];
}

function hashName(name: string): number {
  let h = 0x811c9dc5; // FNV-1a: the same case always gets the same random inputs
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function sampleValues(key: RandomKey, count: number, sample: Sample = "normal"): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    if (sample === "normal") out[i] = normalAt(key, i);
    else if (sample === "positive") out[i] = 0.5 + 1.5 * uniformAt(key, 2 * i);
    else if (sample === "centered") out[i] = uniformAt(key, 2 * i) - 0.5;
    else out[i] = (uniformAt(key, 2 * i + 1) < 0.5 ? -1 : 1) * (0.5 + uniformAt(key, 2 * i));
  }
  return out;
}

const SEED = 20210429;

interface BuiltCase {
  readonly graph: Graph;
  readonly loss: Tensor;
  readonly inputs: Readonly<Record<string, Tensor>>;
}

/** The float64 graph of a case up to its loss, which is marked as the output "loss". */
export function buildCase(c: GradientCase): BuiltCase {
  const graph = new Graph(c.name, "float64");
  const inputs: Record<string, Tensor> = {};
  for (const [name, spec] of Object.entries(c.inputs)) inputs[name] = graph.input(name, spec.shape, spec.dtype ?? "float64");
  const built = c.build(graph, inputs);
  const outputs = Array.isArray(built) ? (built as readonly Tensor[]) : [built as Tensor];
  let loss: Tensor | undefined;
  let offset = 0;
  for (const y of outputs) {
    const weights = graph.constant(sampleValues(randomKey(SEED, hashName(c.name), 2, offset++), numel(y.shape)), y.shape);
    const weighted = graph.mul(y, weights);
    const term = y.shape.length ? graph.reduceSum(weighted, [...y.shape.keys()], false) : weighted;
    loss = loss ? graph.add(loss, term) : term;
  }
  graph.output(loss!, "loss");
  return { graph, loss: loss!, inputs };
}

/** The ops of a case's forward graph, up to the loss. */
export function forwardOps(c: GradientCase): Set<string> {
  return new Set(buildCase(c).graph.nodes.map((n) => n.op));
}

function l2(v: Float64Array): number {
  let sum = 0;
  for (const x of v) sum += x * x;
  return Math.sqrt(sum);
}

/**
 * Runs one case: one ONNX Runtime session for the forward loss (evaluated 2n times, once
 * per ± perturbation of each of the n input elements, on feeds edited in place) and one
 * for the loss with its gradients appended, run once.
 */
export async function checkGradients(c: GradientCase): Promise<GradientReport> {
  const { step, tolerance } = c.precision ?? FLOAT64;
  const cpu = { kind: "cpu" } as const;
  // The case is built twice, identically: a CompiledGraph reads its Graph's outputs at
  // every run, so the forward-only session needs a graph that gradients() never touches.
  const forward = await CompiledGraph.create(buildCase(c).graph, cpu, 1);
  let withGradients: CompiledGraph | undefined;
  try {
    const { graph, loss, inputs } = buildCase(c);
    const wrt = Object.keys(c.inputs);
    gradients(graph, loss, wrt.map((name) => inputs[name])).forEach((d, i) => {
      const x = inputs[wrt[i]];
      if (d.dtype !== x.dtype || d.shape.length !== x.shape.length || d.shape.some((s, k) => s !== x.shape[k])) {
        throw new Error(`${c.name}: gradient of ${x.name} is ${d.dtype}[${d.shape}], expected ${x.dtype}[${x.shape}]`);
      }
      graph.output(d, `grad_${wrt[i]}`);
    });
    withGradients = await CompiledGraph.create(graph, cpu, 1);
    return { name: c.name, tolerance, errors: await finiteDifferenceErrors(c, forward, withGradients, step) };
  } finally {
    await forward.release();
    await withGradients?.release();
  }
}

/** Central differences of the forward loss against the gradients, for every input. */
async function finiteDifferenceErrors(c: GradientCase, forward: CompiledGraph, withGradients: CompiledGraph, step: number): Promise<InputError[]> {
  const feeds: Record<string, Float32Array | Float64Array> = {};
  Object.entries(c.inputs).forEach(([name, spec], i) => {
    const values = sampleValues(randomKey(SEED, hashName(c.name), 3, i), numel(spec.shape), spec.sample);
    feeds[name] = spec.dtype === "float32" ? Float32Array.from(values) : values;
  });

  const results = await withGradients.run(feeds);
  const errors: InputError[] = [];
  for (const name of Object.keys(c.inputs)) {
    const exact = Float64Array.from(results[`grad_${name}`]);
    const values = feeds[name];
    const fd = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const original = values[i];
      values[i] = original + step;
      const [plus, above] = [(await forward.run(feeds)).loss[0], values[i]];
      values[i] = original - step;
      const [minus, below] = [(await forward.run(feeds)).loss[0], values[i]];
      values[i] = original;
      // The step actually taken: x ± h rounds to the input's precision.
      fd[i] = (plus - minus) / (above - below);
    }
    errors.push({
      input: name,
      relativeError: l2(fd.map((v, k) => v - exact[k])) / Math.max(l2(exact), ABSOLUTE_FLOOR),
      analyticNorm: l2(exact),
      finiteDifferenceNorm: l2(fd),
    });
  }
  return errors;
}

/** The inputs whose gradient is off by more than the case's tolerance (none when it passes). */
export function failures(report: GradientReport): InputError[] {
  return report.errors.filter((e) => !(e.relativeError <= report.tolerance));
}
