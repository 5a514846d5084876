/* Error strings: built from the single OTPCA_ERR_TABLE in err.h. */
#include "otpca/common/err.h"

#include <stddef.h>

struct err_row {
    otpca_err code;
    const char *name;
    const char *sentence;
};

static const struct err_row rows[] = {
#define OTPCA_ERR_ROW_(name, value, sentence) {OTPCA_ERR_##name, "OTPCA_ERR_" #name, sentence},
    OTPCA_ERR_TABLE(OTPCA_ERR_ROW_)
#undef OTPCA_ERR_ROW_
};

static const struct err_row *find(otpca_err err)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].code == err)
            return &rows[i];
    return NULL;
}

const char *otpca_strerror(otpca_err err)
{
    const struct err_row *r = find(err);
    return r ? r->sentence : "unknown error";
}

const char *otpca_errname(otpca_err err)
{
    const struct err_row *r = find(err);
    return r ? r->name : "OTPCA_ERR_UNKNOWN";
}
