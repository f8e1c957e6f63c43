export { runWorker, workerDevice, type WorkerOptions } from "./worker";
export { STUDENT_TEMP, CENTER_MOMENTUM, stepShapeOf, type RunConfig } from "./run-config";
export { encodeControl, decodeControl, readPayload, checksumOf, withTimeout, type ControlMessage, type Envelope, type EnvelopeBody } from "./control-channel";
export { ControlTimeoutError, ProtocolError, RunAbortedError } from "./errors";
export { Outbox } from "./outbox";
export { synthesizeImageFolder, type SynthOptions } from "./synth-images";
