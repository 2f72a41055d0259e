#!/usr/bin/env bash
# scripts/check-layers.sh: fail when a source file includes a header of a layer
# above its own.  The layers, lowest first:
#   common < {proto, virtio} < engine < backend < datapath < {server, client}
#          < vhost < tools
# A file under src/LAYER/ may include its own layer and any layer below it;
# layers of one rank never include each other: proto and virtio (the NBD and
# the vhost-user wire formats), server and client (whose public header is
# include/shunt/).  Each offending include is printed as "file:line: include".
#
# Usage: check-layers.sh [--src DIR] [--allow FILE]
#   --src DIR     the tree to check (default: src/ of this repository)
#   --allow FILE  upward includes to tolerate while a refactoring removes
#                 them, one "file: header" per line (paths as printed, relative
#                 to the tree's parent; # starts a comment).  An include listed
#                 there passes; an entry that no longer occurs fails, so the
#                 list can only shrink.  Default: none.
# Exit status: 0 when clean, 1 otherwise.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
src=$top/src
allow=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    --src) src=$2; shift 2 ;;
    --allow) allow=$2; shift 2 ;;
    *) echo "check-layers.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -d "$src" ] || { echo "check-layers.sh: no directory $src" >&2; exit 2; }
[ -r "$allow" ] || { echo "check-layers.sh: cannot read $allow" >&2; exit 2; }
src=$(cd "$src" && pwd)

# Every quoted include of every file, as "path<TAB>line<TAB>header", with path
# relative to the tree's parent (src/datapath/copy.c).
base=$(dirname "$src")
list_includes() {
  (cd "$base" && find "$(basename "$src")" -type f \( -name '*.c' -o -name '*.h' \) -print0 |
    sort -z | xargs -0 -r grep -nH -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' |
    sed -E 's/^([^:]*):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1\t\2\t\3/')
}

list_includes | awk -F'\t' -v allowfile="$allow" '
  BEGIN {
    rank["common"] = 0; rank["proto"] = 1; rank["virtio"] = 1; rank["engine"] = 2
    rank["backend"] = 3; rank["datapath"] = 4; rank["server"] = 5; rank["client"] = 5
    rank["shunt"] = 5; rank["vhost"] = 6; rank["tools"] = 7
    while ((getline line < allowfile) > 0) {
      sub(/#.*/, "", line); gsub(/^[ \t]+|[ \t]+$/, "", line)
      if (line == "") continue
      allowed[line] = 1; seen[line] = 0
    }
    bad = 0
  }
  {
    n = split($1, p, "/"); own = p[2]   # src/LAYER/...
    if (!(own in rank)) next
    split($3, h, "/"); to = h[1]
    if (!(to in rank) || index($3, "/") == 0) next
    if (to == "shunt") to = "client"
    if (own == to) next
    if (rank[to] < rank[own]) next   # same rank, another layer: server vs client, proto vs virtio
    key = $1 ": " $3
    if (key in allowed) { seen[key]++; next }
    printf "%s:%s: #include \"%s\" (%s includes %s)\n", $1, $2, $3, own, to
    bad = 1
  }
  END {
    for (k in seen)
      if (seen[k] == 0) {
        printf "%s: stale entry \"%s\": that include is gone, remove the entry\n", allowfile, k
        bad = 1
      }
    exit bad
  }'
