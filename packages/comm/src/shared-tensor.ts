/**
 * Tensors that lie in shared memory, so that the other members of a same-host all-reduce read
 * them where they lie. Without that, each member first copies its whole input into its group
 * file for the others to read: a pass of reads and a pass of writes over the whole tensor, a
 * third of the memory traffic of the direct same-host all-reduce (direct-all-reduce.ts).
 *
 * A shared tensor is a file in the shared-memory directory (/dev/shm), mapped into this
 * process through the native helper (shared-mapping.ts). Where either is missing, the
 * allocator returns a collective tensor instead, which every collective takes too.
 */
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { allocateCollectiveTensor } from "./collective-tensor";
import { sharedMapping } from "./shared-mapping";
import { createOwnedFile, DATA_OFFSET, growWithZeros, removeOwnedFile, SHARED_TENSOR_PREFIX, SharedMemoryFiles } from "./shared-memory-files";

/** Byte offsets travel as uint32 in frame headers. */
const MAX_SHARED_BYTES = 0xffffffff - DATA_OFFSET;

export interface SharedTensorLocation {
  /** The file's name in `directory` (peers open it by name). */
  name: string;
  directory: string;
  /** Where the tensor's first element lies in the file's data area. */
  byteOffset: number;
}

const fileOfBuffer = new WeakMap<ArrayBufferLike, { name: string; directory: string }>();
/** The file goes with its tensor: peers that still need it keep their own descriptors. */
const removeWhenCollected = new FinalizationRegistry<string>((file) => removeOwnedFile(file));
let allocated = 0;

/**
 * A zeroed Float32Array of `length` elements for RingAllReduce.allReduce that same-host peers
 * read in place; any subarray of it is shared too. Falls back to allocateCollectiveTensor
 * where shared memory cannot be mapped (no /dev/shm, no native helper, DINO_COMM_SHM_MMAP=0).
 */
export function allocateSharedTensor(length: number): Float32Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`shared tensor length must be a non-negative integer, got ${length}`);
  const directory = SharedMemoryFiles.usableDirectory();
  const map = sharedMapping();
  const bytes = length * 4;
  if (directory === null || map === null || length === 0 || bytes > MAX_SHARED_BYTES) return allocateCollectiveTensor(length);
  const name = `${SHARED_TENSOR_PREFIX}${process.pid}-${allocated++}-${randomBytes(4).toString("hex")}`;
  const file = path.join(directory, name);
  const fd = createOwnedFile(file);
  let mapping: Uint8Array;
  try {
    growWithZeros(fd, 0, bytes, directory);
    mapping = map(fd, DATA_OFFSET + bytes, true);
  } catch (err) {
    removeOwnedFile(file);
    throw err;
  } finally {
    fs.closeSync(fd);
  }
  const tensor = new Float32Array(mapping.buffer, mapping.byteOffset + DATA_OFFSET, length);
  fileOfBuffer.set(tensor.buffer, { name, directory });
  removeWhenCollected.register(tensor.buffer, file);
  return tensor;
}

/** Where `values` lies in shared memory, if it is (a subarray of) a tensor from allocateSharedTensor. */
export function sharedTensorLocation(values: Float32Array): SharedTensorLocation | undefined {
  const file = fileOfBuffer.get(values.buffer);
  return file && { ...file, byteOffset: values.byteOffset - DATA_OFFSET };
}
