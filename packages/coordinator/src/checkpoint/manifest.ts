/**
 * manifest.json: the byte size and sha256 of every other file of a checkpoint. It is
 * written last inside the folder, so a folder whose manifest checks out is complete.
 */
import { createHash } from "node:crypto";
import { CHECKPOINT_FILES } from "./layout";

export const MANIFEST_FORMAT = "dino-coord-checkpoint-manifest";

export interface ManifestEntry {
  bytes: number;
  sha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: 1;
  files: Record<string, ManifestEntry>;
}

export function sha256Hex(bytes: Uint8Array | readonly Uint8Array[]): string {
  const hash = createHash("sha256");
  for (const part of bytes instanceof Uint8Array ? [bytes] : bytes) hash.update(part);
  return hash.digest("hex");
}

/** Size and hash of a file's bytes, given whole or as the parts written one after the other. */
export function manifestEntry(bytes: Uint8Array | readonly Uint8Array[]): ManifestEntry {
  const size = bytes instanceof Uint8Array ? bytes.byteLength : bytes.reduce((sum, part) => sum + part.byteLength, 0);
  return { bytes: size, sha256: sha256Hex(bytes) };
}

/** Parses manifest.json bytes; returns the manifest or the problem. */
export function parseManifest(text: string): Manifest | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return `is not valid JSON (${(err as Error).message})`;
  }
  const record = value as Partial<Manifest> | null;
  if (record === null || typeof record !== "object" || record.format !== MANIFEST_FORMAT) return `is not a ${MANIFEST_FORMAT} file`;
  if (record.files === null || typeof record.files !== "object") return "has no files table";
  for (const file of CHECKPOINT_FILES) {
    const entry = record.files[file];
    if (!entry || !Number.isSafeInteger(entry.bytes) || typeof entry.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(entry.sha256)) {
      return `has no valid {bytes, sha256} entry for ${file}`;
    }
  }
  return record as Manifest;
}

/** Total bytes of the files a manifest covers. */
export function manifestBytes(manifest: Manifest): number {
  return Object.values(manifest.files).reduce((sum, entry) => sum + entry.bytes, 0);
}
