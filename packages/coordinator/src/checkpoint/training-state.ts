/**
 * What a checkpoint holds: everything the coordinator needs to continue a run exactly
 * where it stopped, and the `state.json` schema that carries the non-tensor part.
 */
import type { AdamWState, DinoScheduleConfig, ParamSpec, ParamStore } from "@dino-coord/model";
import type { WriterVersions } from "./versions";

/**
 * The coordinator's state at a step boundary. Positions count what is done:
 * `step` optimizer steps have been applied, and the next iteration to run is
 * `iterInEpoch` of `epoch` (global iteration `step` when no step was skipped).
 */
export interface TrainingState {
  step: number;
  epoch: number;
  iterInEpoch: number;
  student: ParamStore;
  /** Must have the student's specs. */
  teacher: ParamStore;
  /** `AdamW.state()`: moments in the student's layout, one step counter per spec. */
  optimizer: AdamWState;
  /** The DINO loss center, `out_dim` values (stored as [1, out_dim] like the reference's buffer). */
  center: Float32Array;
  /** The full run configuration as given (JSON-serialisable; e.g. the coordinator's RunConfig). */
  runConfig: object;
  /** Counter-based generator state: the seed and every counter the run advances. */
  rng: Readonly<Record<string, number>>;
  /** The inputs the schedules were built from (their values follow from these and `step`). */
  schedule?: DinoScheduleConfig;
  /** Loss of the last step. */
  loss?: number;
  /** Training wall time so far, in seconds (across resumes, as the caller counts it). */
  elapsedSeconds?: number;
  /** A per-epoch (`--saveckp-freq`) checkpoint: never pruned. */
  pinned?: boolean;
  /**
   * Other numbers the run accumulates and must restore to continue bitwise (e.g. the running
   * sums behind log.txt's epoch means); stored as is in state.json (JSON keeps doubles exact).
   */
  extra?: Readonly<Record<string, number>>;
}

export const STATE_FORMAT = "dino-coord-checkpoint";
export const STATE_FORMAT_VERSION = 1;

/** The `state.json` of a checkpoint. */
export interface CheckpointStateFile {
  format: typeof STATE_FORMAT;
  formatVersion: number;
  step: number;
  epoch: number;
  iterInEpoch: number;
  pinned: boolean;
  /** Null when no loss was given or it was not finite (JSON has no NaN). */
  loss: number | null;
  /** ISO-8601 time of writing. */
  savedAt: string;
  elapsedSeconds: number | null;
  rng: Record<string, number>;
  schedule: DinoScheduleConfig | null;
  runConfig: Record<string, unknown>;
  versions: WriterVersions;
  /** The parameter layout of student, teacher and optimizer (reference state_dict names). */
  params: ParamSpec[];
  /** Length of the center vector (its tensor is [1, centerDim]). */
  centerDim: number;
  /** TrainingState.extra; absent in checkpoints written without it. */
  extra?: Record<string, number>;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Checks a parsed state.json; returns the problem, or undefined when it is well-formed. */
export function stateFileProblem(value: unknown): string | undefined {
  if (!isObject(value)) return "is not a JSON object";
  if (value.format !== STATE_FORMAT) return `format is ${JSON.stringify(value.format)}, expected "${STATE_FORMAT}"`;
  if (value.formatVersion !== STATE_FORMAT_VERSION) {
    return `format version ${JSON.stringify(value.formatVersion)} is not supported (this dino-coord reads ${STATE_FORMAT_VERSION})`;
  }
  for (const key of ["step", "epoch", "iterInEpoch", "centerDim"] as const) {
    if (!isCount(value[key])) return `${key} is ${JSON.stringify(value[key])}, expected a non-negative integer`;
  }
  if (typeof value.pinned !== "boolean") return "pinned is not a boolean";
  if (value.loss !== null && typeof value.loss !== "number") return "loss is neither a number nor null";
  if (typeof value.savedAt !== "string") return "savedAt is not a string";
  if (!isObject(value.rng) || !Object.values(value.rng).every((v) => typeof v === "number" && Number.isFinite(v))) {
    return "rng is not an object of numbers";
  }
  if (value.extra !== undefined && (!isObject(value.extra) || !Object.values(value.extra).every((v) => typeof v === "number" && Number.isFinite(v)))) {
    return "extra is not an object of numbers";
  }
  if (!isObject(value.runConfig)) return "runConfig is not an object";
  if (!isObject(value.versions)) return "versions is not an object";
  if (!Array.isArray(value.params) || value.params.length === 0) return "params is not a non-empty list";
  for (const [i, spec] of value.params.entries()) {
    if (!isObject(spec) || typeof spec.name !== "string" || !Array.isArray(spec.shape) || !spec.shape.every(isCount)) {
      return `params[${i}] is not {name, shape, trainable, decay}`;
    }
    if (typeof spec.trainable !== "boolean" || typeof spec.decay !== "boolean") return `params[${i}] ("${spec.name}") lacks trainable/decay flags`;
  }
  return undefined;
}
