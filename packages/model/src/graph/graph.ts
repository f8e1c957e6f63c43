import {
  AttributeValue,
  broadcastShapes,
  DType,
  GraphShapeError,
  Node,
  normAxis,
  numel,
  sameShape,
  Shape,
  shapeString,
  Tensor,
} from "./tensor";

export interface Initializer {
  readonly tensor: Tensor;
  readonly data: Float32Array | Float64Array | BigInt64Array;
}

/**
 * A typed builder for ONNX graphs: every op method checks its operands' shapes and
 * returns the output tensor with its static shape. Nodes are kept in creation order,
 * which is a topological order. Scopes prefix node names so that ONNX Runtime's
 * profiles and errors read like the model ("blocks.3.attn/MatMul_118").
 */
export class Graph {
  readonly inputs: Tensor[] = [];
  readonly outputs: Tensor[] = [];
  readonly nodes: Node[] = [];
  readonly initializers: Initializer[] = [];
  /** The node that produced each tensor (absent for inputs and initializers). */
  readonly producer = new Map<Tensor, Node>();
  private counter = 0;
  private readonly scopes: string[] = [];

  constructor(readonly name: string, readonly dtype: DType = "float32") {}

  scope<T>(name: string, body: () => T): T {
    this.scopes.push(name);
    try {
      return body();
    } finally {
      this.scopes.pop();
    }
  }

  private fresh(base: string): string {
    const prefix = this.scopes.length ? `${this.scopes.join(".")}/` : "";
    return `${prefix}${base}_${this.counter++}`;
  }

  input(name: string, shape: Shape, dtype: DType = this.dtype): Tensor {
    const t: Tensor = { name, shape: [...shape], dtype };
    this.inputs.push(t);
    return t;
  }

  /** Marks a tensor as a graph output under the given name (an Identity node renames it). */
  output(t: Tensor, name: string): Tensor {
    const out = this.emit("Identity", [t], [t.shape], {}, t.dtype, name)[0];
    this.outputs.push(out);
    return out;
  }

  constant(values: ArrayLike<number> | number, shape: Shape = [], dtype: DType = this.dtype): Tensor {
    const count = numel(shape);
    const flat = typeof values === "number" ? new Array<number>(count).fill(values) : Array.from(values);
    if (flat.length !== count) throw new GraphShapeError("constant", `${flat.length} values for shape ${shapeString(shape)}`);
    const tensor: Tensor = { name: this.fresh("const"), shape: [...shape], dtype };
    const data =
      dtype === "int64" ? BigInt64Array.from(flat, (v) => BigInt(v))
      : dtype === "float64" ? Float64Array.from(flat)
      : Float32Array.from(flat);
    this.initializers.push({ tensor, data });
    return tensor;
  }

  /** The values of an int64 constant (Slice bounds, Pad widths…), for gradient rules. */
  constantInts(t: Tensor): number[] {
    const init = this.initializers.find((i) => i.tensor === t);
    if (!init || !(init.data instanceof BigInt64Array)) throw new GraphShapeError("constantInts", `${t.name} is not an int64 constant`);
    return Array.from(init.data, Number);
  }

  scalar(value: number, dtype: DType = this.dtype): Tensor {
    return this.constant(value, [], dtype);
  }

  private ints(values: readonly number[]): Tensor {
    return this.constant(values, [values.length], "int64");
  }

  /** Appends a node; `outputShapes` were computed by the calling op method. */
  emit(
    op: string,
    inputs: readonly Tensor[],
    outputShapes: readonly Shape[],
    attributes: Record<string, AttributeValue> = {},
    dtype: DType | readonly DType[] = inputs[0]?.dtype ?? this.dtype,
    outputName?: string,
  ): Tensor[] {
    const name = this.fresh(op);
    const outputs = outputShapes.map((shape, i): Tensor => ({
      name: outputName ?? (outputShapes.length === 1 ? name : `${name}:${i}`),
      shape: [...shape],
      dtype: typeof dtype === "string" ? dtype : dtype[i],
    }));
    const node: Node = { op, name, inputs, outputs, attributes };
    this.nodes.push(node);
    for (const out of outputs) this.producer.set(out, node);
    return outputs;
  }

  private unary(op: string, x: Tensor): Tensor {
    return this.emit(op, [x], [x.shape])[0];
  }

  private binary(op: string, a: Tensor, b: Tensor): Tensor {
    if (a.dtype !== b.dtype) throw new GraphShapeError(op, `dtype ${a.dtype} vs ${b.dtype}`);
    return this.emit(op, [a, b], [broadcastShapes(op, a.shape, b.shape)])[0];
  }

