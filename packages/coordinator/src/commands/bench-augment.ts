import { Command, InvalidArgumentError } from "commander";
import { availableParallelism } from "node:os";
import { benchAugment } from "@dino-coord/augment";

function positiveInt(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${flag} takes a positive integer, got "${value}"`);
    return n;
  };
}

/** `dino-coord bench augment`: multi-crop pipeline throughput (decode, crops, pixel ops, collation) as JSON. */
export function registerBenchAugment(program: Command): void {
  const bench = program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks that print JSON figures");
  bench
    .command("augment")
    .description("images/s of the DINO multi-crop data pipeline on an ImageNet-layout folder")
    .requiredOption("--data <dir>", "ImageNet-layout folder (<dir>/<class>/<image>)")
    .option("--limit <n>", "images to process (default: all)", positiveInt("--limit"))
    .option("--threads <n>", "worker threads", positiveInt("--threads"), availableParallelism())
    .option("--batch-size <n>", "images per batch", positiveInt("--batch-size"), 32)
    .option("--global-size <n>", "global crop size", positiveInt("--global-size"), 224)
    .option("--local-size <n>", "local crop size", positiveInt("--local-size"), 96)
    .option("--local-crops <n>", "local crops per image", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`--local-crops takes a non-negative integer, got "${v}"`);
      return n;
    }, 8)
    .action(async (o) => {
      const result = await benchAugment({
        dataDir: o.data,
        limit: o.limit,
        threads: o.threads,
        batchSize: o.batchSize,
        config: { globalSize: o.globalSize, localSize: o.localSize, localCrops: o.localCrops },
      });
      process.stdout.write(JSON.stringify(result) + "\n");
    });
}
