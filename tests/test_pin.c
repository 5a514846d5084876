/*
 * Unit tests for PIN sources: files (permissions, type, symlinks, length,
 * line endings), inherited file descriptors (pipes), literal values, and
 * the mapping of a URI's pin-source / pin-value to a source. Files live in
 * a mkdtemp directory under /tmp created and removed around every test.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "otpca/common/err.h"
#include "otpca/common/log.h"
#include "otpca/token/pin.h"
#include "otpca/token/uri.h"
#include "testutil.h"

static char dir[] = "/tmp/otpca-test-pin-XXXXXX";
static char path_buf[PATH_MAX];

static void setup(void)
{
    /* Failure paths log on purpose; keep the run quiet. */
    unsetenv("OTPCA_LOG_LEVEL");
    unsetenv("OTPCA_LOG_FORMAT");
    otpca_log_init("test-pin", OTPCA_LOG_OFF, OTPCA_LOG_TEXT);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

/* The directory is flat: files, links, fifos and empty subdirectories. */
static void teardown(void)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (unlinkat(dirfd(d), e->d_name, 0) != 0)
                unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
        }
        closedir(d);
    }
    rmdir(dir);
}

TestSuite(pin, .init = setup, .fini = teardown);

static const char *in_dir(const char *name)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", dir, name);
    return path_buf;
}

/* Create dir/name holding len bytes of data with exactly this mode. */
static const char *make_file(const char *name, const void *data, size_t len, mode_t mode)
{
    const char *p = in_dir(name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0, "open %s: %s", p, strerror(errno));
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(fchmod(fd, mode), 0); /* not subject to the umask */
    cr_assert_eq(close(fd), 0);
    return p;
}

static const char *make_text(const char *name, const char *text, mode_t mode)
{
    return make_file(name, text, strlen(text), mode);
}

static otpca_err read_from_file(const char *path, char *pin, size_t cap)
{
    otpca_pin_src src = {.kind = OTPCA_PIN_FILE, .path = path, .fd = -1};
    return otpca_pin_read(&src, pin, cap);
}


/* ------------------------------------------------------------------ file */

Test(pin, file_without_newline)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = make_text("pin", "123456", 0600);
    otpca_err e = read_from_file(p, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "123456");
}

Test(pin, file_with_trailing_newline)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = make_text("pin", "123456\n", 0600);
    otpca_err e = read_from_file(p, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "123456");
}

Test(pin, file_with_crlf)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = make_text("pin", "123456\r\n", 0600);
    otpca_err e = read_from_file(p, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "123456");
}

Test(pin, file_only_first_line_is_the_pin)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = make_text("pin", "1111\n2222\n", 0600);
    otpca_err e = read_from_file(p, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "1111");
}

Test(pin, file_keeps_inner_spaces_and_bytes)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = make_text("pin", " a b\tc\xc3\xa1 \n", 0400);
    otpca_err e = read_from_file(p, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, " a b\tc\xc3\xa1 ");
}

Test(pin, file_readable_by_group_or_others_is_refused)
{
    static const mode_t bad[] = {0640, 0604, 0644, 0660, 0606, 0610, 0601, 0620, 0602};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char pin[OTPCA_PIN_BUF];
        const char *p = make_text("pin", "123456\n", bad[i]);
        otpca_err e = read_from_file(p, pin, sizeof pin);
        cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "mode %04o: %s", (unsigned)bad[i],
                     otpca_errname(e));
        cr_expect_eq(pin[0], '\0', "mode %04o: PIN handed out", (unsigned)bad[i]);
    }
}