  // Elementwise arithmetic, numpy broadcasting.
  add(a: Tensor, b: Tensor): Tensor { return this.binary("Add", a, b); }
  sub(a: Tensor, b: Tensor): Tensor { return this.binary("Sub", a, b); }
  mul(a: Tensor, b: Tensor): Tensor { return this.binary("Mul", a, b); }
  div(a: Tensor, b: Tensor): Tensor { return this.binary("Div", a, b); }
  max(a: Tensor, b: Tensor): Tensor { return this.binary("Max", a, b); }
  greaterOrEqual(a: Tensor, b: Tensor): Tensor {
    return this.emit("GreaterOrEqual", [a, b], [broadcastShapes("GreaterOrEqual", a.shape, b.shape)], {}, "bool")[0];
  }
  pow(x: Tensor, exponent: number | Tensor): Tensor {
    return this.binary("Pow", x, typeof exponent === "number" ? this.scalar(exponent, x.dtype) : exponent);
  }
  /** Elementwise sum of several tensors in one op (ONNX Sum), numpy broadcasting. */
  sum(parts: readonly Tensor[]): Tensor {
    if (parts.some((p) => p.dtype !== parts[0].dtype)) throw new GraphShapeError("Sum", `dtypes ${parts.map((p) => p.dtype).join(" ")}`);
    return this.emit("Sum", parts, [parts.map((p) => p.shape).reduce((a, b) => broadcastShapes("Sum", a, b))])[0];
  }
  neg(x: Tensor): Tensor { return this.unary("Neg", x); }
  exp(x: Tensor): Tensor { return this.unary("Exp", x); }
  log(x: Tensor): Tensor { return this.unary("Log", x); }
  sqrt(x: Tensor): Tensor { return this.unary("Sqrt", x); }
  identity(x: Tensor): Tensor { return this.unary("Identity", x); }

  /** ONNX Runtime's CPU provider has Erf in float32 only, so float64 graphs cast around it. */
  erf(x: Tensor): Tensor {
    if (x.dtype === "float32") return this.unary("Erf", x);
    return this.cast(this.unary("Erf", this.cast(x, "float32")), x.dtype);
  }

  cast(x: Tensor, to: DType): Tensor {
    if (x.dtype === to) return x;
    const code = { float32: 1, int64: 7, bool: 9, float64: 11 }[to];
    return this.emit("Cast", [x], [x.shape], { to: code }, to)[0];
  }

