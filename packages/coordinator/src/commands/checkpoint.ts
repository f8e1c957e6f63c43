import * as fs from "node:fs";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";
import {
  CheckpointCorruptError,
  exportWeights,
  listCheckpoints,
  MANIFEST_FILE,
  networkNorms,
  l2Norm,
  LATEST_FILE,
  readCheckpoint,
  readLatestPointer,
  resolveCheckpointPath,
  stepOfCheckpointName,
  verifyCheckpoint,
  type CheckpointListing,
  type Network,
} from "../checkpoint";

/** What a `checkpoint` subcommand prints and its exit status; the functions are testable without a process. */
export interface CommandOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const ok = (stdout: string): CommandOutput => ({ stdout, stderr: "", exitCode: 0 });
const failed = (stderr: string, stdout = ""): CommandOutput => ({ stdout, stderr, exitCode: 1 });

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Columns padded to their widest cell; `right` columns are right-aligned (numbers). */
export function alignColumns(rows: string[][], right: ReadonlySet<number>): string {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, column) => (right.has(column) ? cell.padStart(widths[column]) : cell.padEnd(widths[column]))).join("  ").trimEnd()).join("\n") + "\n";
}

function isRunDir(path: string): boolean {
  return fs.existsSync(path) && fs.statSync(path).isDirectory() && !fs.existsSync(join(path, MANIFEST_FILE)) && stepOfCheckpointName(pathBase(path)) === undefined;
}

function pathBase(path: string): string {
  return path.replace(/\/+$/, "").split("/").pop() ?? path;
}

function validText(listing: CheckpointListing): string {
  if (listing.valid === undefined) return "-";
  return listing.valid ? "yes" : `NO (${listing.problems![0].file})`;
}

/** `checkpoint ls RUN_DIR`. */
export function checkpointLs(runDir: string, options: { json?: boolean; verify?: boolean } = {}): CommandOutput {
  if (!fs.existsSync(runDir) || !fs.statSync(runDir).isDirectory()) return failed(`checkpoint ls: ${runDir} is not a folder\n`);
  const listings = listCheckpoints(runDir, { verify: options.verify !== false });
  if (options.json) return ok(JSON.stringify(listings, null, 2) + "\n");
  if (listings.length === 0) return ok(`no checkpoints in ${runDir}\n`);
  const rows = [["NAME", "STEP", "EPOCH", "ITER", "TIME", "SIZE", "LOSS", "VALID", "PINNED", "LATEST"]];
  for (const l of listings) {
    rows.push([
      l.name,
      String(l.step),
      l.epoch === undefined ? "?" : String(l.epoch),
      l.iterInEpoch === undefined ? "?" : String(l.iterInEpoch),
      l.savedAt ?? "?",
      formatBytes(l.bytes),
      l.loss === undefined ? "?" : l.loss === null ? "-" : l.loss.toPrecision(6),
      validText(l),
      l.pinned ? "pinned" : "",
      l.latest ? "<- latest" : "",
    ]);
  }
  return ok(alignColumns(rows, new Set([1, 2, 3, 5, 6])));
}

/** `checkpoint show CKPT` (a checkpoint folder, or a run dir for its latest). */
export function checkpointShow(path: string, options: { json?: boolean } = {}): CommandOutput {
  const folder = resolveCheckpointPath(path);
  let checkpoint;
  try {
    checkpoint = readCheckpoint(folder);
  } catch (err) {
    if (err instanceof CheckpointCorruptError) return failed(`checkpoint show: ${err.message}\n`);
    throw err;
  }
  const { stateFile, manifest } = checkpoint;
  const tensorCount = stateFile.params.length;
  const values = checkpoint.student.size;
  const summary = {
    path: folder,
    step: checkpoint.step,
    epoch: checkpoint.epoch,
    iterInEpoch: checkpoint.iterInEpoch,
    loss: stateFile.loss,
    pinned: checkpoint.pinned,
    savedAt: stateFile.savedAt,
    elapsedSeconds: stateFile.elapsedSeconds,
    versions: stateFile.versions,
    rng: stateFile.rng,
    schedule: stateFile.schedule,
    tensors: { perNetwork: tensorCount, valuesPerNetwork: values, files: manifest.files },
    norms: { student: networkNorms(checkpoint.student), teacher: networkNorms(checkpoint.teacher), center: l2Norm(checkpoint.center) },
    runConfig: checkpoint.runConfig,
  };
  if (options.json) return ok(JSON.stringify(summary, null, 2) + "\n");
  const norm = (n: { total: number; backbone: number; head: number }): string => `${n.total.toPrecision(6)} (backbone ${n.backbone.toPrecision(6)}, head ${n.head.toPrecision(6)})`;
  const lines = [
    `checkpoint   ${folder}${checkpoint.pinned ? "  (pinned)" : ""}`,
    `progress     step ${summary.step}, epoch ${summary.epoch}, next iteration ${summary.iterInEpoch} of the epoch, loss ${summary.loss ?? "-"}`,
    `saved        ${summary.savedAt}${summary.elapsedSeconds === null ? "" : `, after ${summary.elapsedSeconds.toFixed(0)} s of training`}`,
    `written by   dino-coord ${summary.versions.dinoCoord}, node ${summary.versions.node}, onnxruntime-node ${summary.versions.onnxruntimeNode ?? "unknown"}`,
    `rng          ${Object.entries(summary.rng).map(([k, v]) => `${k}=${v}`).join(" ") || "-"}`,
    `tensors      ${tensorCount} per network, ${values} values per network (${formatBytes(values * 4)} as float32)`,
    ...Object.entries(manifest.files).map(([file, entry]) => `  ${file.padEnd(22)} ${formatBytes(entry.bytes).padStart(10)}  sha256 ${entry.sha256.slice(0, 16)}…`),
    `L2 norms     student ${norm(summary.norms.student)}`,
    `             teacher ${norm(summary.norms.teacher)}`,
    `             center  ${summary.norms.center.toPrecision(6)}`,
    `config       ${JSON.stringify(summary.runConfig, null, 2).split("\n").join("\n             ")}`,
  ];
  return ok(lines.join("\n") + "\n");
}

