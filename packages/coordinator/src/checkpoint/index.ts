/**
 * Resumable checkpoints of a DINO run: `checkpoint-<step>/` folders written atomically,
 * verified by sha256 on load, pruned by a keep-last policy, exported for downstream use.
 */
export * from "./layout";
export * from "./errors";
export type { TrainingState, CheckpointStateFile } from "./training-state";
export type { WriterVersions } from "./versions";
export type { Manifest, ManifestEntry } from "./manifest";
export { writeCheckpoint, removeScratch } from "./write-checkpoint";
export { saveCheckpoint } from "./save-checkpoint";
export { readCheckpoint, readLatestPointer, resolveCheckpointPath, specMismatches, type LoadedCheckpoint } from "./read-checkpoint";
export { verifyCheckpoint, type CheckpointVerification, type CheckpointProblem } from "./verify-checkpoint";
export { listCheckpoints, type CheckpointListing } from "./list-checkpoints";
export { loadLatestValidCheckpoint, type LatestCheckpoint, type SkippedCheckpoint, type LoadLatestOptions, type CheckpointLogger } from "./load-latest";
export { pruneCheckpoints, type PruneResult } from "./prune";
export { exportWeights, exportedTensors, BACKBONE_PREFIX, type ExportOptions, type ExportResult, type Network } from "./export-weights";
export { compareResumeConfig, assertResumeConfig, settingClass, describeDifference, type ConfigDifference, type ResumeConfigComparison, type SettingClass } from "./resume-config";
export { stepCheckpointDue, epochCheckpointDue, CHECKPOINT_POLICY_DEFAULTS, type CheckpointPolicy, type SaveDecision } from "./save-policy";
export { l2Norm, networkNorms } from "./network-norms";
