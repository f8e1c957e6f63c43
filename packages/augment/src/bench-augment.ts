import type { Logger } from "pino";
import { cropCount, type AugmentConfig } from "./augment-config";
import { AugmentPool } from "./augment-pool";
import { AugmentConfigError } from "./errors";
import { scanImageFolder } from "./image-folder";

export interface BenchAugmentOptions {
  dataDir: string;
  /** Images to process: dataset indices 0 … limit − 1 (default: all). */
  limit?: number;
  threads?: number;
  batchSize?: number;
  prefetch?: number;
  seed?: number;
  config?: Partial<AugmentConfig>;
  cacheDir?: string;
  logger?: Logger;
}

export interface BenchAugmentResult {
  images_per_s: number;
  crops_per_s: number;
  threads: number;
  images: number;
  seconds: number;
  skipped: number;
  /** CPU time of the whole process (all threads) per image: robust to other load on the machine. */
  cpu_ms_per_image: number;
}

/** Throughput of the whole pipeline (decode, crops, pixel ops, collation); worker start-up excluded. */
export async function benchAugment(options: BenchAugmentOptions): Promise<BenchAugmentResult> {
  const dataset = await scanImageFolder(options.dataDir, { cacheDir: options.cacheDir, logger: options.logger });
  const images = Math.min(options.limit ?? dataset.files.length, dataset.files.length);
  if (!Number.isInteger(images) || images < 1) throw new AugmentConfigError(`limit must be a positive integer, got ${options.limit}`);
  const batchSize = options.batchSize ?? 32;
  const pool = new AugmentPool({ dataset, config: options.config, threads: options.threads, prefetch: options.prefetch, seed: options.seed, logger: options.logger });
  try {
    await pool.ready();
    const order = Array.from({ length: images }, (_, i) => i);
    const started = process.hrtime.bigint();
    const cpuBefore = process.cpuUsage();
    const pending = [];
    let skipped = 0;
    for (let start = 0; start < images; start += batchSize) {
      const batch = pool.batch({ epoch: 0, indices: order.slice(start, start + batchSize) }).then((b) => {
        skipped += b.skipped;
        pool.recycle(b);
      });
      batch.catch(() => undefined);
      pending.push(batch);
      // Back-pressure like a training loop: keep prefetch + 1 batches in flight.
      if (pending.length > pool.prefetch) await pending.shift();
    }
    await Promise.all(pending);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    return {
      images_per_s: round(images / seconds),
      crops_per_s: round((images * cropCount(pool.config)) / seconds),
      threads: pool.threads,
      images,
      seconds: round(seconds),
      skipped,
      cpu_ms_per_image: round((cpu.user + cpu.system) / 1000 / images),
    };
  } finally {
    await pool.close();
  }
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
