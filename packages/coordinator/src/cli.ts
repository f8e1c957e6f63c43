#!/usr/bin/env node
import { Command } from "commander";
import { registerLaunch } from "./commands/launch";
import { registerWorker } from "./commands/worker";
import { registerDataSynth } from "./commands/data-synth";
import { registerBenchStep } from "./commands/bench-step";
import { registerBenchAugment } from "./commands/bench-augment";
import { registerCheckReference } from "./commands/check-reference";
import { registerPlacement } from "./commands/placement";
import { registerBenchComm } from "./commands/bench-comm";
import { registerBenchLaunch } from "./commands/bench-launch";
import { registerCheckpoint } from "./commands/checkpoint";
import { registerResume } from "./commands/resume";

/** Each subcommand lives in its own file under commands/ and registers itself here. */
const registrations: Array<(program: Command) => void> = [
  // command registrations (one line each)
  registerLaunch,
  registerWorker,
  registerDataSynth,
  registerCheckReference,
  registerBenchStep,
  registerPlacement,
  registerBenchAugment,
  registerBenchComm,
  registerBenchLaunch,
  registerCheckpoint,
  registerResume,
];

export function buildProgram(): Command {
  const program = new Command("dino-coord")
    .description("Distributed DINO self-supervised ViT training on ONNX Runtime and ZeroMQ")
    .showHelpAfterError()
    .exitOverride();
  for (const register of registrations) register(program);
  return program;
}

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    if (typeof code === "number" && (err as { code?: string }).code?.startsWith("commander.")) process.exit(code);
    process.stderr.write(`dino-coord: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (require.main === module) void main();
