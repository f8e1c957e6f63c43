import { Graph } from "../graph/graph";
import { Tensor } from "../graph/tensor";
import { gradientRules } from "./rules";

export class MissingGradientRuleError extends Error {
  constructor(readonly op: string, readonly nodeName: string) {
    super(`no gradient rule for ${op} (node ${nodeName}) on the path from the parameters to the loss`);
    this.name = "MissingGradientRuleError";
  }
}

/**
 * Reverse-mode differentiation: appends to `g` the nodes computing d(loss)/d(w) for
 * each tensor in `wrt`, walking the forward nodes backwards and applying one rule each.
 * A tensor that the loss does not depend on gets an explicit zero gradient.
 */
export function gradients(g: Graph, loss: Tensor, wrt: readonly Tensor[]): Tensor[] {
  const forward = [...g.nodes];

  // Only nodes downstream of a parameter carry gradients worth computing.
  const dependsOnWrt = new Set<Tensor>(wrt);
  for (const node of forward) {
    if (node.inputs.some((t) => dependsOnWrt.has(t))) node.outputs.forEach((t) => dependsOnWrt.add(t));
  }

  const grads = new Map<Tensor, Tensor>([[loss, g.constant(1, loss.shape, loss.dtype)]]);
  const accumulate = (t: Tensor, grad: Tensor): void => {
    const prev = grads.get(t);
    grads.set(t, prev ? g.add(prev, grad) : grad);
  };

  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    const dy = node.outputs.map((t) => grads.get(t));
    if (dy.every((d) => d === undefined) || !node.inputs.some((t) => dependsOnWrt.has(t))) continue;
    const rule = gradientRules[node.op];
    if (!rule) throw new MissingGradientRuleError(node.op, node.name);
    const dx = g.scope(`grad.${node.name.replace("/", ".")}`, () => rule(g, node, dy));
    node.inputs.forEach((input, k) => {
      const d = dx[k];
      if (d && dependsOnWrt.has(input)) accumulate(input, d);
    });
  }

  return wrt.map((w) => grads.get(w) ?? g.expand(g.constant(0, [], w.dtype), w.shape));
}
