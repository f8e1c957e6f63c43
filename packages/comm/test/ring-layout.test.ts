import { RingLayout } from "../src";

describe("RingLayout", () => {
  const cases: Array<[number, number, number]> = [];
  for (const n of [1, 2, 3, 5, 8]) for (const length of [0, 1, n - 1, n, 7 * n + 3, 1000]) for (const chunk of [1, 3, 64]) cases.push([length, n, chunk]);

  it.each(cases)("length %i over %i ranks in chunks of %i: segments and chunks tile the tensor", (length, n, chunkElements) => {
    const layout = new RingLayout(length, n, chunkElements);
    let next = 0;
    for (let s = 0; s < n; s++) {
      for (let k = 0; k < layout.chunkCount(s); k++) {
        expect(layout.chunkStart(s, k)).toBe(next);
        expect(layout.chunkEnd(s, k) - layout.chunkStart(s, k)).toBeGreaterThan(0);
        expect(layout.chunkEnd(s, k) - layout.chunkStart(s, k)).toBeLessThanOrEqual(chunkElements);
        next = layout.chunkEnd(s, k);
      }
      expect(layout.chunkCount(s)).toBeLessThanOrEqual(layout.maxChunksPerSegment());
    }
    expect(next).toBe(length);
  });

  it.each([2, 3, 4, 7, 16])("with %i ranks, what a rank receives at step t is what it sends at t+1, and the schedule completes", (n) => {
    const layout = new RingLayout(100 * n, n, 10); // 10 chunks per segment
    for (let r = 0; r < n; r++) {
      const previous = (r - 1 + n) % n;
      for (let t = 0; t < layout.ringSteps; t++) {
        // The sender's segment at step t is the receiver's received segment at step t.
        expect(layout.sentSegment(previous, t)).toBe(layout.receivedSegment(r, t));
        if (t + 1 < layout.ringSteps) expect(layout.sentSegment(r, t + 1)).toBe(layout.receivedSegment(r, t));
      }
      // After reduce-scatter rank r owns segment r+1 ...
      expect(layout.receivedSegment(r, n - 2)).toBe((r + 1) % n);
      // ... and the all-gather brings every other segment exactly once.
      const gathered = Array.from({ length: n - 1 }, (_, u) => layout.receivedSegment(r, n - 1 + u)).sort((a, b) => a - b);
      expect(gathered).toEqual(Array.from({ length: n }, (_, s) => s).filter((s) => s !== (r + 1) % n));
      // Each segment other than r's own is reduced into exactly once on rank r.
      const reduced = Array.from({ length: n - 1 }, (_, t) => layout.receivedSegment(r, t)).sort((a, b) => a - b);
      expect(reduced).toEqual(Array.from({ length: n }, (_, s) => s).filter((s) => s !== r));
      expect(layout.expectedMessages(r)).toBe(2 * (n - 1) * 10);
    }
  });
});
