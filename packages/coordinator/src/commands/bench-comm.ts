import { Command, InvalidArgumentError } from "commander";
import { benchAllReduce, benchBroadcast, DEFAULT_CHUNK_BYTES } from "@dino-coord/comm";
import { nonNegativeInt, oneOf, positiveInt } from "../option-parsers";

const TRANSPORTS = ["ipc", "tcp"] as const;

function positiveNumber(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError(`${flag} takes a positive number, got "${value}"`);
    return n;
  };
}

/**
 * `dino-coord bench allreduce|broadcast`: the ZeroMQ collectives between local processes
 * (one forked process per member), median time and NCCL-style bus bandwidth as JSON.
 */
export function registerBenchComm(program: Command): void {
  const bench = program.commands.find((c) => c.name() === "bench") ?? program.command("bench").description("benchmarks that print JSON figures");
  const common = (command: Command, worldHelp: string) =>
    command
      .requiredOption("--world <n>", worldHelp, positiveInt("--world"))
      .option("--mb <mib>", "tensor size in MiB of float32", positiveNumber("--mb"), 64)
      .option("--transport <t>", TRANSPORTS.join(" | "), oneOf("--transport", TRANSPORTS), "ipc" as (typeof TRANSPORTS)[number])
      .option("--iters <n>", "timed iterations (median reported)", positiveInt("--iters"), 10)
      .option("--warmup <n>", "untimed iterations first", nonNegativeInt("--warmup"), 2)
      .option("--chunk-bytes <n>", "payload bytes per message", positiveInt("--chunk-bytes"), DEFAULT_CHUNK_BYTES)
      .option("--timeout-ms <n>", "per-operation peer timeout", positiveInt("--timeout-ms"), 60_000);
  common(bench.command("allreduce").description("ring all-reduce of a float32 tensor across N local processes"), "number of ranks (processes)").action(
    async (o) => {
      const result = await benchAllReduce(o);
      process.stdout.write(JSON.stringify(result) + "\n");
    },
  );
  common(bench.command("broadcast").description("chain broadcast of a float32 tensor from a root process to N receiver processes"), "number of receivers (plus one root process)").action(
    async (o) => {
      const result = await benchBroadcast(o);
      process.stdout.write(JSON.stringify(result) + "\n");
    },
  );
}
