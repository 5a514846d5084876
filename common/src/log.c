/*
 * Leveled text/JSON-lines logger. One mutex-protected write per event so
 * lines from worker threads never interleave.
 */
#include "otpca/common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static struct {
    char ident[48];
    otpca_log_level level;
    otpca_log_format format;
    FILE *stream;
} g = {"otpca", OTPCA_LOG_INFO, OTPCA_LOG_TEXT, NULL};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int otpca_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i <= OTPCA_LOG_OFF; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return OTPCA_LOG_WARN;
    return -1;
}

int otpca_log_format_parse(const char *s)
{
    if (!s)
        return -1;
    if (strcasecmp(s, "text") == 0)
        return OTPCA_LOG_TEXT;
    if (strcasecmp(s, "json") == 0)
        return OTPCA_LOG_JSON;
    return -1;
}

int otpca_log_configure(const char *level, const char *format)
{
    int l = level ? otpca_log_level_parse(level) : (int)g.level;
    int f = format ? otpca_log_format_parse(format) : (int)g.format;
    if (l < 0 || f < 0)
        return -1;
    g.level = (otpca_log_level)l;
    g.format = (otpca_log_format)f;
    return 0;
}

void otpca_log_init(const char *ident, otpca_log_level level, otpca_log_format format)
{
    if (ident)
        snprintf(g.ident, sizeof g.ident, "%s", ident);
    g.level = level;
    g.format = format;
    /* An unparseable environment value is ignored: logging must not fail. */
    int l = otpca_log_level_parse(getenv("OTPCA_LOG_LEVEL"));
    int f = otpca_log_format_parse(getenv("OTPCA_LOG_FORMAT"));
    if (l >= 0)
        g.level = (otpca_log_level)l;
    if (f >= 0)
        g.format = (otpca_log_format)f;
}

void otpca_log_set_stream(FILE *stream) { g.stream = stream; }
otpca_log_level otpca_log_threshold(void) { return g.level; }

/* JSON string body escaping (RFC 8259 §7): quote, backslash, controls. */
static void json_escape(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
}

void otpca_log(otpca_log_level level, const char *fmt, ...)
{
    if (level < g.level || level >= OTPCA_LOG_OFF)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    struct tm tm;
    char when[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);

    pthread_mutex_lock(&lock);
    FILE *out = g.stream ? g.stream : stderr;
    if (g.format == OTPCA_LOG_JSON) {
        fprintf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"ident\":\"", when, level_names[level]);
        json_escape(out, g.ident);
        fputs("\",\"msg\":\"", out);
        json_escape(out, msg);
        fputs("\"}\n", out);
    } else {
        /* One event, one line: control characters would let a logged
         * value forge further lines, so they are shown escaped. */
        fprintf(out, "%s %s[%s] ", when, g.ident, level_names[level]);
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
            if (*p < 0x20 || *p == 0x7f)
                fprintf(out, "\\x%02x", *p);
            else
                fputc(*p, out);
        }
        fputc('\n', out);
    }
    fflush(out);
    pthread_mutex_unlock(&lock);
}
