/** Collectives over ZeroMQ for dino-coord: ring all-reduce and chain broadcast. */
export { RingAllReduce, type RingAllReduceOptions } from "./ring-all-reduce";
export { BroadcastRoot, type BroadcastRootOptions } from "./broadcast-root";
export { BroadcastReceiver, type BroadcastReceiverOptions } from "./broadcast-receiver";
export type { MessageDecoder, MessageEncoder } from "./broadcast-chain";
export { type CollectiveOptions, DEFAULT_CHUNK_BYTES } from "./options";
export {
  CollectiveAbortedError,
  CollectiveError,
  CollectiveMismatchError,
  type CollectiveOperation,
  CollectiveTimeoutError,
  CollectiveUsageError,
} from "./errors";
export type { InboxStats } from "./frame-inbox";
export type { RejectionReason } from "./frame";
export { freeIpcEndpoint, freeTcpEndpoint } from "./endpoints";
export { RECOMMENDED_PROCESS_ENV } from "./process-env";
export { RingLayout } from "./ring-layout";
export { PayloadKernels } from "./payload-kernels";
export { allocateCollectiveTensor } from "./collective-tensor";
export { allocateSharedTensor } from "./shared-tensor";
export { benchAllReduce, benchBroadcast, type BenchOptions, type BenchResult } from "./bench/bench-collectives";
