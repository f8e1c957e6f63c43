import { Graph } from "../graph/graph";
import { Tensor } from "../graph/tensor";

/**
 * The DINO loss (Caron et al. 2021, eq. 3 and Algorithm 1): teacher probabilities
 * P_t = softmax((t − center)/τ_t) are the targets for student log-probabilities
 * log softmax(s/τ_s) of every other view:
 *   L = mean over pairs (i ∈ global views, v ≠ i) of mean_b −Σ_k P_t[i,b,k] · log P_s[v,b,k].
 * `student` is [views·B, K] and `teacher` [2·B, K], both crop-major.
 */
export function dinoLoss(
  g: Graph,
  student: Tensor,
  teacher: Tensor,
  center: Tensor,
  teacherTemp: Tensor,
  studentTemp: number,
): Tensor {
  const [teacherRows, k] = teacher.shape;
  const globalViews = 2;
  const batch = teacherRows / globalViews;
  const views = student.shape[0] / batch;

  const targets = g.softmax(g.div(g.sub(teacher, center), teacherTemp), -1);
  const logProbs = g.logSoftmax(g.div(student, g.scalar(studentTemp)), -1);

  // crossTerms[i, v] = Σ_b Σ_k P_t[i,b,k] · log P_s[v,b,k], one GEMM over all pairs.
  const crossTerms = g.gemm(g.reshape(targets, [globalViews, batch * k]), g.reshape(logProbs, [views, batch * k]), undefined, { transB: true });
  const pairMask = Array.from({ length: globalViews * views }, (_, j): number => (Math.floor(j / views) === j % views ? 0 : 1));
  const pairs = pairMask.reduce((a, b) => a + b, 0);
  const total = g.reduceSum(g.mul(crossTerms, g.constant(pairMask, [globalViews, views])), [0, 1], false);
  return g.reshape(g.mul(total, g.scalar(-1 / (batch * pairs))), [1]);
}
