/*
 * Unit tests for the common component: the error table behind
 * otpca_strerror()/otpca_errname(), the leveled text/JSON logger (output
 * captured through otpca_log_set_stream on a memory stream), and secret
 * memory (locked, undumpable, zeroed pages; constant-time compare; memzero).
 * Criterion forks every test, so global logger state never leaks between
 * tests.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "otpca/common/err.h"
#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"

/* ---------------------------------------------------------------- errors */

struct err_case {
    otpca_err code;
    const char *name;
    const char *sentence;
};

static const struct err_case err_cases[] = {
#define ERR_CASE_(name, value, sentence) {OTPCA_ERR_##name, "OTPCA_ERR_" #name, sentence},
    OTPCA_ERR_TABLE(ERR_CASE_)
#undef ERR_CASE_
};
#define N_ERR (sizeof err_cases / sizeof err_cases[0])

Test(err, ok_is_zero_and_failures_are_negative)
{
    cr_expect_eq(OTPCA_ERR_OK, 0);
    for (size_t i = 0; i < N_ERR; i++)
        if (err_cases[i].code != OTPCA_ERR_OK)
            cr_expect_lt((int)err_cases[i].code, 0, "%s is not negative", err_cases[i].name);
}

Test(err, every_code_has_a_non_empty_sentence_from_the_table)
{
    for (size_t i = 0; i < N_ERR; i++) {
        const char *s = otpca_strerror(err_cases[i].code);
        cr_assert_not_null(s, "%s", err_cases[i].name);
        cr_expect_gt(strlen(s), 0, "%s has an empty sentence", err_cases[i].name);
        cr_expect_str_eq(s, err_cases[i].sentence, "%s", err_cases[i].name);
        cr_expect_str_neq(s, "unknown error", "%s", err_cases[i].name);
    }
}

Test(err, every_code_has_its_prefixed_name)
{
    for (size_t i = 0; i < N_ERR; i++) {
        const char *n = otpca_errname(err_cases[i].code);
        cr_assert_not_null(n);
        cr_expect_eq(strncmp(n, "OTPCA_ERR_", 10), 0, "name %s", n);
        cr_expect_gt(strlen(n), 10, "name %s has nothing after the prefix", n);
        cr_expect_str_eq(n, err_cases[i].name);
    }
    cr_expect_str_eq(otpca_errname(OTPCA_ERR_PIN_INCORRECT), "OTPCA_ERR_PIN_INCORRECT");
}

Test(err, codes_names_and_sentences_are_distinct)
{
    for (size_t i = 0; i < N_ERR; i++)
        for (size_t j = i + 1; j < N_ERR; j++) {
            cr_expect_neq(err_cases[i].code, err_cases[j].code, "%s and %s share a value",
                          err_cases[i].name, err_cases[j].name);
            cr_expect_str_neq(otpca_strerror(err_cases[i].code),
                              otpca_strerror(err_cases[j].code), "%s and %s share a sentence",
                              err_cases[i].name, err_cases[j].name);
            cr_expect_str_neq(otpca_errname(err_cases[i].code),
                              otpca_errname(err_cases[j].code));
        }
}

Test(err, unknown_code_gives_unknown_error)
{
    static const int foreign[] = {1, 42, -10, -19, -34, -999, INT32_MIN};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        cr_expect_str_eq(otpca_strerror((otpca_err)foreign[i]), "unknown error", "code %d",
                         foreign[i]);
        cr_expect_str_eq(otpca_errname((otpca_err)foreign[i]), "OTPCA_ERR_UNKNOWN", "code %d",
                         foreign[i]);
    }
}

/* ---------------------------------------------------------------- logger */

struct capture {
    FILE *f;
    char *buf;
    size_t len;
};

static void capture_start(struct capture *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    cr_assert_not_null(c->f, "open_memstream: %s", strerror(errno));
    otpca_log_set_stream(c->f);
}

static const char *capture_text(struct capture *c)
{
    fflush(c->f);
    return c->buf ? c->buf : "";
}

