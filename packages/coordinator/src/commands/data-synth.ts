import type { Command } from "commander";
import { synthesizeImageFolder } from "@dino-coord/augment";
import { UsageError } from "../run-config";

export function registerDataSynth(program: Command): void {
  const data = program.command("data").description("data set tools");
  data
    .command("synth")
    .description("write a procedural ImageNet-layout data set (DIR/train/<class>/<name>.JPEG)")
    .requiredOption("--out <dir>", "output folder")
    .option("--classes <n>", "number of classes", "4")
    .option("--per-class <n>", "images per class", "16")
    .option("--size <px>", "image side in pixels", "64")
    .option("--seed <n>", "generator seed", "0")
    .action(async (flags: { out: string; classes: string; perClass: string; size: string; seed: string }) => {
      const int = (name: string, raw: string, min: number) => {
        const v = Number(raw);
        if (!/^\d+$/.test(raw) || v < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${raw}"`);
        return v;
      };
      const result = await synthesizeImageFolder({
        out: flags.out,
        classes: int("classes", flags.classes, 1),
        perClass: int("per-class", flags.perClass, 1),
        size: int("size", flags.size, 8),
        seed: int("seed", flags.seed, 0),
      });
      process.stdout.write(`${JSON.stringify(result)}\n`);
    });
}
