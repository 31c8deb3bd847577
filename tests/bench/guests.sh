#!/usr/bin/env bash
# tests/bench/guests.sh — the guest cost benchmark (release build): native Rust vs the Wasm guest
# warm, cold from the compile cache (new process) and on a compile miss. Prints a Markdown table
# for the README's performance table. A benchmark, not a test: nothing here asserts a time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo bench --locked --bench guests 2>/dev/null