static void capture_end(struct capture *c)
{
    otpca_log_set_stream(NULL);
    fclose(c->f);
    free(c->buf);
}

static void log_env_clear(void)
{
    unsetenv("OTPCA_LOG_LEVEL");
    unsetenv("OTPCA_LOG_FORMAT");
}

static size_t count_char(const char *s, char ch)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == ch;
    return n;
}

Test(log, level_and_format_names_parse)
{
    cr_expect_eq(otpca_log_level_parse("debug"), OTPCA_LOG_DEBUG);
    cr_expect_eq(otpca_log_level_parse("info"), OTPCA_LOG_INFO);
    cr_expect_eq(otpca_log_level_parse("warn"), OTPCA_LOG_WARN);
    cr_expect_eq(otpca_log_level_parse("warning"), OTPCA_LOG_WARN);
    cr_expect_eq(otpca_log_level_parse("error"), OTPCA_LOG_ERROR);
    cr_expect_eq(otpca_log_level_parse("off"), OTPCA_LOG_OFF);
    cr_expect_eq(otpca_log_level_parse("ERROR"), OTPCA_LOG_ERROR);
    cr_expect_eq(otpca_log_level_parse("verbose"), -1);
    cr_expect_eq(otpca_log_level_parse(""), -1);
    cr_expect_eq(otpca_log_level_parse(NULL), -1);
    cr_expect_eq(otpca_log_format_parse("text"), OTPCA_LOG_TEXT);
    cr_expect_eq(otpca_log_format_parse("JSON"), OTPCA_LOG_JSON);
    cr_expect_eq(otpca_log_format_parse("xml"), -1);
    cr_expect_eq(otpca_log_format_parse(NULL), -1);
}

Test(log, messages_below_threshold_are_not_written)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("thr", OTPCA_LOG_WARN, OTPCA_LOG_TEXT);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_WARN);
    capture_start(&c);
    log_debug("dropped-debug");
    log_info("dropped-info");
    cr_expect_eq(strlen(capture_text(&c)), 0, "got: %s", capture_text(&c));
    log_warn("kept-warn");
    log_error("kept-error");
    const char *out = capture_text(&c);
    cr_expect_null(strstr(out, "dropped"), "got: %s", out);
    cr_expect_not_null(strstr(out, "kept-warn"), "got: %s", out);
    cr_expect_not_null(strstr(out, "kept-error"), "got: %s", out);
    cr_expect_eq(count_char(out, '\n'), 2, "got: %s", out);
    capture_end(&c);
}

Test(log, debug_threshold_writes_everything)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("dbg", OTPCA_LOG_DEBUG, OTPCA_LOG_TEXT);
    capture_start(&c);
    log_debug("d1");
    log_info("i1");
    const char *out = capture_text(&c);
    cr_expect_not_null(strstr(out, "dbg[debug] d1\n"), "got: %s", out);
    cr_expect_not_null(strstr(out, "dbg[info] i1\n"), "got: %s", out);
    capture_end(&c);
}

Test(log, off_threshold_writes_nothing)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("off", OTPCA_LOG_OFF, OTPCA_LOG_TEXT);
    capture_start(&c);
    log_error("never");
    cr_expect_eq(strlen(capture_text(&c)), 0, "got: %s", capture_text(&c));
    /* OFF is a threshold, not a level to log at. */
    otpca_log_init("off", OTPCA_LOG_DEBUG, OTPCA_LOG_TEXT);
    otpca_log(OTPCA_LOG_OFF, "never either");
    cr_expect_eq(strlen(capture_text(&c)), 0, "got: %s", capture_text(&c));
    capture_end(&c);
}

