import type { Command } from "commander";
import { batchesPerEpoch, scanImageFolder } from "@dino-coord/augment";
import { cudaProviderInstalled, parseDevice, probeDevice } from "@dino-coord/model";
import { acceptWorkers, train } from "../coordinator";
import { ControlServer, WorkerFailedError } from "../control-server";
import { processLogger } from "../logger";
import { LAUNCH_DEFAULTS, resolveLaunch, UsageError, type LaunchFlags } from "../run-config";
import { RunOutput } from "../run-output";
import { LocalWorkers } from "../supervisor";
import { GracefulStop, InterruptedError } from "../graceful-stop";
import { loadResumePoint, trimRunOutput } from "../resume";

export { InterruptedError };

export function registerLaunch(program: Command): void {
  const d = LAUNCH_DEFAULTS;
  program
    .command("launch")
    .description("train DINO on N data-parallel workers (main_dino.py's flags, in kebab-case)")
    .option("--arch <name>", "vit_tiny | vit_small | vit_base", d.arch)
    .option("--patch-size <n>", "ViT patch size (16 or 8)", d.patchSize)
    .option("--out-dim <n>", "dimensionality of the DINO head output", d.outDim)
    .option("--norm-last-layer <bool>", "weight-normalize the last layer with g fixed at 1", d.normLastLayer)
    .option("--momentum-teacher <m>", "base EMA momentum of the teacher (cosine to 1)", d.momentumTeacher)
    .option("--use-bn-in-head <bool>", "batch norm in the head (only false is supported)", d.useBnInHead)
    .option("--warmup-teacher-temp <t>", "initial teacher temperature", d.warmupTeacherTemp)
    .option("--teacher-temp <t>", "final teacher temperature", d.teacherTemp)
    .option("--warmup-teacher-temp-epochs <n>", "epochs of linear teacher-temperature warm-up", d.warmupTeacherTempEpochs)
    .option("--use-fp16 <bool>", "mixed precision (only false is supported)", d.useFp16)
    .option("--weight-decay <wd>", "initial weight decay", d.weightDecay)
    .option("--weight-decay-end <wd>", "final weight decay (cosine schedule)", d.weightDecayEnd)
    .option("--clip-grad <norm>", "per-parameter gradient norm clip, 0 disables", d.clipGrad)
    .option("--batch-size-per-gpu <n>", "images per worker and step", d.batchSizePerGpu)
    .option("--epochs <n>", "training epochs", d.epochs)
    .option("--freeze-last-layer <n>", "epochs during which the last layer is not updated", d.freezeLastLayer)
    .option("--lr <lr>", "peak learning rate at batch 256 (scaled linearly by the global batch)", d.lr)
    .option("--warmup-epochs <n>", "linear learning-rate warm-up epochs", d.warmupEpochs)
    .option("--min-lr <lr>", "final learning rate", d.minLr)
    .option("--optimizer <name>", "adamw (sgd, lars: not supported yet)", d.optimizer)
    .option("--drop-path-rate <r>", "stochastic depth rate", d.dropPathRate)
    .option("--global-crops-scale <scales...>", "RandomResizedCrop scale range of the global crops", [...d.globalCropsScale])
    .option("--local-crops-number <n>", "number of local crops, 0 disables multi-crop", d.localCropsNumber)
    .option("--local-crops-scale <scales...>", "RandomResizedCrop scale range of the local crops", [...d.localCropsScale])
    .option("--data-path <dir>", "the train/ folder of an ImageNet-layout data set", d.dataPath)
    .option("--output-dir <dir>", "where logs and checkpoints go", d.outputDir)
    .option("--saveckp-freq <n>", "save a numbered checkpoint every n epochs", d.saveckpFreq)
    .option("--seed <n>", "random seed", d.seed)
    .option("--num-workers <n>", "augmentation threads per worker", d.numWorkers)
    .option("--gpus <n>", "number of workers (one GPU each)", d.gpus)
    .option("--device <spec>", "cuda | cuda:<i> | cpu | auto (cuda where the CUDA provider is installed)", d.device)
    .option("--threads-per-worker <n>", "ONNX Runtime intra-op threads per worker (default: cores / local workers)")
    .option("--port <n>", "control port of the coordinator, 0 picks a free one", d.port)
    .option("--workers <mode>", "local: spawn the workers here; external: wait for `dino-coord worker --coordinator …`", d.workers)
    .option("--preset <name>", "tiny: small ViT, 32/16-px crops, small head (CPU demos); explicit flags override")
    .option("--checksum-every <n>", "steps between student-replica checksums", d.checksumEvery)
    .option("--step-timeout <s>", "longest a worker may take for one step", d.stepTimeout)
    .option("--connect-timeout <s>", "longest wait for the workers to register", d.connectTimeout)
    .option("--heartbeat-timeout <s>", "a worker silent this long is declared dead", d.heartbeatTimeout)
    .option("--save-every-steps <n>", "also checkpoint every n optimizer steps (0: only at epoch ends)", d.saveEverySteps)
    .option("--keep-last <k>", "keep the k newest checkpoints besides the --saveckp-freq ones", d.keepLast)
    .option("--term-grace-s <s>", "after SIGTERM, how long the current step may take before the last completed state is checkpointed", d.termGraceS)
    .option("--resume <run-dir>", "continue the run saved in <run-dir> from its latest valid checkpoint (writes there unless --output-dir is given)")
    .option("--allow-config-change", "with --resume: accept changed settings that alter the result (never the model's)")
    .action(async (flags: LaunchFlags, command: Command) => {
      await launch(flags, (name) => command.getOptionValueSource(name) === "cli");
    });
}

