// Compiles a package's C helpers into Node addons with the system C compiler and the
// running Node's headers (no node-gyp: one file each, no downloads). Run from the package
// folder; its package.json lists them:
//   "nativeAddons": [{ "source": "native/x.c", "link": ["jpeg"], "fallback": "what the package does without it" }]
// Each becomes dist/native/x.node. The helpers are optional speed-ups: without a compiler,
// Node's headers or a library one links, the build warns and succeeds, and the package
// uses its JavaScript path.
"use strict";
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

function headerDirectories() {
  const prefixes = [process.env.npm_config_nodedir, path.resolve(process.execPath, "..", "..")].filter(Boolean);
  return prefixes.map((prefix) => path.join(prefix, "include", "node")).filter((dir) => fs.existsSync(path.join(dir, "node_api.h")));
}

const addons = JSON.parse(fs.readFileSync("package.json", "utf8")).nativeAddons ?? [];
const headers = headerDirectories();
const compiler = process.env.CC || "cc";
for (const { source, link = [], fallback } of addons) {
  const name = path.basename(source);
  const output = path.join("dist", "native", name.replace(/\.c$/, ".node"));
  if (headers.length === 0) {
    console.warn(`${name}: no node_api.h next to this Node (set npm_config_nodedir); ${fallback}`);
    continue;
  }
  fs.mkdirSync(path.dirname(output), { recursive: true });
  const flags = ["-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-I", headers[0], "-o", output, source, ...link.map((lib) => `-l${lib}`)];
  if (process.platform === "darwin") flags.unshift("-undefined", "dynamic_lookup");
  try {
    execFileSync(compiler, flags, { stdio: "inherit" });
  } catch (err) {
    console.warn(`${name}: ${compiler} could not build it (${err.message}); ${fallback}`);
    fs.rmSync(output, { force: true });
  }
}
