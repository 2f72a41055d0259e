/* tests/tools/onefile.c: the root directory and the one file's attributes
 * for the test filesystems (onefile.h). */
#include <errno.h>
#include <string.h>

#include "onefile.h"

int onefile_getattr(const char *path, struct stat *st, off_t size, blkcnt_t blocks, blksize_t blksize)
{
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, ONEFILE_PATH) != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blocks = blocks;
	st->st_blksize = blksize;
	return 0;
}

int onefile_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		    enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, ONEFILE_PATH + 1, NULL, 0, 0);
	return 0;
}

int onefile_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)path, (void)size, (void)fi;
	return -EPERM;
}

int onefile_main(int argc, char **argv, int first, const struct fuse_operations *ops)
{
	/* fuse_main sees: argv[0] MOUNTPOINT [options]. */
	argv[first] = argv[0];
	return fuse_main(argc - first, argv + first, ops, NULL);
}
