import { release } from "node:os";
import { populatePages, populatePagesStatus } from "../src/populate-pages";

/** MADV_POPULATE_WRITE came with Linux 5.14. */
const kernelPopulates = (() => {
  const [major, minor] = release().split(".").map(Number);
  return process.platform === "linux" && (major > 5 || (major === 5 && minor >= 14));
})();

const PAGE = 65536;

describe("populatePages", () => {
  it("is built by the package build", () => {
    expect(populatePagesStatus()).toBe("loaded");
  });

  it("faults a fresh memory's pages in (resident memory grows by its size) without writing to it", async () => {
    const memory = new WebAssembly.Memory({ initial: 4096, maximum: 4096, shared: true }); // 256 MiB: far above what a garbage collection could release meanwhile
    const view = new Uint8Array(memory.buffer);
    const before = process.memoryUsage().rss;
    expect(await populatePages(memory)).toBe(kernelPopulates);
    const grown = process.memoryUsage().rss - before;
    if (kernelPopulates) expect(grown).toBeGreaterThan(0.9 * view.length);
    let written = 0;
    for (let i = 0; i < view.length; i += 1021) written += view[i] !== 0 ? 1 : 0;
    expect(written).toBe(0);
  });

  it("keeps what is written while it runs", async () => {
    const memory = new WebAssembly.Memory({ initial: 512, maximum: 512, shared: true });
    const view = new Uint8Array(memory.buffer);
    for (let i = 0; i < 8 * PAGE; i++) view[i] = (i * 31) & 255;
    const pending = populatePages(memory);
    for (let i = view.length - 8 * PAGE; i < view.length; i++) view[i] = (i * 7) & 255;
    await pending;
    for (let i = 0; i < 8 * PAGE; i++) if (view[i] !== ((i * 31) & 255)) throw new Error(`byte ${i} changed`);
    for (let i = view.length - 8 * PAGE; i < view.length; i++) if (view[i] !== ((i * 7) & 255)) throw new Error(`byte ${i} changed`);
  });
});
