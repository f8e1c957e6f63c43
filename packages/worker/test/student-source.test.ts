import { AdamW, dinoParamSpecs, ParamStore, studentUpdate, tinyDemoConfig } from "@dino-coord/model";
import { checksumOf } from "../src/control-channel";
import { ProtocolError } from "../src/errors";
import { optimizerFrames } from "../src/optimizer-frames";
import { StepBuffer } from "../src/step-buffer";
import { studentFromInitialState } from "../src/student-source";

const config = tinyDemoConfig({ outDim: 16 });
const specs = dinoParamSpecs(config);
const UPDATE = { lr: 0.01, weightDecay: 0.04, clipGrad: 3, epoch: 0, freezeLastLayer: 0 };
const noView = () => {
  throw new Error("a replica must not look for a shared student");
};

/** Bitwise equality, without jest's element-by-element diff of large arrays. */
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function ramp(store: ParamStore, scale: number): ParamStore {
  store.data.forEach((_, i) => (store.data[i] = scale * Math.sin(i)));
  return store;
}

function gradientStep(store: ParamStore, world: number): StepBuffer {
  const buffer = new StepBuffer(store.specs, config.outDim, (length) => new Float32Array(length));
  buffer.data.forEach((_, i) => (buffer.data[i] = Math.cos(i)));
  buffer.loss = 4;
  buffer.gradient.forEach((_, i) => (buffer.gradient[i] = world * 0.001 * Math.cos(3 * i)));
  return buffer;
}

describe("the student a worker trains with", () => {
  test("shared: the coordinator's student where it lies, which the worker never changes or checksums", () => {
    const coordinators = ramp(new ParamStore(specs), 0.02);
    const asked: Array<{ file: string; byteOffset: number; length: number }> = [];
    const source = studentFromInitialState({ step: 0, sharedStudentFile: "dino-comm-tensor-1-0-ab", sharedStudentOffset: 64 }, [], specs, (location, length) => {
      asked.push({ ...location, length });
      return coordinators.data;
    });
    expect(asked).toEqual([{ file: "dino-comm-tensor-1-0-ab", byteOffset: 64, length: coordinators.size }]);
    expect(source.params.data).toBe(coordinators.data);
    const before = coordinators.data.slice();
    source.startFrom(ramp(new ParamStore(specs), 0.5));
    source.update(gradientStep(source.params, 2), 2, false, UPDATE);
    expect(same(coordinators.data, before)).toBe(true);
    expect(source.checksum()).toBeNull();
  });

  test("shared: payloads next to it are a protocol error", () => {
    expect(() => studentFromInitialState({ sharedStudentFile: "dino-comm-tensor-1-0-ab" }, [Buffer.alloc(4)], specs, () => new Float32Array(0))).toThrow(ProtocolError);
  });

  test("a fresh replica starts as the first teacher and then applies exactly the coordinator's update", () => {
    const source = studentFromInitialState({ step: 0, studentIsTeacher: true }, [], specs, noView);
    const teacher = ramp(new ParamStore(specs), 0.02);
    source.startFrom(teacher);
    expect(same(source.params.data, teacher.data)).toBe(true);
    source.startFrom(ramp(new ParamStore(specs), 0.5)); // only the first teacher counts
    expect(same(source.params.data, teacher.data)).toBe(true);

    const coordinator = ramp(new ParamStore(specs), 0.02);
    const coordinatorStep = gradientStep(coordinator, 2);
    coordinatorStep.averageOver(2, false);
    studentUpdate(new AdamW(coordinator), coordinator.data, coordinatorStep.gradient, UPDATE);

    source.update(gradientStep(source.params, 2), 2, false, UPDATE);
    expect(same(source.params.data, coordinator.data)).toBe(true);
    expect(same(source.params.data, teacher.data)).toBe(false);
    expect(source.checksum()).toBe(checksumOf(coordinator.data));
  });

  test("a replica skips the update of a non-finite loss (the coordinator stops the run)", () => {
    const source = studentFromInitialState({ step: 0, studentIsTeacher: true }, [], specs, noView);
    source.startFrom(ramp(new ParamStore(specs), 0.02));
    const before = source.params.data.slice();
    const step = gradientStep(source.params, 1);
    step.loss = NaN;
    source.update(step, 1, false, UPDATE);
    expect(same(source.params.data, before)).toBe(true);
  });

  test("a resumed replica loads the student and AdamW state from the payloads", () => {
    const coordinator = ramp(new ParamStore(specs), 0.02);
    const adamw = new AdamW(coordinator);
    const warmup = gradientStep(coordinator, 1);
    studentUpdate(adamw, coordinator.data, warmup.gradient, UPDATE);
    const payloads = [coordinator.data, ...optimizerFrames(adamw.state())].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    const source = studentFromInitialState({ step: 1 }, payloads, specs, noView);
    expect(same(source.params.data, coordinator.data)).toBe(true);
    studentUpdate(adamw, coordinator.data, gradientStep(coordinator, 1).gradient, UPDATE);
    source.update(gradientStep(source.params, 1), 1, false, UPDATE);
    expect(source.checksum()).toBe(checksumOf(coordinator.data));
  });
});
