#!/bin/bash
# access_rules.sh: per-export allow/allow-ro/deny rules (docs/config.md).
# By address (CIDR, IPv4 and IPv6, unix sockets) and by TLS identity (PSK
# identity, certificate DN): a refused export is absent from LIST and unknown
# to INFO/GO; a read-only rule is advertised and enforced (EPERM on write,
# checked with libnbd's client-side checks off); first match wins; IPv4 rules
# written in IPv4-mapped form mean the same on IPv4 and dual-stack listeners.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/tls_lib.sh"
need_tls_tools nbdinfo qemu-io python3
/usr/bin/python3 -c "import nbd" 2>/dev/null || { tap_skip "access rules" "python3-libnbd not installed"; tap_done; exit 0; }

# write_errno URI: try a 4 KiB write with libnbd's strict checks off, so the
# server (not the client) decides; prints "ok" or the errno name.
write_errno() {
  /usr/bin/python3 - "$1" <<'PY'
import errno, nbd, sys
h = nbd.NBD()
h.set_strict_mode(0)
h.set_uri_allow_local_file(True)
h.connect_uri(sys.argv[1])
try:
    h.pwrite(b"w" * 4096, 0)
    print("ok")
except nbd.Error as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
}
export -f write_errno
listed() { nbdinfo --list "$1" 2>/dev/null | grep -o 'export="[^"]*"' | tr '\n' ' '; }

start_shunt --unix "$T/sock" \
  open=1M,backend=memory \
  local=1M,backend=memory,allow=127.0.0.1/32,deny=all \
  elsewhere=1M,backend=memory,allow=10.0.0.0/8 \
  denied=1M,backend=memory,deny=127.0.0.0/8,allow=all \
  readonly=1M,backend=memory,allow-ro=127.0.0.0/8 \
  unixonly=1M,backend=memory,allow=unix \
  v6only=1M,backend=memory,allow=::1/128 \
  || { tap_fail "server starts with access rules"; tap_done; exit 1; }
tap_ok "server starts with access rules"
N="nbd://127.0.0.1:$PORT"
L=$(listed "$N")
tap_check "LIST shows the open export" grep -q 'export="open"' <<<"$L"
tap_check "LIST shows allow=127.0.0.1/32" grep -q 'export="local"' <<<"$L"
tap_check "LIST shows allow-ro=127.0.0.0/8" grep -q 'export="readonly"' <<<"$L"
for e in elsewhere denied unixonly v6only; do
  if grep -q "export=\"$e\"" <<<"$L"; then tap_fail "LIST hides '$e' from 127.0.0.1"
  else tap_ok "LIST hides '$e' from 127.0.0.1"; fi
done
tap_check "allow=127.0.0.1/32 admits 127.0.0.1" nbdinfo "$N/local"
for e in elsewhere denied unixonly v6only; do
  if nbdinfo "$N/$e" >"$T/out" 2>&1; then tap_fail "'$e' refuses 127.0.0.1"
  else tap_ok "'$e' refuses 127.0.0.1"; fi
done
tap_check "... as an unknown export (NBD_REP_ERR_UNKNOWN)" bash -c "nbdinfo '$N/denied' 2>&1 | grep -qi 'unknown\|not found\|no such'"
nbdinfo "$N/readonly" >"$T/ro" 2>&1
tap_check "allow-ro: export advertised read-only" grep -q 'is_read_only: true' "$T/ro"
tap_check "allow-ro: the server answers a write with EPERM" bash -c "[ \"\$(write_errno '$N/readonly')\" = EPERM ]"
tap_check "allow (rw): the same write succeeds on 'local'" bash -c "[ \"\$(write_errno '$N/local')\" = ok ]"
qemu-io -r -f raw -c 'read -P 0 0 4k' "$N/readonly" >"$T/qr" 2>&1
tap_check "allow-ro: reads work (qemu-io)" grep -q 'read 4096' "$T/qr"

