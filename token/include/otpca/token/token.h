/*
 * libotpca-token: the one owner of PKCS#11 in an otpca process.
 *
 * An otpca_p11_t is a loaded module (one per process: a second
 * C_Initialize/C_Finalize from anyone else would break the first).
 * An otpca_token_t is one session on one token of that module; give each
 * thread its own with otpca_token_clone(). Keys and TOTP seeds are created
 * inside the token, non-extractable, and used there: HMAC (TOTP/HOTP),
 * ECDSA signatures and AES-GCM are computed by the token.
 *
 * This header includes neither OpenSSL nor wolfSSL.
 */
#ifndef OTPCA_TOKEN_TOKEN_H
#define OTPCA_TOKEN_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "otpca/common/err.h"
#include "otpca/token/pin.h"
#include "otpca/token/uri.h"

typedef struct otpca_p11 otpca_p11_t;
typedef struct otpca_token otpca_token_t;
typedef unsigned long otpca_obj_t; /* a CK_OBJECT_HANDLE, valid per token */

#define OTPCA_EC_P256_SEC1_LEN 65 /* 0x04 || X || Y */
#define OTPCA_SIG_RAW_LEN 64      /* r || s, P-256 */
#define OTPCA_SIG_DER_MAX 72      /* ECDSA-Sig-Value, P-256 */
#define OTPCA_HMAC_MAX 32
#define OTPCA_SEED_MIN 16         /* RFC 4226 §4 R6: at least 128 bits */
#define OTPCA_SEED_MAX 64

/* The module used when neither the URI nor OTPCA_PKCS11_MODULE names one. */
const char *otpca_p11_default_module(void);

/* Load and initialise a PKCS#11 module. module_path NULL means the
 * OTPCA_PKCS11_MODULE environment variable or the default (SoftHSM).
 * Errors: OTPCA_ERR_MODULE_LOAD (also for a file that is no PKCS#11
 * module), OTPCA_ERR_STATE (a module is already loaded in this process). */
otpca_err otpca_p11_new(const char *module_path, otpca_p11_t **out)
    __attribute__((warn_unused_result));
/* Finalise and unload; every token handle must be destroyed first. */
void otpca_p11_destroy(otpca_p11_t **p11);
/* PKCS#11 sessions this process has open through the library now (every
 * token handle holds one). Tokens such as SoftHSM do not report session
 * counts, so this is how callers and tests see that nothing leaked. */
unsigned long otpca_p11_open_sessions(otpca_p11_t *p11);

typedef struct otpca_token_info {
    char label[OTPCA_P11_LABEL_MAX + 1];
    char manufacturer[OTPCA_P11_LABEL_MAX + 1];
    char model[OTPCA_P11_MODEL_MAX + 1];
    char serial[OTPCA_P11_SERIAL_MAX + 1];
    unsigned long slot_id;
    int initialized;
    int user_pin_set;
    int user_pin_locked;
    int login_required;
} otpca_token_info;

/* Tokens present now (slots without a token are skipped). Fills at most
 * cap entries; *count is the number present (may exceed cap). */
otpca_err otpca_p11_list(otpca_p11_t *p11, otpca_token_info *infos, size_t cap, size_t *count)
    __attribute__((warn_unused_result));

/* Initialise the first free (uninitialised) token with a label, SO PIN
 * and user PIN; *slot_id (if not NULL) is its slot. For rigs and factory
 * tooling. Errors: EXISTS (label taken), TOKEN_NOT_FOUND (no free slot). */
otpca_err otpca_p11_init_token(otpca_p11_t *p11, const char *label, const char *so_pin,
                               const char *user_pin, unsigned long *slot_id)
    __attribute__((warn_unused_result));

/* Open a session on the one token matching uri (token, serial,
 * manufacturer, model) and, if pin is not NULL, log in as user.
 * Errors: TOKEN_NOT_FOUND, TOKEN_AMBIGUOUS, PIN_INCORRECT, PIN_LOCKED,
 * TOKEN_REMOVED, PKCS11. */
otpca_err otpca_token_open(otpca_p11_t *p11, const otpca_p11_uri *uri, const char *pin,
                           otpca_token_t **out) __attribute__((warn_unused_result));
/* Open the token in a slot just returned by otpca_p11_init_token() or
 * otpca_p11_list(). Slot ids are not stable across module loads: name
 * tokens by URI everywhere else. */
otpca_err otpca_token_open_slot(otpca_p11_t *p11, unsigned long slot_id, const char *pin,
                                otpca_token_t **out) __attribute__((warn_unused_result));
/* Like otpca_token_open(), reading the PIN from the URI's pin-source or
 * pin-value, or from *pin_src when that is not NULL and not NONE. The PIN
 * lives in secret memory only for the login. */
otpca_err otpca_token_open_uri(otpca_p11_t *p11, const otpca_p11_uri *uri,
                               const otpca_pin_src *pin_src, otpca_token_t **out)
    __attribute__((warn_unused_result));
