#!/usr/bin/env bash
# End-to-end tests: every chapter's server with headless Chromium on both ends, and the built
# book's pages with their Mermaid diagrams. Installs what is missing (Debian's chromium, the npm
# packages from the committed lock file), builds the chapter binaries, runs the tests.
# Works unattended (CI=true, no stdin, root). Screenshots: e2e/output/.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "::: e2e: $* (at $((SECONDS - started))s)"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

if [ ! -x /usr/bin/chromium ]; then
  step "installing chromium (Debian package; playwright never downloads a browser here)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core </dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  step "installing node and npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm </dev/null
fi
# Chapter 11's scenario starts a redis-server of its own (e2e/lib/redis.mjs).
if ! command -v redis-server >/dev/null; then
  step "installing redis-server"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server </dev/null
fi
if [ ! -f e2e/node_modules/playwright-core/package.json ]; then
  step "npm ci"
  (cd e2e && npm ci --no-audit --no-fund --loglevel=error </dev/null)
fi

step "cargo build --bins"
cargo build --bins

# The book tests open book/build/; they skip (and say so) when there is no built book.
if [ -f book/book.toml ]; then
  step "cargo run -p fanout-book -- build"
  cargo run -q -p fanout-book -- build
fi

rm -rf e2e/output
mkdir -p e2e/output

step "browser tests"
# The whole run is bounded even if something hangs past every per-wait timeout.
(cd e2e && timeout --kill-after=10 240 node --test --test-reporter=spec --test-concurrency=1 \
  tests/chapters.test.mjs tests/book.test.mjs </dev/null)

step "done; screenshots in e2e/output/"