Test(log, text_line_has_timestamp_ident_level_and_message)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("otpca-test", OTPCA_LOG_INFO, OTPCA_LOG_TEXT);
    capture_start(&c);
    log_warn("hello %d %s", 42, "world");
    const char *out = capture_text(&c);
    cr_expect_not_null(strstr(out, "otpca-test[warn] hello 42 world\n"), "got: %s", out);
    /* "YYYY-MM-DDTHH:MM:SS.mmmZ " in UTC before the ident */
    cr_assert_geq(strlen(out), 25, "got: %s", out);
    cr_expect_eq(out[4], '-');
    cr_expect_eq(out[7], '-');
    cr_expect_eq(out[10], 'T');
    cr_expect_eq(out[19], '.');
    cr_expect_eq(out[23], 'Z');
    cr_expect_eq(out[24], ' ');
    cr_expect_eq(count_char(out, '\n'), 1);
    capture_end(&c);
}

/* The header promises one line per event in text as in JSON: a message
 * carrying a newline (a token label, a peer name) must not forge a second
 * log line. */
Test(log, text_event_stays_on_one_line)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("inj", OTPCA_LOG_INFO, OTPCA_LOG_TEXT);
    capture_start(&c);
    log_info("label=%s", "evil\n2030-01-01T00:00:00.000Z inj[error] forged");
    const char *out = capture_text(&c);
    cr_expect_eq(count_char(out, '\n'), 1, "one event became several lines:\n%s", out);
    capture_end(&c);
}

Test(log, ident_is_copied_and_truncated_safely)
{
    struct capture c;
    char ident[100];
    log_env_clear();
    memset(ident, 'x', sizeof ident - 1);
    ident[sizeof ident - 1] = '\0';
    otpca_log_init(ident, OTPCA_LOG_INFO, OTPCA_LOG_TEXT);
    memset(ident, 'y', sizeof ident - 1); /* the logger must hold its own copy */
    capture_start(&c);
    log_info("m");
    const char *out = capture_text(&c);
    cr_expect_null(strchr(out, 'y'), "got: %s", out);
    cr_expect_not_null(strstr(out, "xxxxxxxxxx[info] m\n"), "got: %s", out);
    cr_expect_lt(strlen(out), 100, "ident not truncated: %s", out);
    capture_end(&c);
}

/* Decode the JSON string that starts right after the opening quote at *p.
 * Returns a malloc'ed string and advances *p past the closing quote, or
 * NULL on any invalid JSON string syntax. */
static char *json_string_decode(const char **p)
{
    const char *s = *p;
    char *out = malloc(strlen(s) + 1);
    size_t o = 0;
    cr_assert_not_null(out);
    for (;;) {
        unsigned char ch = (unsigned char)*s++;
        if (ch == '\0' || ch < 0x20)
            goto bad;
        if (ch == '"')
            break;
        if (ch != '\\') {
            out[o++] = (char)ch;
            continue;
        }
        switch (*s++) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned v = 0;
            for (int i = 0; i < 4; i++) {
                char h = *s++;
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f')
                    v |= (unsigned)(h - 'a' + 10);
                else if (h >= 'A' && h <= 'F')
                    v |= (unsigned)(h - 'A' + 10);
                else
                    goto bad;
            }
            if (v >= 0x80) /* the test only sends ASCII controls this way */
                goto bad;
            out[o++] = (char)v;
            break;
        }
        default:
            goto bad;
        }
    }
    out[o] = '\0';
    *p = s;
    return out;
bad:
    free(out);
    return NULL;
}

/* The value of "key" in a one-line JSON object, decoded; NULL if absent. */
static char *json_field(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    return json_string_decode(&p);
}

