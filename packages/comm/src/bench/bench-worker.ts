/**
 * One member of a benchmark: forked by bench-collectives.ts; per iteration it fills its input
 * ("prepare", untimed), then runs the collective once ("run"), timing it and checking the
 * result, and reports over Node IPC.
 */
import pino from "pino";
import { BroadcastReceiver } from "../broadcast-receiver";
import { BroadcastRoot } from "../broadcast-root";
import { allocateCollectiveTensor } from "../collective-tensor";
import { RingAllReduce } from "../ring-all-reduce";
import type { BenchInit, ChildMessage, ParentMessage } from "./bench-protocol";

const logger = pino({ level: process.env.DINO_COMM_LOG_LEVEL ?? "warn" }, pino.destination(2));

/** Broadcast metadata: the iteration number, as 4 little-endian bytes. */
const iterationCodec = {
  encode: (iteration: number) => ({ finish: () => Uint8Array.from(Buffer.from(Uint32Array.of(iteration).buffer)) }),
  decode: (bytes: Uint8Array) => Buffer.from(bytes).readUInt32LE(0),
};

function report(message: ChildMessage): void {
  process.send?.(message);
}

interface Member {
  /** Untimed: fills the input for `iteration`. */
  prepare(iteration: number): void;
  run(iteration: number): Promise<void>;
  close(): Promise<void>;
}

async function createMember(init: BenchInit): Promise<Member> {
  const common = { endpoints: init.endpoints, timeoutMs: init.timeoutMs, logger, chunkBytes: init.chunkBytes };
  // Like training's: the step buffer comes from the ring (same-host peers read it in place),
  // the teacher is a collective tensor (broadcast in place).
  const ring = init.role === "all-reduce" ? new RingAllReduce({ ...common, rank: init.rank, sharedMemory: init.sharedMemory }) : undefined;
  await ring?.start();
  const values = ring ? ring.allocateTensor(init.elements) : allocateCollectiveTensor(init.elements);
  const check = (expected: number, what: string) => {
    for (const i of [0, values.length >> 1, values.length - 1]) {
      if (values.length > 0 && values[i] !== expected) throw new Error(`${what}: element ${i} is ${values[i]}, expected ${expected}`);
    }
  };
  if (ring) {
    const world = init.endpoints.length;
    return {
      prepare: () => values.fill(init.rank + 1),
      run: async (iteration) => {
        await ring.allReduce(values, iteration);
        check((world * (world + 1)) / 2, "all-reduce sum");
      },
      close: () => ring.close(),
    };
  }
  if (init.role === "broadcast-root") {
    const root = new BroadcastRoot({ ...common, metaCodec: iterationCodec });
    await root.start();
    return {
      prepare: (iteration) => values.fill(iteration),
      run: async (iteration) => {
        await root.send(values, iteration, iteration);
      },
      close: () => root.close(),
    };
  }
  const receiver = new BroadcastReceiver({ ...common, rank: init.rank, metaCodec: iterationCodec });
  await receiver.start();
  return {
    prepare: () => values.fill(-1),
    run: async (iteration) => {
      const meta = await receiver.receive(values, iteration);
      if (meta !== iteration) throw new Error(`broadcast metadata ${meta}, expected ${iteration}`);
      check(iteration, "broadcast value");
    },
    close: () => receiver.close(),
  };
}

let member: Promise<Member> | undefined;

process.on("message", (message: ParentMessage) => {
  void (async () => {
    try {
      if (message.type === "init") {
        member = createMember(message);
        await member;
        report({ type: "ready" });
      } else if (message.type === "prepare") {
        (await member!).prepare(message.iteration);
        report({ type: "prepared" });
      } else if (message.type === "run") {
        const m = await member!;
        const cpuStart = process.cpuUsage();
        const start = process.hrtime.bigint();
        await m.run(message.iteration);
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const cpu = process.cpuUsage(cpuStart);
        report({ type: "done", iteration: message.iteration, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
      } else {
        await (await member!).close();
        process.disconnect();
      }
    } catch (err) {
      report({ type: "error", message: (err as Error).stack ?? String(err) });
      process.exitCode = 1;
      process.disconnect();
    }
  })();
});
