/**
 * sharp (libvips), loaded on first use. JPEGs decode natively (native-jpeg-decoder.ts), so a
 * run on a JPEG dataset rarely needs it, and loading it costs ~60 ms of CPU and tens of MB in
 * every thread that does: the main thread and each augmentation thread of every worker.
 */
import type sharp from "sharp";

type Sharp = typeof sharp;

let loaded: Sharp | undefined;
let concurrency: number | undefined;

/** libvips threads per decode, applied when sharp loads (or now, if it has). */
export function setSharpConcurrency(threads: number): void {
  concurrency = threads;
  loaded?.concurrency(threads);
}

export function loadSharp(): Sharp {
  if (!loaded) {
    loaded = require("sharp") as Sharp;
    // Decoded and written images are used once; libvips' operation cache would only hold memory.
    loaded.cache(false);
    if (concurrency !== undefined) loaded.concurrency(concurrency);
  }
  return loaded;
}

/** Whether this thread has loaded sharp (and so may have libvips threads). */
export function sharpLoaded(): boolean {
  return loaded !== undefined;
}
