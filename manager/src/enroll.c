/* Hybrid authentication and issuance without I/O (enroll.h). */
#include "otpca/manager/enroll.h"

#include <liboath/oath.h>
#include <stdio.h>
#include <string.h>

#include "otpca/common/secmem.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/p256.h"

#include <wolfssl/wolfcrypt/random.h>

const char *otpca_mgr_reason_name(int reason)
{
    static const char *names[] = {"accepted",
                                  "window closed or enrollment limit reached",
                                  "timestamp outside the allowed skew",
                                  "nonce replayed",
                                  "serial unknown or outside the lease's scope",
                                  "device revoked",
                                  "device locked",
                                  "public key or kid does not match the registry",
                                  "TOTP wrong",
                                  "TOTP time step already used",
                                  "signature invalid",
                                  "message malformed",
                                  "certificate hash unknown or superseded"};
    return reason >= 0 && reason < (int)(sizeof names / sizeof names[0]) ? names[reason] : "unknown reason";
}

otpca_err otpca_mgr_totp_at(const uint8_t *seed, size_t seed_len, unsigned digits, unsigned algorithm, uint64_t step,
                            uint32_t *code)
{
    char otp[16];
    if (!seed || seed_len == 0 || digits < 6 || digits > 8 || (algorithm != 1 && algorithm != 2))
        return OTPCA_ERR_INVALID_ARG;
    /* liboath counts steps as (now - 0) / step size: a step size of 1 and
     * now = step give exactly this step. */
    if (oath_totp_generate2((const char *)seed, seed_len, (time_t)step, 1, 0, digits,
                            algorithm == 2 ? OATH_TOTP_HMAC_SHA256 : 0, otp) != OATH_OK)
        return OTPCA_ERR_CRYPTO;
    uint32_t v = 0;
    for (unsigned i = 0; i < digits; i++)
        v = v * 10 + (uint32_t)(otp[i] - '0');
    otpca_memzero(otp, sizeof otp);
    *code = v;
    return OTPCA_ERR_OK;
}

/* The registered key (65 bytes) against the request's (33 or 65): the
 * compressed form is compared by compressing ours, which is cheap, rather
 * than decompressing theirs (about 75 us). */
static int same_key(const uint8_t reg[65], otpca_buf req)
{
    if (req.len == 65)
        return otpca_ct_equal(reg, req.p, 65);
    if (req.len == 33) {
        uint8_t c[33];
        c[0] = (uint8_t)(0x02 | (reg[64] & 1));
        memcpy(c + 1, reg + 1, 32);
        return otpca_ct_equal(c, req.p, 33);
    }
    return 0;
}

static int kid_is(otpca_buf kid, const uint8_t pub[65])
{
    uint8_t k[OTPCA_KID_LEN];
    otpca_p256_kid(pub, k);
    return kid.len == OTPCA_KID_LEN && memcmp(kid.p, k, OTPCA_KID_LEN) == 0;
}

/* Decodes a request of the given type into the verdict's common view
 * (v->req: nonce, time, serial, totp; pubkey for an EnrollRequest, and
 * the new key of a KeyUpdate or a Claim) and the COSE layers: *outer is
 * signed by the current device key (a Claim: the product key), *inner
 * (KeyUpdate and Claim) by the new one. */
static int decode_request(int type, const uint8_t *in, size_t len, otpca_mgr_verdict *v, otpca_cose_sign1 *outer,
                          otpca_cose_sign1 *inner)
{
    if (otpca_cose_sign1_decode(in, len, outer) != OTPCA_ERR_OK)
        return -1;
    if (type == OTPCA_MSG_ENROLL_REQUEST)
        return otpca_msg_decode(&otpca_desc_enroll_request, outer->payload.p, outer->payload.len, &v->req) ? -1 : 0;
    if (type == OTPCA_MSG_REJOIN) {
        otpca_rejoin r;
        if (otpca_msg_decode(&otpca_desc_rejoin, outer->payload.p, outer->payload.len, &r))
            return -1;
        v->req.nonce = r.nonce;
        v->req.time = r.time;
        v->req.serial = r.serial;
        v->req.totp = r.totp;
        v->cert_hash = r.cert_hash;
        return 0;
    }
    if (type == OTPCA_MSG_CLAIM) /* outer by the product key, inner by the new key (6.7) */
        return otpca_cose_sign1_decode(outer->payload.p, outer->payload.len, inner) != OTPCA_ERR_OK ||
                       otpca_msg_decode(&otpca_desc_claim, inner->payload.p, inner->payload.len, &v->req)
                   ? -1
                   : 0;
    if (type == OTPCA_MSG_KEY_UPDATE) {
        otpca_key_update k;
        if (otpca_cose_sign1_decode(outer->payload.p, outer->payload.len, inner) != OTPCA_ERR_OK ||
            otpca_msg_decode(&otpca_desc_key_update, inner->payload.p, inner->payload.len, &k))
            return -1;
        v->req.nonce = k.nonce;
        v->req.time = k.time;
        v->req.serial = k.serial;
        v->req.totp = k.totp;
        v->req.pubkey = k.pubkey;
        v->cert_hash = k.cert_hash;
        return 0;
    }
    return -1;
}

