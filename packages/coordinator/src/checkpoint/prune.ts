/**
 * Retention: the newest `keepLast` step checkpoints stay, pinned (per-epoch) ones stay
 * forever, the one `latest` points to always stays. Only checkpoints that look complete
 * (state.json and manifest readable) count toward `keepLast`, so a damaged newer folder
 * never pushes the last good one out; damaged folders newer than the kept ones are left
 * for inspection. Removal renames to `.trash-*` first, so a crash mid-delete never leaves
 * a half folder under a checkpoint name.
 */
import * as fs from "node:fs";
import { join } from "node:path";
import { fsyncDirectory } from "./durable-files";
import { scratchName, TRASH_PREFIX } from "./layout";
import { listCheckpoints } from "./list-checkpoints";

export interface PruneResult {
  removed: string[];
  kept: string[];
}

export function pruneCheckpoints(runDir: string, keepLast: number): PruneResult {
  if (!Number.isSafeInteger(keepLast) || keepLast < 1) throw new RangeError(`keep-last must be a positive integer, got ${keepLast}`);
  const listings = listCheckpoints(runDir);
  const looksComplete = (l: (typeof listings)[number]): boolean => l.epoch !== undefined && l.bytes !== undefined;
  const newestComplete = listings.filter((l) => !l.pinned && looksComplete(l)).slice(-keepLast);
  const oldestKeptStep = newestComplete.length > 0 ? newestComplete[0].step : -Infinity; // nothing complete: keep every folder
  const keep = (l: (typeof listings)[number]): boolean => l.pinned || l.latest || newestComplete.includes(l) || (!looksComplete(l) && l.step > oldestKeptStep);
  const removed: string[] = [];
  const kept: string[] = [];
  for (const listing of listings) {
    if (keep(listing)) {
      kept.push(listing.name);
      continue;
    }
    const trash = join(runDir, scratchName(TRASH_PREFIX, listing.name));
    fs.renameSync(listing.path, trash);
    fs.rmSync(trash, { recursive: true, force: true });
    removed.push(listing.name);
  }
  if (removed.length > 0) fsyncDirectory(runDir);
  return { removed, kept };
}
