/**
 * Which execution provider runs each node. ONNX Runtime prints the placement only in
 * its verbose session log, on the native side, so a child process creates the session
 * and we read its log.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Graph } from "../graph/graph";
import { toOnnxBytes } from "../graph/onnx-export";
import { Device, DeviceError, deviceName } from "./device";

export interface ProviderPlacement {
  provider: string;
  nodeCount: number;
  /** The nodes, when ONNX Runtime lists them (it does not when every node is on one provider). */
  nodes: Array<{ op: string; name: string }>;
}

export interface PlacementReport {
  graph: string;
  device: string;
  providers: ProviderPlacement[];
  /** Nodes that run on the CPU although another device was asked for. */
  cpuFallback: Array<{ op: string; name: string }>;
}

const ALL_ON = /All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const SOME_ON = /Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const NODE_LINE = /\]\s+(\w+) \((.*)\)\s*$/;

/** Parses the "Node placements" section of a verbose ONNX Runtime session log. */
export function parsePlacementLog(log: string): ProviderPlacement[] {
  const providers: ProviderPlacement[] = [];
  let current: ProviderPlacement | undefined;
  for (const line of log.split("\n")) {
    const all = ALL_ON.exec(line) ?? SOME_ON.exec(line);
    if (all) {
      current = { provider: all[1], nodeCount: Number(all[2]), nodes: [] };
      providers.push(current);
      continue;
    }
    const node = current && line.includes("VerifyEachNodeIsAssignedToAnEp") ? NODE_LINE.exec(line) : null;
    if (current && node && current.nodes.length < current.nodeCount) current.nodes.push({ op: node[1], name: node[2] });
    else if (!line.includes("VerifyEachNodeIsAssignedToAnEp")) current = undefined;
  }
  return providers;
}

const CHILD = `
const ort = require(process.argv[1]);
const [modelPath, optionsJson] = process.argv.slice(2);
ort.InferenceSession.create(modelPath, JSON.parse(optionsJson))
  .then(() => process.exit(0))
  .catch((err) => { console.error("SESSION_ERROR " + err.message); process.exit(3); });
`;

export async function reportPlacement(graph: Graph, device: Device, sessionOptions: object, timeoutMs = 300_000): Promise<PlacementReport> {
  const dir = mkdtempSync(join(tmpdir(), "dino-placement-"));
  const modelPath = join(dir, "model.onnx");
  writeFileSync(modelPath, toOnnxBytes(graph));
  const options = { ...sessionOptions, logSeverityLevel: 0, logVerbosityLevel: 0 };
  try {
    const log = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["-e", CHILD, require.resolve("onnxruntime-node"), modelPath, JSON.stringify(options)],
        { timeout: timeoutMs, maxBuffer: 512 * 1024 * 1024 },
        (err, stdout, stderr) => {
          const text = `${stdout}\n${stderr}`;
          const failure = /SESSION_ERROR (.*)/.exec(text);
          if (failure) reject(new DeviceError(`${graph.name} on ${deviceName(device)}: ${failure[1]}`));
          else if (err) reject(new Error(`placement probe of ${graph.name} failed: ${err.message}`));
          else resolve(text);
        },
      );
    });
    const providers = parsePlacementLog(log);
    if (providers.length === 0) throw new Error(`ONNX Runtime printed no node placement for ${graph.name}`);
    const cpuFallback =
      device.kind === "cpu" ? [] : providers.filter((p) => p.provider === "CPUExecutionProvider").flatMap((p) => p.nodes);
    return { graph: graph.name, device: deviceName(device), providers, cpuFallback };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