Test(pin, missing_file_is_refused)
{
    char pin[OTPCA_PIN_BUF];
    otpca_err e = read_from_file(in_dir("does-not-exist"), pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
}

Test(pin, empty_file_is_refused)
{
    char pin[OTPCA_PIN_BUF];
    cr_expect_eq(read_from_file(make_text("empty", "", 0600), pin, sizeof pin),
                 OTPCA_ERR_PIN_SOURCE);
    cr_expect_eq(read_from_file(make_text("nl", "\n", 0600), pin, sizeof pin),
                 OTPCA_ERR_PIN_SOURCE);
    cr_expect_eq(read_from_file(make_text("crlf", "\r\n", 0600), pin, sizeof pin),
                 OTPCA_ERR_PIN_SOURCE);
    cr_expect_eq(pin[0], '\0');
}

Test(pin, directory_is_refused)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = in_dir("subdir");
    cr_assert_eq(mkdir(p, 0700), 0, "mkdir: %s", strerror(errno));
    otpca_err e = read_from_file(p, pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
}

Test(pin, symlink_is_refused)
{
    char pin[OTPCA_PIN_BUF], target[PATH_MAX];
    snprintf(target, sizeof target, "%s", make_text("real", "123456\n", 0600));
    /* the target itself is fine */
    cr_assert_eq(read_from_file(target, pin, sizeof pin), OTPCA_ERR_OK);
    const char *lnk = in_dir("link");
    cr_assert_eq(symlink(target, lnk), 0, "symlink: %s", strerror(errno));
    memset(pin, 0, sizeof pin);
    otpca_err e = read_from_file(lnk, pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "");
}

/* A FIFO is not a regular file: it must be refused, not waited on (open()
 * of a FIFO without a writer blocks until one appears unless O_NONBLOCK is
 * used). A watchdog alarm interrupts a blocked open() so that the test
 * fails, and cleans up, instead of hanging. */
static volatile sig_atomic_t watchdog_fired;

static void on_watchdog(int sig)
{
    (void)sig;
    watchdog_fired = 1;
}

Test(pin, fifo_is_refused_without_blocking)
{
    char pin[OTPCA_PIN_BUF];
    const char *p = in_dir("fifo");
    cr_assert_eq(mkfifo(p, 0600), 0, "mkfifo: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog; /* no SA_RESTART: a blocked open() returns EINTR */
    sigemptyset(&sa.sa_mask);
    cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
    watchdog_fired = 0;
    alarm(5);
    otpca_err e = read_from_file(p, pin, sizeof pin);
    alarm(0);
    cr_expect_eq(watchdog_fired, 0, "otpca_pin_read blocked on a FIFO until the watchdog");
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
}

Test(pin, maximum_length_is_accepted)
{
    char data[OTPCA_P11_PIN_MAX + 2], pin[OTPCA_PIN_BUF];
    memset(data, '7', OTPCA_P11_PIN_MAX);
    make_file("max", data, OTPCA_P11_PIN_MAX, 0600);
    otpca_err e = read_from_file(in_dir("max"), pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_eq(strlen(pin), OTPCA_P11_PIN_MAX);

    data[OTPCA_P11_PIN_MAX] = '\n';
    make_file("max-nl", data, OTPCA_P11_PIN_MAX + 1, 0600);
    e = read_from_file(in_dir("max-nl"), pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_eq(strlen(pin), OTPCA_P11_PIN_MAX);
}

/* "\r\n" is a line ending, not part of the PIN: a 255-byte PIN written by
 * a Windows editor is as valid as one with "\n". */
Test(pin, maximum_length_with_crlf_is_accepted)
{
    char data[OTPCA_P11_PIN_MAX + 2], pin[OTPCA_PIN_BUF];
    memset(data, '7', OTPCA_P11_PIN_MAX);
    data[OTPCA_P11_PIN_MAX] = '\r';
    data[OTPCA_P11_PIN_MAX + 1] = '\n';
    make_file("max-crlf", data, sizeof data, 0600);
    otpca_err e = read_from_file(in_dir("max-crlf"), pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_eq(strlen(pin), OTPCA_P11_PIN_MAX);
}

Test(pin, too_long_is_refused_and_buffer_wiped)
{
    char data[300], pin[OTPCA_PIN_BUF];
    memset(data, 'S', sizeof data);
    data[sizeof data - 1] = '\n';
    make_file("long", data, sizeof data, 0600);
    memset(pin, 0x55, sizeof pin);
    otpca_err e = read_from_file(in_dir("long"), pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
    cr_expect(all_zero(pin, sizeof pin), "partial PIN left in the buffer");
}

Test(pin, one_byte_over_the_limit_is_refused)
{
    char data[OTPCA_P11_PIN_MAX + 1], pin[OTPCA_PIN_BUF];
    memset(data, 'S', sizeof data);
    make_file("over", data, sizeof data, 0600);
    otpca_err e = read_from_file(in_dir("over"), pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
    cr_expect(all_zero(pin, sizeof pin), "partial PIN left in the buffer");
}

Test(pin, small_caller_buffer_is_respected_and_wiped)
{
    char pin[8];
    memset(pin, 0x55, sizeof pin);
    otpca_err e = read_from_file(make_text("pin", "1234567890\n", 0600), pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
    cr_expect(all_zero(pin, sizeof pin), "partial PIN left in the buffer");
}

Test(pin, file_errors_never_log_the_pin)
{
    char *logbuf = NULL, pin[OTPCA_PIN_BUF], data[300];
    size_t loglen = 0;
    FILE *f = open_memstream(&logbuf, &loglen);
    cr_assert_not_null(f);
    otpca_log_init("pin-test", OTPCA_LOG_DEBUG, OTPCA_LOG_TEXT);
    otpca_log_set_stream(f);

    memset(data, 'Q', sizeof data);
    make_file("long", data, sizeof data, 0600);
    cr_expect_eq(read_from_file(in_dir("long"), pin, sizeof pin), OTPCA_ERR_PIN_SOURCE);
    cr_expect_eq(read_from_file(make_text("open", "QQQQ-secret\n", 0644), pin, sizeof pin),
                 OTPCA_ERR_PIN_SOURCE);
    fflush(f);
    cr_expect_gt(loglen, 0, "errors are not logged at all");
    cr_expect_null(strstr(logbuf ? logbuf : "", "QQQQ"), "PIN bytes in the log: %s", logbuf);
    cr_expect_not_null(strstr(logbuf ? logbuf : "", dir), "the path should be logged: %s", logbuf);

    otpca_log_set_stream(NULL);
    fclose(f);
    free(logbuf);
}

/* -------------------------------------------------------------------- fd */

Test(pin, fd_reads_one_line_and_leaves_the_rest)
{
    int p[2];
    char pin[OTPCA_PIN_BUF], rest[16] = {0};
    cr_assert_eq(pipe(p), 0);
    static const char data[] = "4321\nrest";
    cr_assert_eq(write(p[1], data, sizeof data - 1), (ssize_t)(sizeof data - 1));
    otpca_pin_src src = {.kind = OTPCA_PIN_FD, .fd = p[0]};
    otpca_err e = otpca_pin_read(&src, pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "4321");
    /* nothing after the newline was consumed, and the fd is still open */
    cr_assert_eq(close(p[1]), 0);
    cr_expect_eq(read(p[0], rest, sizeof rest - 1), 4);
    cr_expect_str_eq(rest, "rest");
    close(p[0]);
}

Test(pin, fd_pin_without_newline_until_eof)
{
    int p[2];
    char pin[OTPCA_PIN_BUF];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], "9999\r", 5), 5);
    cr_assert_eq(close(p[1]), 0);
    otpca_pin_src src = {.kind = OTPCA_PIN_FD, .fd = p[0]};
    otpca_err e = otpca_pin_read(&src, pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "9999");
    close(p[0]);
}

Test(pin, fd_at_eof_is_refused)
{
    int p[2];
    char pin[OTPCA_PIN_BUF];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(close(p[1]), 0);
    otpca_pin_src src = {.kind = OTPCA_PIN_FD, .fd = p[0]};
    otpca_err e = otpca_pin_read(&src, pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
    close(p[0]);
}

Test(pin, fd_too_long_is_refused_and_wiped)
{
    int p[2];
    char pin[OTPCA_PIN_BUF], data[400];
    cr_assert_eq(pipe(p), 0);
    memset(data, 'F', sizeof data);
    cr_assert_eq(write(p[1], data, sizeof data), (ssize_t)sizeof data);
    cr_assert_eq(close(p[1]), 0);
    memset(pin, 0x55, sizeof pin);
    otpca_pin_src src = {.kind = OTPCA_PIN_FD, .fd = p[0]};
    otpca_err e = otpca_pin_read(&src, pin, sizeof pin);
    cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "%s", otpca_errname(e));
    cr_expect(all_zero(pin, sizeof pin), "partial PIN left in the buffer");
    close(p[0]);
}

Test(pin, closed_or_negative_fd_is_refused)
{
    char pin[OTPCA_PIN_BUF];
    otpca_pin_src neg = {.kind = OTPCA_PIN_FD, .fd = -1};
    cr_expect_eq(otpca_pin_read(&neg, pin, sizeof pin), OTPCA_ERR_INVALID_ARG);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    otpca_pin_src closed = {.kind = OTPCA_PIN_FD, .fd = p[0]};
    cr_expect_eq(otpca_pin_read(&closed, pin, sizeof pin), OTPCA_ERR_PIN_SOURCE);
}

/* ----------------------------------------------------------- value, none */

Test(pin, value_is_copied)
{
    char pin[OTPCA_PIN_BUF];
    otpca_pin_src src = {.kind = OTPCA_PIN_VALUE, .fd = -1, .value = "s3cret"};
    otpca_err e = otpca_pin_read(&src, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "s3cret");
    cr_expect_neq(pin, src.value);
}

Test(pin, empty_missing_or_too_long_value_is_refused)
{
    char pin[OTPCA_PIN_BUF], big[OTPCA_PIN_BUF + 1];
    otpca_pin_src src = {.kind = OTPCA_PIN_VALUE, .fd = -1, .value = ""};
    cr_expect_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_PIN_SOURCE);
    src.value = NULL;
    cr_expect_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_PIN_SOURCE);
    memset(big, 'v', OTPCA_PIN_BUF);
    big[OTPCA_PIN_BUF] = '\0'; /* 256 bytes */
    src.value = big;
    cr_expect_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_PIN_SOURCE);
    big[OTPCA_P11_PIN_MAX] = '\0'; /* 255 bytes */
    cr_expect_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_OK);
    cr_expect_eq(strlen(pin), OTPCA_P11_PIN_MAX);
}

Test(pin, none_kind_is_invalid_arg)
{
    char pin[OTPCA_PIN_BUF];
    otpca_pin_src src = {.kind = OTPCA_PIN_NONE, .fd = -1};
    cr_expect_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_INVALID_ARG);
}

