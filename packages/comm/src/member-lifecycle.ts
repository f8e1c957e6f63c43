/**
 * The life of one collective member (ring rank, broadcast root or receiver): new → ready ⇄
 * busy → closed, with one operation at a time. Any failure closes the member for good,
 * because its peers may be left mid-protocol; callers build a new group to retry.
 */
import type { Logger } from "pino";
import { CollectiveUsageError } from "./errors";
import type { FrameInbox } from "./frame-inbox";
import type { SendQueue } from "./send-queue";
import type { SharedMemoryFiles } from "./shared-memory-files";

type State = "new" | "ready" | "busy" | "closed";

/** What a member releases when it closes; a ring creates these only in start(), and a ring of one never. */
export interface MemberChannels {
  inbox?: FrameInbox;
  outbox?: SendQueue;
  /** Send queues to the members other than the outbox's (the direct same-host all-reduce talks to every peer). */
  otherOutboxes?: SendQueue[];
  files?: SharedMemoryFiles;
}

export interface StartSteps {
  /** Runs before the guarded part: a member that cannot even create its sockets stays new. */
  create?: () => void;
  /** Defaults to binding the inbox, then connecting the outbox. */
  open?: () => Promise<void>;
}

export class MemberLifecycle {
  private state: State = "new";
  private reason: string | null = null;

  constructor(
    private readonly channels: MemberChannels,
    private readonly logger: Logger,
    private readonly abortMessage: string,
    private readonly closeLingerMs: number,
  ) {}

  /** Why abort() was called, or null; an operation in progress checks it after every wait. */
  get abortReason(): string | null {
    return this.reason;
  }

  async start({ create, open = () => this.bindAndConnect() }: StartSteps = {}): Promise<void> {
    if (this.state !== "new") throw new CollectiveUsageError("start", `called in state ${this.state}`);
    create?.();
    try {
      await open();
    } catch (err) {
      this.shutdown(0);
      throw err;
    }
    this.state = "ready";
  }

  /** Throws CollectiveUsageError unless `operation` may begin now; `whenNew` is appended if start() was never called. */
  ensureReady(operation: string, whenNew = ""): void {
    if (this.state !== "ready") {
      throw new CollectiveUsageError(operation, this.state === "busy" ? `another ${operation} is in progress` : `called in state ${this.state}${this.state === "new" ? whenNew : ""}`);
    }
  }

  /** Runs an operation that ensureReady() has admitted. */
  async exclusive<T>(operation: () => Promise<T>): Promise<T> {
    this.state = "busy";
    try {
      const result = await operation();
      this.state = "ready";
      return result;
    } catch (err) {
      this.shutdown(0);
      throw err;
    }
  }

  /** Cancels the operation in progress (it rejects with CollectiveAbortedError) and closes the sockets. */
  abort(reason = "aborted by caller"): void {
    if (this.state === "closed") return;
    this.reason = reason;
    this.logger.warn({ reason }, this.abortMessage);
    this.shutdown(0);
  }

  /** Lets queued frames reach the next member (bounded by closeLingerMs), then closes. */
  async close(): Promise<void> {
    if (this.state === "closed") return;
    if (this.state === "busy") return this.abort("closed during an operation");
    this.state = "closed";
    await Promise.all([this.channels.outbox, ...(this.channels.otherOutboxes ?? [])].map((outbox) => outbox?.idle()));
    this.shutdown(this.closeLingerMs);
  }

  private async bindAndConnect(): Promise<void> {
    await this.channels.inbox?.bind();
    this.channels.outbox?.connect();
  }

  private shutdown(lingerMs: number): void {
    this.state = "closed";
    this.channels.inbox?.close();
    this.channels.outbox?.close(lingerMs);
    for (const outbox of this.channels.otherOutboxes ?? []) outbox.close(lingerMs);
    this.channels.files?.close();
  }
}
