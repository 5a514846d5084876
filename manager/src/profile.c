/* Certificate profiles of the manager (profile.h). */
#include "otpca/manager/profile.h"

#include <stdio.h>
#include <string.h>

void otpca_mgr_profile_default(otpca_mgr_profile *p)
{
    memset(p, 0, sizeof *p);
    p->days = 365;
    p->pen = OTPCA_MGR_DEFAULT_PEN;
    p->ext_key_usage = "clientAuth";
}

static int id_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '-';
}

otpca_err otpca_mgr_device_urns(unsigned pen, const char *serial, const uint8_t *mac, size_t mac_len, char *os,
                                char *mac_urn)
{
    size_t n = serial ? strnlen(serial, 65) : 0;
    if (n == 0 || n > 64 || !mac || (mac_len != 6 && mac_len != 8))
        return OTPCA_ERR_INVALID_ARG;
    int k = snprintf(os, OTPCA_MGR_URN_MAX, "urn:dev:os:%u-", pen);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)serial[i];
        if (!id_char(c))
            return OTPCA_ERR_INVALID_ARG;
        /* RFC 9039 section 4.3: the serial is unreserved characters or
         * percent-encoded; of our id characters only ':' is not unreserved. */
        k += c == ':' ? snprintf(os + k, OTPCA_MGR_URN_MAX - (size_t)k, "%%3A")
                      : snprintf(os + k, OTPCA_MGR_URN_MAX - (size_t)k, "%c", c);
    }
    k = snprintf(mac_urn, OTPCA_MGR_URN_MAX, "urn:dev:mac:");
    for (size_t i = 0; i < mac_len; i++)
        k += snprintf(mac_urn + k, OTPCA_MGR_URN_MAX - (size_t)k, "%02x", mac[i]);
    return OTPCA_ERR_OK;
}

otpca_err otpca_mgr_node_cert(otpca_wolf_signer *ca, WC_RNG *rng, const uint8_t *ca_der, size_t ca_len,
                              const otpca_mgr_profile *p, const char *serial, const uint8_t *mac, size_t mac_len,
                              const uint8_t pub[65], uint8_t *der, size_t *der_len)
{
    char os[OTPCA_MGR_URN_MAX], mac_urn[OTPCA_MGR_URN_MAX];
    if (!ca || !ca_der || !p || !pub || p->days == 0)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = otpca_mgr_device_urns(p->pen, serial, mac, mac_len, os, mac_urn);
    if (ret)
        return ret;
    const char *uris[2] = {os, mac_urn};
    otpca_cert_req req = {.common_name = serial,
                          .organization = p->organization,
                          .subject_sec1 = pub,
                          .issuer_der = ca_der,
                          .issuer_der_len = ca_len,
                          .path_len = -1,
                          .days = p->days,
                          .ext_key_usage = p->ext_key_usage,
                          .san_uris = uris,
                          .n_san = 2,
                          .rng = rng};
    return otpca_cert_issue(ca, &req, der, der_len);
}
