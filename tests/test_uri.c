/*
 * Unit tests for the RFC 7512 PKCS#11 URI parser: every supported path and
 * query attribute, percent-decoding of text and binary values, the RFC 7512
 * §3 examples that use only supported attributes, every syntax and
 * attribute error, the all-zero output on failure, and the wipe of a
 * pin-value by otpca_p11_uri_clear().
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "otpca/common/err.h"
#include "otpca/token/uri.h"
#include "testutil.h"

/* Parse s and fail the test (with the code's name) unless it succeeds. */
static void parse_ok(const char *s, otpca_p11_uri *u)
{
    otpca_err e = otpca_p11_uri_parse(s, u);
    cr_assert_eq(e, OTPCA_ERR_OK, "\"%s\": %s", s, otpca_errname(e));
}


/* Parse s, expect the error want, and expect *u to be all zero afterwards
 * although it was filled with garbage before. */
static void parse_fails(const char *s, otpca_err want)
{
    otpca_p11_uri u;
    memset(&u, 0xA5, sizeof u);
    otpca_err e = otpca_p11_uri_parse(s, &u);
    cr_expect_eq(e, want, "\"%s\": got %s, want %s", s, otpca_errname(e), otpca_errname(want));
    cr_expect(all_zero(&u, sizeof u), "\"%s\": output not cleared on error", s);
}

static char *repeat(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------------- accepted */

Test(uri, scheme_alone_is_valid_and_empty)
{
    otpca_p11_uri u;
    memset(&u, 0x5A, sizeof u);
    parse_ok("pkcs11:", &u);
    cr_expect(all_zero(&u, sizeof u), "\"pkcs11:\" left fields set");
    cr_expect_eq(u.type, OTPCA_OBJ_ANY);
    cr_expect_eq(u.has_id, 0);
    cr_expect_eq(u.has_pin_value, 0);
}

Test(uri, full_uri_fills_every_field)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=mgr01;manufacturer=SoftHSM%20project;serial=a1b2c3d4e5f60718;"
             "model=SoftHSM%20v2;object=ca-key;id=%01%02%ff;type=private"
             "?pin-source=file:/etc/otpca/mgr01.pin"
             "&module-path=/usr/lib/softhsm/libsofthsm2.so&module-name=softhsm2",
             &u);
    cr_expect_str_eq(u.token, "mgr01");
    cr_expect_str_eq(u.manufacturer, "SoftHSM project");
    cr_expect_str_eq(u.serial, "a1b2c3d4e5f60718");
    cr_expect_str_eq(u.model, "SoftHSM v2");
    cr_expect_str_eq(u.object, "ca-key");
    cr_expect_eq(u.has_id, 1);
    cr_assert_eq(u.id_len, 3);
    cr_expect_eq(u.id[0], 0x01);
    cr_expect_eq(u.id[1], 0x02);
    cr_expect_eq(u.id[2], 0xff);
    cr_expect_eq(u.type, OTPCA_OBJ_PRIVATE_KEY);
    cr_expect_str_eq(u.pin_source, "file:/etc/otpca/mgr01.pin");
    cr_expect_str_eq(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
    cr_expect_str_eq(u.module_name, "softhsm2");
    cr_expect_eq(u.has_pin_value, 0);
    cr_expect_str_eq(u.pin_value, "");
}

Test(uri, attribute_order_does_not_matter)
{
    otpca_p11_uri a, b;
    parse_ok("pkcs11:token=t;object=o;type=cert;id=%10", &a);
    parse_ok("pkcs11:id=%10;type=cert;object=o;token=t", &b);
    cr_expect_eq(memcmp(&a, &b, sizeof a), 0);
}

Test(uri, every_object_type)
{
    static const struct {
        const char *uri;
        otpca_obj_type type;
    } cases[] = {
        {"pkcs11:type=private", OTPCA_OBJ_PRIVATE_KEY},
        {"pkcs11:type=public", OTPCA_OBJ_PUBLIC_KEY},
        {"pkcs11:type=secret-key", OTPCA_OBJ_SECRET_KEY},
        {"pkcs11:type=cert", OTPCA_OBJ_CERT},
        {"pkcs11:type=data", OTPCA_OBJ_DATA},
        {"pkcs11:type=%63ert", OTPCA_OBJ_CERT}, /* values are decoded before matching */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        otpca_p11_uri u;
        parse_ok(cases[i].uri, &u);
        cr_expect_eq(u.type, cases[i].type, "%s", cases[i].uri);
    }
}

Test(uri, text_values_are_percent_decoded)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=my%20token;object=a%2Fb%3bc%3D%25;manufacturer=%c3%A1", &u);
    cr_expect_str_eq(u.token, "my token");
    cr_expect_str_eq(u.object, "a/b;c=%");
    cr_expect_str_eq(u.manufacturer, "\xc3\xa1");
}

