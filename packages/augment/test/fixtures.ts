import { mkdtempSync, writeFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import sharp from "sharp";

/** Deterministic noisy RGB pixels so crops differ visibly. */
export function noise(width: number, height: number, channels: number, seed: number): Buffer {
  const data = Buffer.alloc(width * height * channels);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = (s >>> 0) & 255;
  }
  return data;
}

const created: string[] = [];

export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `augment-${prefix}-`));
  created.push(dir);
  return dir;
}

/** Delete every folder tempDir made (call from afterAll). */
export function removeTempDirs(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

const raw = (w: number, h: number, c: 1 | 2 | 3 | 4, seed: number) => sharp(noise(w, h, c, seed), { raw: { width: w, height: h, channels: c } });

/** Two classes of good images in every awkward format, plus three unreadable files. */
export async function makeDataset(): Promise<{ root: string; bad: string[] }> {
  const root = tempDir("data");
  const a = path.join(root, "n001");
  const b = path.join(root, "n002");
  mkdirSync(a);
  mkdirSync(b);
  await raw(120, 90, 3, 1).jpeg().toFile(path.join(a, "a_rgb.JPEG"));
  await raw(64, 80, 1, 2).png().toFile(path.join(a, "b_gray.png"));
  await raw(100, 70, 3, 3).png().toFile(path.join(a, "c_png_named.JPEG"));
  await raw(90, 90, 3, 4).webp().toFile(path.join(a, "d_webp_named.JPEG"));
  await raw(3, 2, 3, 5).png().toFile(path.join(a, "e_tiny.png"));
  await raw(80, 60, 4, 6).png().toFile(path.join(b, "f_rgba.png"));
  await raw(70, 50, 3, 7).png({ palette: true }).toFile(path.join(b, "g_palette.png"));
  await raw(60, 60, 3, 8).toColourspace("rgb16").png().toFile(path.join(b, "h_16bit.png"));
  await raw(72, 48, 3, 9).toColourspace("cmyk").jpeg().toFile(path.join(b, "i_cmyk.jpg"));
  await raw(50, 40, 2, 10).png().toFile(path.join(b, "j_gray_alpha.tif.png"));
  const bad = [path.join(a, "x_empty.jpg"), path.join(b, "y_truncated.JPEG"), path.join(b, "z_text.jpeg")];
  writeFileSync(bad[0], Buffer.alloc(0));
  const full = await raw(200, 150, 3, 11).jpeg().toBuffer();
  writeFileSync(bad[1], full.subarray(0, Math.floor(full.length / 3)));
  writeFileSync(bad[2], "not an image\n");
  writeFileSync(path.join(a, ".hidden.jpg"), readFileSync(path.join(a, "a_rgb.JPEG")));
  writeFileSync(path.join(a, "notes.txt"), "ignored\n");
  return { root, bad };
}
