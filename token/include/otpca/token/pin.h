/*
 * Where a PIN comes from: a file, an inherited file descriptor, an
 * interactive prompt on the controlling terminal, or (for config files
 * only) a pin-value from a URI. Never argv, never the environment.
 */
#ifndef OTPCA_TOKEN_PIN_H
#define OTPCA_TOKEN_PIN_H

#include <stddef.h>

#include "otpca/common/err.h"
#include "otpca/token/uri.h"

typedef enum otpca_pin_kind {
    OTPCA_PIN_NONE = 0, /* no login */
    OTPCA_PIN_FILE,
    OTPCA_PIN_FD,
    OTPCA_PIN_PROMPT,
    OTPCA_PIN_VALUE,
} otpca_pin_kind;

typedef struct otpca_pin_src {
    otpca_pin_kind kind;
    const char *path;   /* FILE */
    int fd;             /* FD */
    const char *prompt; /* PROMPT; NULL = "PIN: " */
    const char *value;  /* VALUE */
} otpca_pin_src;

/* Room a caller must give otpca_pin_read() (PIN + NUL). */
#define OTPCA_PIN_BUF (OTPCA_P11_PIN_MAX + 1)

/* Read the PIN into pin (cap >= OTPCA_PIN_BUF, ideally secret memory),
 * NUL-terminated, without a trailing newline. A file must be a regular
 * file not readable by group or others. Errors: OTPCA_ERR_PIN_SOURCE
 * (unreadable, empty, too long, bad permissions), OTPCA_ERR_INVALID_ARG. */
otpca_err otpca_pin_read(const otpca_pin_src *src, char *pin, size_t cap)
    __attribute__((warn_unused_result));

/* Derive a PIN source from a parsed URI's pin-source / pin-value
 * ("file:/path" or "/path"); kind NONE if the URI has neither.
 * The result points into *uri. */
otpca_err otpca_pin_src_from_uri(const otpca_p11_uri *uri, otpca_pin_src *out)
    __attribute__((warn_unused_result));

#endif
