import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type { InferenceSession } from "onnxruntime-node";

export type Device = { kind: "cpu" } | { kind: "cuda"; index: number } | { kind: "webgpu"; index: number };

export class DeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceError";
  }
}

/** Parses `cpu`, `cuda`, `cuda:1`, `webgpu` or `webgpu:0` (for `auto`, see resolveDevice). */
export function parseDevice(spec: string): Device {
  const m = /^(cpu|cuda|webgpu|auto)(?::(\d+))?$/.exec(spec.trim());
  if (!m || (m[1] === "cpu" && m[2] !== undefined) || (m[1] === "auto" && m[2] !== undefined)) {
    throw new DeviceError(`invalid device "${spec}": expected cpu, cuda[:i], webgpu[:i] or auto`);
  }
  if (m[1] === "auto") throw new DeviceError(`"auto" needs a probe of the machine: use resolveDevice("auto")`);
  if (m[1] === "cpu") return { kind: "cpu" };
  return { kind: m[1] as "cuda" | "webgpu", index: Number(m[2] ?? 0) };
}

export function deviceName(d: Device): string {
  return d.kind === "cpu" ? "cpu" : `${d.kind}:${d.index}`;
}

/** Folder holding onnxruntime-node's native binaries for this platform. */
function onnxruntimeBinaryDir(): string {
  const pkg = require.resolve("onnxruntime-node/package.json");
  return join(dirname(pkg), "bin", "napi-v6", process.platform, process.arch);
}

/** The CUDA provider ships separately: onnxruntime-node's installer downloads it on request. */
export function cudaProviderInstalled(binaryDir = onnxruntimeBinaryDir()): boolean {
  return existsSync(join(binaryDir, "libonnxruntime_providers_cuda.so"));
}

export const CUDA_INSTALL_HINT =
  "the CUDA execution provider is not installed in onnxruntime-node (its installer downloads it separately). " +
  "On a machine with CUDA 12 and network access run `bash infra/install-cuda-provider.sh` " +
  "(onnxruntime-node's installer with ONNXRUNTIME_NODE_INSTALL=cuda12, the same as npm's --onnxruntime-node-install=cuda12; " +
  "infra/Dockerfile.gpu does this), or use --device webgpu or --device cpu";

export interface SessionTuning {
  threads?: number;
  binaryDir?: string;
  /**
   * The graph is written in fused ops already (Gemm, LayerNormalization, Gelu), so on CPU
   * ORT's graph optimizer is skipped. Measured on the vit_tiny student step (3.8k nodes): it
   * spent 0.45 s of each session's creation (mostly re-validating the graph after each of
   * its few fusions) for no measurable run time (−1 ± 10 ms a 1.9 s step, 16 repetitions).
   */
  alreadyFused?: boolean;
}

/** Session options for a device; throws a DeviceError where the device cannot work here. */
export function sessionOptions(device: Device, { threads, binaryDir, alreadyFused = false }: SessionTuning = {}): InferenceSession.SessionOptions {
  const base: InferenceSession.SessionOptions = {
    graphOptimizationLevel: "all",
    ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
  };
  switch (device.kind) {
    case "cpu":
      // The memory pattern makes ORT allocate each run's activations as one block sized on the
      // first run; on CPU that block is fresh, page-faulted memory: measured on the vit_tiny step
      // (batch 4, 1 thread) the second run took 4.7 s instead of 1.9 s, steady runs ~6% slower,
      // and peak RSS was 2.1 GB instead of 1.4 GB. The arena alone reuses blocks across runs.
      return { ...base, ...(alreadyFused && { graphOptimizationLevel: "disabled" }), enableMemPattern: false, executionProviders: ["cpu"] };
    case "cuda":
      if (!cudaProviderInstalled(binaryDir)) throw new DeviceError(`--device ${deviceName(device)}: ${CUDA_INSTALL_HINT}`);
      return { ...base, executionProviders: [{ name: "cuda", deviceId: device.index }] };
    case "webgpu":
      // onnxruntime-node's WebGPU provider takes no adapter index: Dawn picks the adapter.
      if (device.index !== 0) {
        throw new DeviceError(
          `--device ${deviceName(device)}: the WebGPU provider cannot choose among adapters; expose one GPU to each process (e.g. one GPU per pod) and use webgpu:0`,
        );
      }
      return { ...base, executionProviders: [{ name: "webgpu" }] };
  }
}