Test(pin, bad_arguments_are_invalid_arg)
{
    char pin[OTPCA_PIN_BUF];
    otpca_pin_src value = {.kind = OTPCA_PIN_VALUE, .fd = -1, .value = "1234"};
    otpca_pin_src nopath = {.kind = OTPCA_PIN_FILE, .fd = -1, .path = NULL};
    otpca_pin_src weird = {.kind = (otpca_pin_kind)99, .fd = -1};
    cr_expect_eq(otpca_pin_read(NULL, pin, sizeof pin), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_pin_read(&value, NULL, sizeof pin), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_pin_read(&value, pin, 1), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_pin_read(&value, pin, 0), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_pin_read(&nopath, pin, sizeof pin), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_pin_read(&weird, pin, sizeof pin), OTPCA_ERR_INVALID_ARG);
}

/* -------------------------------------------------------------- from_uri */

static otpca_err src_from(const char *uri_text, otpca_p11_uri *u, otpca_pin_src *src)
{
    otpca_err e = otpca_p11_uri_parse(uri_text, u);
    cr_assert_eq(e, OTPCA_ERR_OK, "\"%s\": %s", uri_text, otpca_errname(e));
    memset(src, 0x5A, sizeof *src);
    return otpca_pin_src_from_uri(u, src);
}

