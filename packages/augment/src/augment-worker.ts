/**
 * Worker-thread entry: decodes the images of its tasks (several at once, on libuv's
 * thread pool with the native JPEG decoder, or on libvips' threads) and renders their crops
 * into the batch's shared memories, one image at a time. Rendering yields to the event loop
 * after every crop: a decode takes event-loop turns (its start and its result, and the
 * file read where it is asynchronous),
 * and a whole image's ~6 ms of synchronous rendering between turns starved the decodes,
 * leaving this thread waiting for pixels.
 */
import { parentPort, workerData } from "node:worker_threads";
import { cropCount } from "./augment-config";
import { BatchTensorWriter, batchFloats, maxCropSize } from "./batch-memory";
import { decodeRgb, UnreadableImageError, type RgbImage } from "./decode-image";
import { lowerDecodeThreadPriority } from "./decode-thread-priority";
import { MultiCropRenderer, type BatchSlot } from "./multi-crop";
import { setSharpConcurrency, sharpLoaded } from "./sharp-library";
import type { ImageTask, WorkerInit, WorkerReply } from "./worker-protocol";

const init = workerData as WorkerInit;
setSharpConcurrency(init.vipsThreads);
const renderer = new MultiCropRenderer(init.config, init.seed);
const crops = cropCount(init.config);
const maxSize = maxCropSize(init.config);
const port = parentPort;
if (!port) throw new Error("augment-worker must run in a worker thread");

const reply = (message: WorkerReply) => port.postMessage(message);
const failed = (task: ImageTask, err: unknown): WorkerReply =>
  err instanceof UnreadableImageError ? { type: "unreadable", id: task.id, reason: err.message } : { type: "failed", id: task.id, message: (err as Error).stack ?? String(err) };
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Decoded images waiting for the renderer, in decode-completion order. */
const decoded: Array<{ task: ImageTask; image: RgbImage }> = [];
let rendering = false;

/** Decodes (once sharp is loaded) between looks for new libvips threads to deprioritise. */
const PRIORITY_CHECK_EVERY = 16;
let decodes = 0;

port.on("message", (task: ImageTask) => {
  decodeRgb(task.path).then(
    (image) => {
      // libvips threads exist only once sharp is loaded (decodes the native decoder left to it).
      if (init.lowerDecodePriority && sharpLoaded() && decodes++ % PRIORITY_CHECK_EVERY === 0) lowerDecodeThreadPriority();
      decoded.push({ task, image });
      void renderDecoded();
    },
    (err: unknown) => reply(failed(task, err)),
  );
});

/**
 * Tensor-write kernels bound to the task's batch memories, made once per batch (an
 * instantiation takes ~50 µs; the memories arrive as new objects with every task, so they
 * are known by batch id). A worker has tasks of at most a few batches at a time.
 */
const writersByBatch = new Map<number, BatchSlot["writers"]>();
function writersFor(task: ImageTask): BatchSlot["writers"] {
  if (!renderer.usesSimd) return undefined;
  if (!writersByBatch.has(task.batch)) {
    const floats = batchFloats(init.config, task.batchSize);
    const globals = BatchTensorWriter.create(task.globals, floats.globals, init.lane, maxSize);
    const locals = BatchTensorWriter.create(task.locals, floats.locals, init.lane, maxSize);
    writersByBatch.set(task.batch, globals && locals ? { globals, locals } : undefined);
    for (const batch of writersByBatch.keys()) if (writersByBatch.size > 4) writersByBatch.delete(batch);
  }
  return writersByBatch.get(task.batch);
}

async function renderDecoded(): Promise<void> {
  if (rendering) return;
  rendering = true;
  for (let next = decoded.shift(); next; next = decoded.shift()) {
    const { task, image } = next;
    try {
      const target: BatchSlot = { slot: task.slot, batchSize: task.batchSize, globals: new Float32Array(task.globals.buffer), locals: new Float32Array(task.locals.buffer) };
      target.writers = writersFor(task);
      renderer.load(image);
      for (let c = 0; c < crops; c++) {
        renderer.renderCrop(image, task.epoch, task.datasetIndex, c, target);
        await nextTurn();
      }
      reply({ type: "done", id: task.id });
    } catch (err) {
      reply(failed(task, err));
    }
  }
  rendering = false;
}

reply({ type: "ready" });
