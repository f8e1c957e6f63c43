// Compiles shared_mapping.c into dist/native/shared_mapping.node with the system C compiler
// and the running Node's headers (no node-gyp: one file, no downloads). Without a compiler or
// headers the build warns and succeeds: the collectives then fall back to pread/pwrite.
"use strict";
const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const source = path.join(__dirname, "shared_mapping.c");
const output = path.join(__dirname, "..", "dist", "native", "shared_mapping.node");

function headerDirectories() {
  const prefixes = [process.env.npm_config_nodedir, path.resolve(process.execPath, "..", "..")].filter(Boolean);
  return prefixes.map((prefix) => path.join(prefix, "include", "node")).filter((dir) => fs.existsSync(path.join(dir, "node_api.h")));
}

const headers = headerDirectories();
if (headers.length === 0) {
  console.warn("comm: no node_api.h next to this Node (set npm_config_nodedir); shared memory falls back to pread/pwrite");
  process.exit(0);
}
fs.mkdirSync(path.dirname(output), { recursive: true });
const compiler = process.env.CC || "cc";
const flags = ["-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-I", headers[0], "-o", output, source];
if (process.platform === "darwin") flags.unshift("-undefined", "dynamic_lookup");
try {
  execFileSync(compiler, flags, { stdio: "inherit" });
} catch (err) {
  console.warn(`comm: ${compiler} could not build ${path.basename(source)} (${err.message}); shared memory falls back to pread/pwrite`);
  fs.rmSync(output, { force: true });
}
