/**
 * The tensors of each safetensors file of a checkpoint, under names a PyTorch user
 * recognises: the networks under their reference state_dict names
 * (`backbone.blocks.0.attn.qkv.weight`), the optimizer as AdamW's per-parameter state
 * (`exp_avg.<name>`, `exp_avg_sq.<name>`, `step.<name>`), the loss center as `center`.
 *
 * The optimizer file holds every parameter, the frozen ones too (their moments stay zero
 * and their step counter 0), so its layout is the ParamStore's and a load is a copy.
 */
import { ParamStore, type AdamWState, type ParamSpec, type SafetensorsDtype, type SafetensorsTensor, type TensorToWrite } from "@dino-coord/model";
import { CENTER_FILE, OPTIMIZER_FILE, STUDENT_FILE, TEACHER_FILE } from "./layout";

export const EXP_AVG_PREFIX = "exp_avg.";
export const EXP_AVG_SQ_PREFIX = "exp_avg_sq.";
export const STEP_PREFIX = "step.";
export const CENTER_TENSOR = "center";

export function optimizerTensors(store: ParamStore, state: AdamWState): Map<string, TensorToWrite> {
  const tensors = new Map<string, TensorToWrite>();
  store.specs.forEach((spec, index) => {
    tensors.set(EXP_AVG_PREFIX + spec.name, { shape: spec.shape, data: store.viewOf(state.expAvg, spec.name) });
    tensors.set(EXP_AVG_SQ_PREFIX + spec.name, { shape: spec.shape, data: store.viewOf(state.expAvgSq, spec.name) });
    tensors.set(STEP_PREFIX + spec.name, { shape: [], data: BigInt64Array.of(BigInt(state.steps[index])) });
  });
  return tensors;
}

export function centerTensors(center: Float32Array): Map<string, TensorToWrite> {
  return new Map([[CENTER_TENSOR, { shape: [1, center.length], data: center }]]);
}

interface ExpectedTensor {
  dtypes: readonly SafetensorsDtype[];
  shape: readonly number[];
}

/** The exact tensor set each safetensors file of a checkpoint must hold. */
export function expectedTensors(file: string, specs: readonly ParamSpec[], centerDim: number): Map<string, ExpectedTensor> {
  const expected = new Map<string, ExpectedTensor>();
  if (file === STUDENT_FILE || file === TEACHER_FILE) {
    for (const spec of specs) expected.set(spec.name, { dtypes: ["F32"], shape: spec.shape });
  } else if (file === OPTIMIZER_FILE) {
    for (const spec of specs) {
      expected.set(EXP_AVG_PREFIX + spec.name, { dtypes: ["F32"], shape: spec.shape });
      expected.set(EXP_AVG_SQ_PREFIX + spec.name, { dtypes: ["F32"], shape: spec.shape });
      expected.set(STEP_PREFIX + spec.name, { dtypes: ["I64", "I32"], shape: [] });
    }
  } else if (file === CENTER_FILE) {
    expected.set(CENTER_TENSOR, { dtypes: ["F32"], shape: [1, centerDim] });
  } else {
    throw new Error(`${file} is not a tensor file of a checkpoint`);
  }
  return expected;
}

const shapeText = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/** Every way `tensors` differs from the expected set (missing, unexpected, wrong dtype or shape). */
export function tensorLayoutProblems(tensors: ReadonlyMap<string, SafetensorsTensor>, expected: ReadonlyMap<string, ExpectedTensor>): string[] {
  const problems: string[] = [];
  for (const [name, want] of expected) {
    const tensor = tensors.get(name);
    if (!tensor) {
      problems.push(`tensor "${name}" is missing`);
      continue;
    }
    if (!want.dtypes.includes(tensor.dtype)) problems.push(`tensor "${name}" is ${tensor.dtype}, expected ${want.dtypes.join(" or ")}`);
    const sameShape = tensor.shape.length === want.shape.length && tensor.shape.every((d, i) => d === want.shape[i]);
    if (!sameShape) problems.push(`tensor "${name}" has shape ${shapeText(tensor.shape)}, expected ${shapeText(want.shape)}`);
  }
  for (const name of tensors.keys()) if (!expected.has(name)) problems.push(`unexpected tensor "${name}"`);
  return problems;
}

/** A ParamStore filled from a checked network file. */
export function storeFromTensors(specs: readonly ParamSpec[], tensors: ReadonlyMap<string, SafetensorsTensor>): ParamStore {
  const store = new ParamStore(specs);
  store.loadFrom(tensors);
  return store;
}

/** AdamW state in the ParamStore layout from a checked optimizer file. */
export function optimizerStateFromTensors(store: ParamStore, tensors: ReadonlyMap<string, SafetensorsTensor>): AdamWState {
  const state: AdamWState = {
    expAvg: new Float32Array(store.size),
    expAvgSq: new Float32Array(store.size),
    steps: new Int32Array(store.specs.length),
  };
  store.specs.forEach((spec, index) => {
    store.viewOf(state.expAvg, spec.name).set(tensors.get(EXP_AVG_PREFIX + spec.name)!.data as Float32Array);
    store.viewOf(state.expAvgSq, spec.name).set(tensors.get(EXP_AVG_SQ_PREFIX + spec.name)!.data as Float32Array);
    state.steps[index] = Number(tensors.get(STEP_PREFIX + spec.name)!.data[0]);
  });
  return state;
}
