import { AdamW, ParamStore, paramCount, studentUpdate, type ParamSpec, type StudentUpdateOptions } from "@dino-coord/model";
import type { dino } from "@dino-coord/proto";
import { checksumOf, readPayload } from "./control-channel";
import { ProtocolError } from "./errors";
import { loadOptimizerFrames } from "./optimizer-frames";
import type { StepBuffer } from "./step-buffer";

/**
 * The student a worker trains with, as its InitialState says.
 *
 * On the coordinator's host the worker reads the coordinator's own student where it lies in
 * shared memory (read-only): there is one student, which the coordinator updates after the
 * all-reduce that each worker enters after its last read of it. Each worker is then spared a
 * replica, its AdamW moments (3 model sizes of memory) and an update per step.
 *
 * Elsewhere the worker keeps a replica and applies the same update as the coordinator, so
 * the two stay bitwise equal; a checksum compares them when the coordinator asks.
 */
export interface StudentSource {
  readonly params: ParamStore;
  /** With the first broadcast's teacher: a fresh replica starts as a copy of it (the reference copies one into the other). */
  startFrom(teacher: ParamStore): void;
  /** After the step's all-reduce: DDP's mean and the update on a replica; nothing on the shared student. */
  update(stepBuffer: StepBuffer, world: number, lastLayerFrozen: boolean, options: StudentUpdateOptions): void;
  /** The replica's checksum for the coordinator's comparison; null for the shared student (nothing to compare). */
  checksum(): string | null;
}

/** Reads the coordinator's student at `location` (BroadcastReceiver.viewRootTensor). */
export type SharedStudentView = (location: { file: string; byteOffset: number }, length: number) => Float32Array;

export function studentFromInitialState(
  state: dino.control.IInitialState,
  payloads: readonly Buffer[],
  specs: readonly ParamSpec[],
  viewShared: SharedStudentView,
): StudentSource {
  if (state.sharedStudentFile) {
    if (payloads.length > 0) throw new ProtocolError(`an initial state that shares the student carries ${payloads.length} payload frame(s), expected none`);
    const params = new ParamStore(specs, viewShared({ file: state.sharedStudentFile, byteOffset: state.sharedStudentOffset ?? 0 }, paramCount(specs)));
    return { params, startFrom: () => undefined, update: () => undefined, checksum: () => null };
  }
  return new StudentReplica(state, payloads, specs);
}

class StudentReplica implements StudentSource {
  readonly params: ParamStore;
  private readonly adamw: AdamW;
  private copyTeacher: boolean;

  constructor(state: dino.control.IInitialState, payloads: readonly Buffer[], specs: readonly ParamSpec[]) {
    this.params = new ParamStore(specs);
    this.copyTeacher = state.studentIsTeacher ?? false;
    if (this.copyTeacher && payloads.length > 0) {
      throw new ProtocolError(`a fresh run's initial state carries ${payloads.length} payload frame(s), expected none`);
    }
    if (!this.copyTeacher) readPayload(payloads[0], this.params.data, "initial student");
    this.adamw = new AdamW(this.params);
    loadOptimizerFrames(this.adamw, payloads.slice(1)); // a resumed run's AdamW state
  }

  startFrom(teacher: ParamStore): void {
    if (!this.copyTeacher) return;
    this.params.data.set(teacher.data);
    this.copyTeacher = false;
  }

  update(stepBuffer: StepBuffer, world: number, lastLayerFrozen: boolean, options: StudentUpdateOptions): void {
    stepBuffer.averageOver(world, lastLayerFrozen);
    // The coordinator stops the run on a non-finite loss (keeping the state before this step) and aborts.
    if (!Number.isFinite(stepBuffer.loss)) return;
    studentUpdate(this.adamw, this.params.data, stepBuffer.gradient, options);
  }

  checksum(): string {
    return checksumOf(this.params.data);
  }
}
