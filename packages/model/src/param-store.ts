/**
 * All parameters of a network in one flat Float32Array, with a named view per tensor.
 * One buffer lets the all-reduce, the optimizer and the teacher EMA run as single loops
 * over the whole model, and lets gradients and optimizer moments share the same layout.
 */
import type { TensorData } from "./safetensors";

export interface ParamSpec {
  /** The reference `state_dict` name, e.g. `backbone.blocks.0.attn.qkv.weight`. */
  name: string;
  shape: number[];
  /** False for parameters that never get gradients (`head.last_layer.weight_g` with `norm_last_layer`). */
  trainable: boolean;
  /** Whether the parameter is in the weight-decay group (see `decayOf`). */
  decay: boolean;
}

/**
 * The reference's `get_params_groups`: biases and 1-D tensors (norm weights) get no weight
 * decay, everything else does, including `cls_token` [1,1,d] and `pos_embed` [1,n,d].
 */
export function decayOf(name: string, shape: readonly number[]): boolean {
  return !(name.endsWith(".bias") || shape.length === 1);
}

/** A tensor that `loadFrom` cannot use; names the tensor and what is wrong. */
export class ParamLoadError extends Error {
  constructor(
    readonly tensorName: string,
    readonly problem: string,
  ) {
    super(`parameter "${tensorName}": ${problem}`);
    this.name = "ParamLoadError";
  }
}

export interface NamedTensor {
  shape: readonly number[];
  data: TensorData;
}

function elementCount(shape: readonly number[]): number {
  let count = 1;
  for (const dim of shape) count *= dim;
  return count;
}

/** Elements of a store with these specs (to allocate its buffer elsewhere). */
export function paramCount(specs: readonly ParamSpec[]): number {
  return specs.reduce((total, spec) => total + elementCount(spec.shape), 0);
}

export class ParamStore {
  /** Every parameter, back to back in spec order. */
  readonly data: Float32Array;
  readonly specs: readonly ParamSpec[];
  private readonly offsets: Int32Array;
  private readonly views = new Map<string, Float32Array>();
  private readonly indices = new Map<string, number>();

  constructor(specs: readonly ParamSpec[], data?: Float32Array) {
    this.specs = specs.map((s) => Object.freeze({ ...s, shape: [...s.shape] }));
    this.offsets = new Int32Array(specs.length + 1);
    let total = 0;
    this.specs.forEach((spec, index) => {
      if (this.indices.has(spec.name)) throw new Error(`parameter "${spec.name}" is declared twice`);
      if (!spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new Error(`parameter "${spec.name}": shape [${spec.shape.join(", ")}] is not a list of sizes`);
      }
      this.indices.set(spec.name, index);
      this.offsets[index] = total;
      total += elementCount(spec.shape);
    });
    this.offsets[specs.length] = total;
    if (data !== undefined && data.length !== total) {
      throw new Error(`parameter buffer has ${data.length} elements, the specs need ${total}`);
    }
    this.data = data ?? new Float32Array(total);
    this.specs.forEach((spec, index) => {
      this.views.set(spec.name, this.data.subarray(this.offsets[index], this.offsets[index + 1]));
    });
  }

  /** Total number of elements. */
  get size(): number {
    return this.data.length;
  }

  has(name: string): boolean {
    return this.indices.has(name);
  }

  indexOf(name: string): number {
    const index = this.indices.get(name);
    if (index === undefined) throw new Error(`no parameter named "${name}"`);
    return index;
  }

  offsetOf(name: string): number {
    return this.offsets[this.indexOf(name)];
  }

  /** Element range [begin, end) of the index-th tensor in the flat buffer. */
  rangeAt(index: number): [number, number] {
    return [this.offsets[index], this.offsets[index + 1]];
  }

  /** A live view into `data` (no copy). */
  view(name: string): Float32Array {
    const view = this.views.get(name);
    if (view === undefined) throw new Error(`no parameter named "${name}"`);
    return view;
  }

  /** The same view, but into another buffer of this layout (gradients, optimizer moments, the teacher). */
  viewOf(buffer: Float32Array, name: string): Float32Array {
    this.checkLayout(buffer, "buffer");
    const index = this.indexOf(name);
    return buffer.subarray(this.offsets[index], this.offsets[index + 1]);
  }

  /** Throws unless `buffer` has this store's element count. */
  checkLayout(buffer: ArrayLike<number>, what: string): void {
    if (buffer.length !== this.size) {
      throw new Error(`${what} has ${buffer.length} elements, the parameter layout has ${this.size}`);
    }
  }

  /** A new store with the same specs and a copy of the values (the teacher starts as a copy of the student). */
  clone(): ParamStore {
    return new ParamStore(this.specs, this.data.slice());
  }

  /**
   * Copies `tensors[prefix + name]` into every parameter. Every parameter must be present
   * with its exact shape; float64 tensors are rounded to float32. Nothing is written unless
   * all tensors check out.
   */
  loadFrom(tensors: ReadonlyMap<string, NamedTensor>, prefix = ""): void {
    const sources: ArrayLike<number>[] = [];
    for (const spec of this.specs) {
      const key = prefix + spec.name;
      const tensor = tensors.get(key);
      if (tensor === undefined) throw new ParamLoadError(key, "missing");
      const sameShape =
        tensor.shape.length === spec.shape.length && tensor.shape.every((d, i) => d === spec.shape[i]);
      if (!sameShape) {
        throw new ParamLoadError(key, `shape [${tensor.shape.join(", ")}] where [${spec.shape.join(", ")}] is expected`);
      }
      if (!(tensor.data instanceof Float32Array || tensor.data instanceof Float64Array)) {
        throw new ParamLoadError(key, "is an integer tensor, a float tensor is expected");
      }
      if (tensor.data.length !== elementCount(spec.shape)) {
        throw new ParamLoadError(key, `has ${tensor.data.length} elements for shape [${spec.shape.join(", ")}]`);
      }
      sources.push(tensor.data);
    }
    this.specs.forEach((spec, index) => this.view(spec.name).set(sources[index]));
  }

  /** Named views (no copies) under `prefix + name`, in spec order, ready for `writeSafetensors`. */
  toTensorMap(prefix = ""): Map<string, { shape: number[]; data: Float32Array }> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const spec of this.specs) out.set(prefix + spec.name, { shape: [...spec.shape], data: this.view(spec.name) });
    return out;
  }
}
