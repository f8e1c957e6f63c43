import type { Command } from "commander";
import { RunAbortedError, runWorker } from "@dino-coord/worker";
import { processLogger } from "../logger";
import { UsageError } from "../run-config";

interface WorkerFlags {
  coordinator: string;
  podIndex?: string;
  logDir?: string;
  local?: boolean;
  connectTimeout: string;
}

export function registerWorker(program: Command): void {
  program
    .command("worker")
    .description("run one training worker for a coordinator started with `launch --workers external`")
    .requiredOption("--coordinator <endpoint>", "the coordinator's control endpoint, tcp://HOST:PORT")
    .option("--pod-index <n>", "stable rank (default: $JOB_COMPLETION_INDEX of a Kubernetes indexed job, else the next free rank)")
    .option("--log-dir <dir>", "write this worker's JSON log to <dir>/worker-<index>.log (default: stderr)")
    .option("--local", "started by `launch --workers local` (uses cuda:<rank>)", false)
    .option("--connect-timeout <s>", "longest wait for the coordinator's answer", "120")
    .action(async (flags: WorkerFlags) => {
      const podText = flags.podIndex ?? process.env.JOB_COMPLETION_INDEX;
      const podIndex = podText === undefined ? undefined : Number(podText);
      if (podIndex !== undefined && (!Number.isSafeInteger(podIndex) || podIndex < 0)) throw new UsageError(`--pod-index must be a non-negative integer, got "${podText}"`);
      if (!/^tcp:\/\/[^:]+:\d+$/.test(flags.coordinator)) throw new UsageError(`--coordinator must look like tcp://HOST:PORT, got "${flags.coordinator}"`);
      const connectTimeoutMs = Number(flags.connectTimeout) * 1000;
      if (!(connectTimeoutMs > 0)) throw new UsageError(`--connect-timeout must be a number of seconds > 0, got "${flags.connectTimeout}"`);
      // Launched by a local coordinator: exit with it, whatever way it goes.
      if (process.send) process.on("disconnect", () => process.exit(1));
      process.once("SIGTERM", () => process.exit(143));
      process.once("SIGINT", () => process.exit(130));
      const logger = processLogger(`worker-${podIndex ?? process.pid}`, flags.logDir);
      try {
        await runWorker({ coordinator: flags.coordinator, podIndex, connectTimeoutMs, logger, localDeviceIndex: flags.local });
      } catch (err) {
        logger.error({ err: (err as Error).message, stack: (err as Error).stack }, "worker failed");
        logger.flush();
        // The coordinator aborted the run and reports why itself; a second message would only repeat it.
        if (err instanceof RunAbortedError && process.send) process.exit(1);
        throw err;
      }
      logger.flush();
      process.exit(0);
    });
}
