#!/usr/bin/python3
"""libnbd_semantics.py: NBD command semantics of shunt serve, checked with libnbd.

Run by libnbd_semantics.sh (python3-libnbd 1.14; run with /usr/bin/python3):
  libnbd_semantics.py FILE_URI FILE_PATH LAYOUT RO_URI MEM_URI
FILE_URI serves FILE_PATH (a sparse file whose data runs are LAYOUT, "OFF:LEN"
in KiB, space separated); RO_URI is a read-only export; MEM_URI a memory export.
Prints one "ok - x" / "not ok - x" line per check (tap_relay renumbers them)."""
import errno
import os
import sys
import traceback

import nbd

MIN_BLOCK, PREF_BLOCK, MAX_PAYLOAD = 512, 4096, 32 << 20


def report(cond, what, detail=""):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond and detail:
        for line in str(detail).splitlines()[:20]:
            print("#   " + line, flush=True)
    return cond


def check(what):
    """Decorator-like runner: run fn(); an exception is a failed check."""
    def run(fn):
        try:
            res = fn()
            if isinstance(res, tuple):
                report(res[0], what, res[1])
            else:
                report(bool(res), what)
        except Exception:
            report(False, what, traceback.format_exc())
    return run


def errnum_of(fn):
    """Run fn; return 0 on success or the nbd.Error's errno."""
    try:
        fn()
        return 0
    except nbd.Error as e:
        return e.errnum or -1


def expect_errno(fn, allowed):
    got = errnum_of(fn)
    names = "/".join(errno.errorcode.get(a, str(a)) for a in allowed)
    return got in allowed, "expected %s, got %s" % (
        names, "success" if got == 0 else errno.errorcode.get(got, got))


def connect(uri, structured=True, strict=True, meta=True):
    h = nbd.NBD()
    if not structured:
        h.set_request_structured_replies(False)
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    if not strict:
        h.set_strict_mode(0)
    h.connect_uri(uri)
    return h


