#!/usr/bin/env bash
# Installs the JavaScript packages of the COSE interop test (cose-js and
# cbor, pinned by package-lock.json) into tests/interop/node_modules.
# Idempotent and quiet: it does nothing when node_modules was installed
# from the current package.json and lock file (a stamp of their SHA-256
# inside node_modules says so). Needs only node, npm and the npm registry.
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
cd "$dir"

for c in node npm; do
    if ! command -v "$c" >/dev/null; then
        echo "interop: $c not found (deploy/deps.sh installs it)" >&2
        exit 1
    fi
done

stamp=node_modules/.otpca-stamp
# SHA-256 of the manifest and the lock file, hashed with node itself.
digest() {
    node -e '
        const c = require("crypto").createHash("sha256");
        for (const f of ["package.json", "package-lock.json"])
            c.update(require("fs").existsSync(f) ? require("fs").readFileSync(f) : "-");
        process.stdout.write(c.digest("hex"));'
}

if [ -d node_modules/cose-js ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(digest)" ]; then
    echo "interop: node_modules up to date"
    exit 0
fi

# No install scripts: none of the pinned packages needs one.
npm_flags=(--no-audit --no-fund --ignore-scripts --loglevel=error)
if [ -f package-lock.json ]; then
    echo "interop: npm ci (cose-js, cbor)"
    npm ci "${npm_flags[@]}" >/dev/null
else
    echo "interop: npm install (no package-lock.json yet)"
    npm install "${npm_flags[@]}" >/dev/null
fi
digest >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
