import type { AdamW, AdamWState } from "@dino-coord/model";
import { ProtocolError } from "./errors";
import { readPayload } from "./control-channel";

/**
 * A resumed run's AdamW state travels with the InitialState as three extra payload frames
 * after the student: [exp_avg, exp_avg_sq, per-tensor step counters]. The
 * workers apply the same update as the coordinator to their student replicas, so they
 * need the same moments and counters, or the replicas (and the run) diverge from the
 * uninterrupted one. A fresh run sends no such frames: the optimizer starts at zero.
 */
export const OPTIMIZER_FRAME_COUNT = 3;

/** The frames to append to an InitialState (counters as float32: exact below 2^24 steps). */
export function optimizerFrames(state: AdamWState): Float32Array[] {
  for (const count of state.steps) {
    if (count >= 2 ** 24) throw new RangeError(`an optimizer step counter is ${count}, too large to send as float32`);
  }
  return [state.expAvg, state.expAvgSq, Float32Array.from(state.steps)];
}

/** Loads the optimizer frames (`frames` = the InitialState's payloads after the student) into `adamw`; none: leaves it fresh. */
export function loadOptimizerFrames(adamw: AdamW, frames: readonly Buffer[]): void {
  if (frames.length === 0) return;
  if (frames.length !== OPTIMIZER_FRAME_COUNT) throw new ProtocolError(`the initial state carries ${frames.length} optimizer frame(s), expected ${OPTIMIZER_FRAME_COUNT} or none`);
  const expAvg = new Float32Array(adamw.store.size);
  const expAvgSq = new Float32Array(adamw.store.size);
  const counters = new Float32Array(adamw.store.specs.length);
  readPayload(frames[0], expAvg, "optimizer exp_avg");
  readPayload(frames[1], expAvgSq, "optimizer exp_avg_sq");
  readPayload(frames[2], counters, "optimizer step counters");
  if (!counters.every((c) => Number.isInteger(c) && c >= 0)) throw new ProtocolError("the initial state's optimizer step counters are not non-negative integers");
  adamw.loadState({ expAvg, expAvgSq, steps: Int32Array.from(counters) });
}
