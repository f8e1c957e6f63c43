import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { ARCHS, dinoPreset, tinyDemoConfig, type Arch, type DinoModelConfig } from "@dino-coord/model";
import type { RunConfig } from "@dino-coord/worker";
import { CHECKPOINT_POLICY_DEFAULTS } from "./checkpoint/save-policy";

/** A flag value dino-coord refuses; the message names the flag and what it accepts. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(message: string) {
    super(message);
  }
}

/** The `launch` flags as commander parses them (strings where main_dino.py parses types). */
export interface LaunchFlags {
  arch: string;
  patchSize: string;
  outDim: string;
  normLastLayer: string;
  momentumTeacher: string;
  useBnInHead: string;
  warmupTeacherTemp: string;
  teacherTemp: string;
  warmupTeacherTempEpochs: string;
  useFp16: string;
  weightDecay: string;
  weightDecayEnd: string;
  clipGrad: string;
  batchSizePerGpu: string;
  epochs: string;
  freezeLastLayer: string;
  lr: string;
  warmupEpochs: string;
  minLr: string;
  optimizer: string;
  dropPathRate: string;
  globalCropsScale: string[];
  localCropsNumber: string;
  localCropsScale: string[];
  dataPath: string;
  outputDir: string;
  saveckpFreq: string;
  seed: string;
  numWorkers: string;
  gpus: string;
  device: string;
  threadsPerWorker?: string;
  port: string;
  workers: string;
  preset?: string;
  checksumEvery: string;
  stepTimeout: string;
  connectTimeout: string;
  heartbeatTimeout: string;
  /** Checkpointing and resume (see ./resume.ts, ./graceful-stop.ts). */
  saveEverySteps: string;
  keepLast: string;
  termGraceS: string;
  resume?: string;
  allowConfigChange?: boolean;
}

/** main_dino.py's defaults (as strings, the way commander hands them over) plus dino-coord's own. */
export const LAUNCH_DEFAULTS = {
  arch: "vit_small",
  patchSize: "16",
  outDim: "65536",
  normLastLayer: "true",
  momentumTeacher: "0.996",
  useBnInHead: "false",
  warmupTeacherTemp: "0.04",
  teacherTemp: "0.04",
  warmupTeacherTempEpochs: "0",
  useFp16: "false",
  weightDecay: "0.04",
  weightDecayEnd: "0.4",
  clipGrad: "3.0",
  batchSizePerGpu: "64",
  epochs: "100",
  freezeLastLayer: "1",
  lr: "0.0005",
  warmupEpochs: "10",
  minLr: "1e-6",
  optimizer: "adamw",
  dropPathRate: "0.1",
  globalCropsScale: ["0.4", "1."],
  localCropsNumber: "8",
  localCropsScale: ["0.05", "0.4"],
  dataPath: "/path/to/imagenet/train/",
  outputDir: ".",
  saveckpFreq: "20",
  seed: "0",
  numWorkers: "10",
  gpus: "16",
  device: "auto",
  port: "0",
  workers: "local",
  checksumEvery: "200",
  stepTimeout: "600",
  connectTimeout: "120",
  heartbeatTimeout: "60",
  saveEverySteps: String(CHECKPOINT_POLICY_DEFAULTS.saveEverySteps),
  keepLast: String(CHECKPOINT_POLICY_DEFAULTS.keepLast),
  termGraceS: "25",
} as const satisfies Partial<Record<keyof LaunchFlags, string | readonly string[]>>;

/** What `--preset tiny` changes (flags given explicitly still win). */
const TINY_PRESET: Partial<Record<keyof LaunchFlags, string>> = {
  patchSize: "8",
  outDim: "256",
  batchSizePerGpu: "8",
  epochs: "10",
  warmupEpochs: "2",
  localCropsNumber: "4",
};

/**
 * The coordinator's own checkpoint settings. They travel inside the run configuration (so
 * config.json and every checkpoint record them and `dino-coord resume` reuses them); the
 * workers ignore them.
 */
export interface CheckpointSettings {
  /** `--save-every-steps`: a checkpoint every this many optimizer steps, 0 = only at epoch ends. */
  saveEverySteps: number;
  /** `--keep-last`: unpinned checkpoints kept by pruning. */
  keepLast: number;
  /** `--term-grace-s` in ms: after SIGTERM, how long the current step may take before the last completed state is saved. */
  termGraceMs: number;
}

export type LaunchConfig = RunConfig & CheckpointSettings;

/** The checkpoint settings of a run configuration; the defaults where it predates them. */
export function checkpointSettingsOf(config: RunConfig): CheckpointSettings {
  const given = config as RunConfig & Partial<CheckpointSettings>;
  return {
    saveEverySteps: given.saveEverySteps ?? CHECKPOINT_POLICY_DEFAULTS.saveEverySteps,
    keepLast: given.keepLast ?? CHECKPOINT_POLICY_DEFAULTS.keepLast,
    termGraceMs: given.termGraceMs ?? Number(LAUNCH_DEFAULTS.termGraceS) * 1000,
  };
}

