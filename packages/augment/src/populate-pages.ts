/**
 * Faulting in a fresh batch memory's pages off the rendering threads (native/populate_pages.c:
 * madvise(MADV_POPULATE_WRITE) on libuv's thread pool). The first write to each 4 KiB page
 * of a new batch costs ~3 µs in the kernel, ~1.5 ms per image on the worker that renders
 * it, until the pool recycles batches; the helper takes that to a thread that is otherwise
 * idle, ahead of the renderers, without touching the contents (safe while they write).
 * Without the helper (not built, a kernel before Linux 5.14, or DINO_AUGMENT_POPULATE=0)
 * the renderers fault the pages in themselves.
 */
import { NativeAddon } from "./native-addon";

const addon = new NativeAddon<{ populate: (view: Uint8Array) => Promise<boolean> }>("populate_pages.node", "DINO_AUGMENT_POPULATE");

/** Starts populating `memory`'s pages; resolves true once they are in, false where the helper or the kernel cannot. */
export function populatePages(memory: WebAssembly.Memory): Promise<boolean> {
  const helper = addon.get();
  return helper ? helper.populate(new Uint8Array(memory.buffer)) : Promise.resolve(false);
}

/** "loaded", or why batch memories are faulted in by the renderers. */
export function populatePagesStatus(): string {
  return addon.status;
}
