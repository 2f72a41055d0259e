#!/usr/bin/env bash
# tests/vm/vhost_two.sh: two guests on one backend process, each with its own image,
# while the in-tree frontend (tests/tools/vhostfe --hostile) attacks a third socket of the
# same process with every hostile mode it has and with random rings, round after round,
# until both guests are done. Each guest runs guest/vhost_blk.sh on its disk; the host
# then verifies both images itself, and the process must have lived through it all and
# exit cleanly.
# The backend is `shunt vhost`; SHUNT_VHOST_BACKEND=qsd uses qemu-storage-daemon.
. "$(dirname "$0")/lib.sh"
vm_require
vm_vhost_require
FE=${SHUNT_BUILD:-$(dirname "$SHUNT")}/tests/tools/vhostfe
[ -x "$FE" ] || { tap_fail "vhostfe is built ($FE)"; tap_done; exit 1; }
declare "${VM_VHOST_BLK_LAYOUT[@]}"
declare -A BYTES=([vm1]=$((64 << 20)) [vm2]=$((72 << 20))) serial=()
specs=()
for g in vm1 vm2; do
  truncate -s "${BYTES[$g]}" "$T/$g.img"
  mkdir -p "$T/$g"
  head -c $((REGION_MB << 20)) /dev/urandom >"$T/$g/pat-vda"
  spec="$T/$g.sock=$T/$g.img,queues=1" serial[$g]=-
  # Each guest must see its own disk: with shunt vhost, its serial says which.
  [ "$VM_VHOST_BACKEND" = shunt ] && serial[$g]=disk-$g spec+=",serial=disk-$g"
  specs+=("$spec")
done
truncate -s $((64 << 20)) "$T/evil.img"
specs+=("$T/evil.sock=$T/evil.img,queues=2")
vm_vhost_start "${specs[@]}" || { tap_fail "backend serves ${specs[*]}"; tap_done; exit 1; }
tap_ok "one backend process serves two guests' sockets and a third one"

for g in vm1 vm2; do
  VM_VHOST_SOCKS=$T/$g.sock VM_EXTRA_FILES=$T/$g/pat-vda \
    vm_start $g "$VM_DIR/guest/vhost_blk.sh" DISKS="vda:1:${BYTES[$g]}:${serial[$g]}" GO=attack-running \
    "${VM_VHOST_BLK_LAYOUT[@]}"
done

# The attacks of each round against evil.sock: `vhostfe --hostile all` (every hostile mode
# it has, one JSON line each) and `--hostile fuzz` (random rings, a new seed each round).
# qemu-storage-daemon maps a memory region beyond the end of its fd and dies of SIGBUS when
# it touches it (mode mem-beyond-fd); against it the modes run one by one without that one,
# as vhostfe --help lists them.
attacks=(all fuzz)
if [ "$VM_VHOST_BACKEND" = qsd ]; then
  attacks=($("$FE" --help | awk '/--hostile KIND:/ { f = 1; sub(/.*one of:/, "") }
                                 /the backend must/ { f = 0 }
                                 f { for (i = 1; i <= NF; i++) if ($i ~ /^[a-z]+(-[a-z]+)*$/) print $i }' |
             grep -vx mem-beyond-fd) fuzz)
fi
echo "# attacks: ${attacks[*]}"

# hostile_rounds: the attacks, again and again until $T/stop-attack exists at the end of a
# round or the backend is gone. Round R's attack A writes $T/attack/R-A (stdout, one JSON
# line per mode), with .err and .rc beside it.
hostile_rounds() {
  local round=0 what
  while :; do
    for what in "${attacks[@]}"; do
      kill -0 "$VHOST_PID" 2>/dev/null || return 0
      local args=(--hostile "$what")
      [ "$what" = fuzz ] && args+=(--requests 50 --seed $((round + 1)))
      timeout 300 "$FE" --timeout 30 "${args[@]}" --backend-pid "$VHOST_PID" "$T/evil.sock" \
        >"$T/attack/$round-$what" 2>"$T/attack/$round-$what.err"
      echo $? >"$T/attack/$round-$what.rc"
    done
    round=$((round + 1))
    [ -e "$T/stop-attack" ] && return 0
  done
}

# hostile_verdict BACKEND DIR: one "ok - " or "not ok - " line per hostile mode seen in the
# runs of DIR. shunt vhost must refuse every mode ("result":"ok"). qemu-storage-daemon
# accepts some (e.g. nested indirect tables): there the process living and a fresh
# connection doing verified I/O afterwards are required, and what it accepted is said.
hostile_verdict() {
  python3 - "$@" <<'PY'
import glob, json, os, sys
backend, d = sys.argv[1], sys.argv[2]
kinds, runs_bad = {}, []
for rcf in sorted(glob.glob(os.path.join(d, "*.rc"))):
    out = rcf[:-3]
    rc = open(rcf).read().strip()
    lines = [l for l in open(out) if l.startswith("{")]
    if rc != "0" and not lines:
        runs_bad.append((out, rc))
    for l in lines:
        j = json.loads(l)
        k = kinds.setdefault(j["kind"], {"runs": 0, "bad": [], "accepted": 0})
        k["runs"] += 1
        survived = j.get("backend_alive") is True and j.get("fresh_connection_verified") is True
        if j.get("result") == "ok":
            continue
        if backend == "qsd" and survived:
            k["accepted"] += 1
        else:
            k["bad"].append(l.strip())
for out, rc in runs_bad:
    print(f"not ok - vhostfe run {os.path.basename(out)} exited with status {rc} and reported nothing")
    for l in open(out + ".err").readlines()[-8:]:
        print("#   " + l.rstrip())
if not kinds:
    print("not ok - vhostfe reported hostile modes")
for name, k in sorted(kinds.items()):
    if k["bad"]:
        print(f"not ok - hostile {name}: {len(k['bad'])} of {k['runs']} runs failed")
        print("#   " + k["bad"][-1])
    else:
        what = "survived" if name == "fuzz" else "refused"
        if k["accepted"]:
            what = f"accepted in {k['accepted']} of the runs (qsd), the process lived"
        print(f"ok - hostile {name} ({k['runs']} run(s) alongside the guests): {what}, "
              "and a fresh connection did verified I/O")
PY
}

mkdir -p "$T/attack"
if vm_wait_mark vm1 booted "$VM_TIMEOUT" && vm_wait_mark vm2 booted "$VM_TIMEOUT"; then
  hostile_rounds &
  attacker=$!
  _cleanup_pids+=("$attacker")
  vm_send vm1 attack-running
  vm_send vm2 attack-running
fi
vm_wait vm1
vm_wait vm2
touch "$T/stop-attack"
[ -n "${attacker:-}" ] && wait "$attacker"
vm_report vm1
vm_report vm2
tap_relay hostile_verdict "$VM_VHOST_BACKEND" "$T/attack"
tap_check "host: the backend lived through the guests and the attacks" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop
vm_vhost_stats
for g in vm1 vm2; do vm_vhost_blk_verify "$g" "$T/$g.img" "$T/$g/pat-vda"; done
if [ "$_tap_failed" -gt 0 ]; then
  echo "# backend log:"; tail -n 30 "$T/vhost.log" | sed 's/^/#   /'
fi
tap_done
