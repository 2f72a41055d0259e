/* tests/tools/onefile.h: what the one-file FUSE filesystems of the tests
 * (eiofs, lossyfs) share: a root directory that holds one file, disk.img,
 * which cannot be truncated.  Each filesystem says what the file holds. */
#ifndef SHUNT_TESTS_ONEFILE_H
#define SHUNT_TESTS_ONEFILE_H

#define FUSE_USE_VERSION 31
#include <fuse.h>
#include <sys/stat.h>

/* The file's path below the mount point. */
#define ONEFILE_PATH "/disk.img"

/* getattr: the root directory, or the file with the size, 512-byte blocks
 * and block size given; -ENOENT for any other path. */
int onefile_getattr(const char *path, struct stat *st, off_t size, blkcnt_t blocks, blksize_t blksize);

/* readdir of the root: ".", ".." and the file; -ENOENT elsewhere. */
int onefile_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		    enum fuse_readdir_flags flags);

/* truncate: refused (-EPERM); the file keeps its size. */
int onefile_truncate(const char *path, off_t size, struct fuse_file_info *fi);

/* fuse_main over argv[first..] as its mount point and options (argv[first]
 * is overwritten with the program's name). */
int onefile_main(int argc, char **argv, int first, const struct fuse_operations *ops);

#endif
