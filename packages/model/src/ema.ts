/**
 * The two exponential moving averages of DINO: the teacher weights (updated from the
 * student after every optimizer step) and the center subtracted from teacher outputs
 * (reference `DINOLoss.update_center`). Both work in place on flat arrays.
 */
import { CHUNK_ELEMENTS, sharedKernels } from "./simd/optimizer-kernels";

function checkMomentum(momentum: number, what: string): void {
  if (!(momentum >= 0 && momentum <= 1)) throw new RangeError(`${what} must be in [0, 1], got ${momentum}`);
}

/**
 * θ_teacher ← m·θ_teacher + (1 − m)·θ_student over every element, trainable or not
 * (the reference zips over all parameters). Both buffers use the same ParamStore layout.
 */
export function emaTeacher(teacher: Float32Array, student: Float32Array, momentum: number): void {
  if (teacher.length !== student.length) {
    throw new RangeError(`teacher has ${teacher.length} parameters, student ${student.length}`);
  }
  checkMomentum(momentum, "teacher momentum");
  const studentWeight = 1 - momentum;
  // The SIMD kernel computes the same float64 expression per element (bit-identical); it
  // takes whole pairs, so an odd last element goes through the scalar loop.
  const kernels = sharedKernels();
  let scalarBegin = 0;
  if (kernels) {
    scalarBegin = teacher.length & ~1;
    for (let start = 0; start < scalarBegin; start += CHUNK_ELEMENTS) {
      const stop = Math.min(start + CHUNK_ELEMENTS, scalarBegin);
      const teacherChunk = teacher.subarray(start, stop);
      kernels.load(teacherChunk, kernels.regionA);
      kernels.load(student.subarray(start, stop), kernels.regionB);
      kernels.emaPairs(kernels.regionA, kernels.regionB, (stop - start) >> 1, momentum, studentWeight);
      kernels.unload(kernels.regionA, teacherChunk);
    }
  }
  for (let i = scalarBegin; i < teacher.length; i++) teacher[i] = teacher[i] * momentum + studentWeight * student[i];
}

/**
 * center ← center·m + (Σ rows / rowCount)·(1 − m), where `teacherOutputColumnSums` holds the
 * column sums of the teacher outputs already summed over all ranks and `rowCount` is the
 * number of rows behind them (2 · batch per GPU · world size).
 */
export function updateCenter(
  center: Float32Array | Float64Array,
  teacherOutputColumnSums: Float32Array | Float64Array,
  rowCount: number,
  centerMomentum: number,
): void {
  if (center.length !== teacherOutputColumnSums.length) {
    throw new RangeError(`center has ${center.length} entries, the teacher output sums ${teacherOutputColumnSums.length}`);
  }
  if (!Number.isSafeInteger(rowCount) || rowCount <= 0) {
    throw new RangeError(`row count must be a positive integer, got ${rowCount}`);
  }
  checkMomentum(centerMomentum, "center momentum");
  const batchWeight = 1 - centerMomentum;
  for (let i = 0; i < center.length; i++) {
    center[i] = center[i] * centerMomentum + (teacherOutputColumnSums[i] / rowCount) * batchWeight;
  }
}

/** Adds the column sums of a row-major [rows, columns] matrix into `sums` (the local part of the batch center). */
export function addColumnSums(
  sums: Float32Array | Float64Array,
  matrix: Float32Array | Float64Array,
  rows: number,
): void {
  const columns = sums.length;
  if (matrix.length !== rows * columns) {
    throw new RangeError(`a [${rows}, ${columns}] matrix needs ${rows * columns} values, got ${matrix.length}`);
  }
  for (let r = 0; r < rows; r++) {
    const rowStart = r * columns;
    for (let c = 0; c < columns; c++) sums[c] += matrix[rowStart + c];
  }
}
