import type { ParamStore } from "@dino-coord/model";

/** Euclidean norm of all of a network's parameters (float64 accumulation). */
export function l2Norm(values: ArrayLike<number>): number {
  let sumOfSquares = 0;
  for (let i = 0; i < values.length; i++) sumOfSquares += values[i] * values[i];
  return Math.sqrt(sumOfSquares);
}

/** Norms of the whole network and of its `backbone.` and `head.` parts, for a quick look at a checkpoint. */
export function networkNorms(store: ParamStore): { total: number; backbone: number; head: number } {
  let backbone = 0;
  let head = 0;
  for (const spec of store.specs) {
    const norm = l2Norm(store.view(spec.name));
    if (spec.name.startsWith("head.")) head += norm * norm;
    else backbone += norm * norm;
  }
  return { total: Math.sqrt(backbone + head), backbone: Math.sqrt(backbone), head: Math.sqrt(head) };
}
