import { execFileSync } from "child_process";
import * as path from "path";
import { webAssembly } from "@dino-coord/wasm";
import { fillNormal, fillUniform, normalAt, philox4x32, randomKey, setWasmPhilox, uniformAt } from "../src/random";
import { philoxUnits, UNIT_PAIRS_PER_CALL, type PhiloxUnits } from "../src/simd/philox-kernel";

function hex(words: Uint32Array): string[] {
  return Array.from(words, (w) => w.toString(16).padStart(8, "0"));
}

describe("philox4x32-10", () => {
  // Known-answer vectors of Random123 (kat_vectors): counter[4] key[2] → output[4].
  it.each([
    [[0, 0, 0, 0], [0, 0], ["6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8"]],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], ["408f276d", "41c83b0e", "a20bc7c6", "6d5451fd"]],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], ["d16cfe09", "94fdcceb", "5001e420", "24126ea1"]],
  ])("counter %j key %j", (counter, key, expected) => {
    const out = new Uint32Array(4);
    philox4x32(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out);
    expect(hex(out)).toEqual(expected);
  });
});

describe("counter-based uniforms and normals", () => {
  it("are pure functions of (key tuple, index)", () => {
    const a = randomKey(7, 2, 100, 5);
    const b = randomKey(7, 2, 100, 5);
    expect(uniformAt(a, 12345)).toBe(uniformAt(b, 12345));
    expect(normalAt(a, 3)).toBe(normalAt(b, 3));
    const filled = new Float64Array(10);
    fillUniform(a, filled, 1000);
    expect(filled[4]).toBe(uniformAt(a, 1004));
  });

  it("differ between keys, including tuples that differ only in length or one part", () => {
    const values = [
      uniformAt(randomKey(1, 2), 0),
      uniformAt(randomKey(1, 2, 0), 0),
      uniformAt(randomKey(2, 1), 0),
      uniformAt(randomKey(1, 3), 0),
      uniformAt(randomKey(1, 2 + 2 ** 32), 0),
      uniformAt(randomKey(1, -2), 0),
    ];
    expect(new Set(values).size).toBe(values.length);
  });

  it("are the same in another process", () => {
    // The jest transform is not available in a plain child process, so hand it the
    // module transpiled by TypeScript.
    const ts = require("typescript") as typeof import("typescript");
    const fs = require("fs") as typeof import("fs");
    const source = fs.readFileSync(path.join(__dirname, "..", "src", "random.ts"), "utf8");
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
    // uniformAt / normalAt do not use the WebAssembly kernel random.ts imports for bulk fills.
    const child = `const m = {exports: {}}; const req = (p) => p === "./simd/philox-kernel" ? { philoxUnits: () => null } : require(p);
      new Function("module", "exports", "require", ${JSON.stringify(js)})(m, m.exports, req);
      const r = m.exports; const k = r.randomKey(31, 4, 9, 2);
      process.stdout.write(JSON.stringify([r.uniformAt(k, 77), r.normalAt(k, 78)]));`;
    const out = JSON.parse(execFileSync(process.execPath, ["-e", child], { encoding: "utf8" }));
    const key = randomKey(31, 4, 9, 2);
    expect(out).toEqual([uniformAt(key, 77), normalAt(key, 78)]);
  });

  it("uniforms lie in [0, 1) with the moments of U(0, 1)", () => {
    const n = 200_000;
    const values = new Float64Array(n);
    fillUniform(randomKey(123, 0), values);
    let sum = 0;
    let sumSq = 0;
    const bins = new Int32Array(10);
    let outside = 0;
    for (const u of values) {
      if (!(u >= 0 && u < 1)) outside++;
      sum += u;
      sumSq += u * u;
      bins[Math.floor(u * 10)]++;
    }
    expect(outside).toBe(0);
    const mean = sum / n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(sumSq / n - mean * mean - 1 / 12)).toBeLessThan(0.002);
    // Chi-square with 9 degrees of freedom: 40 is far beyond the 99.99th percentile (≈ 33.7).
    const expected = n / 10;
    const chi2 = Array.from(bins).reduce((acc, c) => acc + ((c - expected) ** 2) / expected, 0);
    expect(chi2).toBeLessThan(40);
  });

  it("normals have mean 0, variance 1, and normal tail mass", () => {
    const n = 200_000;
    const values = new Float64Array(n);
    fillNormal(randomKey(5, 1), values);
    let sum = 0;
    let sumSq = 0;
    let beyond2 = 0;
    let fourth = 0;
    for (const z of values) {
      sum += z;
      sumSq += z * z;
      fourth += z ** 4;
      if (Math.abs(z) > 2) beyond2++;
    }
    expect(Math.abs(sum / n)).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(sumSq / n - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(Math.abs(fourth / n - 3)).toBeLessThan(0.1);
    // P(|Z| > 2) = 0.0455.
    expect(Math.abs(beyond2 / n - 0.0455)).toBeLessThan(0.003);
  });

  it("adjacent indices are uncorrelated", () => {
    const n = 100_000;
    const values = new Float64Array(n + 1);
    fillNormal(randomKey(9), values);
    let cross = 0;
    for (let i = 0; i < n; i++) cross += values[i] * values[i + 1];
    expect(Math.abs(cross / n)).toBeLessThan(5 / Math.sqrt(n));
  });

  it("rejects non-integer key parts", () => {
    expect(() => randomKey(1.5)).toThrow(/safe integer/);
  });
});

