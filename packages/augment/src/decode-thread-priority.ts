import { readdirSync, readFileSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * Nice value given to libvips' decode threads when the pool leaves cores spare. A worker
 * keeps several decodes in flight, and their libvips threads preempted the rendering
 * thread: with `--threads 1` on 2 cores the renderer waited ~0.8 ms per image on the run
 * queue while decodes were already ahead. At a lower priority they take the spare core
 * and the renderer's leftovers; a renderer out of decoded images sleeps, and they run.
 * Not used when the pool has a thread per core (AugmentPool): there, decodes at a lower
 * priority only lost to the renderers (5% fewer images/s at 2 threads on 2 cores).
 */
const DECODE_THREAD_NICE = 10;

/** Thread ids already looked at (libvips keeps its threads; new ones appear rarely). */
const seen = new Set<string>();

/**
 * Lower the priority of this process's libvips threads ("libvips worker") not seen yet.
 * Linux only (the nice value is per thread there, and /proc names the threads); a no-op
 * elsewhere or where /proc is unreadable. Costs a directory listing plus one small read
 * per new thread.
 */
export function lowerDecodeThreadPriority(): void {
  if (process.platform !== "linux") return;
  let threads: string[];
  try {
    threads = readdirSync("/proc/self/task");
  } catch {
    return;
  }
  for (const tid of threads) {
    if (seen.has(tid)) continue;
    seen.add(tid);
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, "utf8").startsWith("libvips")) setPriority(Number(tid), DECODE_THREAD_NICE);
    } catch {
      // The thread ended meanwhile, or lowering its priority is not permitted: leave it.
    }
  }
}
