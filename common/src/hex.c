/* Hexadecimal digits (see hex.h). */
#include "otpca/common/hex.h"

int otpca_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

otpca_err otpca_hex_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    int hi = -1;
    for (size_t i = 0; i < len; i++) {
        if (is_space((unsigned char)text[i]))
            continue;
        int v = otpca_hex_digit((unsigned char)text[i]);
        if (v < 0)
            return OTPCA_ERR_INVALID_ARG;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == cap)
            return OTPCA_ERR_BUFFER_TOO_SMALL;
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    if (hi >= 0)
        return OTPCA_ERR_INVALID_ARG;
    *out_len = n;
    return OTPCA_ERR_OK;
}
