import { join } from "node:path";
import { checkReference } from "../src/reference-check";

const FIXTURE = join(__dirname, "data", "dino-step-small");

test("one DINO step matches the PyTorch reference on the shared fixture", async () => {
  const report = await checkReference(FIXTURE);
  const failed = Object.entries(report.quantities).filter(([, q]) => !q.ok);
  expect(failed).toEqual([]);
  expect(report.ok).toBe(true);
  expect(report.quantities.loss.relError).toBeLessThan(1e-5);
  // Every parameter is checked before and after the step.
  const paramCount = 4 + 12 * 2 + 2 + 6 + 2; // backbone stem, 2 blocks, final norm, 3 head layers, last layer
  expect(Object.keys(report.quantities).filter((k) => k.startsWith("student_after.")).length).toBe(paramCount);
});