Test(uri, escaped_separators_do_not_split)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:object=a%3Btoken=b?pin-value=12%2634%3Fx", &u);
    cr_expect_str_eq(u.object, "a;token=b");
    cr_expect_str_eq(u.token, "");
    cr_expect_str_eq(u.pin_value, "12&34?x");
}

Test(uri, equals_sign_inside_a_value_is_kept)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:object=a=b?module-name=m=1", &u);
    cr_expect_str_eq(u.object, "a=b");
    cr_expect_str_eq(u.module_name, "m=1");
}

Test(uri, id_is_binary_and_may_hold_nul)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:id=%00%FFab%7f", &u);
    cr_expect_eq(u.has_id, 1);
    cr_assert_eq(u.id_len, 5);
    static const unsigned char want[] = {0x00, 0xff, 'a', 'b', 0x7f};
    cr_expect_eq(memcmp(u.id, want, sizeof want), 0);
}

Test(uri, empty_id_is_present_but_empty)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:id=", &u);
    cr_expect_eq(u.has_id, 1);
    cr_expect_eq(u.id_len, 0);
}

Test(uri, empty_values_are_allowed)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=;serial=", &u);
    cr_expect_str_eq(u.token, "");
    cr_expect_str_eq(u.serial, "");
}

Test(uri, pin_value_is_decoded)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=t?pin-value=the%20pin", &u);
    cr_expect_eq(u.has_pin_value, 1);
    cr_expect_str_eq(u.pin_value, "the pin");
    cr_expect_str_eq(u.pin_source, "");
    otpca_p11_uri_clear(&u);
}

Test(uri, query_without_path)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:?module-path=/opt/lib/p11.so", &u);
    cr_expect_str_eq(u.module_path, "/opt/lib/p11.so");
    cr_expect_str_eq(u.token, "");
}

Test(uri, library_attributes_are_accepted_and_not_stored)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
             "library-description=Soft%20Token%20Library;library-version=1.23",
             &u);
    cr_expect(all_zero(&u, sizeof u), "library attributes leaked into matched fields");
}

Test(uri, vendor_attributes_are_ignored)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:x-vendor=whatever;token=t;x-other=%41?x-q=1&pin-source=/p&x-r=", &u);
    cr_expect_str_eq(u.token, "t");
    cr_expect_str_eq(u.pin_source, "/p");
}

Test(uri, maximum_lengths_are_accepted)
{
    char v[300], s[400];
    otpca_p11_uri u;

    snprintf(s, sizeof s, "pkcs11:token=%s", repeat(v, 'T', OTPCA_P11_LABEL_MAX));
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.token), OTPCA_P11_LABEL_MAX);

    snprintf(s, sizeof s, "pkcs11:serial=%s", repeat(v, '7', OTPCA_P11_SERIAL_MAX));
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.serial), OTPCA_P11_SERIAL_MAX);

    snprintf(s, sizeof s, "pkcs11:model=%s", repeat(v, 'M', OTPCA_P11_MODEL_MAX));
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.model), OTPCA_P11_MODEL_MAX);

    snprintf(s, sizeof s, "pkcs11:object=%s", repeat(v, 'o', OTPCA_P11_OBJECT_MAX));
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.object), OTPCA_P11_OBJECT_MAX);

    snprintf(s, sizeof s, "pkcs11:id=%s", repeat(v, 'i', OTPCA_P11_ID_MAX));
    parse_ok(s, &u);
    cr_expect_eq(u.id_len, OTPCA_P11_ID_MAX);

    snprintf(s, sizeof s, "pkcs11:?pin-value=%s", repeat(v, 'p', OTPCA_P11_PIN_MAX));
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.pin_value), OTPCA_P11_PIN_MAX);
    otpca_p11_uri_clear(&u);
}

Test(uri, length_limit_counts_decoded_bytes)
{
    char s[200];
    otpca_p11_uri u;
    /* 32 escapes = 96 characters of URI but 32 bytes of label */
    size_t o = (size_t)snprintf(s, sizeof s, "pkcs11:token=");
    for (int i = 0; i < OTPCA_P11_LABEL_MAX; i++)
        o += (size_t)snprintf(s + o, sizeof s - o, "%%41");
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.token), OTPCA_P11_LABEL_MAX);
    cr_expect_eq(u.token[0], 'A');
}

/* ------------------------------------------------- RFC 7512 §3 examples */

Test(uri, rfc7512_examples_with_supported_attributes)
{
    static const char *const examples[] = {
        "pkcs11:",
        "pkcs11:object=my-pubkey;type=public",
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
        "model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial="
        "?pin-source=file:/etc/token_pin",
        "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
        "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
        "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc."
        "?pin-value=the-pin",
        "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;"
        "library-version=1.23",
        "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
        "id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
        "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
    };
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        otpca_p11_uri u;
        otpca_err e = otpca_p11_uri_parse(examples[i], &u);
        cr_expect_eq(e, OTPCA_ERR_OK, "\"%s\": %s", examples[i], otpca_errname(e));
        otpca_p11_uri_clear(&u);
    }
}

