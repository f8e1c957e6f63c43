import { tinyDemoConfig } from "../src/dino/config";
import { dinoParamSpecs } from "../src/dino/param-specs";
import { DinoStepSessions, StudentStepInputs } from "../src/dino/step-sessions";
import { initParams, referenceInitOf } from "../src/init";
import { isLastLayer } from "../src/optimizer";
import { ParamStore } from "../src/param-store";
import { fillNormal, randomKey } from "../src/random";

describe("DinoStepSessions with the last layer frozen", () => {
  const config = tinyDemoConfig({ depth: 2, outDim: 64, dropPathRate: 0 });
  const shape = { batchSize: 2, globalCrops: 2, localCrops: 2 };
  const student = new ParamStore(dinoParamSpecs(config));
  const teacher = new ParamStore(dinoParamSpecs(config));
  initParams(student, referenceInitOf(student.specs), 1);
  initParams(teacher, referenceInitOf(teacher.specs), 2);
  const globals = new Float32Array(2 * shape.batchSize * 3 * config.imgSize ** 2);
  const locals = new Float32Array(shape.localCrops * shape.batchSize * 3 * config.localCropSize ** 2);
  fillNormal(randomKey(3), globals);
  fillNormal(randomKey(4), locals);
  const inputs: StudentStepInputs = { globals, locals, center: new Float32Array(config.outDim).fill(0.01), teacherTemp: 0.04 };
  const lastLayer = student.specs.map((s, i) => [s, student.rangeAt(i)] as const).filter(([s]) => s.trainable && isLastLayer(s.name));

  test("gives the same loss and gradients except the last layer's, whose slots it leaves untouched", async () => {
    const sessions = await DinoStepSessions.create(config, shape);
    try {
      await sessions.teacherForward(teacher, globals);
      const full = new Float32Array(student.size);
      const fullLoss = (await sessions.studentStep(student, full, inputs)).loss;
      const frozen = new Float32Array(student.size).fill(7);
      const frozenLoss = (await sessions.studentStep(student, frozen, { ...inputs, lastLayerFrozen: true })).loss;

      expect(lastLayer.length).toBeGreaterThan(0);
      for (const [spec, [begin, end]] of lastLayer) {
        expect(full.subarray(begin, end).some((g) => g !== 0)).toBe(true); // the full step computes it
        expect(frozen.subarray(begin, end).every((g) => g === 7)).toBe(true);
        frozen.fill(0, begin, end);
        full.fill(0, begin, end);
        expect(spec.name).toMatch(/^head\.last_layer\./);
      }
      expect(frozenLoss).toBe(fullLoss);
      let worst = 0;
      student.specs.forEach((spec, index) => {
        if (!spec.trainable || isLastLayer(spec.name)) return;
        const [begin, end] = student.rangeAt(index);
        for (let i = begin; i < end; i++) worst = Math.max(worst, Math.abs(frozen[i] - full[i]) / (Math.abs(full[i]) + 1e-6));
      });
      // Pruning changes nothing upstream of the last layer, but ORT may fuse the two graphs' kernels differently.
      expect(worst).toBeLessThan(1e-5);
      // And back: the full variant is compiled again when the layer thaws.
      const again = new Float32Array(student.size);
      await sessions.studentStep(student, again, inputs);
      for (const [, [begin, end]] of lastLayer) full.set(again.subarray(begin, end), begin);
      expect(again).toEqual(full);
    } finally {
      await sessions.release();
    }
  }, 120_000);
});
