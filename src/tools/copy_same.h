/* copy_same.h: does `shunt copy SRC DST` name the same storage twice?  Copying
 * a file onto itself would first truncate it (the destination is recreated
 * sparse) and so destroy it; cp refuses the same way. */
#ifndef SHUNT_TOOLS_COPY_SAME_H
#define SHUNT_TOOLS_COPY_SAME_H

#include <stdbool.h>
#include <sys/stat.h>

/* Two open files (their fstat): the same file (device and inode), or the same
 * block device (st_rdev) through two device nodes? */
bool copy_same_file(const struct stat *a, const struct stat *b);

/* Two NBD URIs: the same export name on the same server?  TCP servers match
 * when their host:port resolve to a common address (so localhost and
 * 127.0.0.1 match), unix sockets when the socket paths are the same file.
 * Unparsable URIs are left to the connect to report: false. */
bool copy_same_export(const char *uri_a, const char *uri_b);

#endif
