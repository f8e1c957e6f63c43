/**
 * When the training loop saves, and which saves are kept forever. Mirrors the reference's
 * end of epoch (`checkpoint.pth` every epoch, `checkpoint{epoch:04}.pth` when
 * `epoch % saveckp_freq == 0`) and adds step checkpoints for runs that last days.
 *
 * A checkpoint saved at the end of epoch e records the position to resume from:
 * `epoch = e + 1, iterInEpoch = 0`.
 */
export interface CheckpointPolicy {
  /** `--save-every-steps`: a step checkpoint every this many optimizer steps; 0 disables them. */
  saveEverySteps: number;
  /** `--keep-last`: how many unpinned checkpoints pruning keeps. */
  keepLast: number;
  /** `--saveckp-freq`: end-of-epoch checkpoints of epochs divisible by it are pinned; 0 pins none. */
  saveckpFreq: number;
}

export const CHECKPOINT_POLICY_DEFAULTS: CheckpointPolicy = { saveEverySteps: 1000, keepLast: 3, saveckpFreq: 20 };

export interface SaveDecision {
  save: boolean;
  pinned: boolean;
}

/** After optimizer step number `step` (1-based count of completed steps). */
export function stepCheckpointDue(policy: CheckpointPolicy, step: number): SaveDecision {
  return { save: policy.saveEverySteps > 0 && step > 0 && step % policy.saveEverySteps === 0, pinned: false };
}

/** After finishing 0-based epoch `epoch`: always save (the reference's checkpoint.pth), pinned on the saveckp-freq epochs. */
export function epochCheckpointDue(policy: CheckpointPolicy, epoch: number): SaveDecision {
  return { save: true, pinned: policy.saveckpFreq > 0 && epoch % policy.saveckpFreq === 0 };
}