/** `checkpoint verify CKPT|RUN_DIR`: exit 1 when anything is damaged, naming each damaged file. */
export function checkpointVerify(path: string): CommandOutput {
  if (!fs.existsSync(path)) return failed(`checkpoint verify: ${path} does not exist\n`);
  const targets = isRunDir(path) ? listCheckpoints(path).map((l) => l.path) : [path];
  if (targets.length === 0) return failed(`checkpoint verify: no checkpoint-* folders in ${path}\n`);
  let stdout = "";
  let stderr = "";
  for (const target of targets) {
    const verification = verifyCheckpoint(target);
    if (verification.ok) {
      stdout += `ok       ${target}\n`;
    } else {
      for (const p of verification.problems) stderr += `DAMAGED  ${target}: ${p.file}: ${p.problem}\n`;
    }
  }
  if (isRunDir(path)) {
    const latest = readLatestPointer(path);
    if (fs.existsSync(join(path, LATEST_FILE)) && (!latest || !fs.existsSync(join(path, latest)))) {
      stderr += `DAMAGED  ${path}: latest: does not name an existing checkpoint folder\n`;
    }
  }
  return { stdout, stderr, exitCode: stderr ? 1 : 0 };
}

/** `checkpoint export CKPT --which teacher|student [--backbone-only] --out FILE`. */
export function checkpointExport(path: string, options: { which: Network; backboneOnly?: boolean; out: string }): CommandOutput {
  const folder = resolveCheckpointPath(path);
  try {
    const result = exportWeights(folder, options);
    return ok(`wrote ${result.tensors} tensors (${formatBytes(result.bytes)}) of the ${options.which}${options.backboneOnly ? " backbone" : ""} of ${folder} to ${result.out}\n`);
  } catch (err) {
    if (err instanceof CheckpointCorruptError) return failed(`checkpoint export: ${err.message}\n`);
    throw err;
  }
}

function emit(output: CommandOutput): void {
  process.stdout.write(output.stdout);
  process.stderr.write(output.stderr);
  if (output.exitCode !== 0) process.exitCode = output.exitCode;
}

function network(value: string): Network {
  if (value !== "teacher" && value !== "student") throw new InvalidArgumentError(`--which takes teacher or student, got "${value}"`);
  return value;
}

/** `dino-coord checkpoint ls|show|verify|export`. */
export function registerCheckpoint(program: Command): void {
  const checkpoint = program.command("checkpoint").description("inspect, verify and export the checkpoints of a run");
  checkpoint
    .command("ls <runDir>")
    .description("list the checkpoints of a run dir (step, epoch, time, size, loss, valid)")
    .option("--json", "print JSON instead of a table")
    .option("--no-verify", "skip the sha256 check (fast; VALID shows -)")
    .action((runDir: string, opts: { json?: boolean; verify: boolean }) => emit(checkpointLs(runDir, opts)));
  checkpoint
    .command("show <checkpoint>")
    .description("config, progress, tensor sizes and L2 norms of a checkpoint (a run dir means its latest)")
    .option("--json", "print JSON")
    .action((path: string, opts: { json?: boolean }) => emit(checkpointShow(path, opts)));
  checkpoint
    .command("verify <path>")
    .description("check hashes and shapes of a checkpoint, or of every checkpoint of a run dir; exit 1 on damage")
    .action((path: string) => emit(checkpointVerify(path)));
  checkpoint
    .command("export <checkpoint>")
    .description("write one network's weights as safetensors under reference state_dict names")
    .requiredOption("--which <network>", "teacher or student", network)
    .option("--backbone-only", "only the ViT, without the backbone. prefix (loads into vit_small() directly)")
    .requiredOption("--out <file>", "output .safetensors file")
    .action((path: string, opts: { which: Network; backboneOnly?: boolean; out: string }) => emit(checkpointExport(path, opts)));
}
