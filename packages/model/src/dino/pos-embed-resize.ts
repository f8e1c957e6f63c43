/**
 * The reference resizes the patch part of `pos_embed` for crops of another size with
 * `F.interpolate(mode="bicubic", align_corners=False, scale_factor=(s0 + 0.1)/√N)`.
 * That is a fixed linear map of the embedding, so we precompute it as a matrix
 * [targetSide², sourceSide²]; in the graph it is a MatMul, and its gradient the transpose.
 */

const A = -0.75; // PyTorch's bicubic coefficient

function cubicNear(x: number): number {
  return ((A + 2) * x - (A + 3)) * x * x + 1; // |x| ≤ 1
}
function cubicFar(x: number): number {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
}

/**
 * Weights of one output coordinate of a 1-D bicubic resize, over the input positions
 * (indices clamped at the border, as PyTorch's upsample_bicubic2d reads them).
 */
function bicubicWeights(outIndex: number, inputSize: number, inverseScale: number): Float64Array {
  const weights = new Float64Array(inputSize);
  const real = inverseScale * (outIndex + 0.5) - 0.5; // no clamping for cubic, align_corners false
  const base = Math.floor(real);
  const t = real - base;
  const coefficients = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
  coefficients.forEach((c, k) => {
    const i = Math.min(Math.max(base - 1 + k, 0), inputSize - 1);
    weights[i] += c;
  });
  return weights;
}

/** Side of the patch grid the reference produces for a crop `cropSize` pixels wide. */
export function resizedGridSide(sourceSide: number, targetSide: number): number {
  return Math.floor(sourceSide * ((targetSide + 0.1) / sourceSide));
}

/**
 * Row-major matrix M with M[(oy·T + ox), (iy·S + ix)] so that resized = M · patchPosEmbed,
 * for a source grid of side S resized to a target grid of side T.
 */
export function posEmbedResizeMatrix(sourceSide: number, targetSide: number): Float64Array {
  const scale = (targetSide + 0.1) / sourceSide;
  const outSide = resizedGridSide(sourceSide, targetSide);
  if (outSide !== targetSide) throw new Error(`bicubic resize gives a ${outSide} grid, expected ${targetSide}`);
  const inverseScale = 1 / scale;
  const rows = Array.from({ length: targetSide }, (_, o) => bicubicWeights(o, sourceSide, inverseScale));
  const S = sourceSide;
  const T = targetSide;
  const m = new Float64Array(T * T * S * S);
  for (let oy = 0; oy < T; oy++)
    for (let ox = 0; ox < T; ox++)
      for (let iy = 0; iy < S; iy++)
        for (let ix = 0; ix < S; ix++) m[(oy * T + ox) * S * S + iy * S + ix] = rows[oy][iy] * rows[ox][ix];
  return m;
}
