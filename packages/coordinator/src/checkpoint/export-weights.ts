/**
 * The weights a downstream user wants, as a plain safetensors file: one network under
 * reference state_dict names; with `backboneOnly` just the ViT with the `backbone.` prefix
 * stripped, like the reference's released `dino_deitsmall16_pretrain.pth`, so it loads
 * into `vit_small()` directly (`load_state_dict(safetensors.torch.load_file(path))`).
 */
import type { SafetensorsTensor } from "@dino-coord/model";
import { encodeSafetensors } from "@dino-coord/model";
import { basename } from "node:path";
import { replaceFileAtomically } from "./durable-files";
import { STUDENT_FILE, TEACHER_FILE } from "./layout";
import { corruptErrorOf } from "./read-checkpoint";
import { inspectCheckpoint } from "./verify-checkpoint";

export type Network = "teacher" | "student";
export const BACKBONE_PREFIX = "backbone.";

export interface ExportOptions {
  which: Network;
  backboneOnly?: boolean;
  out: string;
}

export interface ExportResult {
  out: string;
  tensors: number;
  bytes: number;
}

/** Tensors of one network, optionally only the backbone without its prefix. */
export function exportedTensors(network: ReadonlyMap<string, SafetensorsTensor>, backboneOnly: boolean): Map<string, SafetensorsTensor> {
  if (!backboneOnly) return new Map(network);
  const out = new Map<string, SafetensorsTensor>();
  for (const [name, tensor] of network) if (name.startsWith(BACKBONE_PREFIX)) out.set(name.slice(BACKBONE_PREFIX.length), tensor);
  return out;
}

/** Verifies the checkpoint, then writes the chosen weights to `out` atomically. */
export function exportWeights(checkpoint: string, options: ExportOptions): ExportResult {
  if (options.which !== "teacher" && options.which !== "student") throw new Error(`--which must be teacher or student, got "${String(options.which)}"`);
  const inspection = inspectCheckpoint(checkpoint, { keepTensors: true });
  if (!inspection.ok) throw corruptErrorOf(inspection);
  const network = inspection.tensors!.get(options.which === "teacher" ? TEACHER_FILE : STUDENT_FILE)!;
  const tensors = exportedTensors(network, options.backboneOnly === true);
  if (tensors.size === 0) throw new Error(`${checkpoint}: the ${options.which} has no "${BACKBONE_PREFIX}*" tensors to export`);
  const state = inspection.state!;
  const bytes = encodeSafetensors(tensors, {
    format: "pt",
    network: options.which,
    backbone_only: String(options.backboneOnly === true),
    source: basename(checkpoint),
    step: String(state.step),
    epoch: String(state.epoch),
  });
  replaceFileAtomically(options.out, bytes);
  return { out: options.out, tensors: tensors.size, bytes: bytes.byteLength };
}
