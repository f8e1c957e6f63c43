import { batchFloats, BatchTensorWriter, createBatchMemory, createBatchMemoryBytes, maxCropSize } from "../src/batch-memory";
import { resolveAugmentConfig, writeNormalizedChw } from "../src";
import { noise } from "./fixtures";

/** The tensor write straight into a batch's shared memory (what the pool's workers use) against normalize.ts. */
describe("BatchTensorWriter", () => {
  const config = resolveAugmentConfig({ globalSize: 24, localSize: 12, localCrops: 2 });
  const B = 3;

  it("sizes the memory for the floats and one pixel area per lane, shared and of fixed size", () => {
    const floats = batchFloats(config, B);
    expect(floats).toEqual({ globals: 2 * B * 3 * 24 * 24, locals: 2 * B * 3 * 12 * 12 });
    expect(batchFloats(resolveAugmentConfig({ localCrops: 0 }), B).locals).toBe(1);
    const memory = createBatchMemory(floats.globals, 4, maxCropSize(config));
    expect(Object.prototype.toString.call(memory.buffer)).toBe("[object SharedArrayBuffer]");
    expect(memory.buffer.byteLength).toBe(createBatchMemoryBytes(floats.globals, 4, maxCropSize(config)));
    expect(memory.buffer.byteLength).toBeGreaterThanOrEqual(floats.globals * 4 + 4 * 24 * 24 * 3);
  });

  it("writes each crop bit for bit as writeNormalizedChw, flipped or not, solarized or not, touching nothing else; two lanes at once", () => {
    const floats = batchFloats(config, B).globals;
    const memory = createBatchMemory(floats, 2, 24);
    const tensor = new Float32Array(memory.buffer, 0, floats);
    const sentinel = -7.25;
    tensor.fill(sentinel);
    const lanes = [BatchTensorWriter.create(memory, floats, 0, 24), BatchTensorWriter.create(memory, floats, 1, 24)];
    const expected = new Float32Array(floats).fill(sentinel);
    const plane = 3 * 24 * 24;
    let seed = 1;
    for (const [crop, slot, lane, flip, solarize] of [[0, 1, 0, false, false], [1, 0, 1, true, false], [0, 2, 1, true, true], [1, 2, 0, false, true]] as const) {
      const px = new Uint8Array(noise(24, 24, 3, seed++));
      const offset = (crop * B + slot) * plane;
      expect(lanes[lane]?.write(px, 24, flip, solarize, offset)).toBe(true);
      writeNormalizedChw(px, 24, flip, solarize, expected, offset);
    }
    expect(Buffer.from(tensor.slice().buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });

  it("declines sizes that are not multiples of 4 (the kernel's step would spill into a neighbour's crop) and sizes above its maximum", () => {
    const memory = createBatchMemory(1000, 1, 24);
    const writer = BatchTensorWriter.create(memory, 1000, 0, 24) as BatchTensorWriter;
    const tensor = new Float32Array(memory.buffer, 0, 1000).fill(3);
    expect(writer.write(new Uint8Array(10 * 10 * 3), 10, false, false, 0)).toBe(false);
    expect(writer.write(new Uint8Array(28 * 28 * 3), 28, false, false, 0)).toBe(false);
    expect(tensor.every((v) => v === 3)).toBe(true);
  });
});
