/**
 * May a run resume from a checkpoint written under another configuration? Settings are
 * classified by what a change would do to the trained model:
 *
 * - "model": the network's shapes or definition (everything under `model`, and the flags
 *   that build it: arch, patch size, out dim, norm-last-layer, drop path rate, preset,
 *   use-bn-in-head). The saved tensors would not fit or would mean something else:
 *   always refused, even with `allowConfigChange`.
 * - "result": the trajectory (batch size per GPU and world size `gpus`, seed, data path,
 *   crops, epochs (every schedule is stretched over them), lr / min-lr / warm-up, weight
 *   decay, teacher momentum and temperatures, clipping, last-layer freeze, optimizer,
 *   fp16). Refused, naming each difference, unless `allowConfigChange` is set.
 * - "harmless": where and how the same computation runs (output dir, threads, port,
 *   device, workers, saveckp-freq, keep-last, save-every-steps, num-workers, timeouts
 *   (term-grace-s included),
 *   checksums, logging). Pass silently.
 *
 * A setting this table does not know counts as "result": refusing an unknown change is
 * safer than silently training something else.
 */
import { ResumeConfigError } from "./errors";

export type SettingClass = "model" | "result" | "harmless";

const MODEL_SETTINGS = new Set(["model", "arch", "patchSize", "outDim", "normLastLayer", "dropPathRate", "preset", "useBnInHead"]);

const RESULT_SETTINGS = new Set([
  "batchSizePerGpu",
  "gpus",
  "worldSize",
  "seed",
  "dataPath",
  "localCropsNumber",
  "globalCropsScale",
  "localCropsScale",
  "epochs",
  "lr",
  "minLr",
  "warmupEpochs",
  "weightDecay",
  "weightDecayEnd",
  "momentumTeacher",
  "warmupTeacherTemp",
  "teacherTemp",
  "warmupTeacherTempEpochs",
  "clipGrad",
  "freezeLastLayer",
  "optimizer",
  "useFp16",
]);

const HARMLESS_SETTINGS = new Set([
  "outputDir",
  "threadsPerWorker",
  "port",
  "device",
  "workers",
  "saveckpFreq",
  "keepLast",
  "saveEverySteps",
  "numWorkers",
  "checksumEvery",
  "stepTimeoutMs",
  "heartbeatTimeoutMs",
  "connectTimeoutMs",
  "logLevel",
  "logDir",
  "resume",
  "allowConfigChange",
  "termGraceMs",
]);

/** The class of a flattened setting key (`model.patchSize` belongs to `model`). */
export function settingClass(key: string): SettingClass {
  const top = key.split(".")[0];
  if (MODEL_SETTINGS.has(top)) return "model";
  if (HARMLESS_SETTINGS.has(top)) return "harmless";
  return "result";
}

export interface ConfigDifference {
  /** Dotted path, e.g. `batchSizePerGpu` or `model.patchSize`. */
  key: string;
  saved: unknown;
  requested: unknown;
  class: SettingClass;
}

export interface ResumeConfigComparison {
  /** Every difference, in key order. */
  differences: ConfigDifference[];
  /** Differences that stop the resume (always the model ones; the result ones unless allowed). */
  refused: ConfigDifference[];
  ok: boolean;
  /** Why it is refused, naming each refused difference; undefined when ok. */
  message?: string;
}

/** Leaves of a JSON-like value as dotted keys; arrays are compared whole (crop scales). */
function flatten(value: unknown, prefix: string, out: Map<string, unknown>): Map<string, unknown> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) flatten(child, prefix ? `${prefix}.${key}` : key, out);
  } else if (prefix) {
    out.set(prefix, value);
  }
  return out;
}

const text = (value: unknown): string => (value === undefined ? "(unset)" : JSON.stringify(value));

export function describeDifference(d: ConfigDifference): string {
  return `${d.key}: ${text(d.saved)} in the checkpoint, ${text(d.requested)} now`;
}

export function compareResumeConfig(saved: object, requested: object, options: { allowConfigChange?: boolean } = {}): ResumeConfigComparison {
  const before = flatten(JSON.parse(JSON.stringify(saved)), "", new Map());
  const after = flatten(JSON.parse(JSON.stringify(requested)), "", new Map());
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort();
  const differences: ConfigDifference[] = [];
  for (const key of keys) {
    const a = before.get(key);
    const b = after.get(key);
    if (JSON.stringify(a) !== JSON.stringify(b)) differences.push({ key, saved: a, requested: b, class: settingClass(key) });
  }
  const refused = differences.filter((d) => d.class === "model" || (d.class === "result" && !options.allowConfigChange));
  if (refused.length === 0) return { differences, refused, ok: true };
  const model = refused.filter((d) => d.class === "model");
  const result = refused.filter((d) => d.class === "result");
  const parts: string[] = [];
  if (model.length > 0) parts.push(`the model differs, which is never accepted (the saved weights would not fit): ${model.map(describeDifference).join("; ")}`);
  if (result.length > 0) parts.push(`settings that change the result differ (pass --allow-config-change to accept them): ${result.map(describeDifference).join("; ")}`);
  return { differences, refused, ok: false, message: `cannot resume from this checkpoint: ${parts.join(". ")}` };
}

/** compareResumeConfig that throws ResumeConfigError when refused; returns the accepted differences. */
export function assertResumeConfig(saved: object, requested: object, options: { allowConfigChange?: boolean } = {}): ConfigDifference[] {
  const comparison = compareResumeConfig(saved, requested, options);
  if (!comparison.ok) throw new ResumeConfigError(comparison.message!, comparison.refused);
  return comparison.differences;
}
