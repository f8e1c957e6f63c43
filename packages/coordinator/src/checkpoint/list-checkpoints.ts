/** The checkpoints of a run dir, cheapest facts first (names, state.json, manifest); hashing only on request. */
import * as fs from "node:fs";
import { join } from "node:path";
import { MANIFEST_FILE, STATE_FILE, stepOfCheckpointName } from "./layout";
import { manifestBytes, parseManifest } from "./manifest";
import { readLatestPointer } from "./read-checkpoint";
import { stateFileProblem, type CheckpointStateFile } from "./training-state";
import { verifyCheckpoint, type CheckpointProblem } from "./verify-checkpoint";

export interface CheckpointListing {
  name: string;
  path: string;
  step: number;
  /** From state.json; undefined where it cannot be read. */
  epoch?: number;
  iterInEpoch?: number;
  savedAt?: string;
  loss?: number | null;
  pinned: boolean;
  /** Total bytes of the files, from the manifest. */
  bytes?: number;
  /** Whether `latest` points here. */
  latest: boolean;
  /** Present when listed with `verify`: the full hash and shape check. */
  valid?: boolean;
  problems?: CheckpointProblem[];
}

function readState(folder: string): CheckpointStateFile | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(join(folder, STATE_FILE), "utf8"));
    return stateFileProblem(parsed) === undefined ? (parsed as CheckpointStateFile) : undefined;
  } catch {
    return undefined;
  }
}

function readTotalBytes(folder: string): number | undefined {
  try {
    const manifest = parseManifest(fs.readFileSync(join(folder, MANIFEST_FILE), "utf8"));
    return typeof manifest === "string" ? undefined : manifestBytes(manifest);
  } catch {
    return undefined;
  }
}

/** `checkpoint-*` folders of `runDir` by ascending step (temporary and trash folders are not checkpoints). */
export function listCheckpoints(runDir: string, options: { verify?: boolean } = {}): CheckpointListing[] {
  if (!fs.existsSync(runDir)) return [];
  const latest = readLatestPointer(runDir);
  const listings: CheckpointListing[] = [];
  for (const entry of fs.readdirSync(runDir, { withFileTypes: true })) {
    const step = stepOfCheckpointName(entry.name);
    if (step === undefined || !entry.isDirectory()) continue;
    const path = join(runDir, entry.name);
    const state = readState(path);
    const listing: CheckpointListing = {
      name: entry.name,
      path,
      step,
      epoch: state?.epoch,
      iterInEpoch: state?.iterInEpoch,
      savedAt: state?.savedAt,
      loss: state?.loss,
      pinned: state?.pinned === true,
      bytes: readTotalBytes(path),
      latest: entry.name === latest,
    };
    if (options.verify) {
      const verification = verifyCheckpoint(path);
      listing.valid = verification.ok;
      listing.problems = verification.problems;
    }
    listings.push(listing);
  }
  return listings.sort((a, b) => a.step - b.step);
}