static int points_into(const void *p, const otpca_p11_uri *u)
{
    const char *c = p, *base = (const char *)u;
    return c >= base && c < base + sizeof *u;
}

Test(pin, from_uri_file_scheme_one_slash)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    cr_assert_eq(src_from("pkcs11:token=t?pin-source=file:/etc/otpca/t.pin", &u, &src),
                 OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_FILE);
    cr_assert_not_null(src.path);
    cr_expect_str_eq(src.path, "/etc/otpca/t.pin");
    cr_expect(points_into(src.path, &u));
    cr_expect_eq(src.fd, -1);
}

Test(pin, from_uri_file_scheme_three_slashes)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    cr_assert_eq(src_from("pkcs11:?pin-source=file:///etc/otpca/t.pin", &u, &src),
                 OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_FILE);
    cr_expect_str_eq(src.path, "/etc/otpca/t.pin");
}

Test(pin, from_uri_plain_absolute_path)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    cr_assert_eq(src_from("pkcs11:?pin-source=/etc/otpca/t.pin", &u, &src), OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_FILE);
    cr_expect_str_eq(src.path, "/etc/otpca/t.pin");
}

Test(pin, from_uri_relative_path)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    cr_assert_eq(src_from("pkcs11:?pin-source=t.pin", &u, &src), OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_FILE);
    cr_expect_str_eq(src.path, "t.pin");
}

