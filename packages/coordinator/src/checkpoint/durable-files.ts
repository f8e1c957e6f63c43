/**
 * File writes that survive a power cut: data is fsynced before a rename makes it visible,
 * and the folder is fsynced after, so the rename itself is on disk. Without the fsyncs a
 * crash can leave a renamed file with zero-length content (ext4 delayed allocation).
 */
import * as fs from "node:fs";
import { basename, dirname, join } from "node:path";
import { scratchName, TEMPORARY_PREFIX } from "./layout";

/** Creates `path` (it must not exist), writes all of `data` (parts one after the other) and fsyncs it. */
export function writeFileDurably(path: string, data: Uint8Array | readonly Uint8Array[] | string): void {
  const parts = typeof data === "string" ? [Buffer.from(data, "utf8")] : data instanceof Uint8Array ? [data] : data;
  const fd = fs.openSync(path, "wx");
  try {
    for (const bytes of parts) {
      let written = 0;
      while (written < bytes.byteLength) written += fs.writeSync(fd, bytes, written, bytes.byteLength - written);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes the entries of a folder (creations, renames, removals) durable. */
export function fsyncDirectory(path: string): void {
  const fd = fs.openSync(path, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Replaces `path` with `data` so that readers see either the old or the new content, never a mix. */
export function replaceFileAtomically(path: string, data: string | Uint8Array): void {
  const folder = dirname(path);
  const temporary = join(folder, scratchName(TEMPORARY_PREFIX, basename(path)));
  try {
    writeFileDurably(temporary, data);
    fs.renameSync(temporary, path);
  } catch (err) {
    fs.rmSync(temporary, { force: true });
    throw err;
  }
  fsyncDirectory(folder);
}