Test(log, json_is_one_object_per_line)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("js", OTPCA_LOG_DEBUG, OTPCA_LOG_JSON);
    capture_start(&c);
    log_info("first");
    log_error("second %d", 2);
    const char *out = capture_text(&c);
    cr_assert_eq(count_char(out, '\n'), 2, "got: %s", out);
    const char *nl = strchr(out, '\n');
    cr_expect_eq(out[0], '{');
    cr_expect_eq(nl[-1], '}');
    cr_expect_eq(nl[1], '{');
    cr_expect_eq(out[strlen(out) - 2], '}');
    cr_expect_eq(strncmp(out, "{\"ts\":\"", 7), 0, "got: %s", out);
    cr_expect_not_null(strstr(out, "\"level\":\"info\",\"ident\":\"js\",\"msg\":\"first\"}\n"),
                       "got: %s", out);
    cr_expect_not_null(strstr(nl, "\"level\":\"error\",\"ident\":\"js\",\"msg\":\"second 2\"}\n"),
                       "got: %s", out);
    capture_end(&c);
}

Test(log, json_escapes_quote_backslash_newline_and_controls)
{
    static const char msg[] = "q\"b\\s\nn\tt\rr\x01"
                              "c\x1f"
                              "z/\x7f\xc3\xa1";
    struct capture c;
    log_env_clear();
    otpca_log_init("id\"\\\n", OTPCA_LOG_INFO, OTPCA_LOG_JSON);
    capture_start(&c);
    log_warn("%s", msg);
    const char *out = capture_text(&c);

    /* Exactly one line, and no raw control byte inside it. */
    size_t len = strlen(out);
    cr_assert_gt(len, 0);
    cr_expect_eq(out[len - 1], '\n');
    for (size_t i = 0; i + 1 < len; i++)
        cr_expect_geq((unsigned char)out[i], 0x20, "raw control 0x%02x at %zu in: %s",
                      (unsigned char)out[i], i, out);
    cr_expect_not_null(
        strstr(out, "\"msg\":\"q\\\"b\\\\s\\nn\\tt\\rr\\u0001c\\u001fz/\x7f\xc3\xa1\"}\n"),
        "got: %s", out);

    /* And whatever the spelling, it decodes back to the original. */
    char *m = json_field(out, "msg");
    cr_assert_not_null(m, "msg is not a valid JSON string: %s", out);
    cr_expect_str_eq(m, msg);
    free(m);
    char *id = json_field(out, "ident");
    cr_assert_not_null(id, "ident is not a valid JSON string: %s", out);
    cr_expect_str_eq(id, "id\"\\\n");
    free(id);
    char *lvl = json_field(out, "level");
    cr_assert_not_null(lvl);
    cr_expect_str_eq(lvl, "warn");
    free(lvl);
    capture_end(&c);
}

Test(log, json_escapes_every_c0_control)
{
    char msg[33];
    struct capture c;
    log_env_clear();
    for (int i = 1; i < 32; i++)
        msg[i - 1] = (char)i;
    msg[31] = 'E';
    msg[32] = '\0';
    otpca_log_init("c0", OTPCA_LOG_INFO, OTPCA_LOG_JSON);
    capture_start(&c);
    log_info("%s", msg);
    const char *out = capture_text(&c);
    cr_expect_eq(count_char(out, '\n'), 1, "got: %s", out);
    char *m = json_field(out, "msg");
    cr_assert_not_null(m, "msg is not a valid JSON string: %s", out);
    cr_expect_str_eq(m, msg);
    free(m);
    capture_end(&c);
}

Test(log, configure_applies_known_values)
{
    log_env_clear();
    otpca_log_init("cfg", OTPCA_LOG_INFO, OTPCA_LOG_TEXT);
    cr_expect_eq(otpca_log_configure("error", "json"), 0);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_ERROR);

    struct capture c;
    capture_start(&c);
    log_warn("below");
    log_error("above");
    const char *out = capture_text(&c);
    cr_expect_null(strstr(out, "below"), "got: %s", out);
    cr_expect_not_null(strstr(out, "\"msg\":\"above\""), "format not applied: %s", out);
    capture_end(&c);

    /* NULL leaves a setting as it is. */
    cr_expect_eq(otpca_log_configure(NULL, NULL), 0);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_ERROR);
    cr_expect_eq(otpca_log_configure("Debug", NULL), 0);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_DEBUG);
}