/* Step 7 of the checks (PROTOCOL.md 6.2, 6.5, 6.6): the request is about
 * the key and certificate the trust list holds. */
static int key_check(int type, const otpca_mgr_device *d, const otpca_cose_sign1 *outer,
                     const otpca_cose_sign1 *inner, otpca_mgr_verdict *v)
{
    if (d->pubkey_len != 65 || !kid_is(outer->kid, d->pubkey))
        return OTPCA_MGR_KEY;
    /* An unclaimed batch device's registered key is its batch's product
     * key: it is never certified, only proven by a Claim (6.7). */
    if (type == OTPCA_MSG_ENROLL_REQUEST)
        return !d->claimable && same_key(d->pubkey, v->req.pubkey) ? OTPCA_MGR_OK : OTPCA_MGR_KEY;
    if (type == OTPCA_MSG_CLAIM) {
        if (!d->claimable || otpca_p256_pub_normalize(v->req.pubkey.p, v->req.pubkey.len, v->pub) != OTPCA_ERR_OK ||
            otpca_ct_equal(v->pub, d->pubkey, 65) || !kid_is(inner->kid, v->pub))
            return OTPCA_MGR_KEY; /* claimed already, not a point, the product key itself, or not the signer */
        return OTPCA_MGR_OK;
    }
    /* Rejoin and KeyUpdate: the certificate named must be the current one
     * (not revoked, not superseded by a confirmed KeyUpdate). */
    if (!d->has_cert || v->cert_hash.len != 32 || !otpca_ct_equal(v->cert_hash.p, d->cert_hash, 32))
        return OTPCA_MGR_CERT;
    if (type == OTPCA_MSG_KEY_UPDATE) {
        if (otpca_p256_pub_normalize(v->req.pubkey.p, v->req.pubkey.len, v->pub) != OTPCA_ERR_OK ||
            otpca_ct_equal(v->pub, d->pubkey, 65) || !kid_is(inner->kid, v->pub))
            return OTPCA_MGR_KEY; /* not a point, the same key again, or not the inner signer */
    }
    return OTPCA_MGR_OK;
}

