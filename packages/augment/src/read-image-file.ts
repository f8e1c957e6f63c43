import { readFile as readFileCallback, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";

/**
 * fs.readFile with a callback, promisified: half the CPU of fs/promises' readFile (which
 * goes through a FileHandle, a promise per step).
 */
const readFileAsync = promisify(readFileCallback);

/**
 * When most of the last WINDOW blocking reads took longer than SLOW_READ_MS, this
 * thread's later reads go through libuv's thread pool. A majority, not an average: on a
 * busy machine a thread is sometimes preempted in the middle of a read (whole time slices
 * of delay), which must not count as slow storage; slow storage makes every read slow.
 */
const SLOW_READ_MS = 2;
const WINDOW = 16;

/** Per thread (module state): whether reads still block, and which of the last WINDOW were slow. */
let readsBlock = true;
const slowInWindow = new Uint8Array(WINDOW);
let slowCount = 0;
let reads = 0;

/**
 * The file's bytes. An image in the page cache or on a local disk reads in tens of µs
 * with readFileSync, while readFile's four thread-pool round trips (open, fstat, read,
 * close) cost the worker's thread ~0.4 ms of CPU per image in event-loop turns and
 * wake-ups, on the thread that also renders. Slow storage (a network file system, a cold
 * disk) would stall the rendering instead, so mostly slow reads switch this thread to
 * asynchronous reads for good.
 */
export async function readImageFile(path: string): Promise<Buffer> {
  if (!readsBlock) return readFileAsync(path);
  const started = performance.now();
  const bytes = readFileSync(path);
  const slow = performance.now() - started > SLOW_READ_MS ? 1 : 0;
  const slot = reads++ % WINDOW;
  slowCount += slow - slowInWindow[slot];
  slowInWindow[slot] = slow;
  if (slowCount > WINDOW / 2) readsBlock = false;
  return bytes;
}
