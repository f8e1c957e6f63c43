import * as fs from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { writeDirect, writeFileDurably } from "../src/checkpoint/durable-files";

/** Parts of odd sizes that straddle the 8 MiB staging buffer and the 4 KiB blocks. */
const PARTS: readonly Uint8Array[] = (() => {
  let state = 12345;
  const random = (n: number) => {
    const bytes = new Uint8Array(n);
    for (let i = 0; i < n; i++) bytes[i] = (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 24;
    return bytes;
  };
  return [random(3), random((8 << 20) + 5), random((1 << 20) + 4091)];
})();
const parts = () => PARTS;

/** Whether `dir` takes an O_DIRECT write of one page-aligned block (independently of the code under test). */
function directWritesWork(dir: string): boolean {
  const O_DIRECT = (fs.constants as typeof fs.constants & { O_DIRECT?: number }).O_DIRECT;
  if (O_DIRECT === undefined) return false;
  const probe = join(dir, "probe");
  try {
    const fd = fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_CREAT | O_DIRECT);
    try {
      fs.writeSync(fd, new Uint8Array(new WebAssembly.Memory({ initial: 1, maximum: 1 }).buffer, 0, 4096));
      return true;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

describe("writeFileDurably", () => {
  const folders = [fs.mkdtempSync(join(os.tmpdir(), "durable-")), ...(fs.existsSync("/dev/shm") ? [fs.mkdtempSync("/dev/shm/durable-")] : [])];
  afterAll(() => folders.forEach((dir) => fs.rmSync(dir, { recursive: true, force: true })));

  it("writes large files byte for byte, through O_DIRECT exactly where the file system takes it", () => {
    const expected = Buffer.concat(parts());
    for (const dir of folders) {
      const direct = join(dir, "direct.bin");
      expect({ dir, direct: writeDirect(direct, parts(), expected.length) }).toEqual({ dir, direct: directWritesWork(dir) });
      if (fs.existsSync(direct)) expect(fs.readFileSync(direct).equals(expected)).toBe(true);
      const durable = join(dir, "durable.bin");
      writeFileDurably(durable, parts());
      expect(fs.statSync(durable).size).toBe(expected.length);
      expect(fs.readFileSync(durable).equals(expected)).toBe(true);
    }
  });

  it("refuses to overwrite an existing file, large or small", () => {
    const dir = folders[0];
    for (const [name, data] of [["small.bin", "hello"], ["large.bin", parts()]] as const) {
      writeFileDurably(join(dir, name), data);
      expect(() => writeFileDurably(join(dir, name), data)).toThrow(/EEXIST/);
    }
  });
});
