#!/usr/bin/env bash
# tests/vm/vhost_two.sh: two guests on one backend process, each with its own image,
# while the in-tree frontend (tests/tools/vhostfe --hostile) attacks a third socket of the
# same process with every hostile mode it has, round after round, until both guests are
# done. Each guest runs guest/vhost_blk.sh on its disk; the host then verifies both images
# itself, and the process must have lived through it all and exit cleanly.
# The backend is `shunt vhost`; SHUNT_VHOST_BACKEND=qsd uses qemu-storage-daemon.
. "$(dirname "$0")/lib.sh"
vm_require
vm_vhost_require
FE=${SHUNT_BUILD:-$(dirname "$SHUNT")}/tests/tools/vhostfe
[ -x "$FE" ] || { tap_fail "vhostfe is built ($FE)"; tap_done; exit 1; }
# The hostile modes, as vhostfe --help lists them ("--hostile KIND: ... one of: a b ...").
kinds=$("$FE" --help | sed -n 's/.*--hostile KIND:.*one of: *//p' | tr ',' ' ')
if [ -n "${kinds// /}" ]; then tap_ok "vhostfe has hostile modes:$kinds"
else tap_fail "vhostfe --help lists hostile modes"; fi

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

# hostile_rounds: every hostile mode against evil.sock, again and again, until
# $T/stop-attack exists at the end of a round. Each run's output goes to
# $T/attack/ROUND-KIND, and a line "KIND STATUS ROUND" to $T/attack.res.
hostile_rounds() {
  local round=0 k
  mkdir -p "$T/attack"
  while :; do
    for k in $kinds; do
      timeout 120 "$FE" --timeout 30 --hostile "$k" --backend-pid "$VHOST_PID" "$T/evil.sock" \
        >"$T/attack/$round-$k" 2>&1
      echo "$k $? $round" >>"$T/attack.res"
    done
    round=$((round + 1))
    [ -e "$T/stop-attack" ] && return 0
  done
}
: >"$T/attack.res"
if vm_wait_mark vm1 booted "$VM_TIMEOUT" && vm_wait_mark vm2 booted "$VM_TIMEOUT"; then
  if [ -n "${kinds// /}" ]; then
    hostile_rounds &
    attacker=$!
    _cleanup_pids+=("$attacker")
  fi
  vm_send vm1 attack-running
  vm_send vm2 attack-running
fi
vm_wait vm1
vm_wait vm2
touch "$T/stop-attack"
[ -n "${attacker:-}" ] && wait "$attacker"
vm_report vm1
vm_report vm2
# shunt vhost must refuse every hostile mode. qemu-storage-daemon accepts some of them
# (e.g. nested indirect tables); there only the process living and a fresh connection
# doing verified I/O afterwards are required, and what it accepted is noted.
survived='"backend_alive":true,"fresh_connection_verified":true'
for k in $kinds; do
  runs=0 bad=0 accepted=0 last=
  while read -r kind rc round; do
    [ "$kind" = "$k" ] || continue
    runs=$((runs + 1))
    [ "$rc" = 0 ] && continue
    if [ "$VM_VHOST_BACKEND" = qsd ] && grep -qF "$survived" "$T/attack/$round-$k"; then
      accepted=$((accepted + 1))
    else
      bad=$((bad + 1)) last=$T/attack/$round-$k
    fi
  done <"$T/attack.res"
  if [ "$runs" -gt 0 ] && [ "$bad" = 0 ]; then
    what="refused"
    [ "$accepted" -gt 0 ] && what="accepted in $accepted of the runs (qsd), the process lived"
    tap_ok "hostile $k ($runs runs alongside the guests): $what, and a fresh connection did verified I/O"
  else
    tap_fail "hostile $k: $bad of $runs runs failed"
    [ -n "$last" ] && sed 's/^/#   /' "$last" | tail -n 12
  fi
done
tap_check "host: the backend lived through the guests and the attacks" kill -0 "$VHOST_PID"
tap_check "host: the backend exits with status 0 on SIGTERM" vm_vhost_stop
vm_vhost_stats
for g in vm1 vm2; do vm_vhost_blk_verify "$g" "$T/$g.img" "$T/$g/pat-vda"; done
if [ "$_tap_failed" -gt 0 ]; then
  echo "# backend log:"; tail -n 30 "$T/vhost.log" | sed 's/^/#   /'
fi
tap_done
