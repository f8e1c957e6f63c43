import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cudaProviderInstalled, DeviceError, parseDevice, sessionOptions } from "../src/runtime/device";
import { probeDevice, resolveDevice } from "../src/runtime/device-probe";

describe("device flags", () => {
  test.each([
    ["cpu", { kind: "cpu" }],
    ["cuda", { kind: "cuda", index: 0 }],
    ["cuda:3", { kind: "cuda", index: 3 }],
    ["webgpu", { kind: "webgpu", index: 0 }],
  ])("%s parses", (spec, device) => expect(parseDevice(spec)).toEqual(device));

  test.each(["gpu", "cuda:", "cuda:x", "cpu:0", "auto:1", ""])("%s is refused with the accepted forms", (spec) => {
    expect(() => parseDevice(spec)).toThrow(/expected cpu, cuda\[:i\], webgpu\[:i\] or auto/);
  });
});

describe("session options", () => {
  test("cpu: the CPU provider with the requested intra-op threads", () => {
    expect(sessionOptions({ kind: "cpu" }, { threads: 3 })).toMatchObject({ executionProviders: ["cpu"], intraOpNumThreads: 3, interOpNumThreads: 1, enableMemPattern: false });
  });

  test("cpu: a graph in fused ops already skips ORT's graph optimizer; others get all of it", () => {
    expect(sessionOptions({ kind: "cpu" }, { alreadyFused: true }).graphOptimizationLevel).toBe("disabled");
    expect(sessionOptions({ kind: "cpu" }).graphOptimizationLevel).toBe("all");
  });

  test("cuda:i where the provider library is installed: the CUDA provider on device i, with every graph optimization", () => {
    const dir = mkdtempSync(join(tmpdir(), "ort-bin-"));
    writeFileSync(join(dir, "libonnxruntime_providers_cuda.so"), "");
    expect(cudaProviderInstalled(dir)).toBe(true);
    expect(sessionOptions({ kind: "cuda", index: 2 }, { binaryDir: dir }).executionProviders).toEqual([{ name: "cuda", deviceId: 2 }]);
    expect(sessionOptions({ kind: "cuda", index: 2 }, { binaryDir: dir, alreadyFused: true }).graphOptimizationLevel).toBe("all");
  });

  test("cuda where the provider is missing: an error that says how to install it", () => {
    const empty = mkdtempSync(join(tmpdir(), "ort-bin-"));
    expect(() => sessionOptions({ kind: "cuda", index: 0 }, { binaryDir: empty })).toThrow(DeviceError);
    expect(() => sessionOptions({ kind: "cuda", index: 0 }, { binaryDir: empty })).toThrow(/onnxruntime-node-install=cuda12/);
  });

  test("webgpu: the WebGPU provider; adapter indices other than 0 are refused", () => {
    expect(sessionOptions({ kind: "webgpu", index: 0 }).executionProviders).toEqual([{ name: "webgpu" }]);
    expect(() => sessionOptions({ kind: "webgpu", index: 1 })).toThrow(/one GPU to each process/);
  });
});

describe("probing", () => {
  test("the CPU always answers", async () => {
    await expect(probeDevice({ kind: "cpu" })).resolves.toBeUndefined();
    await expect(resolveDevice("cpu")).resolves.toEqual({ kind: "cpu" });
  });

  // This machine class has no GPU, no Vulkan driver and no CUDA provider: the GPU paths
  // must fail at start with what was looked for, and auto must fall back to the CPU.
  const noGpu = !cudaProviderInstalled();
  (noGpu ? test : test.skip)("without a GPU: webgpu fails at start naming the Vulkan loader, auto picks cpu", async () => {
    await expect(resolveDevice("webgpu")).rejects.toThrow(/libvulkan\.so\.1/);
    await expect(resolveDevice("auto")).resolves.toEqual({ kind: "cpu" });
  });
});
