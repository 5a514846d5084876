/*
 * Small file helpers shared by the daemons and CLIs.
 */
#ifndef OTPCA_COMMON_FILES_H
#define OTPCA_COMMON_FILES_H

#include <stddef.h>

#include "otpca/common/err.h"

/* Replaces path with data (mode 0644) through a temporary file beside it,
 * fsync and rename(2): a reader (a web server publishing a CRL) sees the
 * old file or the new one, never half of one. OTPCA_ERR_IO (errno set,
 * the temporary file removed) if any step fails. */
otpca_err otpca_file_replace(const char *path, const void *data, size_t len) __attribute__((warn_unused_result));

#endif