  /** Matrix product with numpy batch broadcasting (both operands at least 2-D). */
  matmul(a: Tensor, b: Tensor): Tensor {
    if (a.shape.length < 2 || b.shape.length < 2) throw new GraphShapeError("MatMul", "operands must be at least 2-D");
    const [m, k] = a.shape.slice(-2);
    const [k2, n] = b.shape.slice(-2);
    if (k !== k2) throw new GraphShapeError("MatMul", `inner dims ${shapeString(a.shape)} x ${shapeString(b.shape)}`);
    const batch = broadcastShapes("MatMul", a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.emit("MatMul", [a, b], [[...batch, m, n]])[0];
  }

  /** y = op(a) · op(b) (+ c): the 2-D product behind every Linear layer. */
  gemm(a: Tensor, b: Tensor, c?: Tensor, { transA = false, transB = false } = {}): Tensor {
    if (a.shape.length !== 2 || b.shape.length !== 2) throw new GraphShapeError("Gemm", "operands must be 2-D");
    const [m, k] = transA ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = transB ? [b.shape[1], b.shape[0]] : b.shape;
    if (k !== k2) throw new GraphShapeError("Gemm", `inner dims ${shapeString(a.shape)} x ${shapeString(b.shape)}`);
    if (c) broadcastShapes("Gemm", [m, n], c.shape);
    return this.emit("Gemm", c ? [a, b, c] : [a, b], [[m, n]], { transA: transA ? 1 : 0, transB: transB ? 1 : 0 })[0];
  }

  /** A PyTorch Linear layer over the last axis: x · Wᵀ + b, W stored as [out, in]. */
  linear(x: Tensor, weight: Tensor, bias?: Tensor): Tensor {
    const lead = x.shape.slice(0, -1);
    const flat = lead.length === 1 ? x : this.reshape(x, [numel(lead), x.shape[x.shape.length - 1]]);
    const y = this.gemm(flat, weight, bias, { transB: true });
    return lead.length === 1 ? y : this.reshape(y, [...lead, weight.shape[0]]);
  }

  reshape(x: Tensor, shape: Shape): Tensor {
    if (numel(shape) !== numel(x.shape) || shape.some((d) => d < 0)) {
      throw new GraphShapeError("Reshape", `${shapeString(x.shape)} to ${shapeString(shape)}`);
    }
    if (sameShape(x.shape, shape)) return x;
    return this.emit("Reshape", [x, this.ints(shape)], [shape])[0];
  }

  transpose(x: Tensor, perm: readonly number[]): Tensor {
    if (perm.length !== x.shape.length || [...perm].sort().some((p, i) => p !== i)) {
      throw new GraphShapeError("Transpose", `perm ${perm} for rank ${x.shape.length}`);
    }
    return this.emit("Transpose", [x], [perm.map((p) => x.shape[p])], { perm: [...perm] })[0];
  }

  expand(x: Tensor, shape: Shape): Tensor {
    const out = broadcastShapes("Expand", x.shape, shape);
    if (!sameShape(out, shape)) throw new GraphShapeError("Expand", `${shapeString(x.shape)} to ${shapeString(shape)}`);
    return this.emit("Expand", [x, this.ints(shape)], [shape])[0];
  }

  concat(parts: readonly Tensor[], axis: number): Tensor {
    const rank = parts[0].shape.length;
    const ax = normAxis("Concat", axis, rank);
    const shape = [...parts[0].shape];
    shape[ax] = 0;
    for (const p of parts) {
      if (p.shape.length !== rank || p.shape.some((d, i) => i !== ax && d !== parts[0].shape[i])) {
        throw new GraphShapeError("Concat", `parts ${parts.map((q) => shapeString(q.shape)).join(" ")} on axis ${axis}`);
      }
      shape[ax] += p.shape[ax];
    }
    return this.emit("Concat", parts, [shape], { axis: ax })[0];
  }

  split(x: Tensor, sizes: readonly number[], axis: number): Tensor[] {
    const ax = normAxis("Split", axis, x.shape.length);
    if (sizes.reduce((a, b) => a + b, 0) !== x.shape[ax]) {
      throw new GraphShapeError("Split", `sizes ${sizes} do not add up to ${x.shape[ax]}`);
    }
    const shapes = sizes.map((s) => x.shape.map((d, i) => (i === ax ? s : d)));
    return this.emit("Split", [x, this.ints(sizes)], shapes, { axis: ax });
  }

  /** x[start:end] along one axis (step 1). */
  slice(x: Tensor, axis: number, start: number, end: number): Tensor {
    const ax = normAxis("Slice", axis, x.shape.length);
    if (start < 0 || end > x.shape[ax] || start >= end) {
      throw new GraphShapeError("Slice", `[${start}:${end}] on axis ${ax} of ${shapeString(x.shape)}`);
    }
    const shape = x.shape.map((d, i) => (i === ax ? end - start : d));
    return this.emit("Slice", [x, this.ints([start]), this.ints([end]), this.ints([ax])], [shape])[0];
  }

  /** Zero padding: `pads` lists [begin_0 … begin_r, end_0 … end_r] as ONNX does. */
  pad(x: Tensor, pads: readonly number[]): Tensor {
    const r = x.shape.length;
    if (pads.length !== 2 * r) throw new GraphShapeError("Pad", `${pads.length} pads for rank ${r}`);
    return this.emit("Pad", [x, this.ints(pads)], [x.shape.map((d, i) => d + pads[i] + pads[i + r])])[0];
  }

  private reduce(op: string, x: Tensor, axes: readonly number[], keepdims: boolean): Tensor {
    const ax = axes.map((a) => normAxis(op, a, x.shape.length));
    const shape = x.shape.flatMap((d, i) => (ax.includes(i) ? (keepdims ? [1] : []) : [d]));
    return this.emit(op, [x, this.ints(ax)], [shape], { keepdims: keepdims ? 1 : 0 })[0];
  }
  reduceSum(x: Tensor, axes: readonly number[], keepdims = true): Tensor { return this.reduce("ReduceSum", x, axes, keepdims); }
  reduceMean(x: Tensor, axes: readonly number[], keepdims = true): Tensor { return this.reduce("ReduceMean", x, axes, keepdims); }

  softmax(x: Tensor, axis = -1): Tensor {
    return this.emit("Softmax", [x], [x.shape], { axis: normAxis("Softmax", axis, x.shape.length) })[0];
  }
  logSoftmax(x: Tensor, axis = -1): Tensor {
    return this.emit("LogSoftmax", [x], [x.shape], { axis: normAxis("LogSoftmax", axis, x.shape.length) })[0];
  }

  /**
   * LayerNorm over the last axis. The mean and 1/σ outputs are kept for the gradient
   * rule, which would otherwise recompute them. ONNX Runtime computes those statistics
   * in float32 (stash_type 1) for every input type; it has no float64 stash kernel.
   */
  layerNorm(x: Tensor, scale: Tensor, bias: Tensor, epsilon: number): Tensor {
    const d = x.shape[x.shape.length - 1];
    if (!sameShape(scale.shape, [d]) || !sameShape(bias.shape, [d])) {
      throw new GraphShapeError("LayerNormalization", `scale/bias must be [${d}]`);
    }
    const stats = [...x.shape.slice(0, -1), 1];
    const attributes = { axis: -1, epsilon: { float: epsilon }, stash_type: 1 };
    return this.emit("LayerNormalization", [x, scale, bias], [x.shape, stats, stats], attributes, [x.dtype, "float32", "float32"])[0];
  }

  /**
   * Exact (erf) GELU, as torch.nn.GELU(): x · ½(1 + erf(x/√2)), one opset-20 Gelu node
   * (one pass over the activations instead of five). ONNX Runtime's CPU provider has it in
   * float32 only, so float64 graphs cast around it.
   */
  gelu(x: Tensor): Tensor {
    if (x.dtype === "float32") return this.unary("Gelu", x);
    return this.cast(this.unary("Gelu", this.cast(x, "float32")), x.dtype);
  }
}
