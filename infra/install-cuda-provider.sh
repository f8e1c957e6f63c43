#!/usr/bin/env bash
# Installs ONNX Runtime's CUDA 12 execution provider into onnxruntime-node.
# pnpm skips onnxruntime-node's own install script on every install (see package.json,
# pnpm.ignoredBuiltDependencies) because it downloads these binaries from outside the npm
# registry; GPU images run it here, with network access, once.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DIR="$(cd packages/model && node -p 'require("path").dirname(require.resolve("onnxruntime-node/package.json"))')"
(cd "$ORT_DIR" && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install.js)
test -f "$ORT_DIR/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so" || { echo "CUDA provider not found after install" >&2; exit 1; }
echo "CUDA provider installed in $ORT_DIR"
