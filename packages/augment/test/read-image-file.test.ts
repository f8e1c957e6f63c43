import { readFileSync, writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import * as path from "node:path";
import { readImageFile } from "../src/read-image-file";
import { noise, removeTempDirs, tempDir } from "./fixtures";

describe("readImageFile", () => {
  afterAll(removeTempDirs);

  it("returns the file's bytes", async () => {
    const file = path.join(tempDir("read"), "bytes.bin");
    writeFileSync(file, noise(1000, 7, 3, 5));
    expect(Buffer.compare(await readImageFile(file), readFileSync(file))).toBe(0);
  });

  it("reports a missing file as a rejected promise, not a synchronous throw", async () => {
    const pending = readImageFile(path.join(tempDir("read"), "missing.jpg"));
    await expect(pending).rejects.toThrow(/ENOENT/);
  });

  it("keeps blocking reads through occasional slow ones, and switches to asynchronous reads when most are slow", async () => {
    const file = path.join(tempDir("read"), "slow.bin");
    writeFileSync(file, noise(100, 1, 3, 9));
    let fresh: typeof import("../src/read-image-file") | undefined;
    jest.isolateModules(() => {
      fresh = require("../src/read-image-file");
    });
    const { readImageFile: read } = fresh as typeof import("../src/read-image-file");
    /** Whether read() blocked: its promise settles within a few microtask turns, before any I/O callback. */
    const blocked = async () => {
      let settled = false;
      const pending = read(file).then((bytes) => {
        settled = true;
        return bytes;
      });
      for (let i = 0; i < 3; i++) await Promise.resolve();
      const result = settled;
      expect(Buffer.compare(await pending, readFileSync(file))).toBe(0);
      return result;
    };
    let clock = 0;
    let readMs = 50;
    const now = jest.spyOn(performance, "now").mockImplementation(() => (clock += readMs / 2));
    try {
      // Every other read 50 ms (a preempted thread on a busy machine): never a majority of the last 16.
      for (let i = 0; i < 40; i++) {
        readMs = i % 2 ? 0.05 : 50;
        expect(await blocked()).toBe(true);
      }
      readMs = 5; // slow storage
      const modes: boolean[] = [];
      for (let i = 0; i < 40; i++) modes.push(await blocked());
      expect(modes[0]).toBe(true);
      expect(modes.slice(-5)).toEqual([false, false, false, false, false]);
    } finally {
      now.mockRestore();
    }
  });
});
