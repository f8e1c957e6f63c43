import { Graph } from "../graph/graph";
import { CompiledGraph } from "./compiled-graph";
import { cudaProviderInstalled, Device, DeviceError, deviceName, parseDevice } from "./device";

const HINTS: Record<Device["kind"], string> = {
  cpu: "",
  cuda: "check that the NVIDIA driver and CUDA 12 runtime libraries are visible to this process (nvidia-smi, LD_LIBRARY_PATH)",
  webgpu:
    "the WebGPU provider (Dawn) looks for a Vulkan loader (libvulkan.so.1) and a GPU driver that provides a Vulkan ICD " +
    "(NVIDIA, AMD or Intel; a container needs the driver's Vulkan files mounted, e.g. NVIDIA_DRIVER_CAPABILITIES=graphics,compute); " +
    "scripts/gpu-check.sh checks both",
};

/**
 * Runs a one-node graph on the device, so that a missing driver or adapter fails at
 * start with a message that says what was looked for, never deep inside a step.
 */
export async function probeDevice(device: Device): Promise<void> {
  const g = new Graph("device_probe");
  const x = g.input("x", [2]);
  g.output(g.add(x, x), "y");
  let compiled: CompiledGraph | undefined;
  try {
    compiled = await CompiledGraph.create(g, device);
    const { y } = await compiled.run({ x: new Float32Array([1, 2]) });
    if (y[0] !== 2 || y[1] !== 4) throw new Error(`the probe computed [${y[0]}, ${y[1]}] instead of [2, 4]`);
  } catch (err) {
    if (err instanceof DeviceError) throw err;
    // ONNX Runtime prefixes its own source location and failed condition; keep the reason.
    const cause = (err as Error).message.split("\n")[0].replace(/^.* was false\. /, "");
    throw new DeviceError(`--device ${deviceName(device)} cannot run here: ${cause}. ${HINTS[device.kind]}`);
  } finally {
    await compiled?.release();
  }
}

/** `auto`: CUDA where its provider is installed, else WebGPU where an adapter answers, else CPU. */
export async function resolveDevice(spec: string): Promise<Device> {
  if (spec.trim() !== "auto") {
    const device = parseDevice(spec);
    await probeDevice(device);
    return device;
  }
  if (cudaProviderInstalled()) {
    const cuda: Device = { kind: "cuda", index: 0 };
    try {
      await probeDevice(cuda);
      return cuda;
    } catch {
      // fall through to the next candidate
    }
  }
  try {
    const webgpu: Device = { kind: "webgpu", index: 0 };
    await probeDevice(webgpu);
    return webgpu;
  } catch {
    return { kind: "cpu" };
  }
}
