/** The training loop's one call: write atomically, then apply retention. */
import { pruneCheckpoints, type PruneResult } from "./prune";
import type { TrainingState } from "./training-state";
import { writeCheckpoint } from "./write-checkpoint";

export function saveCheckpoint(runDir: string, state: TrainingState, options: { keepLast: number }): { path: string; pruned: PruneResult } {
  const path = writeCheckpoint(runDir, state);
  return { path, pruned: pruneCheckpoints(runDir, options.keepLast) };
}