/* Log in as user (once per token: every handle on it shares the login).
 * A token this process is already logged in to is not asked again, so
 * the PIN is then not checked (PKCS#11 login state is per application).
 * Errors: PIN_INCORRECT, PIN_LOCKED, TOKEN_REMOVED, PKCS11. */
otpca_err otpca_token_login(otpca_token_t *tok, const char *pin) __attribute__((warn_unused_result));
/* A second session on the same token, sharing its login (for a thread). */
otpca_err otpca_token_clone(otpca_token_t *tok, otpca_token_t **out)
    __attribute__((warn_unused_result));
/* Close the session; the last handle of a token logs out. NULL accepted. */
void otpca_token_destroy(otpca_token_t **tok);

/* OTPCA_ERR_OK while the token is in its slot and the session is alive,
 * OTPCA_ERR_TOKEN_REMOVED otherwise. Cheap enough to poll every 100 ms. */
otpca_err otpca_token_present(otpca_token_t *tok) __attribute__((warn_unused_result));
const char *otpca_token_label(const otpca_token_t *tok);

/* Find exactly one object by type, label and/or id (NULL/0 = any).
 * Errors: OBJECT_NOT_FOUND, OBJECT_AMBIGUOUS. */
otpca_err otpca_token_find(otpca_token_t *tok, otpca_obj_type type, const char *label,
                           const unsigned char *id, size_t id_len, otpca_obj_t *out)
    __attribute__((warn_unused_result));
/* Find the object a URI names (object, id, type; type defaults to dflt). */
otpca_err otpca_token_find_uri(otpca_token_t *tok, const otpca_p11_uri *uri, otpca_obj_type dflt,
                               otpca_obj_t *out) __attribute__((warn_unused_result));

/* Generate a P-256 key pair in the token: private key sensitive and not
 * extractable, both token objects with this label and id. Errors: EXISTS
 * if a key with that label is already there. priv/pub may be NULL. */
otpca_err otpca_token_keygen_p256(otpca_token_t *tok, const char *label, const unsigned char *id,
                                  size_t id_len, otpca_obj_t *priv, otpca_obj_t *pub)
    __attribute__((warn_unused_result));

/* The SEC1 uncompressed public key of a P-256 key pair; key may be the
 * private or the public object (the public one is found by id and label). */
otpca_err otpca_token_pubkey_sec1(otpca_token_t *tok, otpca_obj_t key,
                                  unsigned char out[OTPCA_EC_P256_SEC1_LEN])
    __attribute__((warn_unused_result));

/* Import an OTP seed (16..64 bytes) as a sensitive, non-extractable
 * generic secret usable only for HMAC signing. Seeds shorter than 20
 * bytes are zero-padded to 20 (SoftHSM's HMAC minimum): HMAC pads keys
 * with zeros to the block size, so the MAC is the same. */
otpca_err otpca_token_seed_import(otpca_token_t *tok, const char *label, const unsigned char *id,
                                  size_t id_len, const unsigned char *seed, size_t seed_len,
                                  otpca_obj_t *out) __attribute__((warn_unused_result));

typedef enum otpca_otp_alg {
    OTPCA_OTP_SHA1 = 0,
    OTPCA_OTP_SHA256 = 1,
} otpca_otp_alg;

/* HMAC of msg with a secret key, computed in the token. */
otpca_err otpca_token_hmac(otpca_token_t *tok, otpca_obj_t key, otpca_otp_alg alg,
                           const unsigned char *msg, size_t msg_len, unsigned char *mac,
                           size_t *mac_len) __attribute__((warn_unused_result));
/* RFC 4226 HOTP of counter, 6..8 digits, HMAC computed in the token. */
otpca_err otpca_token_hotp(otpca_token_t *tok, otpca_obj_t key, otpca_otp_alg alg,
                           uint64_t counter, unsigned digits, uint32_t *code)
    __attribute__((warn_unused_result));
/* RFC 6238 TOTP at time now (T0 = 0) with period seconds (30 usual). */
otpca_err otpca_token_totp(otpca_token_t *tok, otpca_obj_t key, otpca_otp_alg alg, time_t now,
                           unsigned period, unsigned digits, uint32_t *code)
    __attribute__((warn_unused_result));
/* RFC 4226 §5.3 dynamic truncation of an HMAC to digits (6..8) digits. */
uint32_t otpca_otp_truncate(const unsigned char *mac, size_t mac_len, unsigned digits);

typedef enum otpca_sig_format {
    OTPCA_SIG_RAW = 0, /* r || s, 64 bytes */
    OTPCA_SIG_DER = 1, /* ECDSA-Sig-Value (X9.62), at most 72 bytes */
} otpca_sig_format;

/* Sign a digest (usually SHA-256, 32 bytes) with a private P-256 key in the
 * token (CKM_ECDSA). *sig_len: in the room at sig, out the length. */