describe("the WebAssembly block function behind fillUniform / fillNormal", () => {
  afterEach(() => setWasmPhilox(true));

  it("gives the JS path's bits, across pieces and where the low counter word wraps into the high one", () => {
    const key = randomKey(11, 3, 0x7fffffff);
    for (const [first, length] of [[0, 10_000], [2 ** 32 - 5, 10], [2 ** 40 + 3, 4097]]) {
      const fast = { u: new Float64Array(length), n: new Float64Array(length) };
      fillUniform(key, fast.u, first);
      fillNormal(key, fast.n, first);
      setWasmPhilox(false);
      const slow = { u: new Float64Array(length), n: new Float64Array(length) };
      fillUniform(key, slow.u, first);
      fillNormal(key, slow.n, first);
      setWasmPhilox(true);
      expect(fast.u).toEqual(slow.u);
      expect(fast.n).toEqual(slow.n);
      expect(fast.u[length - 1]).toBe(uniformAt(key, first + length - 1));
    }
  });

  /** The pairs (u1, u2) of counters [c0, c0 + count) from the JS block function, as toUnit in random.ts. */
  function jsUnitPairs(count: number, c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): Float64Array {
    const pairs = new Float64Array(2 * count);
    const block = new Uint32Array(4);
    for (let i = 0; i < count; i++) {
      philox4x32(c0 + i, c1, c2, c3, k0, k1, block);
      pairs[2 * i] = ((block[0] >>> 5) * 67108864 + (block[1] >>> 6)) / 2 ** 53;
      pairs[2 * i + 1] = ((block[2] >>> 5) * 67108864 + (block[3] >>> 6)) / 2 ** 53;
    }
    return pairs;
  }

  // Every count mod the SIMD loop's group of counters (16 at most) and whole calls, from
  // counter 0, an odd start and the last counters before the low word wraps; words and keys
  // with the top bit set check the unsigned conversions.
  const counts = [...Array.from({ length: 34 }, (_, count) => count), 4079, 4095, UNIT_PAIRS_PER_CALL];
  const words = [
    [0, 0, 0, 0, 0],
    [0xffffffff, 0x80000000, 0x7fffffff, 0xfffffffe, 0x9e3779b9],
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0xa4093822, 0x299f31d0],
  ];

  /** The first index where the two arrays' values differ (−1 if none): one short message instead of an 8192-element diff. */
  function firstDifference(a: Float64Array, b: Float64Array): number {
    if (a.length !== b.length) return Math.min(a.length, b.length);
    return a.findIndex((value, i) => !Object.is(value, b[i]));
  }

  function expectJsBits(kernel: PhiloxUnits): void {
    for (const count of counts) {
      for (const c0 of [0, 12345, 2 ** 32 - count]) {
        for (const [c1, c2, c3, k0, k1] of words) {
          const pairs = kernel.unitPairs(count, c0, c1, c2, c3, k0, k1).subarray(0, 2 * count);
          const differs = firstDifference(pairs, jsUnitPairs(count, c0, c1, c2, c3, k0, k1));
          expect(differs < 0 ? "equal" : `count ${count} c0 ${c0} key ${k0}: pair ${differs >> 1} differs`).toBe("equal");
        }
      }
    }
  }

  it("gives the JS block function's pairs for every remainder of its groups of counters and up to the low word's last counter", () => {
    expectJsBits(philoxUnits()!);
  });

  it("leaves the pairs after count as they were", () => {
    const kernel = philoxUnits()!;
    const full = kernel.unitPairs(UNIT_PAIRS_PER_CALL, 7, 1, 2, 3, 4, 5).slice();
    for (const count of [0, 1, 15, 17, 4095]) {
      const pairs = kernel.unitPairs(count, 2 ** 32 - count, 9, 9, 9, 9, 9);
      expect(firstDifference(pairs.subarray(2 * count, 2 * UNIT_PAIRS_PER_CALL), full.subarray(2 * count))).toBe(-1);
      kernel.unitPairs(UNIT_PAIRS_PER_CALL, 7, 1, 2, 3, 4, 5);
    }
  });

  it("gives the same pairs with the scalar loop alone, where wasm SIMD is unavailable", () => {
    // The kernel tries its SIMD module first: refuse it, as a runtime without SIMD would.
    const validate = jest.spyOn(webAssembly!, "validate").mockReturnValueOnce(false);
    try {
      let scalarOnly: PhiloxUnits | null = null;
      jest.isolateModules(() => {
        scalarOnly = (require("../src/simd/philox-kernel") as typeof import("../src/simd/philox-kernel")).philoxUnits();
      });
      expect(validate).toHaveBeenCalledTimes(2);
      expect(validate.mock.results[1].value).toBe(true);
      expectJsBits(scalarOnly!);
    } finally {
      validate.mockRestore();
    }
  });

  it("refuses a piece whose low counter word would wrap", () => {
    expect(philoxUnits()).not.toBeNull();
    expect(() => philoxUnits()!.unitPairs(10, 2 ** 32 - 5, 0, 0, 0, 1, 2)).toThrow(/wrap/);
  });
});