export async function launch(flags: LaunchFlags, explicit: (name: keyof LaunchFlags) => boolean): Promise<void> {
  // WebGPU has no installed-or-not file to look at: ask Dawn for an adapter, only when auto needs to know.
  const webgpuAvailable =
    String(flags.device).trim() === "auto" && !cudaProviderInstalled()
      ? await probeDevice({ kind: "webgpu", index: 0 }).then(() => true, () => false)
      : false;
  const resolved = resolveLaunch(flags, explicit, { cudaInstalled: () => cudaProviderInstalled(), webgpuAvailable: () => webgpuAvailable });
  const { config } = resolved;
  // A GPU this machine cannot drive fails here, before any worker starts.
  if (resolved.workers === "local" && config.device !== "cpu") await probeDevice(parseDevice(config.device));
  for (const warning of resolved.warnings) process.stderr.write(`dino-coord: warning: ${warning}\n`);
  const dataset = await scanImageFolder(config.dataPath);
  const itersPerEpoch = batchesPerEpoch({ datasetSize: dataset.files.length, world: config.gpus, batchSize: config.batchSizePerGpu });
  if (itersPerEpoch < 1) {
    throw new UsageError(`${dataset.files.length} images in ${config.dataPath} make no full batch of ${config.batchSizePerGpu} per worker on ${config.gpus} workers: lower --batch-size-per-gpu or --gpus`);
  }

  const resumeFrom = resolved.resume ? loadResumePoint(resolved.resume.runDir, config, { allowConfigChange: resolved.resume.allowConfigChange, itersPerEpoch }) : undefined;
  if (resumeFrom) trimRunOutput(config.outputDir, resumeFrom.checkpoint);
  const output = new RunOutput(config.outputDir, { append: resumeFrom !== undefined });
  const log = processLogger("coordinator", output.logDir);
  for (const note of resumeFrom?.notes ?? []) log[note.level](note.details, note.message);
  if (resumeFrom) {
    const { path, step, epoch, iterInEpoch } = resumeFrom.checkpoint;
    log.info({ path, step, epoch, iterInEpoch }, "resuming");
    process.stderr.write(`dino-coord: resuming from ${path} (step ${step}, epoch ${epoch}, iteration ${iterInEpoch})\n`);
  }
  const server = new ControlServer(log.child({ component: "control" }), config.heartbeatTimeoutMs);
  const local = resolved.workers === "local";
  const supervisor = new LocalWorkers(log.child({ component: "supervisor" }), (exit) =>
    server.fail(new WorkerFailedError(exit.podIndex, `process exited with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`} (see ${output.logDir}/worker-${exit.podIndex}.log)`)),
  );
  const stop = new GracefulStop(config.termGraceMs, log.child({ component: "stop" }), (error) => server.fail(error));
  const onSignal = (signal: NodeJS.Signals) => stop.request(signal);
  // `on`, not `once`: a second signal must not kill the launcher before the stop checkpoint.
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const endpoint = await server.bind(local ? `tcp://127.0.0.1:${resolved.port || "*"}` : `tcp://*:${resolved.port || "*"}`);
    log.info({ endpoint, config, datasetSize: dataset.files.length, itersPerEpoch }, "coordinator listening");
    if (local) supervisor.spawn(config.gpus, endpoint, output.logDir, resolved.connectTimeoutMs);
    else process.stderr.write(`dino-coord: waiting for ${config.gpus} worker(s): dino-coord worker --coordinator ${endpoint.replace("0.0.0.0", "<this host>")}\n`);
    const workers = await acceptWorkers(server, config.gpus, resolved.connectTimeoutMs, log);
    let released = false;
    const releaseWorkers = async () => {
      if (released) return;
      released = true;
      supervisor.expectExit();
      server.stopWatching();
      await server.broadcast(config.gpus, { shutdown: {} });
    };
    await train({ server, config, datasetSize: dataset.files.length, itersPerEpoch, output, log, connectTimeoutMs: resolved.connectTimeoutMs, workers, resume: resumeFrom, stop, releaseWorkers });
    await releaseWorkers(); // a resumed run with no step left never reaches the last epoch's end
    await supervisor.stop(10_000);
    log.info("run complete");
    process.stderr.write(`dino-coord: done, checkpoints and logs in ${config.outputDir}\n`);
  } catch (err) {
    // A dead local worker shows first as a socket error; its exit report says more.
    if (local && !server.error) await new Promise((r) => setTimeout(r, 1000));
    // After a stop signal every failure (workers that got the signal too) ends as the interruption, with its checkpoint.
    const error = stop.requested ? new InterruptedError(stop.signal!) : (server.error ?? (err as Error));
    if (stop.requested) stop.saveNow();
    log.error({ err: error.message }, "run failed");
    await server.abortAll(error.message);
    await supervisor.stop(3000);
    if (error instanceof InterruptedError) {
      server.close();
      process.stderr.write(`dino-coord: ${error.message}; all workers stopped\n`);
      process.exit(error.signal === "SIGINT" ? 130 : 143);
    }
    throw error;
  } finally {
    stop.dispose();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    server.close();
    log.flush();
  }
}
