#!/usr/bin/env node
/**
 * Generates one static protobufjs module (JS + .d.ts) from every .proto file in proto/,
 * so adding a .proto file needs no build change. Output goes to src/generated/ (what tsc
 * and ts-jest read) and dist/generated/ (what the package's `main` loads at run time).
 */
"use strict";
const fs = require("fs");
const path = require("path");
const { pbjs, pbts } = require("protobufjs-cli");

const packageDir = path.resolve(__dirname, "..");
const protoDir = path.join(packageDir, "proto");
const outputDirs = [path.join(packageDir, "src", "generated"), path.join(packageDir, "dist", "generated")];
const moduleName = "wire";

function run(tool, args) {
  return new Promise((resolve, reject) => tool.main(args, (err, output) => (err ? reject(err) : resolve(output))));
}

async function main() {
  const protoFiles = fs
    .readdirSync(protoDir)
    .filter((name) => name.endsWith(".proto"))
    .sort()
    .map((name) => path.join(protoDir, name));
  if (protoFiles.length === 0) throw new Error(`no .proto files in ${protoDir}`);

  const [sourceDir] = outputDirs;
  fs.mkdirSync(sourceDir, { recursive: true });
  const jsFile = path.join(sourceDir, `${moduleName}.js`);
  const dtsFile = path.join(sourceDir, `${moduleName}.d.ts`);
  // A named root keeps this module's types apart from any other protobufjs module loaded
  // in the same process (the default root is shared).
  await run(pbjs, ["-t", "static-module", "-w", "commonjs", "-r", "dino_coord", "-p", protoDir, "-o", jsFile, ...protoFiles]);
  await run(pbts, ["-o", dtsFile, jsFile]);
  // pbts imports the `long` package, which is not a dependency of this package; protobufjs
  // exports a compatible Long interface, and 64-bit fields decode to Long | number anyway.
  const dts = fs
    .readFileSync(dtsFile, "utf8")
    .replace('import Long = require("long");', 'import type { Long } from "protobufjs";');
  fs.writeFileSync(dtsFile, dts);

  for (const dir of outputDirs.slice(1)) {
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(jsFile, path.join(dir, `${moduleName}.js`));
    fs.copyFileSync(dtsFile, path.join(dir, `${moduleName}.d.ts`));
  }
  process.stdout.write(`generated ${moduleName}.js/.d.ts from ${protoFiles.map((f) => path.basename(f)).join(", ")}\n`);
}

main().catch((err) => {
  process.stderr.write(`proto generation failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
