/**
 * The two graphs a worker runs each step:
 * - teacher forward: teacher weights + global crops → teacher logits;
 * - student step: student weights + all crops + teacher logits + center + τ_t (+ drop-path
 *   masks) → loss, the gradient of every trainable parameter, and the column sums of the
 *   teacher logits (for the center update).
 * Inputs are named by the reference parameter names, gradients `grad.<name>`.
 */
import { gradients } from "../autodiff/backward";
import { Graph } from "../graph/graph";
import { DType, Tensor } from "../graph/tensor";
import { isLastLayer } from "../optimizer";
import { ParamSpec } from "../param-store";
import { DinoModelConfig, StepShape } from "./config";
import { dinoLoss } from "./loss";
import { multiCropForward, Params } from "./networks";
import { dinoParamSpecs } from "./param-specs";

export const INPUT = {
  globalCrops: "crops.global",
  localCrops: "crops.local",
  teacherOutput: "teacher_output",
  center: "center",
  teacherTemp: "teacher_temp",
  globalDropPath: "drop_path.global",
  localDropPath: "drop_path.local",
} as const;

export const OUTPUT = {
  loss: "loss",
  teacherOutput: "teacher_output",
  teacherOutputSum: "teacher_output_sum",
  studentOutput: "student_output",
  gradPrefix: "grad.",
} as const;

export interface StepGraphOptions {
  studentTemp: number;
  /** Also output the student logits (for reference checks; costs a copy of [views·B, K]). */
  exposeStudentOutput?: boolean;
  /**
   * Leave out the last layer's gradients: while it is frozen (epoch < freeze_last_layer) the
   * reference discards them, so the graph need not compute them.
   */
  lastLayerFrozen?: boolean;
  dtype?: DType;
}

function paramInputs(g: Graph, specs: readonly ParamSpec[]): Params {
  const inputs = new Map(specs.map((s) => [s.name, g.input(s.name, s.shape)]));
  return (name) => {
    const t = inputs.get(name);
    if (!t) throw new Error(`the model has no parameter ${name}`);
    return t;
  };
}

function cropInput(g: Graph, name: string, count: number, side: number): Tensor {
  return g.input(name, [count, 3, side, side]);
}

export function buildTeacherGraph(c: DinoModelConfig, shape: StepShape, dtype: DType = "float32"): Graph {
  const g = new Graph("dino_teacher_forward", dtype);
  const p = paramInputs(g, dinoParamSpecs(c));
  const globals = cropInput(g, INPUT.globalCrops, shape.globalCrops * shape.batchSize, c.imgSize);
  g.output(multiCropForward(g, p, [{ images: globals }], c), OUTPUT.teacherOutput);
  return g;
}

export function buildStudentStepGraph(c: DinoModelConfig, shape: StepShape, options: StepGraphOptions): Graph {
  const g = new Graph("dino_student_step", options.dtype ?? "float32");
  const specs = dinoParamSpecs(c);
  const p = paramInputs(g, specs);
  const b = shape.batchSize;
  const globalRows = shape.globalCrops * b;
  const localRows = shape.localCrops * b;
  const withDropPath = c.dropPathRate > 0;

  const groups = [
    {
      images: cropInput(g, INPUT.globalCrops, globalRows, c.imgSize),
      masks: withDropPath ? g.input(INPUT.globalDropPath, [c.depth, 2, globalRows]) : undefined,
    },
  ];
  if (localRows > 0) {
    groups.push({
      images: cropInput(g, INPUT.localCrops, localRows, c.localCropSize),
      masks: withDropPath ? g.input(INPUT.localDropPath, [c.depth, 2, localRows]) : undefined,
    });
  }
  const teacherOutput = g.input(INPUT.teacherOutput, [globalRows, c.outDim]);
  const center = g.input(INPUT.center, [1, c.outDim]);
  const teacherTemp = g.input(INPUT.teacherTemp, [1]);

  const studentOutput = multiCropForward(g, p, groups, c);
  const loss = g.scope("loss", () => dinoLoss(g, studentOutput, teacherOutput, center, teacherTemp, options.studentTemp));
  g.output(loss, OUTPUT.loss);
  g.output(g.reduceSum(teacherOutput, [0], true), OUTPUT.teacherOutputSum);
  if (options.exposeStudentOutput) g.output(studentOutput, OUTPUT.studentOutput);

  const trainable = specs.filter((s) => s.trainable && !(options.lastLayerFrozen && isLastLayer(s.name)));
  const grads = gradients(g, loss, trainable.map((s) => p(s.name)));
  trainable.forEach((s, i) => g.output(grads[i], OUTPUT.gradPrefix + s.name));
  return g;
}
