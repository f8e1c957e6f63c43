/**
 * Where a finished run's time went, read back from what it wrote: config.json (images per
 * step), metrics.jsonl (each step's time) and logs/coordinator.log (when training started
 * and when the run ended). Wall-clock times are milliseconds since the epoch, as pino writes.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RunConfig } from "@dino-coord/worker";

export interface RunTimeline {
  images: number;
  steps: number;
  /** When the coordinator logged "all workers ready, training". */
  trainingStartedAt: number;
  /** The coordinator's last log line (run complete). */
  endedAt: number;
  firstStepMs: number;
  /** Median of the steps after the first (the first, when there is only one). */
  medianStepMs: number;
  stepsMs: number;
}

export class RunTimelineError extends Error {
  override readonly name = "RunTimelineError";
}

function jsonLines(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) throw new RunTimelineError(`${path} is missing: the run did not get far enough to write it`);
  return readFileSync(path, "utf8").split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line));
}

export function readRunTimeline(outputDir: string): RunTimeline {
  const config = JSON.parse(readFileSync(join(outputDir, "config.json"), "utf8")) as RunConfig;
  const stepTimes = jsonLines(join(outputDir, "metrics.jsonl")).map((m) => (m.time_ms as { total: number }).total);
  const log = jsonLines(join(outputDir, "logs", "coordinator.log"));
  const started = log.find((l) => l.msg === "all workers ready, training");
  if (!started || stepTimes.length === 0) throw new RunTimelineError(`${outputDir} holds no trained step`);
  const later = stepTimes.length > 1 ? stepTimes.slice(1) : stepTimes;
  const sorted = [...later].sort((a, b) => a - b);
  return {
    images: stepTimes.length * config.batchSizePerGpu * config.gpus,
    steps: stepTimes.length,
    trainingStartedAt: started.time as number,
    endedAt: log[log.length - 1].time as number,
    firstStepMs: stepTimes[0],
    medianStepMs: sorted[Math.floor((sorted.length - 1) / 2)],
    stepsMs: stepTimes.reduce((a, b) => a + b, 0),
  };
}
