#!/usr/bin/env bash
# Regenerate deploy/requirements-serve-onnx.txt: the exact versions (every transitive package) that
# pip resolves today for the `serve-onnx` extra. Run it with the image's platform: Linux x86_64,
# CPython 3.11 (Debian bookworm's python3); the script refuses another.
# The serving image installs these pins, never the ranges of pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
out=deploy/requirements-serve-onnx.txt
python3 -c "import platform, sys; sys.exit(0 if sys.version_info[:2] == (3, 11) and platform.machine() == 'x86_64' else 'run this with CPython 3.11 on x86_64 (the image\'s python3)')"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['optional-dependencies']['serve-onnx']))" > "$tmp/req.txt"
python3 -m pip install --dry-run --ignore-installed --quiet --report "$tmp/report.json" -r "$tmp/req.txt"
{
  echo "# The serving image's exact dependencies (INSTALL=onnx). Made by deploy/lock-serve-onnx.sh; do not edit."
  python3 -c "
import json, sys
report = json.load(open(sys.argv[1]))
for name, version in sorted((i['metadata']['name'].lower(), i['metadata']['version']) for i in report['install']):
    print(f'{name}=={version}')" "$tmp/report.json"
} > "$out.tmp" && mv "$out.tmp" "$out"
echo "wrote $out ($(grep -vc '^#' "$out") pins)" >&2
