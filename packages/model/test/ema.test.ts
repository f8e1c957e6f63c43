import * as path from "path";
import { addColumnSums, emaTeacher, updateCenter } from "../src/ema";
import { readSafetensors } from "../src/safetensors";

function relativeError(ours: ArrayLike<number>, reference: ArrayLike<number>): number {
  let errorSq = 0;
  let referenceSq = 0;
  for (let i = 0; i < reference.length; i++) {
    errorSq += (ours[i] - reference[i]) ** 2;
    referenceSq += reference[i] ** 2;
  }
  return Math.sqrt(errorSq / referenceSq);
}

describe("emaTeacher", () => {
  it("θ_t ← m·θ_t + (1 − m)·θ_s in place, by hand", () => {
    const teacher = Float32Array.from([1, 2, -4]);
    const student = Float32Array.from([3, 4, 0]);
    emaTeacher(teacher, student, 0.9);
    expect(teacher[0]).toBeCloseTo(1.2, 6);
    expect(teacher[1]).toBeCloseTo(2.2, 6);
    expect(teacher[2]).toBeCloseTo(-3.6, 6);
    expect(Array.from(student)).toEqual([3, 4, 0]);
  });

  it("m = 1 keeps the teacher, m = 0 copies the student", () => {
    const teacher = Float32Array.from([1, 2]);
    emaTeacher(teacher, Float32Array.from([5, 6]), 1);
    expect(Array.from(teacher)).toEqual([1, 2]);
    emaTeacher(teacher, Float32Array.from([5, 6]), 0);
    expect(Array.from(teacher)).toEqual([5, 6]);
  });

  it("rejects mismatched layouts and momenta outside [0, 1]", () => {
    expect(() => emaTeacher(new Float32Array(2), new Float32Array(3), 0.5)).toThrow(/teacher has 2 parameters, student 3/);
    expect(() => emaTeacher(new Float32Array(2), new Float32Array(2), 1.5)).toThrow(/momentum/);
  });
});

describe("updateCenter", () => {
  it("center·m + mean·(1 − m), by hand", () => {
    const center = Float32Array.from([1, -1]);
    // Rows [1, 2], [3, 4], [5, 6]: column sums 9, 12, mean 3, 4.
    const sums = new Float64Array(2);
    addColumnSums(sums, Float32Array.from([1, 2, 3, 4, 5, 6]), 3);
    expect(Array.from(sums)).toEqual([9, 12]);
    updateCenter(center, sums, 3, 0.9);
    expect(center[0]).toBeCloseTo(0.9 + 0.3, 6);
    expect(center[1]).toBeCloseTo(-0.9 + 0.4, 6);
  });

  it("summing per-rank column sums then dividing by all rows equals the mean over all ranks' rows", () => {
    const rank0 = Float32Array.from([1, 2, 3, 4]); // 2 rows of 2
    const rank1 = Float32Array.from([10, 20, 30, 40]);
    const allReduced = new Float64Array(2);
    addColumnSums(allReduced, rank0, 2);
    addColumnSums(allReduced, rank1, 2);
    const viaRanks = new Float64Array(2);
    updateCenter(viaRanks, allReduced, 4, 0.5);
    expect(Array.from(viaRanks)).toEqual([0.5 * ((1 + 3 + 10 + 30) / 4), 0.5 * ((2 + 4 + 20 + 40) / 4)]);
  });

  it("rejects a wrong row count or mismatched sizes", () => {
    expect(() => updateCenter(new Float32Array(2), new Float32Array(2), 0, 0.9)).toThrow(/row count/);
    expect(() => updateCenter(new Float32Array(2), new Float32Array(3), 1, 0.9)).toThrow(/center has 2/);
    expect(() => addColumnSums(new Float32Array(2), new Float32Array(5), 2)).toThrow(/needs 4 values/);
  });
});

describe("on the reference fixture dino-step-small", () => {
  const dir = path.join(__dirname, "data", "dino-step-small");
  const inputs = readSafetensors(path.join(dir, "inputs.safetensors"));
  const expected = readSafetensors(path.join(dir, "expected.safetensors"));
  const config = require(path.join(dir, "config.json"));

  it("teacher (= initial student) EMA'd towards student_after gives teacher_after", () => {
    const names = [...inputs.keys()].filter((n) => n.startsWith("student.")).map((n) => n.slice("student.".length));
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) {
      const teacher = (inputs.get("student." + name)!.data as Float32Array).slice();
      const studentAfter = expected.get("student_after." + name)!.data as Float32Array;
      emaTeacher(teacher, studentAfter, config.step.momentum);
      expect(relativeError(teacher, expected.get("teacher_after." + name)!.data as Float32Array)).toBeLessThan(1e-6);
    }
  });

  it("center EMA over the 2·batch teacher rows gives center_after", () => {
    const teacherOutput = expected.get("teacher_output")!;
    const [rows, columns] = teacherOutput.shape;
    expect(rows).toBe(2 * config.batch_size);
    const sums = new Float64Array(columns);
    addColumnSums(sums, teacherOutput.data as Float32Array, rows);
    const center = (inputs.get("center")!.data as Float32Array).slice();
    updateCenter(center, sums, rows, config.step.center_momentum);
    expect(relativeError(center, expected.get("center_after")!.data as Float32Array)).toBeLessThan(1e-5);
  });
});
