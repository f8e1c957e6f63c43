import { existsSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import { decodeRgb } from "../src/decode-image";
import { sharpLoaded } from "../src/sharp-library";
import { noise, removeTempDirs, tempDir } from "./fixtures";

/** Where libjpeg's headers are, the package build compiles the native JPEG decoder. */
const HEADERS_INSTALLED = existsSync("/usr/include/jpeglib.h");

afterAll(removeTempDirs);

describe("sharp is loaded on first use", () => {
  const withDecoder = HEADERS_INSTALLED ? it : it.skip;
  withDecoder("JPEGs the native decoder takes leave it unloaded; the first image it hands back loads it", async () => {
    const dir = tempDir("sharp-library-");
    const pixels = { raw: { width: 40, height: 30, channels: 3 as const } };
    // This file's own sharp import is not the library's loader: sharpLoaded() reports the latter.
    writeFileSync(path.join(dir, "a.jpg"), await sharp(noise(40, 30, 3, 1), pixels).jpeg().toBuffer());
    writeFileSync(path.join(dir, "b.png"), await sharp(noise(40, 30, 3, 2), pixels).png().toBuffer());

    expect((await decodeRgb(path.join(dir, "a.jpg"))).width).toBe(40);
    expect(sharpLoaded()).toBe(false);
    expect((await decodeRgb(path.join(dir, "b.png"))).width).toBe(40);
    expect(sharpLoaded()).toBe(true);
  });
});
