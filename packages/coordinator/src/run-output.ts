import { appendFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunConfig } from "@dino-coord/worker";

/** One line of metrics.jsonl: a step's hyper-parameters, loss, throughput and time split (ms). */
export interface StepMetrics {
  step: number;
  epoch: number;
  iter: number;
  loss: number;
  lr: number;
  wd: number;
  momentum: number;
  teacher_temp: number;
  images_per_s: number;
  skipped_images: number;
  time_ms: { total: number; data: number; compute: number; all_reduce: number; broadcast: number; wait: number; update: number };
}

/** What a run leaves in --output-dir besides the checkpoints (see ./checkpoint): log.txt, metrics.jsonl, config.json. */
export class RunOutput {
  readonly logDir: string;
  private readonly metricsPath: string;
  private readonly logPath: string;

  /** `append`: a resumed run continues the files (see resume.ts's trimRunOutput) instead of starting them anew. */
  constructor(
    readonly dir: string,
    options: { append?: boolean } = {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.logDir = join(dir, "logs");
    mkdirSync(this.logDir, { recursive: true });
    this.metricsPath = join(dir, "metrics.jsonl");
    this.logPath = join(dir, "log.txt");
    if (!options.append) writeFileSync(this.metricsPath, "");
  }

  writeConfig(config: RunConfig): void {
    writeAtomic(join(this.dir, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
  }

  step(metrics: StepMetrics): void {
    appendFileSync(this.metricsPath, `${JSON.stringify(metrics)}\n`);
  }

  /** The reference's log.txt line: the epoch's averages of loss, lr and wd. */
  epoch(epoch: number, averages: { loss: number; lr: number; wd: number }): void {
    appendFileSync(this.logPath, `${JSON.stringify({ train_loss: averages.loss, train_lr: averages.lr, train_wd: averages.wd, epoch })}\n`);
  }
}

function writeAtomic(path: string, text: string): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}


/** A live progress line on a TTY, plain lines (every `every` steps) otherwise. */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly totalSteps: number,
    private readonly every: number,
  ) {}

  update(m: StepMetrics): void {
    const text = `epoch ${m.epoch} step ${m.step + 1}/${this.totalSteps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} ${m.images_per_s.toFixed(1)} img/s step ${m.time_ms.total.toFixed(0)} ms`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${text}`);
    else if ((m.step + 1) % this.every === 0 || m.step + 1 === this.totalSteps) process.stderr.write(`${text}\n`);
  }

  done(): void {
    if (this.tty) process.stderr.write("\n");
  }
}
