import { Graph } from "../graph/graph";
import { Node, normAxis, numel, sameShape, Shape, Tensor } from "../graph/tensor";

/**
 * One rule per differentiable op: given the node and the gradients of its outputs
 * (undefined where an output does not reach the loss), return the gradient of each
 * input (undefined where none flows: constants, shapes, indices).
 */
export type GradientRule = (g: Graph, node: Node, dy: ReadonlyArray<Tensor | undefined>) => Array<Tensor | undefined>;

/** Sums a broadcast gradient back down to the operand's shape. */
export function sumTo(g: Graph, grad: Tensor, shape: Shape): Tensor {
  if (sameShape(grad.shape, shape)) return grad;
  const lead = grad.shape.length - shape.length;
  const axes = grad.shape.map((d, i) => i).filter((i) => i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1));
  return g.reshape(axes.length ? g.reduceSum(grad, axes, true) : grad, shape);
}

/** Swaps the last two axes. */
function transposeLast(g: Graph, x: Tensor): Tensor {
  const r = x.shape.length;
  return g.transpose(x, [...Array(r - 2).keys(), r - 1, r - 2]);
}

function zerosLike(g: Graph, t: Tensor): Tensor {
  return g.expand(g.constant(0, [], t.dtype), t.shape);
}

function reduceAxes(g: Graph, node: Node): number[] {
  return g.constantInts(node.inputs[1]).map((a) => normAxis(node.op, a, node.inputs[0].shape.length));
}

/** A reduced gradient spread back over the reduced axes. */
function unreduce(g: Graph, node: Node, dy: Tensor): Tensor {
  const x = node.inputs[0];
  const axes = reduceAxes(g, node);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return g.expand(g.reshape(dy, kept), x.shape);
}

