import { Command } from "commander";
import { ARCHS, Arch, benchStep, resolveDevice } from "@dino-coord/model";
import { nonNegativeInt, oneOf, positiveInt } from "../option-parsers";

/** `dino-coord bench step`: median time of a full worker training step, as JSON. */
export function registerBenchStep(program: Command): void {
  const bench = program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks that print JSON figures");
  bench
    .command("step")
    .description("time teacher forward + student forward/backward + AdamW + EMA on random crops")
    .option("--arch <arch>", ARCHS.join(" | "), oneOf("--arch", ARCHS), "vit_tiny" as Arch)
    .option("--patch-size <n>", "patch size (8 or 16)", positiveInt("--patch-size"), 16)
    .option("--batch-size <n>", "images per step", positiveInt("--batch-size"), 8)
    .option("--local-crops <n>", "local crops per image", nonNegativeInt("--local-crops"), 8)
    .option("--out-dim <n>", "DINO head output dimension", positiveInt("--out-dim"), 65536)
    .option("--threads <n>", "ONNX Runtime intra-op threads", positiveInt("--threads"), 2)
    .option("--device <device>", "cpu, cuda[:i], webgpu[:i] or auto", "cpu")
    .option("--steps <n>", "timed steps", positiveInt("--steps"), 5)
    .option("--warmup <n>", "untimed steps first", nonNegativeInt("--warmup"), 1)
    .action(async (o) => {
      const result = await benchStep({ ...o, device: await resolveDevice(o.device) });
      process.stdout.write(JSON.stringify(result) + "\n");
    });
}
