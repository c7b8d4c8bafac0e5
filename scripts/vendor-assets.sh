#!/usr/bin/env bash
# Vendors third-party front-end assets into static/vendor/ at pinned versions, from the npm
# registry. Run it to upgrade an asset (edit the version here), then commit the result:
# the application never loads anything from a CDN at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

HTMX_VERSION=2.0.11
# The chat: Markdown rendering, sanitizing (model output must never run script) and code
# highlighting. Browser builds that set a global (marked, DOMPurify, hljs), loaded with `defer`.
MARKED_VERSION=18.2.1
DOMPURIFY_VERSION=3.4.18
HIGHLIGHT_VERSION=11.12.0
# Cost reports: charts (UMD build, sets the global Chart; no inline script needed).
CHARTJS_VERSION=4.5.1

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {  # fetch PACKAGE VERSION FILE-IN-PACKAGE DESTINATION
  (cd "$work" && npm pack --silent "$1@$2" >/dev/null)
  local tarball="${1#@}"
  tar -xzf "$work"/"${tarball//\//-}"-"$2".tgz -C "$work"
  # The source maps are not vendored: drop the comments that point at them, or the browser
  # and the hashed-name static storage go looking for them.
  sed '/^\/\/# sourceMappingURL=/d' "$work/package/$3" >"static/vendor/$4"
  rm -rf "$work/package"
  echo "vendored $1@$2 -> static/vendor/$4"
}

mkdir -p static/vendor
rm -f static/vendor/htmx-*.min.js static/vendor/marked-*.js static/vendor/purify-*.js \
  static/vendor/highlight-*.js static/vendor/highlight-*.css static/vendor/chart-*.js
fetch htmx.org "$HTMX_VERSION" dist/htmx.min.js "htmx-$HTMX_VERSION.min.js"
fetch marked "$MARKED_VERSION" lib/marked.umd.js "marked-$MARKED_VERSION.umd.js"
fetch dompurify "$DOMPURIFY_VERSION" dist/purify.min.js "purify-$DOMPURIFY_VERSION.min.js"
fetch @highlightjs/cdn-assets "$HIGHLIGHT_VERSION" highlight.min.js "highlight-$HIGHLIGHT_VERSION.min.js"
fetch @highlightjs/cdn-assets "$HIGHLIGHT_VERSION" styles/github.min.css "highlight-$HIGHLIGHT_VERSION-github.min.css"
fetch @highlightjs/cdn-assets "$HIGHLIGHT_VERSION" styles/github-dark.min.css "highlight-$HIGHLIGHT_VERSION-github-dark.min.css"
fetch chart.js "$CHARTJS_VERSION" dist/chart.umd.min.js "chart-$CHARTJS_VERSION.umd.min.js"
