import { mkdirSync, readFileSync, writeFileSync, utimesSync } from "node:fs";
import * as path from "node:path";
import { DataFolderError, INDEX_CACHE_FILE, scanImageFolder } from "../src";
import { makeDataset, removeTempDirs, tempDir } from "./fixtures";

describe("scanImageFolder", () => {
  afterAll(removeTempDirs);
  let root: string;
  beforeAll(async () => {
    ({ root } = await makeDataset());
  });

  it("lists sorted classes and sorted image files, ignoring hidden and non-image files", async () => {
    const ds = await scanImageFolder(root);
    expect(ds.classes).toEqual(["n001", "n002"]);
    expect(ds.files).toEqual([
      "n001/a_rgb.JPEG",
      "n001/b_gray.png",
      "n001/c_png_named.JPEG",
      "n001/d_webp_named.JPEG",
      "n001/e_tiny.png",
      "n001/x_empty.jpg",
      "n002/f_rgba.png",
      "n002/g_palette.png",
      "n002/h_16bit.png",
      "n002/i_cmyk.jpg",
      "n002/j_gray_alpha.tif.png",
      "n002/y_truncated.JPEG",
      "n002/z_text.jpeg",
    ]);
    expect(ds.targets).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
  });

  it("names the path of a missing, empty or image-less folder", async () => {
    const missing = path.join(tempDir("gone"), "nope");
    await expect(scanImageFolder(missing)).rejects.toThrow(DataFolderError);
    await expect(scanImageFolder(missing)).rejects.toThrow(missing);
    const empty = tempDir("empty");
    await expect(scanImageFolder(empty)).rejects.toMatchObject({ problem: "no-classes", path: empty });
    const noImages = tempDir("noimg");
    mkdirSync(path.join(noImages, "cls"));
    writeFileSync(path.join(noImages, "cls", "readme.txt"), "x");
    await expect(scanImageFolder(noImages)).rejects.toMatchObject({ problem: "no-images" });
    const file = path.join(noImages, "cls", "readme.txt");
    await expect(scanImageFolder(file)).rejects.toMatchObject({ problem: "not-a-directory" });
  });

  it("reuses the cached index while the folders are unchanged and rebuilds it when they change", async () => {
    const cacheDir = tempDir("cache");
    const first = await scanImageFolder(root, { cacheDir });
    const cachePath = path.join(cacheDir, INDEX_CACHE_FILE);
    // Plant a marker in the cache: only a reused cache can return it.
    const cached = JSON.parse(readFileSync(cachePath, "utf8"));
    cached.files = [...cached.files.slice(0, -1), "n002/marker.png"];
    writeFileSync(cachePath, JSON.stringify(cached));
    expect((await scanImageFolder(root, { cacheDir })).files.at(-1)).toBe("n002/marker.png");
    // Adding a file changes its folder's mtime and entry count: the index is rebuilt.
    writeFileSync(path.join(root, "n002", "zz_new.png"), readFileSync(path.join(root, "n002", "f_rgba.png")));
    const rebuilt = await scanImageFolder(root, { cacheDir });
    expect(rebuilt.files).toEqual([...first.files, "n002/zz_new.png"]);
    // A changed directory time alone (e.g. a rename, or a tool resetting mtime) also rebuilds.
    const marked = JSON.parse(readFileSync(cachePath, "utf8"));
    marked.files = ["marker"];
    writeFileSync(cachePath, JSON.stringify(marked));
    utimesSync(path.join(root, "n001"), new Date(), new Date(Date.now() + 5000));
    expect((await scanImageFolder(root, { cacheDir })).files).toEqual(rebuilt.files);
  });
});