def pattern(seed, n):
    block = bytes((seed + i * 7) & 0xFF for i in range(256))
    return (block * (n // 256 + 1))[:n]


def extents(h, offset, length, flags=0):
    """[(offset, length, flags)] of base:allocation over [offset, offset+length)."""
    out = []
    end = offset + length
    while offset < end:
        got = []

        def cb(ctx, off, entries, err):
            if ctx == nbd.CONTEXT_BASE_ALLOCATION:
                got.append((off, list(entries)))
            return 0
        h.block_status(end - offset, offset, cb, flags)
        assert len(got) == 1, "one base:allocation chunk per reply, got %d" % len(got)
        off, entries = got[0]
        assert off == offset and entries, (off, offset, entries)
        for i in range(0, len(entries), 2):
            n = min(entries[i], end - offset)
            assert entries[i] > 0, "zero-length extent"
            out.append((offset, n, entries[i + 1]))
            offset += n
            if offset >= end:
                break
    return out


def hole_runs(exts):
    """Merge extents into [(offset, length, is_hole)] runs."""
    runs = []
    for off, n, fl in exts:
        hole = bool(fl & nbd.STATE_HOLE)
        if runs and runs[-1][2] == hole:
            runs[-1] = (runs[-1][0], runs[-1][1] + n, hole)
        else:
            runs.append((off, n, hole))
    return runs


def file_runs(path, size, layout):
    """Intended [(offset, length, is_hole)] of the sparse test file."""
    runs, off = [], 0
    for spec in layout.split():
        o, n = (int(x) << 10 for x in spec.split(":"))
        if o > off:
            runs.append((off, o - off, True))
        runs.append((o, n, False))
        off = o + n
    if off < size:
        runs.append((off, size - off, True))
    return runs


def read_chunks(h, count, offset, flags=0):
    """pread_structured; returns (data, [(offset, len, status)])."""
    chunks = []

    def cb(sub, off, status, err):
        chunks.append((off, len(sub), status))
        return 0
    data = h.pread_structured(count, offset, cb, flags)
    return data, sorted(chunks)


def main():
    file_uri, path, layout, ro_uri, mem_uri = sys.argv[1:6]
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        original = f.read()

    h = connect(file_uri)
    simple = connect(file_uri, structured=False)

    # ---- negotiation results ----
    check("structured replies negotiated on the default handle")(
        lambda: h.get_structured_replies_negotiated())
    check("second handle without structured replies negotiates simple replies")(
        lambda: not simple.get_structured_replies_negotiated())
    check("base:allocation context negotiated")(
        lambda: h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))
    check("block sizes advertised: 512 / 4096 / 32 MiB")(lambda: (
        (h.get_block_size(nbd.SIZE_MINIMUM), h.get_block_size(nbd.SIZE_PREFERRED),
         h.get_block_size(nbd.SIZE_MAXIMUM)) == (MIN_BLOCK, PREF_BLOCK, MAX_PAYLOAD),
        "got %s" % [h.get_block_size(k) for k in (0, 1, 2)]))
    check("can flush, fua, trim, zero, fast zero, df, cache, multi-conn")(lambda: all((
        h.can_flush(), h.can_fua(), h.can_trim(), h.can_zero(), h.can_fast_zero(),
        h.can_df(), h.can_cache(), h.can_multi_conn())))
    check("export size matches the file")(lambda: h.get_size() == size)

    # ---- reads: structured and simple, of data and holes ----
    d0 = int(layout.split()[0].split(":")[0]) << 10
    check("structured read of the first data run equals the file")(
        lambda: h.pread(256 << 10, d0) == original[d0:d0 + (256 << 10)])
    check("simple-reply read of the same range equals the file")(
        lambda: simple.pread(256 << 10, d0) == original[d0:d0 + (256 << 10)])
    check("simple-reply read of 4 MiB across data and holes equals the file")(
        lambda: simple.pread(4 << 20, 0) == original[:4 << 20])

    def sparse_read():
        data, chunks = read_chunks(h, 4 << 20, 0)
        kinds = {c[2] for c in chunks}
        covered = sum(c[1] for c in chunks)
        ok = data == original[:4 << 20] and covered == 4 << 20 and \
            nbd.READ_HOLE in kinds and nbd.READ_DATA in kinds
        return ok, "chunks %s" % chunks[:10]
    check("structured read over data and holes: OFFSET_DATA and OFFSET_HOLE chunks "
          "tile the range and reassemble to the file")(sparse_read)

    def df_read():
        data, chunks = read_chunks(h, 64 << 10, d0, nbd.CMD_FLAG_DF)
        return len(chunks) == 1 and data == original[d0:d0 + (64 << 10)], "chunks %s" % chunks
    check("read with DF comes back as one chunk")(df_read)

    # ---- block status ----
    def bs_matches():
        got = hole_runs(extents(h, 0, size))
        want = file_runs(path, size, layout)
        return got == want, "got %s\nwant %s" % (got, want)
    check("block status (base:allocation) matches the file's data and holes")(bs_matches)

    def bs_req_one():
        got = []

        def cb(ctx, off, entries, err):
            got.append(list(entries))
            return 0
        h.block_status(size, 0, cb, nbd.CMD_FLAG_REQ_ONE)
        return len(got) == 1 and len(got[0]) == 2 and 0 < got[0][0] <= size, "got %s" % got
    check("block status with REQ_ONE returns exactly one extent")(bs_req_one)

    # ---- writes, FUA, flush ----
    wr_off = 40 << 20
    buf = pattern(1, 1 << 20)

    def fua_write():
        h.pwrite(buf, wr_off, nbd.CMD_FLAG_FUA)
        with open(path, "rb") as f:
            f.seek(wr_off)
            ondisk = f.read(len(buf))
        return h.pread(len(buf), wr_off) == buf and ondisk == buf
    check("FUA write reads back and is in the backing file when acknowledged")(fua_write)

    def write_flush():
        b2 = pattern(2, 64 << 10)
        h.pwrite(b2, wr_off + (1 << 20))
        h.flush()
        with open(path, "rb") as f:
            f.seek(wr_off + (1 << 20))
            return f.read(len(b2)) == b2
    check("write then flush: the backing file holds the data")(write_flush)

    def many_in_flight():
        bufs = [(pattern(10 + i, 64 << 10), (48 << 20) + i * (64 << 10)) for i in range(32)]
        cookies = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray(b)), off) for b, off in bufs]
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cookies:
            h.aio_command_completed(c)
        reads = [(nbd.Buffer(len(b)), off) for b, off in bufs]
        cookies = [h.aio_pread(rb, off) for rb, off in reads]
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cookies:
            h.aio_command_completed(c)
        return all(rb.to_bytearray() == b for (rb, _), (b, _) in zip(reads, bufs))
    check("32 writes then 32 reads in flight on one connection read back correctly")(many_in_flight)

    # ---- trim, zeroes, fast zero ----
    tz = 44 << 20

    def trim_then_read():
        h.pwrite(pattern(3, 1 << 20), tz)
        h.flush()
        h.trim(1 << 20, tz)
        h.flush()
        runs = hole_runs(extents(h, tz, 1 << 20))
        return h.pread(1 << 20, tz) == bytes(1 << 20) and runs == [(tz, 1 << 20, True)], \
            "runs after trim %s" % runs
    check("trim: the range reads back as zeroes and is reported a hole")(trim_then_read)

    def zero_read():
        h.pwrite(pattern(4, 1 << 20), tz)
        h.zero(512 << 10, tz + (256 << 10))
        want = pattern(4, 1 << 20)[:256 << 10] + bytes(512 << 10) + pattern(4, 1 << 20)[768 << 10:]
        return h.pread(1 << 20, tz) == want
    check("write zeroes in the middle of data: zeroes there, data around it intact")(zero_read)

    def zero_no_hole():
        # NO_HOLE: the range must stay allocated. SEEK_HOLE (and so base:allocation)
        # reports FALLOC_FL_ZERO_RANGE's unwritten extents as holes on ext4, so
        # judge by the backing file's allocated blocks instead.
        h.pwrite(pattern(5, 256 << 10), tz)
        h.flush()
        before = os.stat(path).st_blocks
        h.zero(256 << 10, tz, nbd.CMD_FLAG_NO_HOLE)
        h.flush()
        after = os.stat(path).st_blocks
        runs = hole_runs(extents(h, tz, 256 << 10))
        print("#   after NO_HOLE zero: base:allocation says %s" % runs, flush=True)
        return h.pread(256 << 10, tz) == bytes(256 << 10) and after > before - 256, \
            "allocated 512-byte blocks before %d, after %d" % (before, after)
    check("write zeroes with NO_HOLE reads zeroes and keeps the range allocated")(zero_no_hole)

    def fast_zero():
        before = pattern(6, 256 << 10)
        h.pwrite(before, tz)
        e = errnum_of(lambda: h.zero(256 << 10, tz, nbd.CMD_FLAG_FAST_ZERO))
        got = h.pread(256 << 10, tz)
        if e == 0:
            return got == bytes(256 << 10), "fast zero succeeded but data is not zero"
        if e == errno.ENOTSUP:
            print("#   fast zero answered ENOTSUP", flush=True)
            return got in (before, bytes(256 << 10)), "data changed to something else"
        return False, "fast zero failed with %s" % errno.errorcode.get(e, e)
    check("write zeroes with FAST_ZERO: zeroes, or ENOTSUP and untouched data")(fast_zero)

    check("cache command succeeds")(lambda: h.cache(1 << 20, 0) is None)

    # ---- errors: out of range, misaligned, oversize (strict mode off) ----
    lax = connect(file_uri, strict=False)
    lax_simple = connect(file_uri, structured=False, strict=False)
    E = [errno.EINVAL]
    check("read past the end: EINVAL")(lambda: expect_errno(lambda: lax.pread(4096, size), E))
    check("read straddling the end: EINVAL")(
        lambda: expect_errno(lambda: lax.pread(8192, size - 4096), E))
    check("simple-reply read past the end: EINVAL")(
        lambda: expect_errno(lambda: lax_simple.pread(4096, size), E))
    # The spec says ENOSPC for writes and write zeroes past the end (Error values),
    # and EINVAL for requests exceeding the export size (Block size constraints).
    WE = [errno.EINVAL, errno.ENOSPC]
    check("write past the end: EINVAL or ENOSPC")(
        lambda: expect_errno(lambda: lax.pwrite(bytes(4096), size), WE))
    check("trim past the end: EINVAL")(lambda: expect_errno(lambda: lax.trim(8192, size - 4096), E))
    check("write zeroes past the end: EINVAL or ENOSPC")(
        lambda: expect_errno(lambda: lax.zero(8192, size - 4096), WE))
    check("block status past the end: EINVAL")(
        lambda: expect_errno(lambda: lax.block_status(4096, size, lambda *a: 0), E))
    check("misaligned read offset (100): EINVAL")(
        lambda: expect_errno(lambda: lax.pread(512, 100), E))
    check("misaligned read length (100): EINVAL")(
        lambda: expect_errno(lambda: lax.pread(100, 0), E))
    check("misaligned write (offset 1000, length 512): EINVAL")(
        lambda: expect_errno(lambda: lax.pwrite(bytes(512), 1000), E))
    check("misaligned trim: EINVAL")(lambda: expect_errno(lambda: lax.trim(4096, 256), E))
    check("misaligned simple-reply read: EINVAL")(
        lambda: expect_errno(lambda: lax_simple.pread(512, 7), E))
    check("the file was not changed by refused writes")(lambda: (
        h.pread(4096, 0) == original[:4096], "first block changed"))
    big = MAX_PAYLOAD + (4 << 20)
    check("oversize read (36 MiB > 32 MiB maximum): refused")(
        lambda: expect_errno(lambda: lax.pread(big, 0), [errno.EINVAL, errno.EOVERFLOW, errno.ENOMEM]))
    check("oversize simple-reply read: refused")(
        lambda: expect_errno(lambda: lax_simple.pread(big, 0), [errno.EINVAL, errno.EOVERFLOW, errno.ENOMEM]))

    def oversize_write():
        before = h.pread(4096, 0)
        e = errnum_of(lambda: lax.pwrite(pattern(7, big), 0))
        fresh = connect(file_uri)
        after = fresh.pread(4096, 0)
        fresh.shutdown()
        return e != 0 and before == after, "write returned %s; data changed: %s" % (
            errno.errorcode.get(e, e), before != after)
    check("oversize write (36 MiB): refused or disconnected, nothing written")(oversize_write)
    check("the connection is still usable after the errors (or a fresh one is)")(lambda: (
        connect(file_uri).pread(4096, d0) == original[d0:d0 + 4096]))

    # ---- read-only export ----
    ro = connect(ro_uri, strict=False)
    check("read-only export: is_read_only, no trim/zero advertised")(lambda: (
        ro.is_read_only() and not ro.can_trim() and not ro.can_zero()))
    check("read-only export: reads work")(lambda: len(ro.pread(4096, 0)) == 4096)
    P = [errno.EPERM]
    check("read-only export: write gets EPERM")(lambda: expect_errno(lambda: ro.pwrite(bytes(4096), 0), P))
    check("read-only export: trim gets EPERM")(lambda: expect_errno(lambda: ro.trim(4096, 0), P))
    check("read-only export: write zeroes gets EPERM")(lambda: expect_errno(lambda: ro.zero(4096, 0), P))
    ro_simple = connect(ro_uri, structured=False, strict=False)
    check("read-only export, simple replies: write gets EPERM")(
        lambda: expect_errno(lambda: ro_simple.pwrite(bytes(4096), 4096), P))

    # ---- multi-conn: flushed writes are seen by every connection ----
    def multi_conn():
        hs = [connect(file_uri) for _ in range(3)]
        if not all(x.can_multi_conn() for x in hs):
            return False, "can_multi_conn false"
        bad = []
        for i, writer in enumerate(hs):
            off = (56 << 20) + i * (128 << 10)
            b = pattern(20 + i, 128 << 10)
            writer.pwrite(b, off)
            writer.flush()
            for j, reader in enumerate(hs):
                if reader.pread(len(b), off) != b:
                    bad.append((i, j))
        for x in hs:
            x.shutdown()
        return not bad, "reader/writer pairs that saw stale data: %s" % bad
    check("3 connections: each one's flushed write is read by all (can_multi_conn)")(multi_conn)

    # ---- memory backend ----
    m = connect(mem_uri)
    msize = m.get_size()

    def mem_rw():
        b = pattern(30, 1 << 20)
        m.pwrite(b, 1 << 20)
        m.flush()
        other = connect(mem_uri)
        ok = other.pread(len(b), 1 << 20) == b and other.pread(4096, 0) == bytes(4096)
        other.shutdown()
        return ok
    check("memory export: written data read back by another connection, zeroes elsewhere")(mem_rw)

    def mem_trim():
        m.trim(512 << 10, 1 << 20)
        m.zero(256 << 10, (1 << 20) + (512 << 10))
        want = bytes(768 << 10) + pattern(30, 1 << 20)[768 << 10:]
        runs = hole_runs(extents(m, 0, msize))
        return m.pread(1 << 20, 1 << 20) == want and runs[0][2], "runs %s" % runs[:6]
    check("memory export: trim and zero read back as zeroes; the start is a hole")(mem_trim)
    check("memory export: read past the end gets EINVAL")(lambda: expect_errno(
        lambda: connect(mem_uri, strict=False).pread(4096, msize), E))

    for x in (h, simple, lax, lax_simple, ro, ro_simple, m):
        try:
            x.shutdown()
        except nbd.Error:
            pass


if __name__ == "__main__":
    main()
