import { existsSync } from "node:fs";
import * as path from "node:path";
import { AugmentWorkerError } from "./errors";

/**
 * Worker threads must load compiled JS. From dist/ the script sits next to this file;
 * under ts-jest this file runs from src/, so use the build output in ../dist (the turbo
 * `test` task depends on `build`).
 */
export function resolveWorkerScript(name = "augment-worker.js"): string {
  const candidates = [path.join(__dirname, name), path.join(__dirname, "..", "dist", name)];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) throw new AugmentWorkerError(`compiled worker script not found (looked for ${candidates.join(", ")}); build the package first: pnpm --filter @dino-coord/augment build`);
  return found;
}
