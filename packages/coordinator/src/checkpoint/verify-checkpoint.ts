/**
 * Checks a checkpoint folder without trusting anything in it: every file against the
 * manifest's byte size and sha256 (truncation, bit flips, missing files), state.json
 * against its schema, and every tensor file against the layout state.json declares
 * (names, dtypes, shapes), so a checkpoint written with a wrong shape is caught too.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { readSafetensorsFile, SafetensorsFormatError, type SafetensorsTensor } from "@dino-coord/model";
import { CENTER_FILE, CHECKPOINT_FILES, MANIFEST_FILE, OPTIMIZER_FILE, STATE_FILE, STUDENT_FILE, TEACHER_FILE } from "./layout";
import { parseManifest, sha256Hex, type Manifest } from "./manifest";
import { expectedTensors, tensorLayoutProblems } from "./tensor-files";
import { stateFileProblem, type CheckpointStateFile } from "./training-state";

export interface CheckpointProblem {
  /** The damaged file, relative to the checkpoint folder ("." for the folder itself). */
  file: string;
  problem: string;
}

export interface CheckpointVerification {
  path: string;
  ok: boolean;
  problems: CheckpointProblem[];
  /** Present when state.json checked out. */
  state?: CheckpointStateFile;
  /** Present when manifest.json parsed. */
  manifest?: Manifest;
}

export interface CheckpointInspection extends CheckpointVerification {
  /** The decoded tensors per file, when asked for and the checkpoint is valid. */
  tensors?: Map<string, Map<string, SafetensorsTensor>>;
}

const TENSOR_FILES = [STUDENT_FILE, TEACHER_FILE, OPTIMIZER_FILE, CENTER_FILE] as const;

function readBytes(path: string): Buffer | "missing" | string {
  try {
    return fs.readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "missing" : `cannot be read (${(err as Error).message})`;
  }
}

/** Verifies a checkpoint; with `keepTensors` also returns its decoded tensors (one read of each file either way). */
export function inspectCheckpoint(path: string, options: { keepTensors?: boolean } = {}): CheckpointInspection {
  const problems: CheckpointProblem[] = [];
  const result: CheckpointInspection = { path, ok: false, problems };
  if (!fs.existsSync(path) || !fs.statSync(path).isDirectory()) {
    problems.push({ file: ".", problem: "is not a checkpoint folder (does not exist or is not a directory)" });
    return result;
  }

  const manifestBytes = readBytes(join(path, MANIFEST_FILE));
  if (typeof manifestBytes === "string") {
    problems.push({ file: MANIFEST_FILE, problem: manifestBytes === "missing" ? "is missing (the write did not finish?)" : manifestBytes });
    return result;
  }
  const manifest = parseManifest(manifestBytes.toString("utf8"));
  if (typeof manifest === "string") {
    problems.push({ file: MANIFEST_FILE, problem: manifest });
    return result;
  }
  result.manifest = manifest;

  // Read and hash every file once; keep the bytes of those that match for parsing.
  const intact = new Map<string, Buffer>();
  for (const file of CHECKPOINT_FILES) {
    const bytes = readBytes(join(path, file));
    if (typeof bytes === "string") {
      problems.push({ file, problem: bytes === "missing" ? "is missing" : bytes });
      continue;
    }
    const expected = manifest.files[file];
    if (bytes.byteLength !== expected.bytes) {
      problems.push({ file, problem: `is ${bytes.byteLength} bytes, the manifest says ${expected.bytes} (truncated or overwritten)` });
      continue;
    }
    const sha256 = sha256Hex(bytes);
    if (sha256 !== expected.sha256) {
      problems.push({ file, problem: `sha256 ${sha256} does not match the manifest's ${expected.sha256} (the content changed: bit rot or an edit)` });
      continue;
    }
    intact.set(file, bytes);
  }

  const stateBytes = intact.get(STATE_FILE);
  if (stateBytes) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stateBytes.toString("utf8"));
    } catch (err) {
      problems.push({ file: STATE_FILE, problem: `is not valid JSON (${(err as Error).message})` });
    }
    const problem = parsed === undefined ? undefined : stateFileProblem(parsed);
    if (problem) problems.push({ file: STATE_FILE, problem });
    else if (parsed !== undefined) result.state = parsed as CheckpointStateFile;
  }

  const tensors = new Map<string, Map<string, SafetensorsTensor>>();
  for (const file of TENSOR_FILES) {
    const bytes = intact.get(file);
    if (!bytes) continue;
    let decoded: Map<string, SafetensorsTensor>;
    try {
      decoded = readSafetensorsFile(bytes, file).tensors;
    } catch (err) {
      if (!(err instanceof SafetensorsFormatError)) throw err;
      problems.push({ file, problem: err.problem });
      continue;
    }
    if (result.state) {
      const layout = tensorLayoutProblems(decoded, expectedTensors(file, result.state.params, result.state.centerDim));
      for (const problem of layout) problems.push({ file, problem });
    }
    if (options.keepTensors) tensors.set(file, decoded);
  }

  const lastLayer = result.state?.params.find((s) => s.name === "head.last_layer.weight_v");
  if (result.state && lastLayer && lastLayer.shape[0] !== result.state.centerDim) {
    problems.push({ file: STATE_FILE, problem: `centerDim ${result.state.centerDim} differs from the head's out dim ${lastLayer.shape[0]}` });
  }

  result.ok = problems.length === 0;
  if (result.ok && options.keepTensors) result.tensors = tensors;
  return result;
}

/** Checks hashes, sizes and shapes of every file of a checkpoint folder; never throws for damage. */
export function verifyCheckpoint(path: string): CheckpointVerification {
  const { tensors: _dropped, ...verification } = inspectCheckpoint(path);
  return verification;
}
