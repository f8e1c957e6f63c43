/** A ring member in a child process (ring-member.child.ts), with typed, timed replies. */
import { type ChildProcess, fork } from "child_process";
import * as path from "path";
import type { MemberCommand, MemberReply } from "./ring-member.child";

export class ForkedMember {
  readonly child: ChildProcess;
  private readonly replies: MemberReply[] = [];
  private wake: (() => void) | null = null;

  constructor() {
    this.child = fork(path.join(__dirname, "ring-member.child.ts"), [], {
      execArgv: ["-r", path.join(__dirname, "register-ts.js")],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.child.on("message", (m: MemberReply) => {
      this.replies.push(m);
      this.wake?.();
    });
  }

  send(command: MemberCommand): void {
    this.child.send(command);
  }

  async next<T extends MemberReply["type"]>(type: T, timeoutMs = 30_000): Promise<Extract<MemberReply, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`child ${this.child.pid} sent no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    const reply = this.replies.shift()!;
    if (reply.type !== type) throw new Error(`child ${this.child.pid} replied ${JSON.stringify(reply)}, expected ${type}`);
    return reply as Extract<MemberReply, { type: T }>;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  exited(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.child.once("exit", () => resolve()));
  }
}
