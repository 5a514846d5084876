/* File helpers (files.h). */
#include "otpca/common/files.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

otpca_err otpca_file_replace(const char *path, const void *data, size_t len)
{
    char tmp[4096];
    if (!path || snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return OTPCA_ERR_IO;
    }
    int fd = mkstemp(tmp);
    if (fd < 0)
        return OTPCA_ERR_IO;
    int ok = fchmod(fd, 0644) == 0 && write(fd, data, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok && rename(tmp, path) == 0;
    if (!ok) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return OTPCA_ERR_IO;
    }
    return OTPCA_ERR_OK;
}
