import * as fs from "node:fs";
import { dirname, join } from "node:path";

/** The software that wrote a checkpoint, recorded so a result can be traced to the code that made it. */
export interface WriterVersions {
  dinoCoord: string;
  node: string;
  /** Null when onnxruntime-node cannot be located from here (it is a dependency of @dino-coord/model). */
  onnxruntimeNode: string | null;
}

let cached: WriterVersions | undefined;

function packageVersion(packageJson: string): string | null {
  try {
    return String((JSON.parse(fs.readFileSync(packageJson, "utf8")) as { version?: unknown }).version ?? "") || null;
  } catch {
    return null;
  }
}

export function writerVersions(): WriterVersions {
  if (cached) return cached;
  // src/checkpoint and dist/checkpoint are both two levels below the package root.
  const dinoCoord = packageVersion(join(__dirname, "..", "..", "package.json")) ?? "unknown";
  let onnxruntimeNode: string | null = null;
  try {
    const model = dirname(require.resolve("@dino-coord/model"));
    onnxruntimeNode = packageVersion(require.resolve("onnxruntime-node/package.json", { paths: [model] }));
  } catch {
    onnxruntimeNode = null;
  }
  cached = { dinoCoord, node: process.version, onnxruntimeNode };
  return cached;
}
