/**
 * A ring member in its own process, driven over Node IPC by the multi-process tests
 * (forked with -r register-ts.js so it runs the TypeScript sources).
 */
import pino from "pino";
import { RingAllReduce } from "../../src";
import { randomValues } from "./random-values";

export type MemberCommand =
  | { type: "init"; rank: number; endpoints: string[]; timeoutMs: number; chunkBytes: number; sameHostSchedule?: "direct" | "ring" }
  | { type: "run"; length: number; seed: number; step: number }
  | { type: "exit" };

export type MemberReply = { type: "ready" } | { type: "result"; base64: string } | { type: "error"; name: string; message: string };

let ring: RingAllReduce | undefined;
const reply = (message: MemberReply) => process.send?.(message);

process.on("message", (command: MemberCommand) => {
  void (async () => {
    try {
      if (command.type === "init") {
        ring = new RingAllReduce({ ...command, logger: pino({ level: "silent" }) });
        await ring.start();
        reply({ type: "ready" });
      } else if (command.type === "run") {
        const values = randomValues(command.length, command.seed);
        await ring!.allReduce(values, command.step);
        reply({ type: "result", base64: Buffer.from(values.buffer).toString("base64") });
      } else {
        await ring?.close();
        process.disconnect();
      }
    } catch (err) {
      reply({ type: "error", name: (err as Error).name, message: (err as Error).message });
    }
  })();
});
