import { dinoParamSpecs, ParamStore, tinyDemoConfig } from "@dino-coord/model";
import { lastLayerOffset, StepBuffer } from "../src/step-buffer";

describe("StepBuffer [loss | teacher-output sums | gradient]", () => {
  const config = tinyDemoConfig({ outDim: 16 });
  const store = new ParamStore(dinoParamSpecs(config));
  const K = config.outDim;

  test("a frozen step reduces everything but the last layer's gradient, which is the store's tail", () => {
    const buffer = new StepBuffer(store.specs, K, (length) => new Float32Array(length));
    expect(buffer.data.length).toBe(1 + K + store.size);
    const offset = lastLayerOffset(store.specs);
    const tail = store.specs.filter((s) => s.name.startsWith("head.last_layer.")).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
    expect(offset).toBe(store.size - tail);
    expect(buffer.reduced(true).length).toBe(1 + K + offset);
    expect(buffer.reduced(false)).toBe(buffer.data);
  });

  test("averageOver divides the loss and the gradient by the world size, not the column sums; frozen leaves the last layer alone", () => {
    const buffer = new StepBuffer(store.specs, K, (length) => new Float32Array(length));
    buffer.data.fill(6);
    buffer.averageOver(3, true);
    expect(buffer.loss).toBe(2);
    expect(buffer.teacherOutputSum.every((v) => v === 6)).toBe(true);
    const offset = lastLayerOffset(store.specs);
    expect(buffer.gradient.subarray(0, offset).every((v) => v === 2)).toBe(true);
    expect(buffer.gradient.subarray(offset).every((v) => v === 6)).toBe(true);
    buffer.averageOver(2, false);
    expect(buffer.gradient.subarray(offset).every((v) => v === 3)).toBe(true);
  });

  test("a store whose last layer is not at its end is refused", () => {
    const specs = dinoParamSpecs(config);
    const reordered = [specs[specs.length - 1], ...specs.slice(0, -1)];
    expect(() => new StepBuffer(new ParamStore(reordered).specs, K, (length) => new Float32Array(length))).toThrow(/follows the last layer's tensors/);
  });
});
