/** Worker-thread entry: decodes one image per task and writes its crops into the batch's shared buffers. */
import { parentPort, workerData } from "node:worker_threads";
import sharp from "sharp";
import { decodeRgb, UnreadableImageError } from "./decode-image";
import { MultiCropRenderer } from "./multi-crop";
import type { ImageTask, WorkerInit, WorkerReply } from "./worker-protocol";

const init = workerData as WorkerInit;
sharp.concurrency(init.vipsThreads);
// The decoded images are used once; libvips' operation cache would only hold memory.
sharp.cache(false);
const renderer = new MultiCropRenderer(init.config, init.seed);
const port = parentPort;
if (!port) throw new Error("augment-worker must run in a worker thread");

const reply = (message: WorkerReply) => port.postMessage(message);

port.on("message", (task: ImageTask) => {
  void run(task);
});

async function run(task: ImageTask): Promise<void> {
  try {
    const image = await decodeRgb(task.path);
    renderer.render(image, task.epoch, task.datasetIndex, {
      slot: task.slot,
      batchSize: task.batchSize,
      globals: new Float32Array(task.globals),
      locals: new Float32Array(task.locals),
    });
    reply({ type: "done", id: task.id });
  } catch (err) {
    if (err instanceof UnreadableImageError) reply({ type: "unreadable", id: task.id, reason: err.message });
    else reply({ type: "failed", id: task.id, message: (err as Error).stack ?? String(err) });
  }
}

reply({ type: "ready" });
