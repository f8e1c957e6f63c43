import { resolve } from "node:path";
import { tinyDemoConfig } from "@dino-coord/model";
import { compareResumeConfig } from "../src/checkpoint";
import { flagsOfSavedConfig } from "../src/commands/resume";
import { checkpointSettingsOf, LAUNCH_DEFAULTS, resolveLaunch, UsageError, type LaunchFlags } from "../src/run-config";
import { flags, given } from "./launch-flags";

describe("checkpoint and resume flags", () => {
  it("resolve into the run configuration, with the checkpoint policy's defaults", () => {
    const { config, resume } = resolveLaunch(flags(), given());
    expect(checkpointSettingsOf(config)).toEqual({ saveEverySteps: 1000, keepLast: 3, termGraceMs: 25_000 });
    expect(resume).toBeUndefined();
    const custom = resolveLaunch(flags({ saveEverySteps: "0", keepLast: "1", termGraceS: "2.5" }), given("saveEverySteps", "keepLast", "termGraceS")).config;
    expect(checkpointSettingsOf(custom)).toEqual({ saveEverySteps: 0, keepLast: 1, termGraceMs: 2500 });
  });

  it("--resume continues in the run dir unless --output-dir is given", () => {
    const resumed = resolveLaunch(flags({ resume: "runs/a" }), given("resume"));
    expect(resumed.resume).toEqual({ runDir: resolve("runs/a"), allowConfigChange: false });
    expect(resumed.config.outputDir).toBe(resolve("runs/a"));
    const elsewhere = resolveLaunch(flags({ resume: "runs/a", outputDir: "runs/b", allowConfigChange: true }), given("resume", "outputDir", "allowConfigChange"));
    expect(elsewhere.config.outputDir).toBe(resolve("runs/b"));
    expect(elsewhere.resume?.allowConfigChange).toBe(true);
  });

  it.each<[Partial<LaunchFlags>, RegExp]>([
    [{ saveEverySteps: "-1" }, /--save-every-steps must be an integer >= 0, got "-1"/],
    [{ keepLast: "0" }, /--keep-last must be an integer >= 1, got "0"/],
    [{ termGraceS: "soon" }, /--term-grace-s must be a number of seconds >= 0, got "soon"/],
    [{ allowConfigChange: true }, /--allow-config-change only applies with --resume/],
  ])("refuses %p", (bad, message) => {
    expect(() => resolveLaunch(flags(bad), given(...(Object.keys(bad) as Array<keyof LaunchFlags>)))).toThrow(UsageError);
    expect(() => resolveLaunch(flags(bad), given(...(Object.keys(bad) as Array<keyof LaunchFlags>)))).toThrow(message);
  });

  it("`resume` rebuilds the saved configuration exactly from its flags", () => {
    for (const preset of [{ preset: "tiny", patchSize: "8", outDim: "256" }, {}]) {
      const names = Object.keys(preset) as Array<keyof LaunchFlags>;
      const saved = resolveLaunch(flags({ ...preset, gpus: "3", batchSizePerGpu: "5", saveEverySteps: "7", termGraceS: "4", stepTimeout: "12.5", threadsPerWorker: "2", device: "cpu" }), given(...names, "gpus", "batchSizePerGpu", "saveEverySteps", "termGraceS", "stepTimeout", "threadsPerWorker")).config;
      const rebuilt = flagsOfSavedConfig(saved, saved.outputDir);
      const again = resolveLaunch(rebuilt, (name) => !(name === "arch" && rebuilt.preset === "tiny")).config;
      expect(compareResumeConfig(saved, again).differences).toEqual([]);
    }
  });

  it("`resume` refuses a saved model no flag combination makes", () => {
    const saved = resolveLaunch(flags({ preset: "tiny" }), given()).config;
    expect(() => flagsOfSavedConfig({ ...saved, model: { ...tinyDemoConfig(), depth: 5 } }, "/runs/x")).toThrow(/neither --preset tiny nor one of --arch/);
  });
});
