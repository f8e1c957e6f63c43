import { onnx } from "onnx-proto";
import { Graph, Initializer } from "./graph";
import { AttributeValue, Node, ONNX_DTYPE, Tensor } from "./tensor";

/** Opset 20: Reduce ops take their axes as an input (18+), LayerNormalization (17+) and Gelu (20+) exist. */
export const OPSET = 20;

function attribute(name: string, value: AttributeValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === "string") return { name, type: T.STRING, s: Buffer.from(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === "object") return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.INT, i: value };
}

function valueInfo(t: Tensor): onnx.IValueInfoProto {
  return {
    name: t.name,
    type: { tensorType: { elemType: ONNX_DTYPE[t.dtype], shape: { dim: t.shape.map((d) => ({ dimValue: d })) } } },
  };
}

/**
 * The nodes and constants the outputs depend on. Gradient rules return the gradient of
 * every input (of a patch-embedding GEMM with respect to the images, say) and the reverse
 * walk drops those no parameter needs; they are dropped here, not computed.
 */
function liveParts(graph: Graph): { nodes: Node[]; initializers: Initializer[] } {
  const needed = new Set<Tensor>(graph.outputs);
  const live = new Set<Node>();
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (!node.outputs.some((t) => needed.has(t))) continue;
    live.add(node);
    node.inputs.forEach((t) => needed.add(t));
  }
  return {
    nodes: graph.nodes.filter((n) => live.has(n)),
    initializers: graph.initializers.filter((i) => needed.has(i.tensor)),
  };
}

/** Serialises a graph to ONNX ModelProto bytes, ready for InferenceSession.create(). */
export function toOnnxBytes(graph: Graph): Uint8Array {
  const { nodes, initializers } = liveParts(graph);
  const model = onnx.ModelProto.create({
    irVersion: 9,
    producerName: "dino-coord",
    opsetImport: [{ domain: "", version: OPSET }],
    graph: {
      name: graph.name,
      node: nodes.map((n) => ({
        name: n.name,
        opType: n.op,
        input: n.inputs.map((t) => t.name),
        output: n.outputs.map((t) => t.name),
        attribute: Object.entries(n.attributes).map(([k, v]) => attribute(k, v)),
      })),
      initializer: initializers.map(({ tensor, data }) => ({
        name: tensor.name,
        dims: [...tensor.shape],
        dataType: ONNX_DTYPE[tensor.dtype],
        rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      })),
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
