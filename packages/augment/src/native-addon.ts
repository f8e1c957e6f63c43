import * as path from "path";

/** Where the package build puts its C helpers (native/*.c); the same path from src/ (tests) and dist/. */
export const NATIVE_ADDON_DIR = path.join(__dirname, "..", "dist", "native");

/**
 * An optional C helper of this package, loaded on first use and kept (per thread): its
 * exports, or null and why not (not built: no C compiler, Node headers or library headers
 * at build time; or switched off by setting `disableVariable` to 0).
 */
export class NativeAddon<T> {
  private loaded: { exports: T | null; why: string } | undefined;

  constructor(
    private readonly file: string,
    private readonly disableVariable: string,
  ) {}

  /** The exports, or null where the helper is unavailable; `reload` decides again (tests that toggle the variable). */
  get(reload = false): T | null {
    if (reload || !this.loaded) this.loaded = this.load();
    return this.loaded.exports;
  }

  /** "loaded", or why the helper is not used. */
  get status(): string {
    this.get();
    return this.loaded!.why;
  }

  private load(): { exports: T | null; why: string } {
    if (process.env[this.disableVariable] === "0") return { exports: null, why: `${this.disableVariable}=0` };
    try {
      return { exports: require(path.join(NATIVE_ADDON_DIR, this.file)) as T, why: "loaded" };
    } catch (err) {
      return { exports: null, why: (err as Error).message };
    }
  }
}
