/*
 * wolfCrypt (5.5.4, Debian's source) configured for the node firmware core
 * on a Cortex-M4, size build only (node-fw/cortexm/size.sh): exactly what
 * libotpca-proto and the core call, nothing for TLS.
 *
 *   ECC P-256 on SP math with the Cortex-M assembly, small variant:
 *     import + on-curve check, ECDSA verify, compressed export (the
 *     EnrollRequest key); ECDH and signing live in the token (the HAL).
 *   SHA-256, HMAC-SHA256 (HKDF is written on HMAC in proto/src/hkdf_gcm.c),
 *   AES-128-GCM (encrypt direction only: GCM never needs the AES inverse),
 *   ASN for wc_ParseCert: WOLFSSL_CERT_EXT because node-fw/src/x509.c reads
 *     DecodedCert.issuerRaw (declared only with it or HAVE_PKCS7).
 *   No heap: NO_WOLFSSL_MEMORY + WOLFSSL_NO_MALLOC make XMALLOC a NULL;
 *     what would have allocated fails instead (size.sh checks that no
 *     malloc is linked).
 *   No RNG of its own: the token's random is the HAL's; the DRBG is off and
 *     wc_GenerateBlock goes to a stub (used only by proto's software-key
 *     helpers, which a firmware does not link).
 *
 * WOLFSSL_ASN_TEMPLATE comes from size.sh (ASN=template, the default, or
 * ASN=original, the parser Debian's package is built with).
 */
#ifndef OTPCA_CORTEXM_USER_SETTINGS_H
#define OTPCA_CORTEXM_USER_SETTINGS_H

/* ---- platform ---- */
#define WOLFCRYPT_ONLY
#define SINGLE_THREADED
#define NO_FILESYSTEM
#define NO_WRITEV
#define NO_MAIN_DRIVER
#define NO_DEV_RANDOM
#define NO_ERROR_STRINGS
#define NO_ASN_TIME /* the core checks validity against its own time */
#define WOLFSSL_GENERAL_ALIGNMENT 4
#define SIZEOF_LONG_LONG 8
#define WOLFSSL_IGNORE_FILE_WARN
#define WOLFSSL_USER_IO
#define NO_SIG_WRAPPER
#define NO_CODING /* no Base64/PEM: certificates arrive as DER */

/* ---- memory: none ---- */
#define NO_WOLFSSL_MEMORY
#define WOLFSSL_NO_MALLOC

/* ---- RNG: the token's, through the HAL ---- */
#define WC_NO_HASHDRBG
#define CUSTOM_RAND_GENERATE_BLOCK otpca_cortexm_rand_block
int otpca_cortexm_rand_block(unsigned char *out, unsigned int sz);

/* ---- math: SP, P-256 only, Cortex-M assembly (sp_cortexm.c; size.sh
 * SP=c32 defines OTPCA_CORTEXM_SP_C32 and builds the portable sp_c32.c) ---- */
#define WOLFSSL_SP_MATH
#define WOLFSSL_HAVE_SP_ECC
#define WOLFSSL_SP_SMALL
#ifndef OTPCA_CORTEXM_SP_C32
#define WOLFSSL_SP_ASM
#define WOLFSSL_SP_ARM_CORTEX_M_ASM
#endif
#define SP_WORD_SIZE 32
#define WOLFSSL_SP_NO_MALLOC

/* ---- ECC ---- */
#define HAVE_ECC
#define ECC_USER_CURVES /* P-256 alone */
#define ECC_TIMING_RESISTANT
#define HAVE_COMP_KEY /* compressed SEC1 (EnrollRequest/KeyUpdate key) */
#define HAVE_ECC_VERIFY
#define HAVE_ECC_KEY_IMPORT
#define HAVE_ECC_KEY_EXPORT

/* ---- hashes, MAC, cipher ---- */
#define NO_MD4
#define NO_MD5
#define NO_SHA /* SHA-256 is the only hash (asn.c then hashes names with it) */
#define NO_OLD_TLS
#define HAVE_AESGCM
#define GCM_SMALL
#define WOLFSSL_AES_128
#define NO_AES_192
#define NO_AES_256
#define NO_AES_CBC
#define NO_AES_DECRYPT
#define HAVE_AESGCM_DECRYPT /* GCM decrypt without the AES inverse */
#define WOLFSSL_AES_SMALL_TABLES

/* ---- certificates ---- */
#define WOLFSSL_CERT_EXT
#define IGNORE_NAME_CONSTRAINTS
#define WOLFSSL_NO_OCSP_ISSUER_CHECK

/* ---- everything else off ---- */
#define NO_RSA
#define NO_DH
#define NO_DSA
#define NO_DES3
#define NO_RC4
#define NO_PSK
#define NO_PWDBASED
#define NO_HC128
#define NO_RABBIT
#define NO_PKCS8
#define NO_PKCS12
#define WOLFSSL_NO_SHAKE256
#define NO_CHECK_PRIVATE_KEY

#endif
