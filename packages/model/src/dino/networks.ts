/**
 * The DINO networks as ONNX graphs: g = head ∘ backbone (Caron et al. 2021, §3.1),
 * with the ViT of Dosovitskiy et al. as the backbone. Names follow the reference
 * `state_dict`, so `p("blocks.0.attn.qkv.weight")` is that tensor.
 */
import { Graph } from "../graph/graph";
import { Tensor } from "../graph/tensor";
import { DinoModelConfig } from "./config";
import { headLayers } from "./param-specs";
import { posEmbedResizeMatrix } from "./pos-embed-resize";

/** Looks a parameter up by its reference name. */
export type Params = (name: string) => Tensor;

/**
 * Per-sample stochastic-depth multipliers for one crop group, [depth, 2, n]:
 * 0 for a dropped residual branch, 1/keep for a kept one (attn branch, then mlp branch).
 */
export type DropPathMasks = Tensor | undefined;

/** Conv2d(kernel = stride = patch) as a reshape and one GEMM: [n,3,H,W] → [n, tokens, d]. */
function patchEmbed(g: Graph, p: Params, images: Tensor, patch: number): Tensor {
  const [n, channels, h, w] = images.shape;
  const [gh, gw] = [h / patch, w / patch];
  const weight = p("backbone.patch_embed.proj.weight");
  const d = weight.shape[0];
  const patches = g.transpose(g.reshape(images, [n, channels, gh, patch, gw, patch]), [0, 2, 4, 1, 3, 5]);
  const flat = g.reshape(patches, [n * gh * gw, channels * patch * patch]);
  const tokens = g.gemm(flat, g.reshape(weight, [d, channels * patch * patch]), p("backbone.patch_embed.proj.bias"), { transB: true });
  return g.reshape(tokens, [n, gh * gw, d]);
}

/** pos_embed, with its patch part bicubically resized when the crop's grid differs (reference `interpolate_pos_encoding`). */
function positionEmbedding(g: Graph, p: Params, gridSide: number): Tensor {
  const posEmbed = p("backbone.pos_embed");
  const [, tokens, d] = posEmbed.shape;
  const sourceSide = Math.round(Math.sqrt(tokens - 1));
  if (gridSide === sourceSide) return posEmbed;
  const resize = g.constant(posEmbedResizeMatrix(sourceSide, gridSide), [gridSide * gridSide, tokens - 1]);
  const patchPart = g.reshape(g.slice(posEmbed, 1, 1, tokens), [tokens - 1, d]);
  const resized = g.reshape(g.matmul(resize, patchPart), [1, gridSide * gridSide, d]);
  return g.concat([g.slice(posEmbed, 1, 0, 1), resized], 1);
}

function multiHeadAttention(g: Graph, p: Params, x: Tensor, heads: number): Tensor {
  const [n, t, d] = x.shape;
  const headDim = d / heads;
  const qkv = g.linear(x, p("attn.qkv.weight"), p("attn.qkv.bias"));
  // [n, t, d] → [n, heads, t, headDim]: a single-axis move, which ONNX Runtime transposes
  // fast (a 5-D [n,t,3,h,hd] → [3,n,h,t,hd] permute is several times slower).
  const [q, k, v] = g.split(qkv, [d, d, d], 2).map((part) => g.transpose(g.reshape(part, [n, t, heads, headDim]), [0, 2, 1, 3]));
  // Scaling q before the product equals scaling the scores (exactly so for power-of-two
  // head sizes) and touches t·headDim values per head instead of t².
  const scores = g.matmul(g.mul(q, g.scalar(headDim ** -0.5)), g.transpose(k, [0, 1, 3, 2]));
  const attended = g.matmul(g.softmax(scores, -1), v);
  const merged = g.reshape(g.transpose(attended, [0, 2, 1, 3]), [n, t, d]);
  return g.linear(merged, p("attn.proj.weight"), p("attn.proj.bias"));
}

