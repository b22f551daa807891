#!/usr/bin/env bash
# demo.sh — run one busybox container with berth-runtime and show what it sees.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/bin/berth-runtime
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
root=$work/state
trap '"$bin" --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /usr/bin/busybox "$work/bundle/rootfs/bin/busybox"
for a in sh ls cat hostname id ps ip grep head; do ln -s busybox "$work/bundle/rootfs/bin/$a"; done
mkdir -p "$work/bundle/rootfs/"{proc,sys,dev,tmp,etc}
"$bin" spec --bundle "$work/bundle"
# A non-interactive process in the default hardened config.
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c",
  "echo '--- inside the container ---'; echo hostname: $(hostname); echo id: $(id);"
  " echo processes:; ps -o pid,comm; echo network:; ip -o link | cut -d: -f2;"
  " echo capabilities: $(grep CapEff /proc/self/status);"
  " echo no_new_privs: $(grep NoNewPrivs /proc/self/status | cut -f2)"]
json.dump(c, open(p, "w"), indent=1)
PY
"$bin" --root "$root" run --bundle "$work/bundle" demo