Test(log, configure_rejects_unknown_values_and_changes_nothing)
{
    struct capture c;
    log_env_clear();
    otpca_log_init("cfg", OTPCA_LOG_WARN, OTPCA_LOG_TEXT);

    cr_expect_eq(otpca_log_configure("verbose", NULL), -1);
    cr_expect_eq(otpca_log_configure(NULL, "xml"), -1);
    cr_expect_eq(otpca_log_configure("", "text"), -1);
    /* A good level next to a bad format must not be half-applied. */
    cr_expect_eq(otpca_log_configure("debug", "yaml"), -1);
    cr_expect_eq(otpca_log_configure("bogus", "json"), -1);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_WARN);

    capture_start(&c);
    log_info("hidden");
    log_warn("shown");
    const char *out = capture_text(&c);
    cr_expect_null(strstr(out, "hidden"), "level changed: %s", out);
    cr_expect_not_null(strstr(out, "cfg[warn] shown\n"), "format changed: %s", out);
    capture_end(&c);
}

Test(log, environment_overrides_init)
{
    struct capture c;
    cr_assert_eq(setenv("OTPCA_LOG_LEVEL", "error", 1), 0);
    cr_assert_eq(setenv("OTPCA_LOG_FORMAT", "json", 1), 0);
    otpca_log_init("envt", OTPCA_LOG_DEBUG, OTPCA_LOG_TEXT);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_ERROR);

    capture_start(&c);
    log_warn("suppressed");
    log_error("visible");
    const char *out = capture_text(&c);
    cr_expect_null(strstr(out, "suppressed"), "got: %s", out);
    cr_expect_not_null(strstr(out, "\"ident\":\"envt\",\"msg\":\"visible\""), "got: %s", out);
    capture_end(&c);
    log_env_clear();
}

Test(log, environment_level_alone_keeps_init_format)
{
    struct capture c;
    log_env_clear();
    cr_assert_eq(setenv("OTPCA_LOG_LEVEL", "debug", 1), 0);
    otpca_log_init("lvl", OTPCA_LOG_ERROR, OTPCA_LOG_TEXT);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_DEBUG);
    capture_start(&c);
    log_debug("dbg");
    const char *out = capture_text(&c);
    cr_expect_not_null(strstr(out, "lvl[debug] dbg\n"), "got: %s", out);
    capture_end(&c);
    log_env_clear();
}

Test(log, unparseable_environment_is_ignored)
{
    struct capture c;
    cr_assert_eq(setenv("OTPCA_LOG_LEVEL", "loud", 1), 0);
    cr_assert_eq(setenv("OTPCA_LOG_FORMAT", "xml", 1), 0);
    otpca_log_init("bad-env", OTPCA_LOG_INFO, OTPCA_LOG_TEXT);
    cr_expect_eq(otpca_log_threshold(), OTPCA_LOG_INFO);
    capture_start(&c);
    log_info("plain");
    const char *out = capture_text(&c);
    cr_expect_not_null(strstr(out, "bad-env[info] plain\n"), "got: %s", out);
    capture_end(&c);
    log_env_clear();
}

/* ---------------------------------------------------------------- secmem */

/* VmLck of this process, in kB; -1 if unavailable. */
static long vm_locked_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* VmFlags of the mapping that holds p (from /proc/self/smaps), into flags. */
static int vm_flags_of(const void *p, char *flags, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0, found = 0;
    uintptr_t a = (uintptr_t)p;
    cr_assert_not_null(f);
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = a >= lo && a < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, cap, "%s", line + 8);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Whether mlock() locks anything in this process: AddressSanitizer
 * intercepts mlock() as a successful no-op, so locking cannot be observed
 * in a sanitizer build. Probed with the raw syscalls, not the code under
 * test. */
static int mlock_works(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    long before = vm_locked_kb();
    int ok = mlock(p, page) == 0 && vm_locked_kb() > before;
    munlock(p, page);
    munmap(p, page);
    return ok;
}

