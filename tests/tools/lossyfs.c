/* tests/tools/lossyfs.c: a one-file FUSE filesystem that forgets unsynced writes.
 * It exposes BACKING as MOUNTPOINT/disk.img. Writes go to an in-memory overlay; only
 * fsync/fdatasync (which the kernel also sends for O_DSYNC/RWF_DSYNC writes) copies
 * the overlay to BACKING and fdatasyncs it. Killing the daemon with SIGKILL therefore
 * acts like a power cut: whatever was not synced is gone. Used by
 * tests/interop/durability_powerloss.sh; it holds the whole file in memory, so keep
 * BACKING small (it refuses files over 1 GiB).
 *
 * Usage: lossyfs BACKING MOUNTPOINT [FUSE OPTIONS, e.g. -f -s]
 * On stderr it counts the syncs it served ("lossyfs: sync N: M dirty blocks").
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onefile.h"

#define LOSSY_BLOCK 4096u
#define LOSSY_MAX_SIZE (1ull << 30)

static int backing_fd = -1;
static uint64_t file_size;
static uint8_t *overlay;    /* file_size bytes: the current content of dirty blocks */
static uint8_t *dirty;      /* one byte per block: 1 when overlay holds the block */
static uint64_t nblocks, ndirty, nsyncs;

/* Make block b's current content available in the overlay (read it if clean). */
static int load_block(uint64_t b)
{
	if (dirty[b])
		return 0;
	uint64_t off = b * LOSSY_BLOCK;
	size_t len = off + LOSSY_BLOCK > file_size ? file_size - off : LOSSY_BLOCK;
	ssize_t n = pread(backing_fd, overlay + off, len, (off_t)off);
	if (n < 0)
		return -errno;
	if ((size_t)n < len)
		memset(overlay + off + n, 0, len - (size_t)n);
	dirty[b] = 1;
	ndirty++;
	return 0;
}

static int lossy_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	return onefile_getattr(path, st, (off_t)file_size, (blkcnt_t)(file_size / 512), LOSSY_BLOCK);
}

static int lossy_open(const char *path, struct fuse_file_info *fi)
{
	(void)fi;
	return strcmp(path, ONEFILE_PATH) == 0 ? 0 : -ENOENT;
}

/* Clamp [off, off + *len) to the file; returns -EINVAL for a negative offset. */
static int clamp(off_t off, size_t *len)
{
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= file_size)
		*len = 0;
	else if (*len > file_size - (uint64_t)off)
		*len = (size_t)(file_size - (uint64_t)off);
	return 0;
}

static int lossy_read(const char *path, char *buf, size_t len, off_t off, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (clamp(off, &len) < 0)
		return -EINVAL;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = (uint64_t)off + done, b = pos / LOSSY_BLOCK;
		size_t in = LOSSY_BLOCK - pos % LOSSY_BLOCK;
		if (in > len - done)
			in = len - done;
		if (dirty[b]) {
			memcpy(buf + done, overlay + pos, in);
		} else {
			ssize_t n = pread(backing_fd, buf + done, in, (off_t)pos);
			if (n < 0)
				return -errno;
			if ((size_t)n < in)
				memset(buf + done + n, 0, in - (size_t)n);
		}
		done += in;
	}
	return (int)len;
}

static int lossy_write(const char *path, const char *buf, size_t len, off_t off,
		       struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (clamp(off, &len) < 0)
		return -EINVAL;
	if (len == 0)
		return -ENOSPC;
	for (uint64_t b = (uint64_t)off / LOSSY_BLOCK; b <= ((uint64_t)off + len - 1) / LOSSY_BLOCK; b++) {
		int r = load_block(b);
		if (r < 0)
			return r;
	}
	memcpy(overlay + off, buf, len);
	return (int)len;
}

/* Persist every dirty block, then fdatasync the backing file. */
static int lossy_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path, (void)datasync, (void)fi;
	uint64_t wrote = 0;
	for (uint64_t b = 0; b < nblocks && ndirty; b++) {
		if (!dirty[b])
			continue;
		uint64_t off = b * LOSSY_BLOCK;
		size_t len = off + LOSSY_BLOCK > file_size ? file_size - off : LOSSY_BLOCK;
		if (pwrite(backing_fd, overlay + off, len, (off_t)off) != (ssize_t)len)
			return errno ? -errno : -EIO;
		dirty[b] = 0;
		ndirty--;
		wrote++;
	}
	if (fdatasync(backing_fd) < 0)
		return -errno;
	nsyncs++;
	if (nsyncs <= 3 || nsyncs % 1000 == 0)
		fprintf(stderr, "lossyfs: sync %" PRIu64 ": %" PRIu64 " dirty blocks\n", nsyncs, wrote);
	return 0;
}

/* Trims and zeroes are not forwarded; refusing them keeps the model simple. */
static int lossy_fallocate(const char *path, int mode, off_t off, off_t len,
			   struct fuse_file_info *fi)
{
	(void)path, (void)mode, (void)off, (void)len, (void)fi;
	return -EOPNOTSUPP;
}

static const struct fuse_operations lossy_ops = {
	.getattr = lossy_getattr,
	.readdir = onefile_readdir,
	.open = lossy_open,
	.read = lossy_read,
	.write = lossy_write,
	.fsync = lossy_fsync,
	.fallocate = lossy_fallocate,
	.truncate = onefile_truncate,
};

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: lossyfs BACKING MOUNTPOINT [FUSE OPTIONS]\n");
		return 2;
	}
	backing_fd = open(argv[1], O_RDWR | O_CLOEXEC);
	struct stat st;
	if (backing_fd < 0 || fstat(backing_fd, &st) < 0) {
		fprintf(stderr, "lossyfs: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	file_size = (uint64_t)st.st_size;
	if (file_size > LOSSY_MAX_SIZE) {
		fprintf(stderr, "lossyfs: %s: larger than 1 GiB\n", argv[1]);
		return 1;
	}
	nblocks = (file_size + LOSSY_BLOCK - 1) / LOSSY_BLOCK;
	overlay = malloc(file_size ? file_size : 1);
	dirty = calloc(nblocks ? nblocks : 1, 1);
	if (!overlay || !dirty) {
		fprintf(stderr, "lossyfs: out of memory\n");
		return 1;
	}
	return onefile_main(argc, argv, 1, &lossy_ops);
}
