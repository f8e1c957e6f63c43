import { decayOf, ParamSpec } from "../param-store";
import { DinoModelConfig } from "./config";

/**
 * The parameters of `MultiCropWrapper(VisionTransformer, DINOHead)` with the reference
 * `state_dict` names, shapes and order.
 */
export function dinoParamSpecs(c: DinoModelConfig): ParamSpec[] {
  const d = c.embedDim;
  const hidden = d * c.mlpRatio;
  const patches = (c.imgSize / c.patchSize) ** 2;
  const shapes: Array<[string, number[]]> = [
    ["backbone.cls_token", [1, 1, d]],
    ["backbone.pos_embed", [1, patches + 1, d]],
    ["backbone.patch_embed.proj.weight", [d, 3, c.patchSize, c.patchSize]],
    ["backbone.patch_embed.proj.bias", [d]],
  ];
  for (let i = 0; i < c.depth; i++) {
    const b = `backbone.blocks.${i}`;
    shapes.push(
      [`${b}.norm1.weight`, [d]], [`${b}.norm1.bias`, [d]],
      [`${b}.attn.qkv.weight`, [3 * d, d]], [`${b}.attn.qkv.bias`, [3 * d]],
      [`${b}.attn.proj.weight`, [d, d]], [`${b}.attn.proj.bias`, [d]],
      [`${b}.norm2.weight`, [d]], [`${b}.norm2.bias`, [d]],
      [`${b}.mlp.fc1.weight`, [hidden, d]], [`${b}.mlp.fc1.bias`, [hidden]],
      [`${b}.mlp.fc2.weight`, [d, hidden]], [`${b}.mlp.fc2.bias`, [d]],
    );
  }
  shapes.push(["backbone.norm.weight", [d]], ["backbone.norm.bias", [d]]);
  for (const layer of headLayers(c)) {
    shapes.push([`${layer.name}.weight`, [layer.out, layer.in]], [`${layer.name}.bias`, [layer.out]]);
  }
  shapes.push(["head.last_layer.weight_g", [c.outDim, 1]], ["head.last_layer.weight_v", [c.outDim, c.headBottleneckDim]]);

  return shapes.map(([name, shape]) => ({
    name,
    shape,
    trainable: !(name === "head.last_layer.weight_g" && c.normLastLayer),
    decay: decayOf(name, shape),
  }));
}

/** The head's Linear layers: `head.mlp` alone when it has one layer, else `head.mlp.{0,2,4…}` with GELUs between. */
export function headLayers(c: DinoModelConfig): Array<{ name: string; in: number; out: number }> {
  if (c.headLayers === 1) return [{ name: "head.mlp", in: c.embedDim, out: c.headBottleneckDim }];
  const widths = [c.embedDim, ...Array<number>(c.headLayers - 1).fill(c.headHiddenDim), c.headBottleneckDim];
  return widths.slice(1).map((out, i) => ({ name: `head.mlp.${2 * i}`, in: widths[i], out }));
}
