import type { Command } from "commander";
import { resolve } from "node:path";
import { ARCHS, dinoPreset, tinyDemoConfig, type DinoModelConfig } from "@dino-coord/model";
import type { RunConfig } from "@dino-coord/worker";
import { loadLatestValidCheckpoint } from "../checkpoint";
import { checkpointSettingsOf, kebab, LAUNCH_DEFAULTS, UsageError, type LaunchFlags } from "../run-config";
import { launch } from "./launch";

/** The launch flags `resume` lets a user override; the model's are fixed by the saved weights. */
const OVERRIDABLE = [
  "dataPath",
  "outputDir",
  "epochs",
  "batchSizePerGpu",
  "gpus",
  "lr",
  "minLr",
  "warmupEpochs",
  "weightDecay",
  "weightDecayEnd",
  "momentumTeacher",
  "clipGrad",
  "freezeLastLayer",
  "saveckpFreq",
  "saveEverySteps",
  "keepLast",
  "termGraceS",
  "numWorkers",
  "device",
  "threadsPerWorker",
  "port",
  "workers",
  "checksumEvery",
  "stepTimeout",
  "connectTimeout",
  "heartbeatTimeout",
] as const satisfies ReadonlyArray<keyof LaunchFlags>;

export function registerResume(program: Command): void {
  const command = program
    .command("resume")
    .description("continue the run in <run-dir> from its latest valid checkpoint, with the configuration saved in it (flags override single settings)")
    .argument("<run-dir>", "the --output-dir of the run to continue");
  for (const name of OVERRIDABLE) command.option(`--${kebab(name)} <value>`, `override the saved ${kebab(name)}`);
  command
    .option("--allow-config-change", "accept overrides that alter the result (never the model's shape)")
    .action(async (runDir: string, overrides: Partial<LaunchFlags>) => {
      const latest = loadLatestValidCheckpoint(runDir);
      if (!latest) throw new UsageError(`resume ${runDir}: there is no checkpoint in it (no checkpoint-<step>/ folder)`);
      const flags: LaunchFlags = { ...flagsOfSavedConfig(latest.checkpoint.runConfig as unknown as RunConfig, runDir), ...definedOnly(overrides), resume: resolve(runDir) };
      // Every flag is given (saved or overridden), except --arch next to --preset tiny.
      await launch(flags, (name) => !(name === "arch" && flags.preset === "tiny"));
    });
}

function definedOnly(flags: Partial<LaunchFlags>): Partial<LaunchFlags> {
  return Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Partial<LaunchFlags>;
}

const sameModel = (a: DinoModelConfig, b: DinoModelConfig) => JSON.stringify(a) === JSON.stringify(b);

/** The launch flags that rebuild a saved run configuration (checked against it again when the run resumes). */
export function flagsOfSavedConfig(saved: RunConfig, runDir: string): LaunchFlags {
  const { model } = saved;
  if (!model || typeof model !== "object") throw new UsageError(`resume ${runDir}: the checkpoint's run configuration has no model`);
  const shape = { patchSize: model.patchSize, outDim: model.outDim, normLastLayer: model.normLastLayer, dropPathRate: model.dropPathRate };
  let preset: string | undefined;
  let arch: string = LAUNCH_DEFAULTS.arch;
  if (sameModel(model, tinyDemoConfig(shape))) preset = "tiny";
  else {
    const match = ARCHS.find((a) => sameModel(model, dinoPreset(a, shape)));
    if (!match) throw new UsageError(`resume ${runDir}: the saved model is neither --preset tiny nor one of --arch ${ARCHS.join(", ")}; use launch --resume with the original flags`);
    arch = match;
  }
  const settings = checkpointSettingsOf(saved);
  const text = (v: unknown) => String(v);
  return {
    ...LAUNCH_DEFAULTS,
    arch,
    preset,
    patchSize: text(model.patchSize),
    outDim: text(model.outDim),
    normLastLayer: text(model.normLastLayer),
    dropPathRate: text(model.dropPathRate),
    useBnInHead: "false",
    useFp16: "false",
    momentumTeacher: text(saved.momentumTeacher),
    warmupTeacherTemp: text(saved.warmupTeacherTemp),
    teacherTemp: text(saved.teacherTemp),
    warmupTeacherTempEpochs: text(saved.warmupTeacherTempEpochs),
    weightDecay: text(saved.weightDecay),
    weightDecayEnd: text(saved.weightDecayEnd),
    clipGrad: text(saved.clipGrad),
    batchSizePerGpu: text(saved.batchSizePerGpu),
    epochs: text(saved.epochs),
    freezeLastLayer: text(saved.freezeLastLayer),
    lr: text(saved.lr),
    warmupEpochs: text(saved.warmupEpochs),
    minLr: text(saved.minLr),
    optimizer: saved.optimizer,
    globalCropsScale: saved.globalCropsScale.map(text),
    localCropsNumber: text(saved.localCropsNumber),
    localCropsScale: saved.localCropsScale.map(text),
    dataPath: saved.dataPath,
    outputDir: runDir,
    saveckpFreq: text(saved.saveckpFreq),
    seed: text(saved.seed),
    numWorkers: text(saved.numWorkers),
    gpus: text(saved.gpus),
    device: saved.device,
    threadsPerWorker: text(saved.threadsPerWorker),
    checksumEvery: text(saved.checksumEvery),
    stepTimeout: text(saved.stepTimeoutMs / 1000),
    heartbeatTimeout: text(saved.heartbeatTimeoutMs / 1000),
    saveEverySteps: text(settings.saveEverySteps),
    keepLast: text(settings.keepLast),
    termGraceS: text(settings.termGraceMs / 1000),
  };
}