Test(uri, rfc7512_softtoken_example_fields)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
             "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;"
             "id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
             &u);
    cr_expect_str_eq(u.token, "The Software PKCS#11 Softtoken");
    cr_expect_str_eq(u.manufacturer, "Snake Oil, Inc.");
    cr_expect_str_eq(u.model, "1.0");
    cr_expect_str_eq(u.object, "my-certificate");
    cr_expect_eq(u.type, OTPCA_OBJ_CERT);
    static const unsigned char id[] = {0x69, 0x95, 0x3E, 0x5C, 0xF4, 0xBD, 0xEC, 0x91};
    cr_assert_eq(u.id_len, sizeof id);
    cr_expect_eq(memcmp(u.id, id, sizeof id), 0);
    cr_expect_str_eq(u.serial, "");
    cr_expect_str_eq(u.pin_source, "file:/etc/token_pin");
}

Test(uri, rfc7512_mixed_case_escapes_example)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
             "id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
             &u);
    cr_expect_str_eq(u.token, "My token% created by Joe");
    static const unsigned char id[] = {0x01, 0x02, 0x03, 0xBA, 0xDD, 0xCA, 0xFE, 0x04, 0x05, 0x06};
    cr_assert_eq(u.id_len, sizeof id);
    cr_expect_eq(memcmp(u.id, id, sizeof id), 0);
}

Test(uri, rfc7512_pin_value_and_substring_examples)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc."
             "?pin-value=the-pin",
             &u);
    cr_expect_str_eq(u.token, "Software PKCS#11 softtoken");
    cr_expect_str_eq(u.manufacturer, "Snake Oil, Inc.");
    cr_expect_eq(u.has_pin_value, 1);
    cr_expect_str_eq(u.pin_value, "the-pin");
    otpca_p11_uri_clear(&u);

    parse_ok("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
             &u);
    cr_expect_str_eq(u.token, "A name with a substring %;");
}

/* The RFC 7512 §3 "small A with acute" example decodes to a 34-byte label,
 * longer than CK_TOKEN_INFO.label can ever be: refused by design. */
Test(uri, rfc7512_acute_example_exceeds_label_size)
{
    parse_fails("pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;"
                "object=my-certificate;type=cert",
                OTPCA_ERR_URI_SYNTAX);
}

/* --------------------------------------------------------------- errors */

