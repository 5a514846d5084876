/*
 * The manager's certificate profiles: node certificates (what a window
 * issues) and the CA ceremony's root and intermediate certificates. All
 * are signed inside a token through the wolfCrypt bridge (token/wolf.h).
 *
 * Node certificate: X.509 v3, ECDSA-SHA256, 128-bit random serial, CN =
 * the device serial, subjectAltName URIs after RFC 9039 (device URNs):
 * `urn:dev:os:<PEN>-<serial>` (organization-serial; the serial
 * percent-encoded where it is not `unreserved`) and `urn:dev:mac:<hex>`
 * (EUI-48 or EUI-64, lower-case hex), keyUsage digitalSignature +
 * keyAgreement, extKeyUsage (default clientAuth), SKI and AKI, validity
 * `days` (wolfSSL starts it a day early for clock skew).
 *
 * Includes wolfSSL headers (through wolf.h): never beside OpenSSL ones.
 */
#ifndef OTPCA_MANAGER_PROFILE_H
#define OTPCA_MANAGER_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "otpca/token/wolf.h"

/* 32473: the Private Enterprise Number reserved for documentation (RFC
 * 5612); a deployment sets its own. */
#define OTPCA_MGR_DEFAULT_PEN 32473u
#define OTPCA_MGR_URN_MAX (sizeof "urn:dev:os:4294967295-" - 1 + 3 * 64 + 1)

typedef struct otpca_mgr_profile {
    unsigned days;            /* node certificate validity */
    unsigned pen;             /* IANA Private Enterprise Number in urn:dev:os */
    const char *organization; /* subject O, or NULL */
    const char *ext_key_usage; /* wc_SetExtKeyUsage list; NULL: none */
} otpca_mgr_profile;

/* days 365, PEN 32473, no O, extKeyUsage clientAuth. */
void otpca_mgr_profile_default(otpca_mgr_profile *p);

/* The two device URNs of a node. serial: 1..64 of [A-Za-z0-9._:-]; mac 6
 * or 8 bytes. os and mac_urn need OTPCA_MGR_URN_MAX bytes. */
otpca_err otpca_mgr_device_urns(unsigned pen, const char *serial, const uint8_t *mac, size_t mac_len, char *os,
                                char *mac_urn) __attribute__((warn_unused_result));

/* A node certificate for pub (65 bytes, checked on the curve), issued by
 * the CA whose certificate is ca_der and whose key signs through ca. rng
 * may be NULL (one per call). der holds OTPCA_CERT_DER_MAX bytes. */
otpca_err otpca_mgr_node_cert(otpca_wolf_signer *ca, WC_RNG *rng, const uint8_t *ca_der, size_t ca_len,
                              const otpca_mgr_profile *p, const char *serial, const uint8_t *mac, size_t mac_len,
                              const uint8_t pub[65], uint8_t *der, size_t *der_len) __attribute__((warn_unused_result));

#endif
