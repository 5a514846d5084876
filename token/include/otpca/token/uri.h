/*
 * RFC 7512 PKCS#11 URIs: how every otpca tool names a token and an object,
 * e.g. "pkcs11:token=mgr01;object=ca-key;type=private?pin-source=file:/etc/otpca/mgr01.pin".
 * Path attributes: token, manufacturer, serial, model, object, id, type,
 * library-manufacturer, library-description, library-version (accepted,
 * not matched). Query attributes: pin-source, pin-value, module-path,
 * module-name. Values are percent-decoded; an attribute given twice, an
 * unknown standard attribute or a malformed escape is an error;
 * vendor attributes ("x-...") are ignored as RFC 7512 §2.3 allows.
 */
#ifndef OTPCA_TOKEN_URI_H
#define OTPCA_TOKEN_URI_H

#include <stddef.h>

#include "otpca/common/err.h"

#define OTPCA_P11_LABEL_MAX 32  /* CK_TOKEN_INFO.label */
#define OTPCA_P11_SERIAL_MAX 16 /* CK_TOKEN_INFO.serialNumber */
#define OTPCA_P11_MODEL_MAX 16
#define OTPCA_P11_OBJECT_MAX 255
#define OTPCA_P11_ID_MAX 64
#define OTPCA_P11_PATH_MAX 1024
#define OTPCA_P11_PIN_MAX 255

typedef enum otpca_obj_type {
    OTPCA_OBJ_ANY = 0,
    OTPCA_OBJ_PRIVATE_KEY,
    OTPCA_OBJ_PUBLIC_KEY,
    OTPCA_OBJ_SECRET_KEY,
    OTPCA_OBJ_CERT,
    OTPCA_OBJ_DATA,
} otpca_obj_type;

typedef struct otpca_p11_uri {
    char token[OTPCA_P11_LABEL_MAX + 1];
    char manufacturer[OTPCA_P11_LABEL_MAX + 1];
    char serial[OTPCA_P11_SERIAL_MAX + 1];
    char model[OTPCA_P11_MODEL_MAX + 1];
    char object[OTPCA_P11_OBJECT_MAX + 1];
    unsigned char id[OTPCA_P11_ID_MAX];
    size_t id_len;
    int has_id;
    otpca_obj_type type;
    char module_path[OTPCA_P11_PATH_MAX + 1];
    char module_name[OTPCA_P11_OBJECT_MAX + 1];
    char pin_source[OTPCA_P11_PATH_MAX + 1];
    char pin_value[OTPCA_P11_PIN_MAX + 1]; /* wiped by otpca_p11_uri_clear() */
    int has_pin_value;
} otpca_p11_uri;

/* Parse s into *out (which is cleared first). On error *out is cleared. */
otpca_err otpca_p11_uri_parse(const char *s, otpca_p11_uri *out)
    __attribute__((warn_unused_result, nonnull));
/* Wipe a parsed URI (it may hold a pin-value). */
void otpca_p11_uri_clear(otpca_p11_uri *u);

#endif
