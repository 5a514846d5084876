/*
 * HOTP/TOTP computed inside SoftHSM against the RFC 4226 Appendix D and
 * RFC 6238 Appendix B vectors, and the truncation on its own.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "otpca/token/token.h"
#include "testrig.h"

static otpca_p11_t *p11;
static otpca_token_t *tok;

static void setup(void)
{
    cr_assert_eq(otpca_p11_new(NULL, &p11), OTPCA_ERR_OK);
    tok = testrig_open(p11, "node-000003");
}

static void teardown(void)
{
    otpca_token_destroy(&tok);
    otpca_p11_destroy(&p11);
}

static otpca_obj_t import(const char *prefix, const char *ascii_seed)
{
    otpca_obj_t key;
    otpca_err e = otpca_token_seed_import(tok, testrig_unique(prefix), NULL, 0,
                                          (const unsigned char *)ascii_seed, strlen(ascii_seed), &key);
    cr_assert_eq(e, OTPCA_ERR_OK, "seed import: %s", otpca_strerror(e));
    return key;
}

Test(otp, rfc4226_all_ten_hotp_values, .init = setup, .fini = teardown)
{
    static const uint32_t expect[10] = {755224, 287082, 359152, 969429, 338314,
                                        254676, 287922, 162583, 399871, 520489};
    otpca_obj_t key = import("rfc4226", "12345678901234567890");
    for (uint64_t c = 0; c < 10; c++) {
        uint32_t code = 0;
        cr_assert_eq(otpca_token_hotp(tok, key, OTPCA_OTP_SHA1, c, 6, &code), OTPCA_ERR_OK);
        cr_expect_eq(code, expect[c], "counter %llu: %06u, expected %06u", (unsigned long long)c, code,
                     expect[c]);
    }
}

static const struct {
    time_t t;
    uint32_t sha1, sha256;
} rfc6238[] = {
    {59, 94287082, 46119246},
    {1111111109, 7081804, 68084774},
    {1111111111, 14050471, 67062674},
    {1234567890, 89005924, 91819424},
    {2000000000, 69279037, 90698825},
    {20000000000, 65353130, 77737706},
};

Test(otp, rfc6238_sha1_vectors, .init = setup, .fini = teardown)
{
    otpca_obj_t key = import("rfc6238-sha1", "12345678901234567890");
    for (size_t i = 0; i < sizeof rfc6238 / sizeof rfc6238[0]; i++) {
        uint32_t code = 0;
        cr_assert_eq(otpca_token_totp(tok, key, OTPCA_OTP_SHA1, rfc6238[i].t, 30, 8, &code), OTPCA_ERR_OK);
        cr_expect_eq(code, rfc6238[i].sha1, "T=%lld: %08u", (long long)rfc6238[i].t, code);
    }
}

Test(otp, rfc6238_sha256_vectors, .init = setup, .fini = teardown)
{
    otpca_obj_t key = import("rfc6238-sha256", "12345678901234567890123456789012");
    for (size_t i = 0; i < sizeof rfc6238 / sizeof rfc6238[0]; i++) {
        uint32_t code = 0;
        cr_assert_eq(otpca_token_totp(tok, key, OTPCA_OTP_SHA256, rfc6238[i].t, 30, 8, &code),
                     OTPCA_ERR_OK);
        cr_expect_eq(code, rfc6238[i].sha256, "T=%lld: %08u", (long long)rfc6238[i].t, code);
    }
}

Test(otp, short_seed_is_padded_to_the_same_mac, .init = setup, .fini = teardown)
{
    /* A 16-byte seed is stored zero-padded to 20 bytes; HMAC gives the same
     * MAC, so HOTP must equal the value for the 16-byte key: RFC 4226's
     * reference algorithm with key "1234567890123456" and counter 0. The
     * expected value was computed with oathtool -c 0 31323334353637383930313233343536. */
    otpca_obj_t key = import("short", "1234567890123456");
    uint32_t code = 0;
    cr_assert_eq(otpca_token_hotp(tok, key, OTPCA_OTP_SHA1, 0, 6, &code), OTPCA_ERR_OK);
    cr_expect_eq(code, 504023u, "%06u", code);
}

Test(otp, rejects_bad_parameters, .init = setup, .fini = teardown)
{
    otpca_obj_t key = import("params", "12345678901234567890");
    uint32_t code = 0;
    cr_expect_eq(otpca_token_hotp(tok, key, OTPCA_OTP_SHA1, 0, 5, &code), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_token_hotp(tok, key, OTPCA_OTP_SHA1, 0, 9, &code), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_token_totp(tok, key, OTPCA_OTP_SHA1, 59, 0, 6, &code), OTPCA_ERR_INVALID_ARG);
    cr_expect_eq(otpca_token_seed_import(tok, "too-short", NULL, 0, (const unsigned char *)"123456789012345",
                                         15, NULL),
                 OTPCA_ERR_INVALID_ARG);
}

Test(otp, truncation_matches_rfc4226_section_5_4)
{
    /* The worked example of RFC 4226 §5.4. */
    static const unsigned char mac[20] = {0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85,
                                          0x50, 0xef, 0x7f, 0x19, 0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a};
    cr_expect_eq(otpca_otp_truncate(mac, sizeof mac, 6), 872921u);
}
