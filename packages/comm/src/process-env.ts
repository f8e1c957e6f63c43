/**
 * Environment for processes that run collectives (set it when spawning workers; glibc reads
 * it only at process start). ZeroMQ mallocs every received message; with glibc's default
 * dynamic thresholds the freed megabyte-sized chunks are often returned to the kernel and
 * the next message faults its pages back in (thousands of page faults per 64 MB reduced).
 * A fixed mmap threshold above the chunk size and no trimming keep them in the heap.
 */
export const RECOMMENDED_PROCESS_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(64 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(4 * 1024 * 1024 * 1024 - 1),
};
