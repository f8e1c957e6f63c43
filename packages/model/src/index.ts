// Graph building and reverse-mode differentiation
export { Graph } from "./graph/graph";
export type { Tensor, DType, Shape } from "./graph/tensor";
export { toOnnxBytes, OPSET } from "./graph/onnx-export";
export { gradients, MissingGradientRuleError } from "./autodiff/backward";
export { gradientRules } from "./autodiff/rules";

// Execution
export { CompiledGraph } from "./runtime/compiled-graph";
export { parseDevice, deviceName, sessionOptions, cudaProviderInstalled, DeviceError, CUDA_INSTALL_HINT } from "./runtime/device";
export type { Device } from "./runtime/device";
export { probeDevice, resolveDevice } from "./runtime/device-probe";

// The DINO networks, loss and step
export * from "./dino/config";
export { dinoParamSpecs, headLayers } from "./dino/param-specs";
export { posEmbedResizeMatrix } from "./dino/pos-embed-resize";
export { buildTeacherGraph, buildStudentStepGraph, INPUT, OUTPUT } from "./dino/train-graphs";
export { DinoStepSessions } from "./dino/step-sessions";
export type { StudentStepInputs, StudentStepResult } from "./dino/step-sessions";
export { fillDropPathMasks, DROP_PATH_STREAM } from "./dino/drop-path";

// Parameters, optimizer and schedules
export * from "./param-store";
export * from "./safetensors";
export * from "./random";
export * from "./init";
export * from "./schedules";
export * from "./optimizer";
export * from "./ema";

// Reference check
export { checkReference, readFixture, relativeError, FixtureError, TOLERANCE } from "./reference-check";
export type { ReferenceReport, QuantityReport } from "./reference-check";
export { benchStep } from "./bench-step";
export type { BenchStepOptions, BenchStepResult } from "./bench-step";
export { reportPlacement, parsePlacementLog } from "./runtime/placement";
export type { PlacementReport, ProviderPlacement } from "./runtime/placement";