function mlp(g: Graph, p: Params, x: Tensor): Tensor {
  return g.linear(g.gelu(g.linear(x, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"), p("mlp.fc2.bias"));
}

/** A residual branch scaled per sample by its stochastic-depth multiplier (absent: kept). */
function dropPath(g: Graph, branch: Tensor, masks: DropPathMasks, block: number, which: 0 | 1): Tensor {
  if (!masks) return branch;
  const n = branch.shape[0];
  const row = g.slice(g.slice(masks, 0, block, block + 1), 1, which, which + 1);
  return g.mul(branch, g.reshape(row, [n, 1, 1]));
}

/** Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)). */
function block(g: Graph, p: Params, x: Tensor, c: DinoModelConfig, index: number, masks: DropPathMasks): Tensor {
  const b: Params = (name) => p(`backbone.blocks.${index}.${name}`);
  const norm1 = g.layerNorm(x, b("norm1.weight"), b("norm1.bias"), c.layerNormEps);
  x = g.add(x, dropPath(g, multiHeadAttention(g, b, norm1, c.numHeads), masks, index, 0));
  const norm2 = g.layerNorm(x, b("norm2.weight"), b("norm2.bias"), c.layerNormEps);
  return g.add(x, dropPath(g, mlp(g, b, norm2), masks, index, 1));
}

/** ViT backbone: the [CLS] token's final representation, [n, d]. */
export function vitBackbone(g: Graph, p: Params, images: Tensor, c: DinoModelConfig, masks?: DropPathMasks): Tensor {
  const n = images.shape[0];
  const d = c.embedDim;
  const patches = patchEmbed(g, p, images, c.patchSize);
  const cls = g.expand(p("backbone.cls_token"), [n, 1, d]);
  let x = g.add(g.concat([cls, patches], 1), positionEmbedding(g, p, images.shape[2] / c.patchSize));
  for (let i = 0; i < c.depth; i++) x = g.scope(`blocks.${i}`, () => block(g, p, x, c, i, masks));
  // LayerNorm acts per token, so normalising only the [CLS] token equals the reference's norm-then-select.
  const clsOut = g.reshape(g.slice(x, 1, 0, 1), [n, d]);
  return g.layerNorm(clsOut, p("backbone.norm.weight"), p("backbone.norm.bias"), c.layerNormEps);
}

/** DINO head: MLP → ℓ2-normalise → weight-normalised linear layer to out_dim logits. */
export function dinoHead(g: Graph, p: Params, features: Tensor, c: DinoModelConfig): Tensor {
  const layers = headLayers(c);
  let h = features;
  layers.forEach((layer, i) => {
    h = g.linear(h, p(`${layer.name}.weight`), p(`${layer.name}.bias`));
    if (i < layers.length - 1) h = g.gelu(h);
  });
  // F.normalize: x / max(‖x‖₂, 1e-12)
  const norm = g.max(g.sqrt(g.reduceSum(g.mul(h, h), [-1], true)), g.scalar(1e-12));
  const unit = g.div(h, norm);
  // weight_norm(dim=0): W = g · v / ‖v‖ per output row, so unit·Wᵀ = (unit·vᵀ) · (g / ‖v‖)ᵀ.
  // Scaling the [n, K] logits instead of the [K, D] weight saves a pass over the weight
  // (the largest tensor of the model) forward and one backward.
  const v = p("head.last_layer.weight_v");
  const rowNorm = g.sqrt(g.reduceSum(g.mul(v, v), [1], true));
  const logitScale = g.reshape(g.div(p("head.last_layer.weight_g"), rowNorm), [1, v.shape[0]]);
  return g.mul(g.gemm(unit, v, undefined, { transB: true }), logitScale);
}

/**
 * The multi-crop wrapper: each resolution group runs through the backbone on its own
 * (crops of one size batched together, crop-major), the [CLS] features are concatenated
 * in crop order, and the head runs once on all of them.
 */
export function multiCropForward(
  g: Graph,
  p: Params,
  groups: ReadonlyArray<{ images: Tensor; masks?: DropPathMasks }>,
  c: DinoModelConfig,
): Tensor {
  const features = groups.map(({ images, masks }, i) => g.scope(`crops${i}`, () => vitBackbone(g, p, images, c, masks)));
  const all = features.length === 1 ? features[0] : g.concat(features, 0);
  return g.scope("head", () => dinoHead(g, p, all, c));
}
