#!/usr/bin/env bash
# tests/interop/durability_crash.sh: acknowledged-durable writes survive a server crash.
# Two connections write verified blocks (FUA, or write then FLUSH) while the server is
# SIGKILLed at random moments, then restarted on the same file; a client-side journal
# (tests/tools/crash_client.py) says which writes the server acknowledged as durable.
# After each restart: every durable write reads back intact, later writes are either
# old or new (never garbage), and blocks the test never wrote hold their initial data.
# A last round stops the server with SIGTERM: then every acknowledged write must be there.
#
# Limits of this test: SIGKILL ends the process but not the kernel, so data already in
# the page cache survives. It therefore checks the server's acknowledgement logic (no
# FUA or FLUSH reply before the data reached the file), not power-loss durability;
# durability_powerloss.sh covers that part.
# The export is built with export_arg (durability-lib.sh), so the runner
# repeats this test on every data path of --datapaths.
. "$(dirname "$0")/../lib.sh"
. "$SHUNT_TOP/tests/tools/trust-lib.sh"
. "$SHUNT_TOP/tests/tools/durability-lib.sh"
need_deps

IMG=$T/disk.img
EXPORT_PATH=$IMG
storage_up() { :; }
crash() { kill -KILL "$SHUNT_PID"; wait "$SHUNT_PID" 2>/dev/null; }
clean_cut() { :; }
run_durability SIGKILL
tap_done
