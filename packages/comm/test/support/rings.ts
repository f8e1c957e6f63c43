/** Helpers shared by the comm tests: rings of in-process members, inputs and references. */
import pino, { type Logger } from "pino";
import { freeIpcEndpoint, freeTcpEndpoint, RingAllReduce, type RingAllReduceOptions } from "../../src";

export { randomValues } from "./random-values";

export const silentLogger: Logger = pino({ level: "silent" });

/** A logger whose JSON lines are collected in `lines` (warn and above). */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

export async function endpointsFor(n: number, transport: "ipc" | "tcp"): Promise<string[]> {
  const endpoints: string[] = [];
  for (let i = 0; i < n; i++) endpoints.push(transport === "ipc" ? freeIpcEndpoint() : await freeTcpEndpoint());
  return endpoints;
}

export async function startRing(
  endpoints: string[],
  options: Partial<RingAllReduceOptions> = {},
  ranks: number[] = endpoints.map((_, r) => r),
): Promise<RingAllReduce[]> {
  const rings = ranks.map((rank) => new RingAllReduce({ rank, endpoints, timeoutMs: 10_000, logger: silentLogger, ...options }));
  await Promise.all(rings.map((r) => r.start()));
  return rings;
}

export async function closeAll(members: Array<{ close(): Promise<void> }>): Promise<void> {
  await Promise.all(members.map((m) => m.close()));
}

/** Asserts `actual` equals the float64 sum of `inputs` within float32 rounding of an N-term sum. */
export function expectCloseToSum(actual: Float32Array, inputs: Float32Array[]): void {
  expect(actual.length).toBe(inputs[0]?.length ?? 0);
  let worst = 0;
  let worstIndex = -1;
  for (let i = 0; i < actual.length; i++) {
    let sum = 0;
    let magnitude = 0;
    for (const input of inputs) {
      sum += input[i];
      magnitude += Math.abs(input[i]);
    }
    const excess = Math.abs(actual[i] - sum) - inputs.length * 2 ** -23 * magnitude;
    if (excess > worst) {
      worst = excess;
      worstIndex = i;
    }
  }
  expect({ worstIndex, worst }).toEqual({ worstIndex: -1, worst: 0 });
}

export function bytesOfArray(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}