/* "file://host/x" has an authority and "//x" is a network-path reference;
 * neither may silently turn into a path relative to the working directory
 * ("host/x", "x"). Refusing them or naming an absolute path are both fine. */
Test(pin, from_uri_authority_never_becomes_a_relative_path)
{
    static const char *const uris[] = {
        "pkcs11:?pin-source=file://localhost/etc/otpca/t.pin",
        "pkcs11:?pin-source=//etc/otpca/t.pin",
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        otpca_p11_uri u;
        otpca_pin_src src;
        otpca_err e = src_from(uris[i], &u, &src);
        if (e == OTPCA_ERR_OK && src.kind == OTPCA_PIN_FILE)
            cr_expect_eq(src.path[0], '/', "\"%s\" became relative path \"%s\"", uris[i],
                         src.path);
    }
}

Test(pin, from_uri_command_is_refused)
{
    static const char *const uris[] = {
        "pkcs11:?pin-source=|cat%20/etc/pin",
        "pkcs11:?pin-source=%7Ccat",
        "pkcs11:?pin-source=file:|cat",
        "pkcs11:?pin-source=file:",
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        otpca_p11_uri u;
        otpca_pin_src src;
        otpca_err e = src_from(uris[i], &u, &src);
        cr_expect_eq(e, OTPCA_ERR_PIN_SOURCE, "\"%s\": %s", uris[i], otpca_errname(e));
        cr_expect_neq(src.kind, OTPCA_PIN_FILE, "\"%s\"", uris[i]);
    }
}

Test(pin, from_uri_pin_value)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    char pin[OTPCA_PIN_BUF];
    cr_assert_eq(src_from("pkcs11:token=t?pin-value=24%2668", &u, &src), OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_VALUE);
    cr_assert_not_null(src.value);
    cr_expect_str_eq(src.value, "24&68");
    cr_expect(points_into(src.value, &u));
    cr_assert_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_OK);
    cr_expect_str_eq(pin, "24&68");
    otpca_p11_uri_clear(&u);
}

Test(pin, from_uri_without_pin_is_none)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    char pin[OTPCA_PIN_BUF];
    cr_assert_eq(src_from("pkcs11:token=t;object=o", &u, &src), OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_NONE);
    cr_expect_eq(src.fd, -1);
    cr_expect_null(src.path);
    cr_expect_null(src.value);
    cr_expect_eq(otpca_pin_read(&src, pin, sizeof pin), OTPCA_ERR_INVALID_ARG);
}

Test(pin, from_uri_file_end_to_end)
{
    otpca_p11_uri u;
    otpca_pin_src src;
    char text[PATH_MAX + 64], pin[OTPCA_PIN_BUF];
    const char *p = make_text("uri.pin", "8642\n", 0600);
    snprintf(text, sizeof text, "pkcs11:token=t?pin-source=file:%s", p);
    cr_assert_eq(src_from(text, &u, &src), OTPCA_ERR_OK);
    cr_expect_eq(src.kind, OTPCA_PIN_FILE);
    otpca_err e = otpca_pin_read(&src, pin, sizeof pin);
    cr_assert_eq(e, OTPCA_ERR_OK, "%s", otpca_errname(e));
    cr_expect_str_eq(pin, "8642");
}
