#!/usr/bin/env bash
# Installs kaplc from this checkout (what `action.yml` runs first; works by
# hand too): Z3 5.3.3 as the PyPI wheel into .z3/ (kaplc links it and finds
# it there through its run path, so keep this checkout), then
# `cargo install --locked --path kaplc` into $1 (default: .kapl-install/
# of this checkout). Prints the directory that holds `kaplc`.
# Needs: cargo (Rust 1.95 or later), python3 with pip. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=${1:-$PWD/.kapl-install}
if [ ! -e .z3/z3/lib/libz3.so ]; then
  python3 -m pip install -q --disable-pip-version-check --target .z3 z3-solver==5.3.3.0 >&2
fi
# .cargo/config.toml of this checkout points the z3 crate at .z3/ and is
# read because cargo runs from here.
cargo install --quiet --locked --path kaplc --root "$root" >&2
echo "$root/bin"
