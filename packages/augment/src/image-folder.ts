import { promises as fs } from "node:fs";
import * as path from "node:path";
import type { Logger } from "pino";
import { DataFolderError } from "./errors";

/** torchvision.datasets.folder.IMG_EXTENSIONS, matched case-insensitively. */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"];

/** An ImageNet-layout dataset: sample i is files[i] (relative to root) with label targets[i]. */
export interface ImageFolderDataset {
  root: string;
  classes: string[];
  files: string[];
  targets: number[];
}

export interface ScanOptions {
  /** Folder for the index cache (the run's output folder); no caching when absent. */
  cacheDir?: string;
  logger?: Logger;
}

/** Every directory of the tree with its mtime and ctime (ns): the cache's validity key. */
type DirectoryStamp = [relativePath: string, mtimeNs: string, ctimeNs: string];

interface IndexCacheFile extends ImageFolderDataset {
  version: number;
  scannedAtNs: string;
  directories: DirectoryStamp[];
}

const CACHE_VERSION = 2;
/** With whole-second timestamps, a change within this long of the scan might not show. */
const COARSE_CLOCK_MARGIN_NS = 2_000_000_000n;
export const INDEX_CACHE_FILE = "image-folder-index.json";

/** Python's sorted() on str compares code points; JS's default compares UTF-16 units. */
function byCodePoint(a: string, b: string): number {
  const x = Array.from(a, (ch) => ch.codePointAt(0) as number);
  const y = Array.from(b, (ch) => ch.codePointAt(0) as number);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

function isHidden(name: string): boolean {
  return name.startsWith(".");
}

function isImageFile(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/**
 * Scan `root` like torchvision's ImageFolder: classes are the sorted (non-hidden) subfolders,
 * each class's files are found by walking it (symlinks followed) in sorted order and kept
 * when their extension is an image extension. Hidden files and folders are ignored.
 *
 * With `cacheDir`, the index is stored as JSON and reused while every directory of the tree
 * keeps its mtime and ctime. This is sound for what the index holds (names): creating,
 * deleting or renaming an entry updates its parent directory's mtime and ctime, so a new or
 * removed file changes its folder's stamp and a new or removed folder its parent's; tools
 * that restore an old mtime (rsync -t, tar) still move the ctime, which cannot be set back.
 * Rewriting a file's bytes changes neither, and the index does not depend on them. On file
 * systems with whole-second timestamps, a directory stamped within 2 s of the scan is not
 * trusted. Checking costs one stat per directory, not a listing of every file.
 */
export async function scanImageFolder(root: string, options: ScanOptions = {}): Promise<ImageFolderDataset> {
  const absRoot = path.resolve(root);
  const log = options.logger?.child({ component: "image-folder" });
  await checkRoot(absRoot);
  const cachePath = options.cacheDir ? path.join(options.cacheDir, INDEX_CACHE_FILE) : undefined;
  if (cachePath) {
    const cached = await readCache(cachePath, absRoot);
    if (cached) {
      log?.debug({ root: absRoot, images: cached.files.length }, "image index cache is current");
      return { root: cached.root, classes: cached.classes, files: cached.files, targets: cached.targets };
    }
  }
  const started = Date.now();
  const scannedAtNs = BigInt(Date.now()) * 1_000_000n; // wall clock, comparable with file ctimes
  const { dataset, directories } = await scan(absRoot);
  log?.info({ root: absRoot, classes: dataset.classes.length, images: dataset.files.length, ms: Date.now() - started }, "scanned image folder");
  if (cachePath && options.cacheDir) {
    await fs.mkdir(options.cacheDir, { recursive: true });
    const body: IndexCacheFile = { version: CACHE_VERSION, scannedAtNs: scannedAtNs.toString(), ...dataset, directories };
    const tmp = `${cachePath}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(body));
    await fs.rename(tmp, cachePath);
  }
  return dataset;
}

async function checkRoot(root: string): Promise<void> {
  let stat;
  try {
    stat = await fs.stat(root);
  } catch {
    throw new DataFolderError(root, "missing", "does not exist (expected an ImageNet-layout folder such as train/<class>/<image>.JPEG)");
  }
  if (!stat.isDirectory()) throw new DataFolderError(root, "not-a-directory", "is not a directory");
}

async function stamp(root: string, relative: string): Promise<DirectoryStamp> {
  const stat = await fs.stat(path.join(root, relative), { bigint: true });
  return [relative, stat.mtimeNs.toString(), stat.ctimeNs.toString()];
}

async function readCache(cachePath: string, root: string): Promise<IndexCacheFile | undefined> {
  let cached: IndexCacheFile;
  try {
    cached = JSON.parse(await fs.readFile(cachePath, "utf8")) as IndexCacheFile;
  } catch {
    return undefined;
  }
  if (cached.version !== CACHE_VERSION || cached.root !== root || !Array.isArray(cached.directories)) return undefined;
  const scannedAt = BigInt(cached.scannedAtNs);
  const coarse = cached.directories.every(([, m, c]) => BigInt(m) % 1_000_000_000n === 0n && BigInt(c) % 1_000_000_000n === 0n);
  try {
    for (const [relative, mtimeNs, ctimeNs] of cached.directories) {
      const [, nowMtime, nowCtime] = await stamp(root, relative);
      if (nowMtime !== mtimeNs || nowCtime !== ctimeNs) return undefined;
      if (coarse && BigInt(nowCtime) + COARSE_CLOCK_MARGIN_NS >= scannedAt) return undefined;
    }
  } catch {
    return undefined; // a directory vanished
  }
  return cached;
}

async function scan(root: string): Promise<{ dataset: ImageFolderDataset; directories: DirectoryStamp[] }> {
  const directories: DirectoryStamp[] = [await stamp(root, "")];
  const classes: string[] = [];
  for (const name of (await fs.readdir(root)).sort(byCodePoint)) {
    if (isHidden(name)) continue;
    if ((await statOrUndefined(path.join(root, name)))?.isDirectory()) classes.push(name);
  }
  if (classes.length === 0) throw new DataFolderError(root, "no-classes", "has no class subfolders (expected <root>/<class>/<image>)");
  const files: string[] = [];
  const targets: number[] = [];
  const empty: string[] = [];
  for (let label = 0; label < classes.length; label++) {
    const before = files.length;
    await walk(root, classes[label], files, directories);
    for (let i = before; i < files.length; i++) targets.push(label);
    if (files.length === before) empty.push(classes[label]);
  }
  if (files.length === 0) throw new DataFolderError(root, "no-images", `has no image files (extensions ${IMAGE_EXTENSIONS.join(" ")}) in its ${classes.length} class folders`);
  if (empty.length > 0) {
    const shown = empty.slice(0, 5).join(", ") + (empty.length > 5 ? ` and ${empty.length - 5} more` : "");
    throw new DataFolderError(root, "empty-class", `class folders without image files: ${shown} (torchvision's ImageFolder rejects these too)`);
  }
  return { dataset: { root, classes, files, targets }, directories };
}

/**
 * torchvision: `for root, _, fnames in sorted(os.walk(class_dir, followlinks=True))`, then
 * sorted(fnames): folders ordered by their full path string, files sorted within each.
 */
async function walk(root: string, classDir: string, files: string[], directories: DirectoryStamp[]): Promise<void> {
  const found: Array<[string, string[]]> = [];
  const visit = async (relative: string): Promise<void> => {
    directories.push(await stamp(root, relative));
    const here: string[] = [];
    for (const entry of await fs.readdir(path.join(root, relative), { withFileTypes: true })) {
      if (isHidden(entry.name)) continue;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await statOrUndefined(path.join(root, relative, entry.name));
        isDir = target?.isDirectory() ?? false;
        isFile = target?.isFile() ?? false;
      }
      if (isDir) await visit(path.join(relative, entry.name));
      else if (isFile && isImageFile(entry.name)) here.push(entry.name);
    }
    found.push([relative, here.sort(byCodePoint)]);
  };
  await visit(classDir);
  found.sort((a, b) => byCodePoint(a[0], b[0]));
  for (const [relative, names] of found) for (const name of names) files.push(path.join(relative, name));
}

async function statOrUndefined(p: string) {
  try {
    return await fs.stat(p);
  } catch {
    return undefined;
  }
}
