import { tinyDemoConfig } from "../src/dino/config";
import { buildTeacherGraph } from "../src/dino/train-graphs";
import { sessionOptions } from "../src/runtime/device";
import { parsePlacementLog, reportPlacement } from "../src/runtime/placement";

// The format of ONNX Runtime's verbose log when a graph is split between providers.
const MIXED_LOG = `
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] Node placements
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:1389 VerifyEachNodeIsAssignedToAnEp]   Erf (blocks.0/Erf_12)
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:1389 VerifyEachNodeIsAssignedToAnEp]   Pad (grad.head.Slice_3/Pad_99)
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 1
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:1389 VerifyEachNodeIsAssignedToAnEp]   Gemm (head/Gemm_7)
2026-11-26 07:00:18.71 [V:onnxruntime:, session_state.cc:186 CreateGraphInfo] SaveMLValueNameIndexMapping
`;

test("a split placement lists each provider's nodes", () => {
  expect(parsePlacementLog(MIXED_LOG)).toEqual([
    { provider: "CPUExecutionProvider", nodeCount: 2, nodes: [{ op: "Erf", name: "blocks.0/Erf_12" }, { op: "Pad", name: "grad.head.Slice_3/Pad_99" }] },
    { provider: "WebGpuExecutionProvider", nodeCount: 1, nodes: [{ op: "Gemm", name: "head/Gemm_7" }] },
  ]);
});

test("the teacher graph on the CPU provider: every node placed there, no fallback reported", async () => {
  const graph = buildTeacherGraph(tinyDemoConfig(), { batchSize: 2, globalCrops: 2, localCrops: 0 });
  const report = await reportPlacement(graph, { kind: "cpu" }, sessionOptions({ kind: "cpu" }));
  expect(report.providers).toHaveLength(1);
  expect(report.providers[0].provider).toBe("CPUExecutionProvider");
  expect(report.providers[0].nodeCount).toBeGreaterThan(50);
  expect(report.cpuFallback).toEqual([]);
});