# Unix socket clients.
U="nbd+unix:///?socket=$T/sock"
L=$(listed "$U")
tap_check "unix client: LIST shows allow=unix" grep -q 'export="unixonly"' <<<"$L"
tap_check "unix client: admitted by allow=unix" nbdinfo "nbd+unix:///unixonly?socket=$T/sock"
if nbdinfo "nbd+unix:///local?socket=$T/sock" >/dev/null 2>&1; then
  tap_fail "unix client: refused by an address-only rule"
else tap_ok "unix client: refused by an address-only rule"; fi

# IPv6 loopback, when the host has it.
kill -TERM "$SHUNT_PID"; wait "$SHUNT_PID"
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
  P6=$(free_port)
  "$SHUNT" serve --listen "[::1]:$P6" v6only=1M,backend=memory,allow=::1/128 \
    v4only=1M,backend=memory,allow=127.0.0.1 >>"$T/shunt.log" 2>&1 &
  SHUNT_PID=$!; _cleanup_pids+=("$SHUNT_PID")
  for i in $(seq 50); do nbdinfo --list "nbd://[::1]:$P6" >/dev/null 2>&1 && break; sleep 0.1; done
  L=$(listed "nbd://[::1]:$P6")
  tap_check "IPv6: allow=::1/128 admits ::1" grep -q 'export="v6only"' <<<"$L"
  if grep -q 'export="v4only"' <<<"$L"; then tap_fail "IPv6: an IPv4 rule does not admit ::1"
  else tap_ok "IPv6: an IPv4 rule does not admit ::1"; fi
  kill -TERM "$SHUNT_PID"; wait "$SHUNT_PID"
else
  tap_skip "IPv6 rules" "no IPv6 loopback on this host"
fi

# IPv4-mapped rules mean the same on an IPv4 listener and on a dual-stack one
# (where IPv4 clients arrive as ::ffff:a.b.c.d): the client is 127.0.0.1 on both.
MAPPED=(m_deny=1M,backend=memory,deny=::ffff:127.0.0.1,allow=all
        m_allow96=1M,backend=memory,allow=::ffff:0:0/96,deny=all
        m_allow104=1M,backend=memory,allow=::ffff:127.0.0.0/104,deny=all
        v4_deny=1M,backend=memory,deny=127.0.0.1,allow=all
        m_other=1M,backend=memory,allow=::ffff:10.0.0.0/104,deny=all)
check_mapped() {   # $1: listener kind, $2: URI prefix
  local L
  L=$(listed "$2")
  for e in m_allow96 m_allow104; do
    tap_check "$1: allow=$e rule admits 127.0.0.1 (LIST)" grep -q "export=\"$e\"" <<<"$L"
    tap_check "$1: allow=$e rule admits 127.0.0.1 (connect)" nbdinfo "$2/$e"
  done
  for e in m_deny v4_deny m_other; do
    if grep -q "export=\"$e\"" <<<"$L" || nbdinfo "$2/$e" >/dev/null 2>&1; then
      tap_fail "$1: '$e' refuses 127.0.0.1"
    else tap_ok "$1: '$e' refuses 127.0.0.1"; fi
  done
}
start_shunt "${MAPPED[@]}" || { tap_fail "server starts with mapped rules"; tap_done; exit 1; }
check_mapped "IPv4 listener" "nbd://127.0.0.1:$PORT"
stop_shunt
# A dual-stack listener ([::]:PORT with IPV6_V6ONLY off), passed in as systemd
# would (LISTEN_FDS), since --listen makes IPv6 sockets IPv6-only.
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(("::",0))' 2>/dev/null; then
  PD=$(free_port)
  /usr/bin/python3 - "$PD" "$SHUNT" serve "${MAPPED[@]}" >>"$T/shunt.log" 2>&1 <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(16)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
os.execv(sys.argv[2], sys.argv[2:])
PY
  SHUNT_PID=$!; _cleanup_pids+=("$SHUNT_PID")
  wait_port "$PD" 10
  check_mapped "dual-stack listener" "nbd://127.0.0.1:$PD"
  stop_shunt