otpca_err otpca_token_sign_digest(otpca_token_t *tok, otpca_obj_t key, const unsigned char *digest,
                                  size_t digest_len, otpca_sig_format fmt, unsigned char *sig,
                                  size_t *sig_len) __attribute__((warn_unused_result));

/* ECDH (CKM_ECDH1_DERIVE, no KDF) of a private P-256 key in the token with
 * a peer's uncompressed SEC1 point (65 bytes): z = the shared x-coordinate.
 * The derived value passes through a session object destroyed at once. */
otpca_err otpca_token_ecdh(otpca_token_t *tok, otpca_obj_t key, const unsigned char *peer,
                           size_t peer_len, unsigned char z[32]) __attribute__((warn_unused_result));

/* Generate an AES key (bits 128 or 256) in the token: a private token
 * object, sensitive, never extractable, usable only to encrypt and
 * decrypt. Errors: EXISTS if a secret key with that label is there. */
otpca_err otpca_token_keygen_aes(otpca_token_t *tok, const char *label, unsigned bits, otpca_obj_t *out)
    __attribute__((warn_unused_result));
/* For known-answer tests only (real keys come from otpca_token_keygen_aes):
 * import an AES key value (16 or 32 bytes) as a session object that goes
 * with the session, sensitive and not extractable. Errors: EXISTS. */
otpca_err otpca_token_aes_import(otpca_token_t *tok, const char *label, const unsigned char *value,
                                 size_t len, otpca_obj_t *out) __attribute__((warn_unused_result));

#define OTPCA_TOKEN_AEAD_IV_LEN 12
#define OTPCA_TOKEN_AEAD_TAG_LEN 16
#define OTPCA_TOKEN_AEAD_OVERHEAD 28 /* iv || ciphertext || tag: IV_LEN + TAG_LEN */

/* AES-GCM in the token with an AES key: out = iv (fresh, from the token's
 * generator) || ciphertext || tag; aad is authenticated, not stored. cap
 * must be at least pt_len + OTPCA_TOKEN_AEAD_OVERHEAD (BUFFER_TOO_SMALL). */
otpca_err otpca_token_aead_seal(otpca_token_t *tok, otpca_obj_t key, const unsigned char *aad,
                                size_t aad_len, const unsigned char *pt, size_t pt_len,
                                unsigned char *out, size_t cap, size_t *out_len)
    __attribute__((warn_unused_result));
/* Open what otpca_token_aead_seal() made, with the same key and aad; cap
 * at least in_len - OTPCA_TOKEN_AEAD_OVERHEAD (a cap of in_len - 12 lets
 * the token write there directly, without a copy in secret memory).
 * Errors: DECRYPT (wrong key or aad, truncated or tampered input),
 * BUFFER_TOO_SMALL; on any error pt (cap bytes) is wiped. */
otpca_err otpca_token_aead_open(otpca_token_t *tok, otpca_obj_t key, const unsigned char *aad,
                                size_t aad_len, const unsigned char *in, size_t in_len,
                                unsigned char *pt, size_t cap, size_t *pt_len)
    __attribute__((warn_unused_result));

/* Destroy an object in the token (C_DestroyObject); the handle is then
 * invalid. Errors: OBJECT_NOT_FOUND, PKCS11 (e.g. not destroyable). */
otpca_err otpca_token_destroy_object(otpca_token_t *tok, otpca_obj_t obj)
    __attribute__((warn_unused_result));

/* Private data objects (CKO_DATA, CKA_PRIVATE, not modifiable): small
 * secrets the token cannot use itself but must guard, such as a ZeroMQ
 * CURVE secret key; read only after login, into memory the caller locks
 * and wipes. put: EXISTS if the label is taken. get: OBJECT_NOT_FOUND,
 * OBJECT_AMBIGUOUS, BUFFER_TOO_SMALL. */
#define OTPCA_TOKEN_DATA_MAX 1024
otpca_err otpca_token_data_put(otpca_token_t *tok, const char *label, const unsigned char *value, size_t len)
    __attribute__((warn_unused_result));
otpca_err otpca_token_data_get(otpca_token_t *tok, const char *label, unsigned char *buf, size_t cap,
                               size_t *len) __attribute__((warn_unused_result));

/* Random bytes from the token's generator. */
otpca_err otpca_token_random(otpca_token_t *tok, unsigned char *buf, size_t len)
    __attribute__((warn_unused_result));

/* CKA_SENSITIVE / CKA_EXTRACTABLE of an object (1/0; -1 if the token does
 * not report it), and whether reading CKA_VALUE is refused (1) or not. */
otpca_err otpca_token_obj_protection(otpca_token_t *tok, otpca_obj_t obj, int *sensitive,
                                     int *extractable, int *value_refused)
    __attribute__((warn_unused_result));

#endif
