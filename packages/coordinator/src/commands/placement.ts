import { Command } from "commander";
import { ARCHS, Arch, buildStudentStepGraph, buildTeacherGraph, dinoPreset, reportPlacement, resolveDevice, sessionOptions } from "@dino-coord/model";
import { nonNegativeInt, oneOf, positiveInt } from "../option-parsers";

/** `dino-coord placement`: which provider runs each node of the teacher and student graphs. */
export function registerPlacement(program: Command): void {
  program
    .command("placement")
    .description("report which execution provider runs each node of the teacher and student graphs (JSON); non-zero exit if any node falls back to the CPU")
    .option("--device <device>", "cpu, cuda[:i], webgpu[:i] or auto", "auto")
    .option("--arch <arch>", ARCHS.join(" | "), oneOf("--arch", ARCHS), "vit_tiny" as Arch)
    .option("--patch-size <n>", "patch size", positiveInt("--patch-size"), 16)
    .option("--batch-size <n>", "images per step", positiveInt("--batch-size"), 2)
    .option("--local-crops <n>", "local crops per image", nonNegativeInt("--local-crops"), 2)
    .option("--out-dim <n>", "DINO head output dimension", positiveInt("--out-dim"), 65536)
    .action(async (o) => {
      const device = await resolveDevice(o.device);
      const config = dinoPreset(o.arch, { patchSize: o.patchSize, outDim: o.outDim });
      const shape = { batchSize: o.batchSize, globalCrops: 2 as const, localCrops: o.localCrops };
      const options = sessionOptions(device);
      const reports = [];
      for (const graph of [buildTeacherGraph(config, shape), buildStudentStepGraph(config, shape, { studentTemp: 0.1 })]) {
        reports.push(await reportPlacement(graph, device, options));
      }
      const fallback = reports.flatMap((r) => r.cpuFallback.map((n) => ({ graph: r.graph, ...n })));
      const summary = reports.map((r) => ({ graph: r.graph, providers: Object.fromEntries(r.providers.map((p) => [p.provider, p.nodeCount])) }));
      process.stdout.write(JSON.stringify({ device: reports[0].device, graphs: summary, cpu_fallback: fallback }, null, 2) + "\n");
      if (fallback.length > 0) process.exitCode = 2;
    });
}