static void check_request(int type, const otpca_mgr_window *w, uint64_t now, uint64_t skew,
                          const otpca_mgr_hooks *h, const uint8_t *in, size_t len, otpca_mgr_verdict *v)
{
    otpca_cose_sign1 c, inner;
    otpca_mgr_device d;
    memset(v, 0, sizeof *v);
    memset(&d, 0, sizeof d);
    memset(&inner, 0, sizeof inner);
    v->type = type;
    if (decode_request(type, in, len, v, &c, &inner)) {
        v->reason = OTPCA_MGR_MALFORMED;
        return;
    }
    memcpy(v->serial, v->req.serial.p, v->req.serial.len); /* an id: 1..64 bytes, checked by the decoder */
    v->serial[v->req.serial.len] = '\0';
    uint64_t t = v->req.time;

    if (!w->open || now < w->not_before || now > w->not_after || w->issued >= w->max_enroll) {
        v->reason = OTPCA_MGR_WINDOW;
        return;
    }
    if (t + skew < now || t > now + skew) {
        v->reason = OTPCA_MGR_SKEW;
        return;
    }
    if (h->nonce(h->arg, v->req.nonce.p, now)) {
        v->reason = OTPCA_MGR_REPLAY;
        return;
    }
    otpca_err ret = h->device(h->arg, v->serial, &d);
    if (ret || !d.in_scope || d.state == OTPCA_DEV_DELETED) {
        v->reason = OTPCA_MGR_UNKNOWN;
        return;
    }
    if (d.state == OTPCA_DEV_REVOKED) {
        v->reason = OTPCA_MGR_REVOKED;
        return;
    }
    if (d.state == OTPCA_DEV_LOCKED) {
        v->reason = OTPCA_MGR_LOCKED;
        return;
    }
    if (d.state != OTPCA_DEV_APPROVED && d.state != OTPCA_DEV_ENROLLED) {
        v->reason = OTPCA_MGR_UNKNOWN;
        return;
    }
    if ((v->reason = key_check(type, &d, &c, &inner, v)) != OTPCA_MGR_OK)
        return;
    /* ±1 step around now; every candidate computed, compared in constant
     * time, so the time taken does not say which one matched. */
    uint64_t period = d.period ? d.period : 30, at = now / period, matched = 0;
    int found = 0;
    char want[16], got[16];
    snprintf(got, sizeof got, "%08llu", (unsigned long long)(v->req.totp % 100000000u));
    for (uint64_t s = at ? at - 1 : 0; s <= at + 1; s++) {
        uint32_t code = 0;
        if (otpca_mgr_totp_at(d.seed, d.seed_len, d.digits ? d.digits : 6, d.algorithm ? d.algorithm : 1, s,
                              &code) != OTPCA_ERR_OK)
            continue;
        snprintf(want, sizeof want, "%08lu", (unsigned long)code);
        int eq = otpca_ct_equal(want, got, 8) & (v->req.totp < 100000000u);
        matched = eq ? s : matched;
        found |= eq;
    }
    otpca_memzero(want, sizeof want);
    otpca_memzero(got, sizeof got);
    int sig_ok = otpca_cose_sign1_verify(&c, d.pubkey, 65) == OTPCA_ERR_OK;
    if (!found || matched <= d.last_step) {
        /* Reasons 8 and 9 only for what the device signed: they are the
         * ones that count towards the lockout, here and at the cloud. */
        v->reason = !sig_ok ? OTPCA_MGR_SIGNATURE : found ? OTPCA_MGR_STEP : OTPCA_MGR_TOTP;
        v->count_failure = sig_ok;
        return;
    }
    int new_key = type == OTPCA_MSG_KEY_UPDATE || type == OTPCA_MSG_CLAIM;
    if (!sig_ok || (new_key && otpca_cose_sign1_verify(&inner, v->pub, 65) != OTPCA_ERR_OK)) {
        v->reason = OTPCA_MGR_SIGNATURE;
        return;
    }
    v->reason = OTPCA_MGR_OK;
    v->step = matched;
    if (!new_key)
        memcpy(v->pub, d.pubkey, 65);
}

void otpca_mgr_check_enroll(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                            const uint8_t *in, size_t len, otpca_mgr_verdict *v)
{
    check_request(OTPCA_MSG_ENROLL_REQUEST, w, now, skew, h, in, len, v);
}

void otpca_mgr_check_rejoin(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                            const uint8_t *in, size_t len, otpca_mgr_verdict *v)
{
    check_request(OTPCA_MSG_REJOIN, w, now, skew, h, in, len, v);
}

void otpca_mgr_check_key_update(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                                const uint8_t *in, size_t len, otpca_mgr_verdict *v)
{
    check_request(OTPCA_MSG_KEY_UPDATE, w, now, skew, h, in, len, v);
}

void otpca_mgr_check_claim(const otpca_mgr_window *w, uint64_t now, uint64_t skew, const otpca_mgr_hooks *h,
                           const uint8_t *in, size_t len, otpca_mgr_verdict *v)
{
    check_request(OTPCA_MSG_CLAIM, w, now, skew, h, in, len, v);
}

/* ------------------------------------------------------------- answers */

/* x5chain unless the node said it holds this manager's certificate. */
static otpca_buf chain_for(const otpca_mgr_issuer *is, otpca_buf held)
{
    if (held.p && held.len == OTPCA_KID_LEN && memcmp(held.p, is->cose.kid, OTPCA_KID_LEN) == 0)
        return (otpca_buf){NULL, 0};
    return (otpca_buf){is->ca_der, is->ca_len};
}

