import * as ort from "onnxruntime-node";
import { Graph } from "../graph/graph";
import { toOnnxBytes } from "../graph/onnx-export";
import { Tensor } from "../graph/tensor";
import { Device, sessionOptions } from "./device";

type Floats = Float32Array | Float64Array;

export interface RunOptions {
  /** Preallocated buffers that ONNX Runtime writes outputs into, by output name. */
  into?: Record<string, Floats>;
}

/** A graph loaded into an ONNX Runtime session, fed and read by tensor name. */
export class CompiledGraph {
  private constructor(
    readonly graph: Graph,
    private readonly session: ort.InferenceSession,
  ) {}

  static async create(graph: Graph, device: Device = { kind: "cpu" }, threads?: number, { alreadyFused = false } = {}): Promise<CompiledGraph> {
    const session = await ort.InferenceSession.create(toOnnxBytes(graph), sessionOptions(device, { threads, alreadyFused }));
    return new CompiledGraph(graph, session);
  }

  async run(feeds: Record<string, Floats | BigInt64Array>, { into = {} }: RunOptions = {}): Promise<Record<string, Floats>> {
    const inputs: Record<string, ort.Tensor> = {};
    for (const t of this.graph.inputs) {
      const data = feeds[t.name];
      if (!data) throw new Error(`${this.graph.name}: missing input ${t.name}`);
      inputs[t.name] = new ort.Tensor(ortType(t), data, [...t.shape]);
    }
    const fetches: Record<string, ort.Tensor | null> = {};
    for (const t of this.graph.outputs) {
      const buffer = into[t.name];
      fetches[t.name] = buffer ? new ort.Tensor(ortType(t), buffer, [...t.shape]) : null;
    }
    const results = await this.session.run(inputs, fetches);
    const out: Record<string, Floats> = {};
    for (const t of this.graph.outputs) out[t.name] = results[t.name].data as Floats;
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function ortType(t: Tensor): "float32" | "float64" | "int64" | "bool" {
  return t.dtype;
}