else
  tap_skip "mapped rules on a dual-stack listener" "no IPv6 on this host"
fi

# Empty export name: the first export this client may see.
start_shunt hidden=1M,backend=memory,deny=all shown=2M,backend=memory \
  || { tap_fail "server starts"; tap_done; exit 1; }
nbdinfo "nbd://127.0.0.1:$PORT" >"$T/def" 2>&1
tap_check "the default export is the first one the client may see" grep -q 'export-size: 2097152' "$T/def"
stop_shunt

# TLS identities: PSK identity and certificate DN rules.
make_certs "$T/certs" || { tap_fail "certtool"; tap_done; exit 1; }
make_psk "$T/keys.psk" alice bob
grep '^alice:' "$T/keys.psk" >"$T/alice.psk"
grep '^bob:' "$T/keys.psk" >"$T/bob.psk"
start_shunt --tls=on --tls-psk "$T/keys.psk" \
  sec=1M,backend=memory,allow=psk:alice,allow-ro=psk:bob \
  pub=1M,backend=memory \
  anytls=1M,backend=memory,allow=tls \
  || { tap_fail "server starts with PSK and identity rules"; tap_done; exit 1; }
A="nbds://alice@127.0.0.1:$PORT"; AQ="tls-psk-file=$T/alice.psk"
B="nbds://bob@127.0.0.1:$PORT"; BQ="tls-psk-file=$T/bob.psk"
L=$(listed "nbd://127.0.0.1:$PORT")
if grep -q 'export="sec"\|export="anytls"' <<<"$L"; then tap_fail "plaintext: identity-ruled exports are hidden"
else tap_ok "plaintext: identity-ruled exports are hidden"; fi
tap_check "plaintext: the open export is listed" grep -q 'export="pub"' <<<"$L"
"$SHUNT" info "nbd://127.0.0.1:$PORT/sec" >"$T/sel" 2>&1
tap_check "plaintext GO on a TLS-only export: NBD_REP_ERR_TLS_REQD (SELECTIVETLS)" grep -q 'ERR_TLS_REQD' "$T/sel"
"$SHUNT" info "nbd://127.0.0.1:$PORT/nosuch" >"$T/sel2" 2>&1
tap_check "... the same answer as for a missing export" grep -q 'ERR_TLS_REQD' "$T/sel2"
L=$(listed "$A?$AQ")
tap_check "PSK alice: sees 'sec' after STARTTLS" grep -q 'export="sec"' <<<"$L"
tap_check "PSK alice: sees 'anytls' (allow=tls)" grep -q 'export="anytls"' <<<"$L"
tap_check "PSK alice: writes 'sec'" bash -c "[ \"\$(write_errno '$A/sec?$AQ')\" = ok ]"
tap_check "PSK bob: 'sec' is read-only (EPERM)" bash -c "[ \"\$(write_errno '$B/sec?$BQ')\" = EPERM ]"
stop_shunt

start_shunt --tls=require --tls-certificates "$T/certs/server" --tls-verify-peer \
  --config <(printf '[export dn]\npath = 1M\nbackend = memory\nallow = dn:CN=alice,O=Shunt Test\n') \
  || { tap_fail "server starts with a DN rule from a config file"; tap_done; exit 1; }
D="nbds://127.0.0.1:$PORT/dn"
tap_check "DN rule (config file, commas in the DN): alice admitted" nbdinfo "$D?tls-certificates=$T/certs/alice"
if nbdinfo "$D?tls-certificates=$T/certs/bob" >/dev/null 2>&1; then tap_fail "DN rule: bob refused"
else tap_ok "DN rule: bob refused"; fi
stop_shunt

# Bad rules are refused at start.
if "$SHUNT" serve --listen 127.0.0.1:1 x=1M,backend=memory,allow=300.1.2.3/8 >"$T/bad" 2>&1; then
  tap_fail "a malformed rule is refused"
else tap_ok "a malformed rule is refused"; fi
tap_check "... with a message naming it" grep -q "300.1.2.3/8" "$T/bad"
tap_done
