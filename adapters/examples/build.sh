#!/usr/bin/env bash
# Builds the JavaScript and Python example adapters into target/examples/,
# installing their pinned build tools on first use: jco from the npm registry
# (package-lock.json) into javascript/node_modules, componentize-py from PyPI
# into target/venv. Needs Node.js 20+ with npm, and Python 3.11+.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/examples
mkdir -p "$out"

cd "$here/javascript"
[ -x node_modules/.bin/jco ] || npm install --no-audit --no-fund --loglevel=error
# QuickJS engine, synchronous runtime: the host has no component-model async.
node_modules/.bin/jco componentize adapter.js --backend quickjs --backend-qjs-disable-async \
  --wit "$root/wit" --world-name adapter -o "$out/example-js.wasm"

venv=$target/venv
[ -x "$venv/bin/componentize-py" ] || {
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
}
cd "$here/python"
"$venv/bin/componentize-py" -d "$root/wit" -w adapter componentize app -o "$out/example-python.wasm"
ls -l "$out"/example-*.wasm
