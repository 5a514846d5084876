/*
 * otpca error codes: one enum for every component, 0 = success and
 * negative values = failures, with one table of names and sentences
 * (err.c) behind otpca_strerror() and otpca_errname().
 */
#ifndef OTPCA_COMMON_ERR_H
#define OTPCA_COMMON_ERR_H

/* X(NAME, value, sentence): the only place a code is defined. */
#define OTPCA_ERR_TABLE(X)                                                        \
    X(OK, 0, "success")                                                           \
    X(INVALID_ARG, -1, "invalid argument")                                        \
    X(NOMEM, -2, "out of memory")                                                 \
    X(IO, -3, "input/output error")                                               \
    X(UNSUPPORTED, -4, "not supported (yet)")                                     \
    X(INTERNAL, -5, "internal error")                                             \
    X(STATE, -6, "operation not allowed in the current state")                    \
    X(BUFFER_TOO_SMALL, -7, "output buffer too small")                            \
    X(NOT_FOUND, -8, "not found")                                                 \
    X(EXISTS, -9, "already exists")                                               \
    X(URI_SYNTAX, -20, "malformed PKCS#11 URI")                                   \
    X(URI_ATTR, -21, "unknown or repeated PKCS#11 URI attribute")                 \
    X(MODULE_LOAD, -22, "PKCS#11 module could not be loaded")                     \
    X(TOKEN_NOT_FOUND, -23, "no token matches the URI")                           \
    X(TOKEN_AMBIGUOUS, -24, "more than one token matches the URI")                \
    X(TOKEN_REMOVED, -25, "the token was removed")                                \
    X(PIN_INCORRECT, -26, "PIN incorrect")                                        \
    X(PIN_LOCKED, -27, "PIN locked")                                              \
    X(PIN_SOURCE, -28, "PIN could not be read from its source")                   \
    X(OBJECT_NOT_FOUND, -29, "no object in the token matches")                    \
    X(OBJECT_AMBIGUOUS, -30, "more than one object in the token matches")         \
    X(PKCS11, -31, "PKCS#11 call failed")                                         \
    X(MECHANISM, -32, "mechanism not supported by the token")                     \
    X(NOT_LOGGED_IN, -33, "token login required")                                 \
    X(CRYPTO, -40, "cryptographic operation failed")                              \
    X(SIGNATURE, -41, "signature invalid")                                        \
    X(CERT, -42, "certificate could not be built or parsed")                      \
    X(CONFIG, -50, "invalid configuration")                                       \
    X(USAGE, -51, "invalid command-line usage")                                   \
    X(CBOR_MALFORMED, -60, "malformed CBOR")                                      \
    X(CBOR_TRUNCATED, -61, "CBOR input ends inside an item")                      \
    X(CBOR_TRAILING, -62, "bytes follow the end of the CBOR message")             \
    X(CBOR_NONCANONICAL, -63, "CBOR is not in deterministic encoding")            \
    X(CBOR_TYPE, -64, "CBOR item has the wrong type")                             \
    X(CBOR_LIMIT, -65, "CBOR item exceeds a size, count or nesting limit")        \
    X(CBOR_KEY_ORDER, -66, "CBOR map keys unsorted or repeated")                  \
    X(PROTO_MISSING, -67, "required message field missing")                       \
    X(PROTO_VALUE, -68, "message field value out of range")                       \
    X(PROTO_MSG_TYPE, -69, "unexpected or unknown message type")                  \
    X(COSE_HEADER, -70, "COSE header missing, unknown or not allowed")            \
    X(BAD_KEY, -71, "public key invalid or not on the curve")                     \
    X(DECRYPT, -72, "envelope could not be opened (wrong key or tampered)")      \
    X(REFUSED, -80, "the peer answered the request with an error")              \
    X(TIMEOUT, -81, "no answer in time")                                          \
    X(AUTH, -82, "the peer refused our credentials")

typedef enum otpca_err {
#define OTPCA_ERR_ENUM_(name, value, sentence) OTPCA_ERR_##name = (value),
    OTPCA_ERR_TABLE(OTPCA_ERR_ENUM_)
#undef OTPCA_ERR_ENUM_
} otpca_err;

/* One sentence for a code; never NULL ("unknown error" for foreign values). */
const char *otpca_strerror(otpca_err err);
/* The symbolic name ("OTPCA_ERR_PIN_INCORRECT"); never NULL. */
const char *otpca_errname(otpca_err err);

#endif