export const gradientRules: Record<string, GradientRule> = {
  Identity: (g, n, [dy]) => [dy],
  Add: (g, { inputs: [a, b] }, [dy]) => [sumTo(g, dy!, a.shape), sumTo(g, dy!, b.shape)],
  Sum: (g, { inputs }, [dy]) => inputs.map((x) => sumTo(g, dy!, x.shape)),
  Sub: (g, { inputs: [a, b] }, [dy]) => [sumTo(g, dy!, a.shape), sumTo(g, g.neg(dy!), b.shape)],
  Mul: (g, { inputs: [a, b] }, [dy]) => [sumTo(g, g.mul(dy!, b), a.shape), sumTo(g, g.mul(dy!, a), b.shape)],
  Div: (g, { inputs: [a, b], outputs: [y] }, [dy]) => [
    sumTo(g, g.div(dy!, b), a.shape),
    sumTo(g, g.neg(g.div(g.mul(dy!, y), b)), b.shape),
  ],
  // Only the base is differentiated: exponents are constants in our graphs.
  Pow: (g, { inputs: [x, p] }, [dy]) => [
    sumTo(g, g.mul(dy!, g.mul(p, g.pow(x, g.sub(p, g.scalar(1, p.dtype))))), x.shape),
    undefined,
  ],
  Max: (g, { inputs: [a, b] }, [dy]) => {
    const aWins = g.cast(g.greaterOrEqual(a, b), dy!.dtype);
    const bWins = g.sub(g.constant(1, [], dy!.dtype), aWins);
    return [sumTo(g, g.mul(dy!, aWins), a.shape), sumTo(g, g.mul(dy!, bWins), b.shape)];
  },
  Neg: (g, n, [dy]) => [g.neg(dy!)],
  Exp: (g, { outputs: [y] }, [dy]) => [g.mul(dy!, y)],
  Log: (g, { inputs: [x] }, [dy]) => [g.div(dy!, x)],
  Sqrt: (g, { outputs: [y] }, [dy]) => [g.div(g.mul(dy!, g.scalar(0.5, y.dtype)), y)],
  Erf: (g, { inputs: [x] }, [dy]) => [g.mul(dy!, g.mul(g.exp(g.neg(g.mul(x, x))), g.constant(2 / Math.sqrt(Math.PI), [], x.dtype)))],
  Cast: (g, { inputs: [x] }, [dy]) => [g.cast(dy!, x.dtype)],
  // d/dx x·Φ(x) = Φ(x) + x·φ(x) = ½(1 + erf(u) + (2/√π)·u·exp(−u²)) with u = x/√2. The factor
  // 2/√π rides in the exponent and one Sum adds the three terms: 9 passes over x, not 11
  // (this rule's ops were 6% of the vit_tiny step).
  Gelu: (g, { inputs: [x] }, [dy]) => {
    const u = g.mul(x, g.scalar(Math.SQRT1_2, x.dtype));
    const scaledPdf = g.exp(g.sub(g.scalar(Math.log(2 / Math.sqrt(Math.PI)), x.dtype), g.mul(u, u)));
    const twiceSlope = g.sum([g.erf(u), g.mul(u, scaledPdf), g.scalar(1, x.dtype)]);
    return [g.mul(g.mul(dy!, twiceSlope), g.scalar(0.5, x.dtype))];
  },

  MatMul: (g, { inputs: [a, b] }, [dy]) => {
    const dA = sumTo(g, g.matmul(dy!, transposeLast(g, b)), a.shape);
    // A batch of rows times one matrix: fold the batch into the rows, one GEMM.
    const dB =
      b.shape.length === 2
        ? g.gemm(g.reshape(a, [numel(a.shape) / a.shape.at(-1)!, a.shape.at(-1)!]), g.reshape(dy!, [numel(dy!.shape) / b.shape[1], b.shape[1]]), undefined, { transA: true })
        : sumTo(g, g.matmul(transposeLast(g, a), dy!), b.shape);
    return [dA, dB];
  },
  Gemm: (g, { inputs: [a, b, c], attributes }, [dy]) => {
    const tA = attributes.transA === 1;
    const tB = attributes.transB === 1;
    const dA = tA ? g.gemm(b, dy!, undefined, { transA: tB, transB: true }) : g.gemm(dy!, b, undefined, { transB: !tB });
    const dB = tB ? g.gemm(dy!, a, undefined, { transA: true, transB: tA }) : g.gemm(a, dy!, undefined, { transA: !tA });
    return [dA, dB, c && sumTo(g, dy!, c.shape)];
  },

  Reshape: (g, { inputs: [x] }, [dy]) => [g.reshape(dy!, x.shape), undefined],
  Transpose: (g, { attributes }, [dy]) => {
    const perm = attributes.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dy!, inverse)];
  },
  Expand: (g, { inputs: [x] }, [dy]) => [sumTo(g, dy!, x.shape), undefined],
  Concat: (g, { inputs, attributes }, [dy]) => g.split(dy!, inputs.map((t) => t.shape[attributes.axis as number]), attributes.axis as number),
  Split: (g, { outputs, attributes }, dys) => [g.concat(outputs.map((o, i) => dys[i] ?? zerosLike(g, o)), attributes.axis as number), undefined],
  Slice: (g, { inputs: [x, starts, ends, axes] }, [dy]) => {
    const [axis] = g.constantInts(axes);
    const [start] = g.constantInts(starts);
    const [end] = g.constantInts(ends);
    const pads = new Array<number>(2 * x.shape.length).fill(0);
    pads[axis] = start;
    pads[axis + x.shape.length] = x.shape[axis] - end;
    return [g.pad(dy!, pads)];
  },
  Pad: (g, { inputs: [x, padsTensor] }, [dy]) => {
    const pads = g.constantInts(padsTensor);
    let grad = dy!;
    x.shape.forEach((d, axis) => {
      if (pads[axis] !== 0 || grad.shape[axis] !== d) grad = g.slice(grad, axis, pads[axis], pads[axis] + d);
    });
    return [grad];
  },

  ReduceSum: (g, n, [dy]) => [unreduce(g, n, dy!), undefined],
  ReduceMean: (g, n, [dy]) => {
    const count = reduceAxes(g, n).reduce((c, a) => c * n.inputs[0].shape[a], 1);
    return [g.div(unreduce(g, n, dy!), g.scalar(count, dy!.dtype)), undefined];
  },

  Softmax: (g, { outputs: [y], attributes }, [dy]) => {
    const dot = g.reduceSum(g.mul(dy!, y), [attributes.axis as number], true);
    return [g.mul(y, g.sub(dy!, dot))];
  },
  LogSoftmax: (g, { outputs: [y], attributes }, [dy]) => [
    g.sub(dy!, g.mul(g.exp(y), g.reduceSum(dy!, [attributes.axis as number], true))),
  ],

  // y = x̂·γ + β with x̂ = (x − μ)/σ over the last axis:
  // dx = (1/σ)·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·γ.
  LayerNormalization: (g, { inputs: [x, gamma], outputs: [, stashedMean, stashedInvStd] }, [dy]) => {
    const last = x.shape.length - 1;
    const [mean, invStd] = [g.cast(stashedMean, x.dtype), g.cast(stashedInvStd, x.dtype)];
    const xHat = g.mul(g.sub(x, mean), invStd);
    const dxHat = g.mul(dy!, gamma);
    const centered = g.sub(dxHat, g.reduceMean(dxHat, [last]));
    const dx = g.mul(invStd, g.sub(centered, g.mul(xHat, g.reduceMean(g.mul(dxHat, xHat), [last]))));
    return [dx, sumTo(g, g.mul(dy!, xHat), gamma.shape), sumTo(g, dy!, gamma.shape)];
  },
};
