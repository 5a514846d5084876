/*
 * Leveled logger for otpca daemons and tools: one line per event on stderr
 * (or a chosen stream), as text or as JSON lines, with an identity tag.
 * The threshold and format come from otpca_log_init(), from a config file
 * through otpca_log_configure(), or from the environment (OTPCA_LOG_LEVEL,
 * OTPCA_LOG_FORMAT), the environment winning. Never pass a key, seed, PIN
 * or OTP to the logger: log fingerprints, labels and serials.
 */
#ifndef OTPCA_COMMON_LOG_H
#define OTPCA_COMMON_LOG_H

#include <stdio.h>

typedef enum otpca_log_level {
    OTPCA_LOG_DEBUG = 0,
    OTPCA_LOG_INFO = 1,
    OTPCA_LOG_WARN = 2,
    OTPCA_LOG_ERROR = 3,
    OTPCA_LOG_OFF = 4,
} otpca_log_level;

typedef enum otpca_log_format {
    OTPCA_LOG_TEXT = 0,
    OTPCA_LOG_JSON = 1,
} otpca_log_format;

/* Set identity, threshold and format, then apply OTPCA_LOG_LEVEL and
 * OTPCA_LOG_FORMAT from the environment if set. ident is copied. */
void otpca_log_init(const char *ident, otpca_log_level level, otpca_log_format format);
/* Apply textual settings (from a config file); NULL leaves a setting as is.
 * Returns 0, or -1 if a value is not recognised (nothing changed then). */
int otpca_log_configure(const char *level, const char *format);
/* Redirect output (tests); NULL restores stderr. */
void otpca_log_set_stream(FILE *stream);
otpca_log_level otpca_log_threshold(void);

/* Parse "debug|info|warn|error|off" / "text|json"; -1 if unknown. */
int otpca_log_level_parse(const char *s);
int otpca_log_format_parse(const char *s);

void otpca_log(otpca_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) otpca_log(OTPCA_LOG_DEBUG, __VA_ARGS__)
#define log_info(...) otpca_log(OTPCA_LOG_INFO, __VA_ARGS__)
#define log_warn(...) otpca_log(OTPCA_LOG_WARN, __VA_ARGS__)
#define log_error(...) otpca_log(OTPCA_LOG_ERROR, __VA_ARGS__)

#endif