static int has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *s = flags; (s = strstr(s, flag)) != NULL; s += n)
        if ((s == flags || s[-1] == ' ') && (s[n] == ' ' || s[n] == '\n' || s[n] == '\0'))
            return 1;
    return 0;
}

Test(secmem, alloc_returns_zeroed_writable_memory)
{
    const size_t len = 100;
    unsigned char *p = otpca_secmem_alloc(len);
    cr_assert_not_null(p, "secmem_alloc: %s", strerror(errno));
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(p[i], 0, "byte %zu not zero", i);
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(i * 7 + 1);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(p[i], (unsigned char)(i * 7 + 1));
    otpca_secmem_free(p, len);
}

Test(secmem, multi_page_alloc_is_zeroed_and_writable_throughout)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = 3 * page + 1;
    unsigned char *p = otpca_secmem_alloc(len);
    cr_assert_not_null(p, "secmem_alloc: %s", strerror(errno));
    size_t nonzero = 0;
    for (size_t i = 0; i < len; i++)
        nonzero += p[i] != 0;
    cr_expect_eq(nonzero, 0);
    memset(p, 0xA5, len);
    cr_expect_eq(p[0], 0xA5);
    cr_expect_eq(p[len - 1], 0xA5);
    otpca_secmem_free(p, len);
}

Test(secmem, pages_are_locked_while_allocated)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = 3 * page + 1; /* four pages */
    if (!mlock_works())
        cr_skip_test("mlock() is a no-op in this process (sanitizer build?)");
    long before = vm_locked_kb();
    cr_assert_geq(before, 0, "no VmLck in /proc/self/status");
    unsigned char *p = otpca_secmem_alloc(len);
    cr_assert_not_null(p, "secmem_alloc: %s", strerror(errno));
    long during = vm_locked_kb();
    cr_expect_geq(during - before, (long)(4 * page / 1024), "VmLck %ld kB -> %ld kB", before,
                  during);
    otpca_secmem_free(p, len);
    long after = vm_locked_kb();
    cr_expect_eq(after, before, "VmLck %ld kB after free, %ld kB before", after, before);
}

Test(secmem, pages_are_locked_and_excluded_from_core_dumps)
{
    char flags[512];
    void *p = otpca_secmem_alloc(64);
    cr_assert_not_null(p, "secmem_alloc: %s", strerror(errno));
    cr_assert(vm_flags_of(p, flags, sizeof flags), "mapping of %p not in smaps", p);
    int dd = has_flag(flags, "dd"), lo = has_flag(flags, "lo");
    otpca_secmem_free(p, 64);
    cr_assert(dd, "not MADV_DONTDUMP, VmFlags:%s", flags);
    if (!mlock_works())
        cr_skip_test("mlock() is a no-op in this process; only MADV_DONTDUMP checked");
    cr_expect(lo, "not mlock'ed, VmFlags:%s", flags);
}

Test(secmem, alloc_zero_returns_null_with_einval)
{
    errno = 0;
    void *p = otpca_secmem_alloc(0);
    cr_expect_null(p);
    cr_expect_eq(errno, EINVAL);
    otpca_secmem_free(p, 0);
}

Test(secmem, free_null_is_a_no_op)
{
    long before = vm_locked_kb();
    otpca_secmem_free(NULL, 0);
    otpca_secmem_free(NULL, 4096);
    cr_expect_eq(vm_locked_kb(), before);
    /* still usable afterwards */
    void *p = otpca_secmem_alloc(1);
    cr_expect_not_null(p);
    otpca_secmem_free(p, 1);
}

Test(secmem, ct_equal_equal_buffers)
{
    unsigned char a[32], b[32];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (unsigned char)(0xF0 ^ i);
    cr_expect_eq(otpca_ct_equal(a, b, sizeof a), 1);
    cr_expect_eq(otpca_ct_equal(a, a, sizeof a), 1);
}