otpca_err otpca_mgr_issue(const otpca_mgr_issuer *is, const otpca_mgr_verdict *v, const uint8_t *mac, size_t mac_len,
                          uint64_t now, uint8_t record[16], uint8_t *cert, size_t *cert_len, uint8_t *out, size_t cap,
                          size_t *out_len)
{
    uint8_t aad[64 + OTPCA_NONCE_LEN], env[OTPCA_ECIES_MAX_PLAINTEXT + OTPCA_ECIES_OVERHEAD];
    size_t env_len = 0, sl = strlen(v->serial);
    if (v->reason != OTPCA_MGR_OK || !is->netkey || is->netkey_len < 16 || is->netkey_len > 64 || sl == 0 || sl > 64)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = OTPCA_ERR_OK;
    if (v->type == OTPCA_MSG_REJOIN) /* the network key only */
        *cert_len = 0;
    else
        ret = otpca_mgr_node_cert(is->ca, is->rng, is->ca_der, is->ca_len, is->profile, v->serial, mac, mac_len,
                                  v->pub, cert, cert_len);
    if (ret)
        return ret;
    memcpy(aad, v->serial, sl);
    memcpy(aad + sl, v->req.nonce.p, OTPCA_NONCE_LEN);
    if ((ret = otpca_ecies_seal(v->pub, 65, OTPCA_ECIES_LABEL_NETKEY, aad, sl + OTPCA_NONCE_LEN, is->netkey,
                                is->netkey_len, env, sizeof env, &env_len)))
        return ret;
    if (is->rng ? wc_RNG_GenerateBlock(is->rng, record, 16) != 0 : otpca_random(record, 16) != OTPCA_ERR_OK)
        return OTPCA_ERR_CRYPTO;
    otpca_enroll_response r;
    memset(&r, 0, sizeof r);
    r.nonce = v->req.nonce;
    r.record = (otpca_buf){record, 16};
    r.time = now;
    if (*cert_len)
        r.cert = (otpca_buf){cert, *cert_len};
    r.netkey = (otpca_buf){env, env_len};
    r.netkey_epoch = is->netkey_epoch;
    return otpca_msg_sign(&otpca_desc_enroll_response, &r, &is->cose, chain_for(is, v->req.ca), out, cap, out_len);
}

int otpca_mgr_check_confirm(const otpca_mgr_hooks *h, const uint8_t *in, size_t len, otpca_enroll_confirm *req,
                            otpca_mgr_issued *rec)
{
    otpca_cose_sign1 c;
    memset(rec, 0, sizeof *rec);
    if (otpca_cose_sign1_decode(in, len, &c) != OTPCA_ERR_OK ||
        otpca_msg_decode(&otpca_desc_enroll_confirm, c.payload.p, c.payload.len, req) != OTPCA_ERR_OK)
        return OTPCA_MGR_MALFORMED;
    if (!h->record || h->record(h->arg, req->record.p, rec) != OTPCA_ERR_OK ||
        !otpca_ct_equal(req->cert_hash.p, rec->cert_hash, 32))
        return OTPCA_MGR_CERT;
    /* Signed by the key the certificate certifies: the node holds it. */
    if (otpca_cose_sign1_verify(&c, rec->pub, 65) != OTPCA_ERR_OK)
        return OTPCA_MGR_SIGNATURE;
    return OTPCA_MGR_OK;
}

otpca_err otpca_mgr_confirm_ack(const otpca_mgr_issuer *is, const otpca_enroll_confirm *req, uint8_t *out, size_t cap,
                                size_t *out_len)
{
    otpca_confirm_ack a;
    memset(&a, 0, sizeof a);
    a.nonce = req->nonce;
    a.record = req->record;
    return otpca_msg_sign(&otpca_desc_confirm_ack, &a, &is->cose, (otpca_buf){NULL, 0}, out, cap, out_len);
}

otpca_err otpca_mgr_time_response(const otpca_mgr_issuer *is, const uint8_t *in, size_t len, uint64_t now,
                                  uint8_t *out, size_t cap, size_t *out_len)
{
    otpca_time_request q;
    otpca_err ret = otpca_msg_decode(&otpca_desc_time_request, in, len, &q);
    if (ret)
        return ret;
    otpca_time_response r;
    memset(&r, 0, sizeof r);
    r.nonce = q.nonce;
    r.time = now;
    return otpca_msg_sign(&otpca_desc_time_response, &r, &is->cose, (otpca_buf){is->ca_der, is->ca_len}, out, cap,
                          out_len);
}

otpca_err otpca_mgr_error(unsigned code, const uint8_t *nonce, uint8_t *out, size_t cap, size_t *out_len)
{
    otpca_error_msg e;
    memset(&e, 0, sizeof e);
    e.code = code;
    if (nonce)
        e.nonce = (otpca_buf){nonce, OTPCA_NONCE_LEN};
    return otpca_msg_encode(&otpca_desc_error, &e, out, cap, out_len);
}
