import { cosineSchedule, DINO_SCHEDULE_DEFAULTS, DinoSchedules, linspace, teacherTempSchedule } from "../src/schedules";

describe("linspace (numpy semantics)", () => {
  it("num = 0 and num = 1", () => {
    expect(Array.from(linspace(0, 1, 0))).toEqual([]);
    expect(Array.from(linspace(3, 7, 1))).toEqual([3]);
    expect(Array.from(linspace(5, 5, 1))).toEqual([5]);
  });

  it("includes both endpoints exactly with equal steps between", () => {
    expect(Array.from(linspace(0, 1, 5))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(Array.from(linspace(2, -1, 4))).toEqual([2, 1, 0, -1]);
    const values = linspace(0.04, 0.07, 30);
    expect(values[0]).toBe(0.04);
    expect(values[29]).toBe(0.07);
    expect(values[10]).toBe(10 * ((0.07 - 0.04) / 29) + 0.04);
  });

  it("constant ranges", () => {
    expect(Array.from(linspace(0.5, 0.5, 3))).toEqual([0.5, 0.5, 0.5]);
  });
});

describe("cosineSchedule (reference cosine_scheduler)", () => {
  it("without warm-up: starts at base, ends just above final, half-way at J/2", () => {
    const s = cosineSchedule(1, 0, 2, 2); // J = 4: j = 0..3 → ½(1 + cos(π j / 4))
    expect(s.length).toBe(4);
    expect(s[0]).toBe(1);
    expect(s[1]).toBeCloseTo(0.5 * (1 + Math.SQRT1_2), 15);
    expect(s[2]).toBeCloseTo(0.5, 15);
    expect(s[3]).toBeCloseTo(0.5 * (1 - Math.SQRT1_2), 15);
  });

  it("with warm-up: linspace(start, base, W) then the cosine over the rest", () => {
    // epochs 3, 2 iterations, 1 warm-up epoch: W = 2, J = 4.
    const s = cosineSchedule(0.1, 0.02, 3, 2, 1);
    expect(s.length).toBe(6);
    expect(s[0]).toBe(0);
    expect(s[1]).toBe(0.1); // the warm-up ends at base, and the cosine starts at base again
    expect(s[2]).toBe(0.1);
    for (let j = 0; j < 4; j++) {
      expect(s[2 + j]).toBeCloseTo(0.02 + 0.5 * (0.1 - 0.02) * (1 + Math.cos((Math.PI * j) / 4)), 15);
    }
    const fromStart = cosineSchedule(1, 0, 2, 3, 1, 0.4); // W = 3: 0.4, 0.7, 1.0
    expect(fromStart[0]).toBe(0.4);
    expect(fromStart[1]).toBeCloseTo(0.7, 15);
    expect(fromStart[2]).toBe(1);
  });

  it("increasing schedule (teacher momentum 0.996 → 1)", () => {
    const s = cosineSchedule(0.996, 1, 10, 5);
    expect(s[0]).toBe(0.996);
    for (let i = 1; i < s.length; i++) expect(s[i]).toBeGreaterThan(s[i - 1]);
    expect(s[49]).toBeCloseTo(1 - 0.5 * 0.004 * (1 + Math.cos((Math.PI * 49) / 50)), 15);
    expect(s[49]).toBeLessThan(1);
  });

  it("warm-up over all iterations leaves no cosine part", () => {
    expect(Array.from(cosineSchedule(1, 0, 2, 2, 2))).toEqual([0, 1 / 3, 2 / 3, 1]);
  });

  it("rejects warm-up longer than training and fractional counts", () => {
    expect(() => cosineSchedule(1, 0, 2, 2, 3)).toThrow(/exceeds epochs/);
    expect(() => cosineSchedule(1, 0, 2.5, 2)).toThrow(/epochs/);
  });
});

describe("teacherTempSchedule", () => {
  it("warms up linearly by epoch then stays at teacher_temp", () => {
    const s = teacherTempSchedule(0.04, 0.07, 4, 6);
    expect(s.length).toBe(6);
    expect(s[0]).toBe(0.04);
    expect(s[1]).toBeCloseTo(0.05, 15);
    expect(s[2]).toBeCloseTo(0.06, 15);
    expect(s[3]).toBe(0.07);
    expect(s[4]).toBe(0.07);
    expect(s[5]).toBe(0.07);
  });

  it("zero and one warm-up epochs", () => {
    expect(Array.from(teacherTempSchedule(0.04, 0.07, 0, 3))).toEqual([0.07, 0.07, 0.07]);
    // numpy linspace with num = 1 is [start]: epoch 0 uses the warm-up temperature.
    expect(Array.from(teacherTempSchedule(0.04, 0.07, 1, 3))).toEqual([0.04, 0.07, 0.07]);
  });
});

describe("DinoSchedules", () => {
  const config = {
    ...DINO_SCHEDULE_DEFAULTS,
    epochs: 4,
    itersPerEpoch: 3,
    warmupEpochs: 1,
    batchSizePerGpu: 64,
    worldSize: 8,
    warmupTeacherTemp: 0.04,
    teacherTemp: 0.07,
    warmupTeacherTempEpochs: 2,
  };
  const schedules = new DinoSchedules(config);

  it("scales the learning rate by the global batch / 256 and warms it up", () => {
    const peak = (0.0005 * 512) / 256;
    expect(schedules.lr[0]).toBe(0);
    expect(schedules.lr[1]).toBeCloseTo(peak / 2, 15);
    expect(schedules.lr[2]).toBe(peak);
    expect(schedules.lr[3]).toBe(peak);
    // J = 9 cosine iterations after the 3 warm-up ones.
    expect(schedules.lr[11]).toBeCloseTo(1e-6 + 0.5 * (peak - 1e-6) * (1 + Math.cos((Math.PI * 8) / 9)), 15);
  });

  it("weight decay and momentum have no warm-up", () => {
    // Same float64 rounding as numpy: 0.4 + 0.5·(0.04 − 0.4)·2 is 0.03999999999999998, not 0.04.
    expect(schedules.weightDecay[0]).toBe(0.4 + 0.5 * (0.04 - 0.4) * 2);
    expect(schedules.weightDecay[0]).toBeCloseTo(0.04, 15);
    expect(schedules.weightDecay[6]).toBeCloseTo(0.4 + 0.5 * (0.04 - 0.4) * (1 + Math.cos((Math.PI * 6) / 12)), 15);
    expect(schedules.momentum[0]).toBe(0.996);
    expect(schedules.momentum[6]).toBeCloseTo(0.998, 15);
  });

  it("at(epoch, i) indexes by the global iteration and the teacher temperature by epoch", () => {
    const step = schedules.at(2, 1);
    expect(step.iteration).toBe(7);
    expect(step.lr).toBe(schedules.lr[7]);
    expect(step.weightDecay).toBe(schedules.weightDecay[7]);
    expect(step.momentum).toBe(schedules.momentum[7]);
    expect(step.teacherTemp).toBe(0.07);
    expect(schedules.at(0, 0).teacherTemp).toBe(0.04);
    expect(() => schedules.at(4, 0)).toThrow(/epoch 4/);
    expect(() => schedules.at(0, 3)).toThrow(/iteration 3/);
  });
});
