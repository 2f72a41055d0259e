#!/usr/bin/python3
# tests/tools/backend_client.py: check that backend errors reach an NBD client with the
# right errno (tests/interop/faults_backend.sh). Prints "ok - x" / "not ok - x" lines.
#   eio URI BAD_OFFSET BAD_LENGTH   reads/writes inside the range fail with EIO, outside work
#   enospc URI                      writes until ENOSPC; earlier writes read back intact
import errno
import os
import sys

import nbd

results = []


def check(cond, what):
    results.append(bool(cond))
    print("%s - %s" % ("ok" if cond else "not ok", what), flush=True)


def expect_errno(fn, want, what):
    try:
        fn()
    except nbd.Error as e:
        check(e.errnum == want, "%s fails with %s (got %s: %s)" %
              (what, errno.errorcode[want], errno.errorcode.get(e.errnum, e.errnum), e.string))
        return
    check(False, "%s fails with %s (it succeeded)" % (what, errno.errorcode[want]))


def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


def cmd_eio(uri, bad_off, bad_len):
    h = connect(uri)
    size = h.get_size()
    pat = bytes(range(256)) * 256  # 64 KiB
    good = [0, bad_off - 65536, bad_off + bad_len, size - 65536]
    for off in good:
        h.pwrite(pat, off)
    check(all(h.pread(65536, off) == pat for off in good),
          "writes and reads outside the failing range work (%d ranges)" % len(good))
    expect_errno(lambda: h.pread(4096, bad_off + 8192), errno.EIO, "a read inside the failing range")
    expect_errno(lambda: h.pread(1 << 20, bad_off - 512 * 1024), errno.EIO,
                 "a read straddling the start of the failing range")
    expect_errno(lambda: h.pwrite(pat, bad_off + bad_len - 32768), errno.EIO,
                 "a write straddling the end of the failing range")
    expect_errno(lambda: h.pwrite(pat[:4096], bad_off, nbd.CMD_FLAG_FUA), errno.EIO,
                 "a FUA write inside the failing range")
    try:
        same = h.pread(65536, good[1]) == pat
    except nbd.Error as e:
        same = False
        print("# %s" % e.string)
    check(same, "the same connection still reads outside the range (EIO must not end it)")
    h.shutdown()
    h2 = connect(uri)
    check(h2.pread(65536, good[2]) == pat, "a new connection reads outside the range")
    h2.shutdown()


def cmd_enospc(uri):
    h = connect(uri)
    size = h.get_size()
    chunk = 1 << 20
    written = []
    err = None
    for i in range(size // chunk):
        data = (b"%08d" % i) * (chunk // 8)
        try:
            h.pwrite(data, i * chunk, nbd.CMD_FLAG_FUA if i % 2 else 0)
        except nbd.Error as e:
            err = e
            break
        written.append(i)
    check(err is not None, "writing %d MiB into a smaller filesystem fails (after %d MiB)" %
          (size // chunk, len(written)))
    if err is None:
        return
    check(err.errnum == errno.ENOSPC, "the failure is ENOSPC (got %s: %s)" %
          (errno.errorcode.get(err.errnum, err.errnum), err.string))
    try:
        h.flush()
        flushed = True
    except nbd.Error as e:
        flushed = e.errnum == errno.ENOSPC
        print("# flush after ENOSPC: %s" % e.string)
    check(flushed, "FLUSH after ENOSPC answers (success or ENOSPC)")
    bad = [i for i in written if h.pread(chunk, i * chunk) != (b"%08d" % i) * (chunk // 8)]
    check(not bad, "all %d MiB acknowledged before ENOSPC read back intact (bad: %s)" %
          (len(written), bad[:5]))
    expect_errno(lambda: h.pwrite(b"\1" * chunk, size - chunk), errno.ENOSPC,
                 "a second write beyond the free space")
    h.shutdown()


def main():
    if sys.argv[1] == "eio":
        cmd_eio(sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4], 0))
    elif sys.argv[1] == "enospc":
        cmd_enospc(sys.argv[2])
    else:
        print("usage: backend_client.py eio URI OFF LEN | enospc URI", file=sys.stderr)
        return 2
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
