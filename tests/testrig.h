/*
 * Test helper: open a token of the SoftHSM rig that ctest creates first
 * (OTPCA_TEST_RIG), logged in with the PIN from its pins/ file. Each test
 * binary uses its own tokens; ctest runs rig tests one at a time.
 */
#ifndef OTPCA_TESTS_TESTRIG_H
#define OTPCA_TESTS_TESTRIG_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "otpca/token/token.h"

static inline const char *testrig_dir(void)
{
    const char *d = getenv("OTPCA_TEST_RIG");
    cr_assert(d && *d, "OTPCA_TEST_RIG is not set: run through ctest");
    return d;
}

/* Open token `label` of the rig (logged in) on an already loaded module. */
static inline otpca_token_t *testrig_open(otpca_p11_t *p11, const char *label)
{
    char uri_text[1024];
    otpca_p11_uri uri;
    otpca_token_t *tok = NULL;
    snprintf(uri_text, sizeof uri_text, "pkcs11:token=%s?pin-source=file:%s/pins/%s.pin", label,
             testrig_dir(), label);
    cr_assert_eq(otpca_p11_uri_parse(uri_text, &uri), OTPCA_ERR_OK);
    otpca_err e = otpca_token_open_uri(p11, &uri, NULL, &tok);
    cr_assert_eq(e, OTPCA_ERR_OK, "open %s: %s", label, otpca_strerror(e));
    otpca_p11_uri_clear(&uri);
    return tok;
}

/* A label unique to this process, for objects a test creates. */
static inline const char *testrig_unique(const char *prefix)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "%s-%ld", prefix, (long)getpid());
    return buf;
}

#endif
