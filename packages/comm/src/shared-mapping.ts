/**
 * The optional native helper that maps shared-memory files into this process (native/,
 * compiled by the package build). Copying through a mapping is a user-space memcpy, about
 * twice as fast as the pread/pwrite that Node offers; without the helper (no C compiler or
 * Node headers at build time, or DINO_COMM_SHM_MMAP=0) the files are read and written with
 * pread/pwrite and give the same bytes.
 */
import * as path from "path";

export type MapFile = (fd: number, length: number, writable: boolean) => Uint8Array;

interface SharedMappingAddon {
  map(fd: number, length: number, writable: boolean): ArrayBuffer;
}

/** Where the build puts the helper; the same path from src/ (tests) and dist/. */
export const SHARED_MAPPING_ADDON = path.join(__dirname, "..", "dist", "native", "shared_mapping.node");

let loaded: { map: MapFile | null; why: string } | undefined;

function load(): { map: MapFile | null; why: string } {
  if (process.env.DINO_COMM_SHM_MMAP === "0") return { map: null, why: "DINO_COMM_SHM_MMAP=0" };
  try {
    const addon = require(SHARED_MAPPING_ADDON) as SharedMappingAddon;
    return { map: (fd, length, writable) => new Uint8Array(addon.map(fd, length, writable)), why: "loaded" };
  } catch (err) {
    return { map: null, why: (err as Error).message };
  }
}

/**
 * mmap of a whole file (MAP_SHARED), or null when the helper is unavailable. Read it through
 * `sharedMappingStatus()` to learn why. Decided once per process, unless `reload` is set (tests).
 */
export function sharedMapping(reload = false): MapFile | null {
  if (reload || !loaded) loaded = load();
  return loaded.map;
}

/** "loaded", or why the helper is not used. */
export function sharedMappingStatus(): string {
  sharedMapping();
  return loaded!.why;
}