Test(secmem, ct_equal_unequal_buffers)
{
    unsigned char a[32] = {0}, b[32] = {0};
    b[0] = 1;
    cr_expect_eq(otpca_ct_equal(a, b, sizeof a), 0);
    memset(b, 0xFF, sizeof b);
    cr_expect_eq(otpca_ct_equal(a, b, sizeof a), 0);
}

Test(secmem, ct_equal_zero_length_is_equal)
{
    const unsigned char a[1] = {1}, b[1] = {2};
    cr_expect_eq(otpca_ct_equal(a, b, 0), 1);
}

Test(secmem, ct_equal_sees_difference_in_last_byte_only)
{
    unsigned char a[17], b[17];
    memset(a, 0x5A, sizeof a);
    memcpy(b, a, sizeof b);
    b[16] ^= 0x80;
    cr_expect_eq(otpca_ct_equal(a, b, sizeof a), 0);
    cr_expect_eq(otpca_ct_equal(a, b, 16), 1); /* the prefix still matches */
}

Test(secmem, ct_equal_sees_every_single_bit_flip)
{
    unsigned char a[8] = {0, 1, 2, 3, 0x7F, 0x80, 0xFE, 0xFF}, b[8];
    for (size_t i = 0; i < sizeof a; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(b, a, sizeof b);
            b[i] ^= (unsigned char)(1u << bit);
            cr_expect_eq(otpca_ct_equal(a, b, sizeof a), 0, "byte %zu bit %d", i, bit);
        }
}

Test(secmem, memzero_zeroes_exactly_len_bytes)
{
    unsigned char buf[64];
    memset(buf, 0xCC, sizeof buf);
    otpca_memzero(buf + 8, 32);
    for (size_t i = 0; i < sizeof buf; i++)
        cr_expect_eq(buf[i], (i >= 8 && i < 40) ? 0 : 0xCC, "byte %zu", i);
    otpca_memzero(buf, 0); /* no-op */
    cr_expect_eq(buf[0], 0xCC);
    otpca_memzero(NULL, 0);
    otpca_memzero(NULL, 16);
    cr_expect_eq(buf[63], 0xCC);
}

Test(secmem, memzero_wipes_secret_memory)
{
    unsigned char *p = otpca_secmem_alloc(32);
    cr_assert_not_null(p);
    memset(p, 0x42, 32);
    otpca_memzero(p, 32);
    unsigned char zero[32] = {0};
    cr_expect_eq(memcmp(p, zero, 32), 0);
    otpca_secmem_free(p, 32);
}

Test(secmem, process_harden_disables_core_dumps)
{
    cr_assert_eq(otpca_process_harden(), 0, "harden: %s", strerror(errno));
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_CORE, &rl), 0);
    cr_expect_eq(rl.rlim_cur, 0);
    cr_expect_eq(rl.rlim_max, 0);
    cr_expect_eq(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
}

Test(common, hex_decode)
{
    uint8_t out[4];
    size_t n = 99;
    cr_expect_eq(otpca_hex_digit('0'), 0);
    cr_expect_eq(otpca_hex_digit('F'), 15);
    cr_expect_eq(otpca_hex_digit('f'), 15);
    cr_expect_eq(otpca_hex_digit('g'), -1);
    cr_assert_eq(otpca_hex_decode("0a Ff\n10", 8, out, sizeof out, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 3);
    cr_expect(out[0] == 0x0a && out[1] == 0xff && out[2] == 0x10);
    cr_expect_eq(otpca_hex_decode("0", 1, out, sizeof out, &n), OTPCA_ERR_INVALID_ARG, "odd digits");
    cr_expect_eq(otpca_hex_decode("0x", 2, out, sizeof out, &n), OTPCA_ERR_INVALID_ARG, "not hex");
    cr_expect_eq(otpca_hex_decode("0011223344", 10, out, sizeof out, &n), OTPCA_ERR_BUFFER_TOO_SMALL);
    cr_expect_eq(otpca_hex_decode("", 0, out, sizeof out, &n), OTPCA_ERR_OK);
    cr_expect_eq(n, 0);
}
