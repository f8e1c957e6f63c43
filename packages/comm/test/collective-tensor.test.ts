import { allocateCollectiveTensor } from "../src";
import { kernelsHolding } from "../src/collective-tensor";

describe("allocateCollectiveTensor", () => {
  it("gives a zeroed tensor whose subarrays are known to its kernels, and nothing else is", () => {
    const tensor = allocateCollectiveTensor(1001);
    expect(tensor.length).toBe(1001);
    expect(tensor.every((x) => x === 0)).toBe(true);
    const kernels = kernelsHolding(tensor);
    expect(kernels).toBeDefined();
    expect(kernelsHolding(tensor.subarray(3, 900))).toBe(kernels);
    expect(kernelsHolding(new Float32Array(1001))).toBeUndefined();
    expect(kernelsHolding(allocateCollectiveTensor(10))).not.toBe(kernels);
    expect(allocateCollectiveTensor(0).length).toBe(0);
  });

  it("refuses lengths that are not non-negative integers", () => {
    for (const length of [-1, 1.5, Number.NaN]) expect(() => allocateCollectiveTensor(length)).toThrow(/non-negative integer/);
  });
});
