import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import {
  AugmentPool,
  AugmentTimeoutError,
  DataFolderError,
  batchesPerEpoch,
  decodeRgb,
  isFourComponentJpeg,
  MultiCropRenderer,
  scanImageFolder,
  shardBatchIndices,
  type AugmentedBatch,
  type ImageFolderDataset,
} from "../src";
import pino from "pino";
import { Writable } from "node:stream";
import { makeDataset, removeTempDirs } from "./fixtures";

// Worker threads run the compiled dist/ (the turbo test task depends on build).
const distWorker = path.join(__dirname, "..", "dist", "augment-worker.js");
if (!existsSync(distWorker)) throw new Error(`build the package first: ${distWorker} is missing`);

const config = { globalSize: 32, localSize: 16, localCrops: 3 };

async function run(dataset: ImageFolderDataset, threads: number, indices: number[], epoch = 0): Promise<AugmentedBatch> {
  const pool = new AugmentPool({ dataset, config, threads, seed: 42, timeoutMs: 30_000 });
  try {
    return await pool.batch({ epoch, indices });
  } finally {
    await pool.close();
  }
}

describe("AugmentPool", () => {
  afterAll(removeTempDirs);
  let dataset: ImageFolderDataset;
  let badIndices: number[];
  beforeAll(async () => {
    const { root, bad } = await makeDataset();
    dataset = await scanImageFolder(root);
    badIndices = bad.map((file) => dataset.files.indexOf(path.relative(root, file)));
    expect(badIndices.every((i) => i >= 0)).toBe(true);
  });

  it("decodes every awkward format to 8-bit RGB", async () => {
    for (let i = 0; i < dataset.files.length; i++) {
      const file = path.join(dataset.root, dataset.files[i]);
      if (badIndices.includes(i)) {
        await expect(decodeRgb(file)).rejects.toThrow(/unreadable image/);
      } else {
        const image = await decodeRgb(file);
        expect(image.data.length).toBe(image.width * image.height * 3);
        expect(isFourComponentJpeg(readFileSync(file))).toBe(file.endsWith("i_cmyk.jpg"));
      }
    }
  });

  it("makes crop-major batches, skips unreadable files deterministically and counts them", async () => {
    const all = dataset.files.map((_, i) => i);
    const batch = await run(dataset, 2, all);
    const B = all.length;
    expect(batch.globals.length).toBe(2 * B * 3 * 32 * 32);
    expect(batch.locals.length).toBe(3 * B * 3 * 16 * 16);
    // Replacement = next index, wrapping, skipping further bad ones: x_empty → 6; y_truncated → z_text (bad) → 0; z_text → 0.
    const nextGood = (i: number): number => (badIndices.includes(i) ? nextGood((i + 1) % B) : i);
    let expectedSkips = 0;
    for (const bad of badIndices) {
      expect(batch.indices[bad]).toBe(nextGood(bad));
      for (let i = bad; badIndices.includes(i); i = (i + 1) % B) expectedSkips++;
    }
    expect(batch.skipped).toBe(expectedSkips);
    expect(expectedSkips).toBe(4);
    expect(Array.from(batch.requested)).toEqual(all);
    expect(batch.globals.every(Number.isFinite) && batch.locals.every(Number.isFinite)).toBe(true);
    // A replaced slot holds exactly the crops its replacement gets in its own slot (crop 0 and local crop 2).
    const bad = badIndices[0];
    const plane = 3 * 32 * 32;
    const ownSlot = nextGood(bad);
    expect(Array.from(batch.globals.subarray(bad * plane, (bad + 1) * plane))).toEqual(Array.from(batch.globals.subarray(ownSlot * plane, (ownSlot + 1) * plane)));
    const localPlane = 3 * 16 * 16;
    expect(Array.from(batch.locals.subarray(bad * localPlane, (bad + 1) * localPlane))).toEqual(Array.from(batch.locals.subarray(ownSlot * localPlane, (ownSlot + 1) * localPlane)));
    // Different crops of the same image differ.
    expect(Array.from(batch.globals.subarray(0, plane))).not.toEqual(Array.from(batch.globals.subarray(B * plane, B * plane + plane)));
  });

  it("gives bit-identical batches across runs and thread counts, independent of batch position", async () => {
    const indices = [3, 0, 7, 9, 1, 6];
    const one = await run(dataset, 1, indices);
    const two = await run(dataset, 2, indices);
    const again = await run(dataset, 2, indices);
    expect(Buffer.from(two.globals.buffer, 0, two.globals.byteLength).equals(Buffer.from(one.globals.buffer, 0, one.globals.byteLength))).toBe(true);
    expect(Buffer.from(two.locals.buffer, 0, two.locals.byteLength).equals(Buffer.from(one.locals.buffer, 0, one.locals.byteLength))).toBe(true);
    expect(Buffer.from(again.globals.buffer, 0, again.globals.byteLength).equals(Buffer.from(one.globals.buffer, 0, one.globals.byteLength))).toBe(true);
    // Index 7 alone (slot 0 of a batch of 1) equals its crop 1 in slot 2 of the batch of 6.
    const single = await run(dataset, 1, [7]);
    const plane = 3 * 32 * 32;
    expect(Array.from(single.globals.subarray(plane, 2 * plane))).toEqual(Array.from(one.globals.subarray((6 + 2) * plane, (6 + 3) * plane)));
    // Another epoch gives other crops.
    const nextEpoch = await run(dataset, 1, indices, 1);
    expect(Array.from(nextEpoch.globals.subarray(0, plane))).not.toEqual(Array.from(one.globals.subarray(0, plane)));
  });

  it("equals MultiCropRenderer.render in-process while a worker decodes several images and renders them crop by crop", async () => {
    const good = dataset.files.map((_, i) => i).filter((i) => !badIndices.includes(i));
    const pool = new AugmentPool({ dataset, config, threads: 1, tasksPerThread: 4, seed: 42 });
    try {
      const batch = await pool.batch({ epoch: 2, indices: good });
      const renderer = new MultiCropRenderer(pool.config, 42);
      const globals = new Float32Array(batch.globals.length);
      const locals = new Float32Array(batch.locals.length);
      for (let slot = 0; slot < good.length; slot++) {
        const image = await decodeRgb(path.join(dataset.root, dataset.files[good[slot]]));
        renderer.render(image, 2, good[slot], { slot, batchSize: good.length, globals, locals });
      }
      expect(Buffer.from(batch.globals.buffer, 0, batch.globals.byteLength).equals(Buffer.from(globals.buffer))).toBe(true);
      expect(Buffer.from(batch.locals.buffer, 0, batch.locals.byteLength).equals(Buffer.from(locals.buffer))).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it("reuses a recycled batch's shared memories for the next batch of the same size", async () => {
    const pool = new AugmentPool({ dataset, config, threads: 1, seed: 42 });
    try {
      const first = await pool.batch({ epoch: 0, indices: [0, 1] });
      const copy = first.globals.slice();
      pool.recycle(first);
      const second = await pool.batch({ epoch: 0, indices: [0, 1] });
      // Memories are pooled by size: here globals and locals both fit one page, so either may come back for either.
      const recycled = [first.globals.buffer, first.locals.buffer];
      expect(recycled.some((buffer) => buffer === second.globals.buffer)).toBe(true);
      expect(recycled.some((buffer) => buffer === second.locals.buffer)).toBe(true);
      expect(second.globals).toEqual(copy);
    } finally {
      await pool.close();
    }
  });

  it("iterates a rank's epoch with prefetch, matching the sampler", async () => {
    const pool = new AugmentPool({ dataset, config, threads: 2, seed: 42, prefetch: 2 });
    try {
      const spec = { epoch: 1, world: 2, rank: 1, batchSize: 2 };
      const expected = shardBatchIndices({ ...spec, datasetSize: dataset.files.length, seed: 42 });
      const got: number[][] = [];
      for await (const batch of pool.iterateEpoch({ ...spec, startBatch: 1 })) {
        got.push(Array.from(batch.requested));
        pool.recycle(batch);
      }
      expect(got).toEqual(expected.slice(1).map((b) => Array.from(b)));
      expect(got.length).toBe(batchesPerEpoch({ datasetSize: dataset.files.length, world: 2, batchSize: 2 }) - 1);
    } finally {
      await pool.close();
    }
  });

  it("fails with a typed error instead of hanging when a worker exceeds its timeout, and replaces the worker", async () => {
    const pool = new AugmentPool({ dataset, config, threads: 1, timeoutMs: 1, startupTimeoutMs: 30_000 });
    try {
      await pool.ready();
      await expect(pool.batch({ epoch: 0, indices: [0, 1] })).rejects.toThrow(/image .* did not finish within 1 ms/);
      await pool.ready(); // the replacement worker starts
    } finally {
      await pool.close();
    }
    const neverStarts = new AugmentPool({ dataset, config, threads: 1, startupTimeoutMs: 1 });
    try {
      await expect(neverStarts.batch({ epoch: 0, indices: [0] })).rejects.toThrow(AugmentTimeoutError);
    } finally {
      await neverStarts.close();
    }
  });

  it("logs skipped files through the injected pino logger", async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const logger = pino({ level: "warn" }, sink);
    const pool = new AugmentPool({ dataset, config, threads: 1, seed: 1, logger });
    try {
      const batch = await pool.batch({ epoch: 0, indices: [badIndices[0]] });
      expect(batch.skipped).toBe(1);
    } finally {
      await pool.close();
    }
    const records = lines.map((l) => JSON.parse(l));
    expect(records).toEqual([expect.objectContaining({ component: "augment-pool", index: badIndices[0], msg: "skipping unreadable image" })]);
    expect(records[0].path).toContain("x_empty.jpg");
  });

  it("reports a dataset whose files are all unreadable", async () => {
    const onlyBad: ImageFolderDataset = { ...dataset, files: badIndices.map((i) => dataset.files[i]), targets: [0, 0, 0] };
    await expect(run(onlyBad, 1, [0, 1])).rejects.toThrow(DataFolderError);
    await expect(run(onlyBad, 1, [0])).rejects.toThrow(/none of its 3 images could be decoded/);
  });
});
