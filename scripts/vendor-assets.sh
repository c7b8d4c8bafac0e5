#!/usr/bin/env bash
# Vendors third-party front-end assets into static/vendor/ at pinned versions, from the npm
# registry. Run it to upgrade an asset (edit the version here), then commit the result:
# the application never loads anything from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION=2.0.11

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch PACKAGE VERSION FILE-IN-PACKAGE DESTINATION
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
  tar -xzf "$work"/"${1//\//-}"-"$2".tgz -C "$work"
  cp "$work/package/$3" "static/vendor/$4"
  rm -rf "$work/package"
  echo "vendored $1@$2 -> static/vendor/$4"
}

mkdir -p static/vendor
rm -f static/vendor/htmx-*.min.js
fetch htmx.org "$HTMX_VERSION" dist/htmx.min.js "htmx-$HTMX_VERSION.min.js"
