import { isLastLayer } from "../optimizer";
import { ParamStore } from "../param-store";
import { CompiledGraph } from "../runtime/compiled-graph";
import { Device } from "../runtime/device";
import { DinoModelConfig, StepShape } from "./config";
import { buildStudentStepGraph, buildTeacherGraph, INPUT, OUTPUT } from "./train-graphs";

export interface StudentStepInputs {
  globals: Float32Array; // [2B, 3, G, G]
  locals?: Float32Array; // [L·B, 3, l, l]
  center: Float32Array; // [K]
  teacherTemp: number;
  globalDropPath?: Float32Array; // [depth, 2, 2B]
  localDropPath?: Float32Array; // [depth, 2, L·B]
  /** The last layer is frozen this step: its gradient slots of `grads` are left untouched. */
  lastLayerFrozen?: boolean;
}

export interface StudentStepResult {
  loss: number;
  /** Column sums of this worker's teacher logits, [K] (a view, valid until the next step). */
  teacherOutputSum: Float32Array;
  studentOutput?: Float32Array;
}

/** What the student graph variants are compiled with. */
type StudentGraphOptions = { device: Device; threads?: number; studentTemp: number; exposeStudentOutput: boolean };

export interface SessionOptions {
  device?: Device;
  threads?: number;
  studentTemp?: number;
  exposeStudentOutput?: boolean;
}

/**
 * The ONNX Runtime sessions of a worker: the teacher forward, and the student step in two
 * variants, with and without the last layer's gradient (frozen for the first epochs). A
 * student variant is compiled when first used and the other released then, since a run
 * uses the frozen one only at its start. Weights go in as views of the networks' flat
 * buffers and gradients come out straight into the views of one flat gradient buffer, so
 * a step allocates nothing model-sized.
 */
export class DinoStepSessions {
  readonly teacherOutput: Float32Array;
  readonly teacherOutputSum: Float32Array;
  private student?: { lastLayerFrozen: boolean; graph: CompiledGraph };

  private constructor(
    readonly config: DinoModelConfig,
    readonly shape: StepShape,
    private readonly teacher: CompiledGraph,
    private readonly options: StudentGraphOptions,
  ) {
    this.teacherOutput = new Float32Array(shape.globalCrops * shape.batchSize * config.outDim);
    this.teacherOutputSum = new Float32Array(config.outDim);
  }

  /** `firstStepLastLayerFrozen`: compile the student variant the first step needs now rather than then. */
  static async create(config: DinoModelConfig, shape: StepShape, options: SessionOptions & { firstStepLastLayerFrozen?: boolean } = {}): Promise<DinoStepSessions> {
    const { device = { kind: "cpu" }, threads, studentTemp = 0.1, exposeStudentOutput = false, firstStepLastLayerFrozen = false } = options;
    const teacher = await CompiledGraph.create(buildTeacherGraph(config, shape), device, threads);
    const sessions = new DinoStepSessions(config, shape, teacher, { device, threads, studentTemp, exposeStudentOutput });
    await sessions.studentVariant(firstStepLastLayerFrozen);
    return sessions;
  }

  private async studentVariant(lastLayerFrozen: boolean): Promise<CompiledGraph> {
    if (this.student?.lastLayerFrozen === lastLayerFrozen) return this.student.graph;
    const { device, threads, studentTemp, exposeStudentOutput } = this.options;
    await this.student?.graph.release();
    this.student = undefined;
    const step = buildStudentStepGraph(this.config, this.shape, { studentTemp, exposeStudentOutput, lastLayerFrozen });
    const graph = await CompiledGraph.create(step, device, threads, { alreadyFused: true });
    this.student = { lastLayerFrozen, graph };
    return graph;
  }

  /** Teacher logits of the global crops, [2B, K], into `this.teacherOutput`. */
  async teacherForward(teacher: ParamStore, globals: Float32Array): Promise<Float32Array> {
    const feeds = { ...weightFeeds(teacher), [INPUT.globalCrops]: globals };
    await this.teacher.run(feeds, { into: { [OUTPUT.teacherOutput]: this.teacherOutput } });
    return this.teacherOutput;
  }

  /**
   * Student forward and backward against `this.teacherOutput`; writes every trainable
   * tensor's gradient (but the last layer's while frozen) into its slot of `grads` (the
   * store's layout). Call teacherForward first.
   */
  async studentStep(student: ParamStore, grads: Float32Array, inputs: StudentStepInputs): Promise<StudentStepResult> {
    student.checkLayout(grads, "gradient buffer");
    const feeds: Record<string, Float32Array> = {
      ...weightFeeds(student),
      [INPUT.globalCrops]: inputs.globals,
      [INPUT.teacherOutput]: this.teacherOutput,
      [INPUT.center]: inputs.center,
      [INPUT.teacherTemp]: new Float32Array([inputs.teacherTemp]),
    };
    if (inputs.locals) feeds[INPUT.localCrops] = inputs.locals;
    if (inputs.globalDropPath) feeds[INPUT.globalDropPath] = inputs.globalDropPath;
    if (inputs.localDropPath) feeds[INPUT.localDropPath] = inputs.localDropPath;

    const into: Record<string, Float32Array> = { [OUTPUT.teacherOutputSum]: this.teacherOutputSum };
    const frozen = inputs.lastLayerFrozen ?? false;
    student.specs.forEach((spec, i) => {
      if (spec.trainable && !(frozen && isLastLayer(spec.name))) into[OUTPUT.gradPrefix + spec.name] = grads.subarray(...student.rangeAt(i));
    });
    const graph = await this.studentVariant(frozen);
    const out = await graph.run(feeds, { into });
    return {
      loss: out[OUTPUT.loss][0],
      teacherOutputSum: this.teacherOutputSum,
      studentOutput: out[OUTPUT.studentOutput] as Float32Array | undefined,
    };
  }

  async release(): Promise<void> {
    await Promise.all([this.teacher.release(), this.student?.graph.release()]);
  }
}

function weightFeeds(store: ParamStore): Record<string, Float32Array> {
  return Object.fromEntries(store.specs.map((s) => [s.name, store.view(s.name)]));
}
