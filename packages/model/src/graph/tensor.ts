/** Element types the graphs use, by ONNX TensorProto.DataType code. */
export const ONNX_DTYPE = { float32: 1, int64: 7, bool: 9, float64: 11 } as const;
export type DType = keyof typeof ONNX_DTYPE;
export type Shape = readonly number[];

/** A value in a graph: an input, an initializer or a node output. Shapes are static. */
export interface Tensor {
  readonly name: string;
  readonly shape: Shape;
  readonly dtype: DType;
}

export type AttributeValue = number | number[] | string | { float: number };

export interface Node {
  readonly op: string;
  readonly name: string;
  readonly inputs: readonly Tensor[];
  readonly outputs: readonly Tensor[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

export class GraphShapeError extends Error {
  constructor(op: string, detail: string) {
    super(`${op}: ${detail}`);
    this.name = "GraphShapeError";
  }
}

export const numel = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
export const shapeString = (shape: Shape): string => `[${shape.join(",")}]`;

/** Numpy-style broadcast of two shapes; throws when they are incompatible. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new GraphShapeError(op, `cannot broadcast ${shapeString(a)} with ${shapeString(b)}`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Resolves a possibly negative axis against a rank. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new GraphShapeError(op, `axis ${axis} out of range for rank ${rank}`);
  return a;
}
