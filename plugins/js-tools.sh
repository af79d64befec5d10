# js_tools: installs the pinned tools of plugins/js/package.json into
# $WITM_TOOLS/js (default ~/.cache/witm/js) unless they are there, and sets
# $js_tools to that folder. Sourced by build-js.sh and build-go.sh (which
# uses jco's embed/new and its WASI reactor adapter). Needs capped.sh.
js_tools() {
  js_tools=${WITM_TOOLS:-$HOME/.cache/witm}/js
  if ! cmp -s "$root/plugins/js/package.json" "$js_tools/package.json"; then
    mkdir -p "$js_tools"
    cp "$root/plugins/js/package.json" "$js_tools/package.json"
    (cd "$js_tools" && capped 4000 npm install --no-audit --no-fund --loglevel=error >/dev/null) \
      || { rm -f "$js_tools/package.json"; return 1; }
  fi
  cp "$root/plugins/js/componentize.mjs" "$root/plugins/js/preopens.mjs" "$js_tools/"
}