Test(uri, missing_scheme_is_syntax_error)
{
    parse_fails("", OTPCA_ERR_URI_SYNTAX);
    parse_fails("token=a", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs12:token=a", OTPCA_ERR_URI_SYNTAX);
    parse_fails(" pkcs11:token=a", OTPCA_ERR_URI_SYNTAX);
    parse_fails("file:/etc/otpca/pin", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, bad_escape_is_syntax_error)
{
    parse_fails("pkcs11:token=%zz", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a%4", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a%", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=%4g", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=%g4", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:id=%0", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:id=%%41", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?pin-value=1%2", OTPCA_ERR_URI_SYNTAX);
    /* an escape cut by the end of the path, not of the string */
    parse_fails("pkcs11:token=a%4?pin-source=/x", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a%;object=b", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, decoded_nul_in_text_is_syntax_error)
{
    parse_fails("pkcs11:token=a%00b", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:object=%00", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?pin-value=12%0034", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?pin-source=/etc/pin%00.txt", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?module-path=/lib/a.so%00", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, repeated_attribute_is_attr_error)
{
    parse_fails("pkcs11:token=a;token=b", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:token=a;token=a", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:id=%01;object=o;id=%02", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:type=cert;type=cert", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:serial=1;serial=", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:library-version=1;library-version=2", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:?pin-source=/a&pin-source=/b", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:?module-path=/a.so&module-path=/b.so", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:?pin-value=1&pin-value=2", OTPCA_ERR_URI_ATTR);
}

Test(uri, unknown_attribute_is_attr_error)
{
    parse_fails("pkcs11:foo=bar", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:token=a;foo=bar", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:Token=a", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:x-=a", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:?foo=bar", OTPCA_ERR_URI_ATTR);
    /* path attributes do not belong in the query and vice versa */
    parse_fails("pkcs11:?token=a", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:pin-source=/etc/pin", OTPCA_ERR_URI_ATTR);
}

Test(uri, value_too_long_is_syntax_error)
{
    char v[300], s[400];
    snprintf(s, sizeof s, "pkcs11:token=%s", repeat(v, 'T', OTPCA_P11_LABEL_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    snprintf(s, sizeof s, "pkcs11:manufacturer=%s", repeat(v, 'M', OTPCA_P11_LABEL_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    snprintf(s, sizeof s, "pkcs11:serial=%s", repeat(v, '1', OTPCA_P11_SERIAL_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    snprintf(s, sizeof s, "pkcs11:model=%s", repeat(v, 'm', OTPCA_P11_MODEL_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    snprintf(s, sizeof s, "pkcs11:object=%s", repeat(v, 'o', OTPCA_P11_OBJECT_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    snprintf(s, sizeof s, "pkcs11:id=%s", repeat(v, 'i', OTPCA_P11_ID_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    snprintf(s, sizeof s, "pkcs11:?pin-value=%s", repeat(v, 'p', OTPCA_P11_PIN_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
    /* 31 plain bytes and a two-byte UTF-8 character: 33 bytes */
    snprintf(s, sizeof s, "pkcs11:token=%s%%C3%%A1", repeat(v, 'T', OTPCA_P11_LABEL_MAX - 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
}

Test(uri, long_paths_fit_and_overlong_paths_fail)
{
    static char v[OTPCA_P11_PATH_MAX + 2], s[OTPCA_P11_PATH_MAX + 64];
    otpca_p11_uri u;
    snprintf(s, sizeof s, "pkcs11:?module-path=%s", repeat(v, 'p', OTPCA_P11_PATH_MAX));
    parse_ok(s, &u);
    cr_expect_eq(strlen(u.module_path), OTPCA_P11_PATH_MAX);
    snprintf(s, sizeof s, "pkcs11:?pin-source=%s", repeat(v, 'p', OTPCA_P11_PATH_MAX + 1));
    parse_fails(s, OTPCA_ERR_URI_SYNTAX);
}

Test(uri, unknown_type_is_syntax_error)
{
    parse_fails("pkcs11:type=secret", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:type=private-key", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:type=", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:type=certificate", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:object=o;type=x509", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, attribute_without_equals_is_syntax_error)
{
    parse_fails("pkcs11:token", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a;object", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:=a", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?pin-source", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?module-name=m&=x", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, empty_or_trailing_separator_is_syntax_error)
{
    parse_fails("pkcs11:token=a;", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:;token=a", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a;;object=b", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a;?pin-source=/p", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?pin-source=/p&", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:?&pin-source=/p", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:;", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, fragment_is_syntax_error)
{
    parse_fails("pkcs11:token=a#frag", OTPCA_ERR_URI_SYNTAX);
    parse_fails("pkcs11:token=a?pin-source=/p#x", OTPCA_ERR_URI_SYNTAX);
}

Test(uri, pin_source_with_pin_value_is_attr_error)
{
    parse_fails("pkcs11:token=t?pin-source=file:/p&pin-value=1234", OTPCA_ERR_URI_ATTR);
    parse_fails("pkcs11:token=t?pin-value=1234&pin-source=file:/p", OTPCA_ERR_URI_ATTR);
}

Test(uri, error_after_valid_attributes_clears_everything)
{
    otpca_p11_uri u;
    memset(&u, 0xA5, sizeof u);
    otpca_err e = otpca_p11_uri_parse(
        "pkcs11:token=abc;object=o;id=%01;type=cert?pin-value=1234&module-name=m&foo=bar", &u);
    cr_expect_eq(e, OTPCA_ERR_URI_ATTR, "%s", otpca_errname(e));
    cr_expect(all_zero(&u, sizeof u), "partial parse left data behind");
    cr_expect_eq(u.has_pin_value, 0);
    cr_expect_eq(u.pin_value[0], '\0');
}

Test(uri, clear_wipes_pin_value)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=t;object=o?pin-value=s3cr3t-PIN", &u);
    cr_assert_eq(u.has_pin_value, 1);
    cr_assert_str_eq(u.pin_value, "s3cr3t-PIN");
    otpca_p11_uri_clear(&u);
    cr_expect(all_zero(u.pin_value, sizeof u.pin_value), "pin_value not wiped");
    cr_expect_eq(u.has_pin_value, 0);
    cr_expect(all_zero(&u, sizeof u), "struct not wiped");
}

Test(uri, reparse_does_not_keep_old_fields)
{
    otpca_p11_uri u;
    parse_ok("pkcs11:token=old;object=o;id=%01?pin-value=1111", &u);
    parse_ok("pkcs11:serial=42", &u);
    cr_expect_str_eq(u.token, "");
    cr_expect_str_eq(u.object, "");
    cr_expect_eq(u.has_id, 0);
    cr_expect_eq(u.has_pin_value, 0);
    cr_expect(all_zero(u.pin_value, sizeof u.pin_value), "old pin-value survived a re-parse");
    cr_expect_str_eq(u.serial, "42");
}
