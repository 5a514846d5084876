/*
 * PIN sources: file, inherited fd, terminal prompt, or a URI pin-value.
 * PINs are read byte by byte into the caller's (secret) buffer so that no
 * copy lands in stdio buffers.
 */
#include "otpca/token/pin.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

/* Read up to a newline or EOF; strips "\n" / "\r\n". A '\r' is held back
 * until the next byte shows whether it ends the line, so a PIN of the
 * maximum length may still end in CRLF. */
static otpca_err read_line(int fd, char *pin, size_t cap)
{
    size_t n = 0;
    int cr = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            otpca_memzero(pin, cap);
            return OTPCA_ERR_PIN_SOURCE;
        }
        if (r == 0 || c == '\n')
            break;
        if (cr) { /* the held '\r' was part of the PIN */
            if (n + 1 >= cap)
                goto too_long;
            pin[n++] = '\r';
            cr = 0;
        }
        if (c == '\r') {
            cr = 1;
            continue;
        }
        if (n + 1 >= cap)
            goto too_long;
        pin[n++] = c;
    }
    pin[n] = '\0';
    return n ? OTPCA_ERR_OK : OTPCA_ERR_PIN_SOURCE;
too_long:
    otpca_memzero(pin, cap);
    return OTPCA_ERR_PIN_SOURCE;
}

static otpca_err read_file(const char *path, char *pin, size_t cap)
{
    /* O_NONBLOCK: a FIFO without a writer must not hang the open; the
     * regular-file check below then refuses it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        log_error("PIN file %s: %s", path, strerror(errno));
        return OTPCA_ERR_PIN_SOURCE;
    }
    otpca_err ret;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_error("PIN file %s: not a regular file", path);
        ret = OTPCA_ERR_PIN_SOURCE;
        goto out;
    }
    if (fcntl(fd, F_SETFL, 0) != 0) {
        ret = OTPCA_ERR_PIN_SOURCE;
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        log_error("PIN file %s: readable by group or others (chmod 600)", path);
        ret = OTPCA_ERR_PIN_SOURCE;
        goto out;
    }
    ret = read_line(fd, pin, cap);
    if (ret)
        log_error("PIN file %s: empty or longer than %d bytes", path, OTPCA_P11_PIN_MAX);
out:
    close(fd);
    return ret;
}

static otpca_err prompt_tty(const char *prompt, char *pin, size_t cap)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        log_error("no terminal to ask for the PIN; use pin-source=file:... or --pin-fd");
        return OTPCA_ERR_PIN_SOURCE;
    }
    struct termios old, quiet;
    int restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        quiet.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    const char *p = prompt ? prompt : "PIN: ";
    if (write(fd, p, strlen(p)) < 0) { /* a prompt that cannot be shown is not fatal */ }
    otpca_err ret = read_line(fd, pin, cap);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) { /* cosmetic only */ }
    close(fd);
    return ret;
}

otpca_err otpca_pin_read(const otpca_pin_src *src, char *pin, size_t cap)
{
    if (!src || !pin || cap < 2)
        return OTPCA_ERR_INVALID_ARG;
    pin[0] = '\0';
    switch (src->kind) {
    case OTPCA_PIN_FILE:
        return src->path ? read_file(src->path, pin, cap) : OTPCA_ERR_INVALID_ARG;
    case OTPCA_PIN_FD:
        if (src->fd < 0)
            return OTPCA_ERR_INVALID_ARG;
        return read_line(src->fd, pin, cap);
    case OTPCA_PIN_PROMPT:
        return prompt_tty(src->prompt, pin, cap);
    case OTPCA_PIN_VALUE: {
        size_t n = src->value ? strlen(src->value) : 0;
        if (n == 0 || n >= cap)
            return OTPCA_ERR_PIN_SOURCE;
        memcpy(pin, src->value, n + 1);
        return OTPCA_ERR_OK;
    }
    case OTPCA_PIN_NONE:
    default:
        return OTPCA_ERR_INVALID_ARG;
    }
}

otpca_err otpca_pin_src_from_uri(const otpca_p11_uri *uri, otpca_pin_src *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (uri->has_pin_value) {
        out->kind = OTPCA_PIN_VALUE;
        out->value = uri->pin_value;
        return OTPCA_ERR_OK;
    }
    if (uri->pin_source[0] == '\0')
        return OTPCA_ERR_OK;
    const char *s = uri->pin_source;
    if (strncmp(s, "file:", 5) == 0) {
        s += 5;
        /* RFC 8089: "file:///p" and "file://localhost/p" name /p; any
         * other authority is a remote file, which we do not read. */
        if (strncmp(s, "//", 2) == 0) {
            s += 2;
            if (strncmp(s, "localhost/", 10) == 0)
                s += 9;
            if (s[0] != '/') {
                log_error("pin-source names a remote file; use file:/path");
                return OTPCA_ERR_PIN_SOURCE;
            }
        }
    }
    if (s[0] == '\0' || s[0] == '|') {
        log_error("pin-source must name a file (\"file:/path\" or a path)");
        return OTPCA_ERR_PIN_SOURCE;
    }
    out->kind = OTPCA_PIN_FILE;
    out->path = s;
    return OTPCA_ERR_OK;
}