export interface ResolvedLaunch {
  config: LaunchConfig;
  /** `--resume RUN_DIR`: continue the run saved there. */
  resume?: { runDir: string; allowConfigChange: boolean };
  port: number;
  workers: "local" | "external";
  connectTimeoutMs: number;
  /** Accepted but noteworthy choices (device fallback, truncated warm-up), for the user. */
  warnings: string[];
}

/**
 * Checks every flag and builds the run configuration; throws a UsageError naming the
 * first bad flag. `explicit(name)` says whether the user gave the flag (presets only
 * change flags left at their default). Touches nothing on disk but the device probe.
 */
export function resolveLaunch(
  flags: LaunchFlags,
  explicit: (name: keyof LaunchFlags) => boolean,
  probe: { cudaInstalled: () => boolean; webgpuAvailable?: () => boolean } = { cudaInstalled: () => false },
): ResolvedLaunch {
  const preset = flags.preset;
  if (preset !== undefined && preset !== "tiny") throw new UsageError(`--preset must be "tiny", got "${preset}"`);
  const value = (name: keyof LaunchFlags): string => {
    if (preset === "tiny" && !explicit(name) && TINY_PRESET[name] !== undefined) return TINY_PRESET[name] as string;
    return flags[name] as string;
  };
  const int = (name: keyof LaunchFlags, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = value(name);
    const v = Number(raw);
    if (!/^[+-]?\d+$/.test(String(raw).trim()) || !Number.isSafeInteger(v) || v < min || v > max) {
      throw new UsageError(`--${kebab(name)} must be an integer${max < Number.MAX_SAFE_INTEGER ? ` in [${min}, ${max}]` : ` >= ${min}`}, got "${raw}"`);
    }
    return v;
  };
  const num = (name: keyof LaunchFlags, ok: (v: number) => boolean, range: string): number => {
    const raw = value(name);
    const v = Number(raw);
    if (String(raw).trim() === "" || !Number.isFinite(v) || !ok(v)) throw new UsageError(`--${kebab(name)} must be a number ${range}, got "${raw}"`);
    return v;
  };
  const bool = (name: keyof LaunchFlags): boolean => {
    // utils.bool_flag of the reference
    const raw = String(value(name)).toLowerCase();
    if (["on", "true", "1"].includes(raw)) return true;
    if (["off", "false", "0"].includes(raw)) return false;
    throw new UsageError(`--${kebab(name)} must be true/false (on/off, 1/0), got "${value(name)}"`);
  };
  const scale = (name: "globalCropsScale" | "localCropsScale"): [number, number] => {
    const raw = flags[name];
    const values = raw.map(Number);
    if (raw.length !== 2 || !values.every(Number.isFinite) || !(values[0] > 0 && values[0] <= values[1] && values[1] <= 1)) {
      throw new UsageError(`--${kebab(name)} takes two numbers 0 < low <= high <= 1, got "${raw.join(" ")}"`);
    }
    return [values[0], values[1]];
  };

  if (!ARCHS.includes(flags.arch as Arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(", ")}, got "${flags.arch}"`);
  if (preset === "tiny" && explicit("arch")) throw new UsageError(`--arch cannot be combined with --preset tiny (the preset defines its own small ViT)`);
  const patchSize = int("patchSize", 1);
  if (patchSize !== 8 && patchSize !== 16 && preset !== "tiny") throw new UsageError(`--patch-size must be 16 or 8 for the ViT architectures, got ${patchSize}`);
  const outDim = int("outDim", 1);
  const normLastLayer = bool("normLastLayer");
  if (bool("useBnInHead")) throw new UsageError("--use-bn-in-head true is not supported (the DINO head here has no batch norm; the reference default is false)");
  if (bool("useFp16")) throw new UsageError("--use-fp16 true is not supported: dino-coord trains in float32 on ONNX Runtime");
  const dropPathRate = num("dropPathRate", (v) => v >= 0 && v < 1, "in [0, 1)");
  const overrides: Partial<DinoModelConfig> = { patchSize, outDim, normLastLayer, dropPathRate };
  const model = preset === "tiny" ? tinyDemoConfig(overrides) : dinoPreset(flags.arch as Arch, overrides);

  const epochs = int("epochs", 1);
  const warmupTeacherTempEpochs = int("warmupTeacherTempEpochs", 0);
  if (warmupTeacherTempEpochs > epochs) throw new UsageError(`--warmup-teacher-temp-epochs (${warmupTeacherTempEpochs}) cannot exceed --epochs (${epochs})`);
  const warmupEpochs = int("warmupEpochs", 0);
  const warnings: string[] = [];
  if (warmupEpochs > epochs) {
    warnings.push(`--warmup-epochs ${warmupEpochs} exceeds --epochs ${epochs} (the reference's scheduler would fail its length assertion): the learning rate follows the first ${epochs} of the ${warmupEpochs} warm-up epochs`);
  }
  const optimizer = flags.optimizer;
  if (optimizer !== "adamw") {
    if (optimizer === "sgd" || optimizer === "lars") throw new UsageError(`--optimizer ${optimizer} is not supported yet; only adamw (the reference default)`);
    throw new UsageError(`--optimizer must be one of adamw, sgd, lars (only adamw is supported), got "${optimizer}"`);
  }
  const workers = flags.workers;
  if (workers !== "local" && workers !== "external") throw new UsageError(`--workers must be "local" or "external", got "${workers}"`);
  const gpus = int("gpus", 1, 1024);
  const deviceSpec = String(flags.device).trim();
  let device: string;
  if (deviceSpec === "auto") {
    if (probe.cudaInstalled()) device = "cuda";
    else if (probe.webgpuAvailable?.()) {
      device = "webgpu";
      warnings.push("--device auto: the CUDA execution provider of onnxruntime-node is not installed, training on webgpu");
    } else {
      device = "cpu";
      warnings.push("--device auto: neither the CUDA execution provider nor a WebGPU adapter is available, training on cpu");
    }
  } else if (/^(cpu|cuda(:\d+)?|webgpu(:0)?)$/.test(deviceSpec)) {
    device = deviceSpec;
  } else {
    throw new UsageError(`--device must be cuda, cuda:<i>, webgpu, cpu or auto, got "${flags.device}"`);
  }
  const defaultThreads = Math.max(1, Math.floor(availableParallelism() / (workers === "local" ? gpus : 1)));
  const threadsPerWorker = flags.threadsPerWorker === undefined ? defaultThreads : int("threadsPerWorker", 1, 1024);
  if (!flags.dataPath || flags.dataPath === LAUNCH_DEFAULTS.dataPath) throw new UsageError("--data-path is required: the train/ folder of an ImageNet-layout data set");
  if (!flags.outputDir) throw new UsageError("--output-dir must not be empty");

  const config: LaunchConfig = {
    model,
    momentumTeacher: num("momentumTeacher", (v) => v >= 0 && v <= 1, "in [0, 1]"),
    warmupTeacherTemp: num("warmupTeacherTemp", (v) => v > 0, "> 0"),
    teacherTemp: num("teacherTemp", (v) => v > 0, "> 0"),
    warmupTeacherTempEpochs,
    weightDecay: num("weightDecay", (v) => v >= 0, ">= 0"),
    weightDecayEnd: num("weightDecayEnd", (v) => v >= 0, ">= 0"),
    clipGrad: num("clipGrad", (v) => v >= 0, ">= 0 (0 disables clipping)"),
    batchSizePerGpu: int("batchSizePerGpu", 1),
    epochs,
    freezeLastLayer: int("freezeLastLayer", 0),
    lr: num("lr", (v) => v >= 0, ">= 0"),
    warmupEpochs,
    minLr: num("minLr", (v) => v >= 0, ">= 0"),
    optimizer: "adamw",
    globalCropsScale: scale("globalCropsScale"),
    localCropsNumber: int("localCropsNumber", 0),
    localCropsScale: scale("localCropsScale"),
    dataPath: resolve(flags.dataPath),
    // A resumed run writes on in its run dir unless told otherwise.
    outputDir: resolve(flags.resume !== undefined && !explicit("outputDir") ? flags.resume : flags.outputDir),
    saveckpFreq: int("saveckpFreq", 1),
    seed: int("seed", 0),
    numWorkers: int("numWorkers", 0),
    gpus,
    device,
    threadsPerWorker,
    checksumEvery: int("checksumEvery", 1),
    stepTimeoutMs: num("stepTimeout", (v) => v > 0, "of seconds > 0") * 1000,
    heartbeatTimeoutMs: num("heartbeatTimeout", (v) => v > 0, "of seconds > 0") * 1000,
    saveEverySteps: int("saveEverySteps", 0),
    keepLast: int("keepLast", 1),
    termGraceMs: num("termGraceS", (v) => v >= 0, "of seconds >= 0") * 1000,
  };
  if (flags.resume !== undefined && flags.resume.trim() === "") throw new UsageError("--resume needs the run dir to continue");
  if (flags.allowConfigChange && flags.resume === undefined) throw new UsageError("--allow-config-change only applies with --resume RUN_DIR");
  return {
    config,
    resume: flags.resume === undefined ? undefined : { runDir: resolve(flags.resume), allowConfigChange: flags.allowConfigChange === true },
    port: int("port", 0, 65535),
    workers,
    connectTimeoutMs: num("connectTimeout", (v) => v > 0, "of seconds > 0") * 1000,
    warnings,
  };
}

export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
