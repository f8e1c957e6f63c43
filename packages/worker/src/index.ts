export { runWorker, workerDevice, type WorkerOptions } from "./worker";
export { STUDENT_TEMP, CENTER_MOMENTUM, stepShapeOf, type RunConfig } from "./run-config";
export { StepBuffer, lastLayerOffset } from "./step-buffer";
export { encodeControl, decodeControl, readPayload, checksumOf, withTimeout, type ControlMessage, type Envelope, type EnvelopeBody } from "./control-channel";
export { ControlTimeoutError, CoordinatorLostError, ProtocolError, RunAbortedError } from "./errors";
export { advertisedAddress, freeCollectiveEndpoints, hostOf, type CollectiveEndpoints } from "./collective-endpoints";
export { Outbox } from "./outbox";
export { optimizerFrames, loadOptimizerFrames, OPTIMIZER_FRAME_COUNT } from "./optimizer-frames";
