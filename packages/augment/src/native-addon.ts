import * as path from "path";

/** Where the package build puts its C helpers (native/*.c); the same path from src/ (tests) and dist/. */
export const NATIVE_ADDON_DIR = path.join(__dirname, "..", "dist", "native");

/**
 * An optional C helper of this package: its exports, or null and why not (not built: no C
 * compiler, Node headers or library headers at build time; or switched off by setting
 * `disableVariable` to 0). Each caller decides once per thread and keeps the answer.
 */
export function loadNativeAddon<T>(file: string, disableVariable: string): { addon: T | null; why: string } {
  if (process.env[disableVariable] === "0") return { addon: null, why: `${disableVariable}=0` };
  try {
    return { addon: require(path.join(NATIVE_ADDON_DIR, file)) as T, why: "loaded" };
  } catch (err) {
    return { addon: null, why: (err as Error).message };
  }
}
