import { Command } from "commander";
import { checkReference, resolveDevice } from "@dino-coord/model";
import { positiveInt } from "../option-parsers";

/** `dino-coord check-reference`: one full step on a reference fixture, exit 0 only within tolerance. */
export function registerCheckReference(program: Command): void {
  program
    .command("check-reference")
    .description("run one DINO step on a fixture computed by the PyTorch reference and report the relative errors as JSON")
    .requiredOption("--fixture <dir>", "fixture folder (config.json, inputs.safetensors, expected.safetensors)")
    .option("--out <file>", "also write every computed quantity, under expected.safetensors' names")
    .option("--device <device>", "cpu, cuda[:i], webgpu[:i] or auto", "cpu")
    .option("--threads <n>", "ONNX Runtime intra-op threads", positiveInt("--threads"))
    .action(async (opts: { fixture: string; out?: string; device: string; threads?: number }) => {
      const report = await checkReference(opts.fixture, { device: await resolveDevice(opts.device), threads: opts.threads, out: opts.out });
      process.stdout.write(JSON.stringify(report, null, 2) + "\n");
      if (!report.ok) {
        const failed = Object.entries(report.quantities).filter(([, q]) => !q.ok).map(([name]) => name);
        process.stderr.write(`check-reference: ${failed.length} quantities outside tolerance: ${failed.join(", ")}\n`);
        process.exitCode = 1;
      }
    });
}
