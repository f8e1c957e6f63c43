import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { CounterRandom, RandomDomain, streamKey } from "./counter-random";
import { loadSharp } from "./sharp-library";

export interface SynthOptions {
  out: string;
  classes: number;
  perClass: number;
  size: number;
  seed?: number;
}

/**
 * Procedural ImageNet-layout data set, `out/train/<class>/<name>.JPEG`: each class has its
 * own background gradient direction and shape kind (disc, square, stripes, ring), each
 * image its own colours, position, size and noise, all drawn from a seeded generator so
 * the same options give the same files.
 */
export async function synthesizeImageFolder(options: SynthOptions): Promise<{ files: number; root: string }> {
  const { out, classes, perClass, size, seed = 0 } = options;
  const root = join(out, "train");
  const pixels = Buffer.alloc(size * size * 3);
  let files = 0;
  for (let c = 0; c < classes; c++) {
    const className = `n${String(c).padStart(8, "0")}`;
    mkdirSync(join(root, className), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      drawImage(pixels, size, c, new CounterRandom(streamKey(RandomDomain.synth, seed, c, i)));
      const name = `${className}_${String(i).padStart(5, "0")}.JPEG`;
      await loadSharp()(pixels, { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(root, className, name));
      files++;
    }
  }
  return { files, root };
}

function drawImage(px: Buffer, size: number, classIndex: number, random: CounterRandom): void {
  const u = () => random.next();
  const background = [u() * 255, u() * 255, u() * 255];
  const foreground = [u() * 255, u() * 255, u() * 255];
  const angle = (classIndex * Math.PI) / 4;
  const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
  const cx = size * (0.3 + 0.4 * u());
  const cy = size * (0.3 + 0.4 * u());
  const radius = size * (0.15 + 0.2 * u());
  const shape = classIndex % 4;
  const noise = 20 * u();
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const t = 0.5 + 0.5 * (((x / size - 0.5) * dx + (y / size - 0.5) * dy) * 1.4);
      const rx = x - cx;
      const ry = y - cy;
      const r = Math.hypot(rx, ry);
      let inside: boolean;
      if (shape === 0) inside = r < radius;
      else if (shape === 1) inside = Math.abs(rx) < radius && Math.abs(ry) < radius;
      else if (shape === 2) inside = Math.floor((x + y) / Math.max(2, radius / 2)) % 2 === 0;
      else inside = Math.abs(r - radius) < radius * 0.3;
      for (let ch = 0; ch < 3; ch++) {
        const base = inside ? foreground[ch] : background[ch] * t;
        const v = base + noise * (u() - 0.5);
        px[(y * size + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
}
