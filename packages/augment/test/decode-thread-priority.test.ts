import { readdirSync, readFileSync } from "node:fs";
import sharp from "sharp";
import { lowerDecodeThreadPriority } from "../src/decode-thread-priority";
import { noise } from "./fixtures";

/** Nice value (field 19 of stat) of this thread and of the threads whose name starts with `prefix`. */
const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
function niceOfThreads(prefix: string): number[] {
  const nices: number[] = [];
  for (const tid of readdirSync("/proc/self/task")) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, "utf8").startsWith(prefix)) nices.push(niceOf(readFileSync(`/proc/self/task/${tid}/stat`, "utf8")));
    } catch {
      // ended meanwhile
    }
  }
  return nices;
}

const onLinux = process.platform === "linux" ? it : it.skip;

describe("lowerDecodeThreadPriority", () => {
  onLinux("gives libvips' threads nice 10 and leaves the calling thread's priority alone", async () => {
    // An encode makes libvips start its threads.
    await sharp(noise(64, 64, 3, 1), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer();
    expect(niceOfThreads("libvips").length).toBeGreaterThan(0);
    const before = niceOf(readFileSync("/proc/thread-self/stat", "utf8"));
    lowerDecodeThreadPriority();
    expect(niceOfThreads("libvips").every((nice) => nice === 10)).toBe(true);
    expect(niceOf(readFileSync("/proc/thread-self/stat", "utf8"))).toBe(before);
  });
});
