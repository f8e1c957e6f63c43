import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { synthesizeImageFolder } from "../src/synth-images";

describe("synthesizeImageFolder", () => {
  it("writes an ImageNet-layout folder of decodable JPEGs, the same bytes for the same seed", async () => {
    const a = mkdtempSync(join(tmpdir(), "synth-a-"));
    const b = mkdtempSync(join(tmpdir(), "synth-b-"));
    try {
      const result = await synthesizeImageFolder({ out: a, classes: 3, perClass: 2, size: 24, seed: 5 });
      await synthesizeImageFolder({ out: b, classes: 3, perClass: 2, size: 24, seed: 5 });
      expect(result.files).toBe(6);
      const classes = readdirSync(join(a, "train")).sort();
      expect(classes).toHaveLength(3);
      const files = readdirSync(join(a, "train", classes[0])).sort();
      expect(files[0]).toMatch(/\.JPEG$/);
      const meta = await sharp(join(a, "train", classes[0], files[0])).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(["jpeg", 24, 24]);
      const last = readdirSync(join(a, "train", classes[2])).sort()[1];
      expect(readFileSync(join(a, "train", classes[2], last))).toEqual(readFileSync(join(b, "train", classes[2], last)));
      expect(readFileSync(join(a, "train", classes[0], files[0]))).not.toEqual(readFileSync(join(a, "train", classes[0], files[1])));
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
    }
  });
});
