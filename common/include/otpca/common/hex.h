/*
 * Hexadecimal digits, for the CLIs, test vectors and tools that read keys,
 * seeds and messages written as hex.
 */
#ifndef OTPCA_COMMON_HEX_H
#define OTPCA_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/common/err.h"

/* The value of one hex digit (either case), or -1. */
int otpca_hex_digit(int c);

/* Decodes text[0..len) (ASCII whitespace between digits is skipped) into
 * out. OTPCA_ERR_INVALID_ARG for a non-hex character or an odd number of
 * digits, OTPCA_ERR_BUFFER_TOO_SMALL if more than cap bytes. */
otpca_err otpca_hex_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len)
    __attribute__((warn_unused_result));

#endif
