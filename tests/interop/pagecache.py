"""pagecache.py: what the page cache holds of a file, for the data-path test
helpers (dp_*.py import it from their own directory).

  cached_pages(path, lo, hi)  pages of [lo, hi) of the file in the page
                              cache (cachestat(2)), or None when the kernel
                              has no cachestat (Linux < 6.5)
  drop_cache(path)            writes the file's dirty pages back and drops
                              its pages from the page cache (a filesystem
                              that cannot drop them, tmpfs, keeps them)"""
import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_CACHESTAT = 451   # the same number on every architecture


def cached_pages(path, lo, hi):
    """Pages of [lo, hi) of the file at path in the page cache, or None
    when cachestat(2) fails (no such syscall on this kernel)."""
    rng = (ctypes.c_uint64 * 2)(lo, hi - lo)   # struct cachestat_range: off, len
    out = (ctypes.c_uint64 * 5)()              # struct cachestat: nr_cache first
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syscall(_SYS_CACHESTAT, fd, rng, out, 0) != 0:
            return None
        return out[0]
    finally:
        os.close(fd)


def drop_cache(path):
    """fsync the file at path, then drop its pages from the page cache
    (POSIX_FADV_DONTNEED over the whole file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
