/*
 * The node firmware core (node.h): builds the node's requests with
 * libotpca-proto (CBOR, COSE_Sign1 through the token's sign, ECIES opened
 * through the token's ECDH), verifies every answer against the pinned root
 * before using it, commits new credentials to the A/B store before it
 * confirms them, and runs the resend and back-off timers from the time the
 * caller passes in. No malloc, no I/O of its own.
 */
#include "otpca/node/node.h"

#include <string.h>

#include "otpca/common/secmem.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/ecies.h"
#include "otpca/proto/msg.h"
#include "otpca/proto/p256.h"
#include "x509.h"

#define DEFAULT_TIMEOUT_MS 3000u
#define DEFAULT_TRIES 4u
#define DEFAULT_BACKOFF_MAX_MS 60000u
#define INNER_OFF 2048u /* work[INNER_OFF ..): the inner COSE_Sign1 of KeyUpdate/Claim */

/* A token key as a proto signer / ECDH callback. */
typedef struct keyref {
    const otpca_node_hal *hal;
    uint8_t kid[OTPCA_NODE_KID_LEN];
} keyref;

static otpca_err key_sign(void *ctx, const uint8_t digest[32], uint8_t sig[OTPCA_P256_SIG_LEN])
{
    const keyref *k = ctx;
    return k->hal->sign(k->hal->ctx, k->kid, digest, sig);
}

static otpca_err key_ecdh(void *ctx, const uint8_t peer[OTPCA_P256_PUB_LEN], uint8_t z[32])
{
    const keyref *k = ctx;
    return k->hal->ecdh(k->hal->ctx, k->kid, peer, z);
}

static void keyref_of(keyref *k, const otpca_node_hal *hal, const uint8_t pub[OTPCA_NODE_PUB_LEN], otpca_signer *s)
{
    k->hal = hal;
    otpca_p256_kid(pub, k->kid);
    if (s) {
        memset(s, 0, sizeof *s);
        s->sign = key_sign;
        s->ctx = k;
        memcpy(s->kid, k->kid, OTPCA_KID_LEN);
    }
}

static void logf_(const otpca_node_ctx *n, otpca_node_log_level lvl, const char *msg)
{
    if (n->cfg.hal->log)
        n->cfg.hal->log(n->cfg.hal->ctx, lvl, msg);
}

static bool valid_id(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-'))
            return false;
    }
    return true;
}

uint64_t otpca_node_time(const otpca_node_ctx *n, uint64_t now)
{
    if (!n->time_valid)
        return 0;
    int64_t t = (int64_t)now + n->time_offset_ms;
    return t > 0 ? (uint64_t)t / 1000u : 0;
}

otpca_err otpca_node_init(otpca_node_ctx *n, const otpca_node_config *cfg, uint8_t *out, size_t out_cap,
                          uint8_t *work, size_t work_cap)
{
    otpca_node_x509 root;
    uint8_t tmp[OTPCA_NODE_PUB_LEN];
    otpca_err ret;
    if (!n || !cfg || !cfg->hal || !out || out_cap < OTPCA_NODE_OUT_SIZE || !work || work_cap < OTPCA_NODE_WORK_SIZE)
        return OTPCA_ERR_INVALID_ARG;
    const otpca_node_hal *h = cfg->hal;
    if (!h->sign || !h->ecdh || !h->hmac || !h->random || !valid_id(cfg->serial) || !cfg->mac ||
        (cfg->mac_len != 6 && cfg->mac_len != 8) || !cfg->fw || strlen(cfg->fw) < 1 || strlen(cfg->fw) > 32 ||
        !cfg->root_der || (cfg->n_revoked && !cfg->revoked))
        return OTPCA_ERR_INVALID_ARG;
    for (size_t i = 0; i < cfg->n_revoked; i++)
        if (cfg->revoked[i].len < 1 || cfg->revoked[i].len > sizeof cfg->revoked[i].v)
            return OTPCA_ERR_INVALID_ARG;
    if (otpca_p256_pub_normalize(cfg->factory_pub, OTPCA_NODE_PUB_LEN, tmp) != OTPCA_ERR_OK)
        return OTPCA_ERR_INVALID_ARG;
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    if (!n->cfg.totp_digits)
        n->cfg.totp_digits = 6;
    if (!n->cfg.totp_period)
        n->cfg.totp_period = 30;
    if (n->cfg.totp_digits < 6 || n->cfg.totp_digits > 8)
        return OTPCA_ERR_INVALID_ARG;
    if (!n->cfg.timeout_ms)
        n->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!n->cfg.max_tries)
        n->cfg.max_tries = DEFAULT_TRIES;
    if (!n->cfg.backoff_max_ms)
        n->cfg.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
    n->out = out;
    n->out_cap = out_cap;
    n->work = work;
    n->work_cap = work_cap;
    n->time_valid = cfg->has_clock;
    n->deadline = OTPCA_NODE_DEADLINE_NONE;
    /* The pinned root: a CA certificate with a P-256 key that signed itself. */
    if ((ret = otpca_node_x509_parse(cfg->root_der, cfg->root_len, &root)) != OTPCA_ERR_OK)
        return ret;
    if (!root.is_ca || otpca_node_x509_signed_by(&root, &root) != OTPCA_ERR_OK)
        return OTPCA_ERR_CERT;
    memcpy(n->root_pub, root.pub, OTPCA_NODE_PUB_LEN);
    n->root_subject = root.subject;
    n->root_subject_len = root.subject_len;
    if (cfg->store) {
        ret = otpca_node_slots_load(cfg->store, &n->cur);
        if (ret == OTPCA_ERR_OK)
            n->have_cur = true;
        else if (ret != OTPCA_ERR_NOT_FOUND)
            return ret;
    }
    return OTPCA_ERR_OK;
}

/* ---- building requests ---- */

static otpca_err totp_now(otpca_node_ctx *n, uint64_t t, uint32_t *code)
{
    uint8_t msg[8], mac[64];
    size_t mac_len = sizeof mac;
    uint64_t c = t / n->cfg.totp_period;
    for (int i = 7; i >= 0; i--, c >>= 8)
        msg[i] = (uint8_t)c;
    otpca_err ret = n->cfg.hal->hmac(n->cfg.hal->ctx, msg, sizeof msg, mac, &mac_len);
    if (ret == OTPCA_ERR_OK && (mac_len < 20 || mac_len > sizeof mac))
        ret = OTPCA_ERR_CRYPTO;
    if (ret == OTPCA_ERR_OK) {
        /* RFC 4226 5.3: dynamic truncation. */
        unsigned off = mac[mac_len - 1] & 0x0f;
        uint32_t bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
                       (uint32_t)mac[off + 2] << 8 | mac[off + 3];
        uint32_t mod = 1000000;
        for (unsigned d = 6; d < n->cfg.totp_digits; d++)
            mod *= 10;
        *code = bin % mod;
    }
    otpca_memzero(mac, sizeof mac);
    return ret;
}

static const otpca_buf NO_CHAIN = {NULL, 0};

static otpca_buf sbuf(const char *s)
{
    otpca_buf b = {(const uint8_t *)s, strlen(s)};
    return b;
}

/* A double signature (PROTOCOL.md 4.3): m signed by the new key (key_pub)
 * into work, then that COSE_Sign1 signed by the old key (signer_pub) into out. */
static otpca_err sign_double(otpca_node_ctx *n, const otpca_msg_desc *d, const void *m)
{
    keyref kin, kout;
    otpca_signer sin, sout;
    size_t ilen = 0;
    keyref_of(&kin, n->cfg.hal, n->key_pub, &sin);
    keyref_of(&kout, n->cfg.hal, n->signer_pub, &sout);
    otpca_err ret = otpca_msg_sign(d, m, &sin, NO_CHAIN, n->work + INNER_OFF, n->work_cap - INNER_OFF, &ilen);
    if (ret)
        return ret;
    return otpca_cose_sign1_encode(&sout, NO_CHAIN, n->work + INNER_OFF, ilen, n->out, n->out_cap, &n->out_len);
}

static otpca_err build_request(otpca_node_ctx *n, uint64_t now)
{
    otpca_err ret;
    uint64_t t = otpca_node_time(n, now);
    uint32_t totp = 0;
    uint8_t pubc[OTPCA_P256_PUB_C_LEN], hash[32];
    keyref k;
    otpca_signer s;
    if ((ret = n->cfg.hal->random(n->cfg.hal->ctx, n->nonce, sizeof n->nonce)) != OTPCA_ERR_OK)
        return ret;
    n->out_len = 0;
    if (n->flow == OTPCA_NODE_FLOW_TIME) {
        otpca_time_request q;
        memset(&q, 0, sizeof q);
        q.nonce = (otpca_buf){n->nonce, 16};
        return otpca_msg_encode(&otpca_desc_time_request, &q, n->out, n->out_cap, &n->out_len);
    }
    if ((ret = totp_now(n, t, &totp)) != OTPCA_ERR_OK)
        return ret;
    switch (n->flow) {
    case OTPCA_NODE_FLOW_ENROLL:
    case OTPCA_NODE_FLOW_CLAIM: {
        otpca_enroll_request m;
        memset(&m, 0, sizeof m);
        if ((ret = otpca_p256_pub_compress(n->key_pub, pubc)) != OTPCA_ERR_OK)
            break;
        m.nonce = (otpca_buf){n->nonce, 16};
        m.time = t;
        m.serial = sbuf(n->cfg.serial);
        m.mac = (otpca_buf){n->cfg.mac, n->cfg.mac_len};
        m.pubkey = (otpca_buf){pubc, sizeof pubc};
        m.totp = totp;
        m.fw = sbuf(n->cfg.fw);
        if (n->mgr_len)
            m.ca = (otpca_buf){n->mgr_kid, OTPCA_NODE_KID_LEN};
        if (n->flow == OTPCA_NODE_FLOW_CLAIM) {
            ret = sign_double(n, &otpca_desc_claim, &m);
        } else {
            keyref_of(&k, n->cfg.hal, n->signer_pub, &s);
            ret = otpca_msg_sign(&otpca_desc_enroll_request, &m, &s, NO_CHAIN, n->out, n->out_cap, &n->out_len);
        }
        break;
    }
    case OTPCA_NODE_FLOW_REJOIN: {
        otpca_rejoin m;
        memset(&m, 0, sizeof m);
        otpca_sha256(n->cur.cert, n->cur.cert_len, hash);
        m.nonce = (otpca_buf){n->nonce, 16};
        m.time = t;
        m.serial = sbuf(n->cfg.serial);
        m.cert_hash = (otpca_buf){hash, 32};
        m.totp = totp;
        keyref_of(&k, n->cfg.hal, n->signer_pub, &s);
        ret = otpca_msg_sign(&otpca_desc_rejoin, &m, &s, NO_CHAIN, n->out, n->out_cap, &n->out_len);
        break;
    }
    case OTPCA_NODE_FLOW_KEYUPDATE: {
        otpca_key_update m;
        memset(&m, 0, sizeof m);
        if ((ret = otpca_p256_pub_compress(n->key_pub, pubc)) != OTPCA_ERR_OK)
            break;
        otpca_sha256(n->cur.cert, n->cur.cert_len, hash);
        m.nonce = (otpca_buf){n->nonce, 16};
        m.time = t;
        m.serial = sbuf(n->cfg.serial);
        m.cert_hash = (otpca_buf){hash, 32};
        m.pubkey = (otpca_buf){pubc, sizeof pubc};
        m.totp = totp;
        ret = sign_double(n, &otpca_desc_key_update, &m);
        break;
    }
    default:
        ret = OTPCA_ERR_STATE;
    }
    return ret;
}

/* EnrollConfirm for the current credential, signed by the key it certifies. */
static otpca_err build_confirm(otpca_node_ctx *n, uint64_t now)
{
    uint8_t hash[32];
    keyref k;
    otpca_signer s;
    otpca_err ret = n->cfg.hal->random(n->cfg.hal->ctx, n->nonce, sizeof n->nonce);
    if (ret)
        return ret;
    otpca_enroll_confirm m;
    memset(&m, 0, sizeof m);
    otpca_sha256(n->cur.cert, n->cur.cert_len, hash);
    m.nonce = (otpca_buf){n->nonce, 16};
    m.record = (otpca_buf){n->cur.record, 16};
    m.time = otpca_node_time(n, now);
    m.cert_hash = (otpca_buf){hash, 32};
    keyref_of(&k, n->cfg.hal, n->cur.pub, &s);
    n->out_len = 0;
    return otpca_msg_sign(&otpca_desc_enroll_confirm, &m, &s, NO_CHAIN, n->out, n->out_cap, &n->out_len);
}

static void arm_send(otpca_node_ctx *n)
{
    n->state = OTPCA_NODE_SEND;
    n->tries = 0;
    n->wait_ms = n->cfg.timeout_ms;
    n->deadline = OTPCA_NODE_DEADLINE_NONE;
}

static void fail(otpca_node_ctx *n, otpca_err e)
{
    n->state = OTPCA_NODE_FAILED;
    n->last_err = e;
    n->out_len = 0;
    n->deadline = OTPCA_NODE_DEADLINE_NONE;
    otpca_memzero(&n->next, sizeof n->next);
}

otpca_err otpca_node_start(otpca_node_ctx *n, otpca_node_flow flow, uint64_t now)
{
    otpca_err ret;
    if (n->state == OTPCA_NODE_SEND || n->state == OTPCA_NODE_WAIT || n->state == OTPCA_NODE_BACKOFF)
        return OTPCA_ERR_STATE;
    n->flow = flow;
    n->phase = 0;
    n->last_err = OTPCA_ERR_OK;
    n->wire_code = 0;
    if (flow != OTPCA_NODE_FLOW_TIME && !n->time_valid)
        return OTPCA_ERR_STATE;
    if (flow != OTPCA_NODE_FLOW_TIME && !n->cfg.store)
        return OTPCA_ERR_INVALID_ARG;
    switch (flow) {
    case OTPCA_NODE_FLOW_TIME:
        break;
    case OTPCA_NODE_FLOW_ENROLL:
        /* The factory device key, or the key of the current certificate. */
        memcpy(n->signer_pub, n->have_cur ? n->cur.pub : n->cfg.factory_pub, OTPCA_NODE_PUB_LEN);
        memcpy(n->key_pub, n->signer_pub, OTPCA_NODE_PUB_LEN);
        break;
    case OTPCA_NODE_FLOW_CONFIRM:
        if (!n->have_cur || (n->cur.flags & OTPCA_NODE_CRED_CONFIRMED))
            return OTPCA_ERR_STATE;
        if (!n->mgr_len || memcmp(n->mgr_kid, n->cur.mgr_kid, OTPCA_NODE_KID_LEN) != 0)
            return OTPCA_ERR_STATE; /* the issuing manager's certificate is needed: FLOW_TIME first */
        n->phase = 1;
        if ((ret = build_confirm(n, now)) != OTPCA_ERR_OK)
            return ret;
        arm_send(n);
        return OTPCA_ERR_OK;
    case OTPCA_NODE_FLOW_REJOIN:
    case OTPCA_NODE_FLOW_KEYUPDATE:
        if (!n->have_cur)
            return OTPCA_ERR_NOT_FOUND;
        memcpy(n->signer_pub, n->cur.pub, OTPCA_NODE_PUB_LEN);
        memcpy(n->key_pub, n->cur.pub, OTPCA_NODE_PUB_LEN);
        break;
    case OTPCA_NODE_FLOW_CLAIM:
        memcpy(n->signer_pub, n->cfg.factory_pub, OTPCA_NODE_PUB_LEN);
        break;
    default:
        return OTPCA_ERR_INVALID_ARG;
    }
    if (flow == OTPCA_NODE_FLOW_KEYUPDATE || flow == OTPCA_NODE_FLOW_CLAIM) {
        if (!n->cfg.hal->keygen)
            return OTPCA_ERR_UNSUPPORTED;
        if ((ret = n->cfg.hal->keygen(n->cfg.hal->ctx, n->key_pub)) != OTPCA_ERR_OK)
            return ret;
        logf_(n, OTPCA_NODE_LOG_INFO, "new device key generated in the token");
    }
    if ((ret = build_request(n, now)) != OTPCA_ERR_OK)
        return ret;
    arm_send(n);
    return OTPCA_ERR_OK;
}

const uint8_t *otpca_node_output_buf(const otpca_node_ctx *n, size_t *len)
{
    if (n->state != OTPCA_NODE_SEND || n->out_len == 0) {
        *len = 0;
        return NULL;
    }
    *len = n->out_len;
    return n->out;
}

void otpca_node_output_ack(otpca_node_ctx *n, uint64_t now)
{
    if (n->state != OTPCA_NODE_SEND)
        return;
    n->bytes_out += n->out_len;
    n->msgs_out++;
    n->tries++;
    n->state = OTPCA_NODE_WAIT;
    n->deadline = now + n->wait_ms;
}

/* ---- checking answers ---- */

/* The manager certificate chains to the pinned root, is valid at t, and
 * the root has not revoked it. */
static otpca_err check_manager(const otpca_node_ctx *n, const uint8_t *der, size_t len, uint64_t t,
                               otpca_node_x509 *mgr)
{
    otpca_node_x509 root;
    otpca_err ret = otpca_node_x509_parse(der, len, mgr);
    if (ret)
        return ret;
    for (size_t i = 0; i < n->cfg.n_revoked; i++)
        if (n->cfg.revoked[i].len == mgr->serial_len && !memcmp(n->cfg.revoked[i].v, mgr->serial, mgr->serial_len))
            return OTPCA_ERR_CERT; /* revoked by the root */
    memset(&root, 0, sizeof root);
    memcpy(root.pub, n->root_pub, OTPCA_NODE_PUB_LEN);
    root.subject = n->root_subject;
    root.subject_len = n->root_subject_len;
    if ((ret = otpca_node_x509_signed_by(mgr, &root)) != OTPCA_ERR_OK)
        return ret == OTPCA_ERR_SIGNATURE ? OTPCA_ERR_CERT : ret;
    if (!mgr->is_ca || !mgr->path_len_set || mgr->path_len != 0 || !mgr->key_usage_set ||
        !(mgr->key_usage & OTPCA_NODE_KU_CERT_SIGN) || t < mgr->not_before || t > mgr->not_after)
        return OTPCA_ERR_CERT;
    return OTPCA_ERR_OK;
}

/* Verifies a signed answer: the manager key from x5chain (checked against
 * the root at time t, then held) or the one held under the COSE kid. */
static otpca_err verify_signed(otpca_node_ctx *n, const uint8_t *in, size_t len, uint64_t t, otpca_cose_sign1 *c)
{
    otpca_node_x509 mgr;
    otpca_err ret = otpca_cose_sign1_decode(in, len, c);
    if (ret)
        return ret;
    if (c->x5chain.p) {
        if (c->x5chain.len > INNER_OFF)
            return OTPCA_ERR_CERT;
        if ((ret = check_manager(n, c->x5chain.p, c->x5chain.len, t, &mgr)) != OTPCA_ERR_OK)
            return ret;
        if ((ret = otpca_cose_sign1_verify(c, mgr.pub, OTPCA_NODE_PUB_LEN)) != OTPCA_ERR_OK)
            return ret;
        /* Held from now on (the request's `ca`). The input may not overlap work. */
        memcpy(n->work, c->x5chain.p, c->x5chain.len);
        n->mgr_len = c->x5chain.len;
        memcpy(n->mgr_pub, mgr.pub, OTPCA_NODE_PUB_LEN);
        otpca_p256_kid(mgr.pub, n->mgr_kid);
        return OTPCA_ERR_OK;
    }
    if (!n->mgr_len)
        return OTPCA_ERR_CERT; /* no certificate to check the signature with */
    /* The held certificate must still be valid at the node's time. */
    if ((ret = check_manager(n, n->work, n->mgr_len, t, &mgr)) != OTPCA_ERR_OK)
        return ret;
    return otpca_cose_sign1_verify(c, n->mgr_pub, OTPCA_NODE_PUB_LEN);
}

static otpca_err on_time_response(otpca_node_ctx *n, const uint8_t *in, size_t len, uint64_t now)
{
    otpca_cose_sign1 c;
    otpca_time_response r;
    otpca_err ret = otpca_cose_sign1_decode(in, len, &c);
    if (ret)
        return ret;
    if (!c.x5chain.p)
        return OTPCA_ERR_COSE_HEADER; /* x5chain is required in a TimeResponse */
    if ((ret = otpca_msg_decode(&otpca_desc_time_response, c.payload.p, c.payload.len, &r)) != OTPCA_ERR_OK)
        return ret;
    /* Verified at the time it claims (the node has no better one); then the nonce. */
    if ((ret = verify_signed(n, in, len, r.time, &c)) != OTPCA_ERR_OK)
        return ret;
    if (memcmp(r.nonce.p, n->nonce, 16) != 0)
        return OTPCA_ERR_PROTO_VALUE;
    n->time_offset_ms = (int64_t)(r.time * 1000u) - (int64_t)now;
    n->time_valid = true;
    n->state = OTPCA_NODE_DONE;
    n->deadline = OTPCA_NODE_DEADLINE_NONE;
    logf_(n, OTPCA_NODE_LOG_INFO, "signed time from the manager");
    return OTPCA_ERR_OK;
}

static otpca_err on_enroll_response(otpca_node_ctx *n, const uint8_t *in, size_t len, uint64_t now)
{
    otpca_cose_sign1 c;
    otpca_enroll_response r;
    otpca_node_x509 mgr, leaf;
    uint8_t aad[64 + 16];
    size_t sl = strlen(n->cfg.serial), pt_len = 0;
    keyref k;
    uint64_t t = otpca_node_time(n, now);
    otpca_err ret = verify_signed(n, in, len, t, &c);
    if (ret)
        return ret;
    if ((ret = otpca_msg_decode(&otpca_desc_enroll_response, c.payload.p, c.payload.len, &r)) != OTPCA_ERR_OK)
        return ret;
    if (memcmp(r.nonce.p, n->nonce, 16) != 0)
        return OTPCA_ERR_PROTO_VALUE; /* not the answer to this request: a replay */
    bool rejoin = n->flow == OTPCA_NODE_FLOW_REJOIN;
    if (rejoin != (r.cert.p == NULL))
        return OTPCA_ERR_PROTO_VALUE;
    memset(&n->next, 0, sizeof n->next);
    if (rejoin) {
        n->next = n->cur;
    } else {
        if ((ret = otpca_node_x509_parse(n->work, n->mgr_len, &mgr)) != OTPCA_ERR_OK)
            return ret;
        if ((ret = otpca_node_x509_parse(r.cert.p, r.cert.len, &leaf)) != OTPCA_ERR_OK)
            return ret;
        if ((ret = otpca_node_x509_signed_by(&leaf, &mgr)) != OTPCA_ERR_OK)
            return OTPCA_ERR_CERT;
        if (leaf.is_ca || strcmp(leaf.cn, n->cfg.serial) != 0 ||
            memcmp(leaf.pub, n->key_pub, OTPCA_NODE_PUB_LEN) != 0 || t < leaf.not_before || t > leaf.not_after)
            return OTPCA_ERR_CERT;
        memcpy(n->next.cert, r.cert.p, r.cert.len);
        n->next.cert_len = (uint16_t)r.cert.len;
        memcpy(n->next.pub, n->key_pub, OTPCA_NODE_PUB_LEN);
    }
    /* The network key, sealed to the key the answer is for, bound to serial and nonce. */
    memcpy(aad, n->cfg.serial, sl);
    memcpy(aad + sl, n->nonce, 16);
    keyref_of(&k, n->cfg.hal, n->next.pub, NULL);
    ret = otpca_ecies_open(key_ecdh, &k, n->next.pub, OTPCA_ECIES_LABEL_NETKEY, aad, sl + 16, r.netkey.p,
                           r.netkey.len, n->next.netkey, sizeof n->next.netkey, &pt_len);
    if (ret != OTPCA_ERR_OK || pt_len < 16) {
        otpca_memzero(&n->next, sizeof n->next);
        return ret ? ret : OTPCA_ERR_DECRYPT;
    }
    n->next.netkey_len = (uint8_t)pt_len;
    n->next.netkey_epoch = (uint32_t)r.netkey_epoch;
    memcpy(n->next.mgr_kid, n->mgr_kid, OTPCA_NODE_KID_LEN);
    memcpy(n->next.record, r.record.p, 16);
    n->next.flags = rejoin ? (uint8_t)(n->cur.flags & OTPCA_NODE_CRED_CONFIRMED) : 0;
    /* Commit first (inactive slot, then current); only then confirm. */
    if ((ret = otpca_node_slots_commit(n->cfg.store, &n->next)) != OTPCA_ERR_OK) {
        fail(n, ret);
        logf_(n, OTPCA_NODE_LOG_ERROR, "credential commit to flash failed");
        return ret;
    }
    n->cur = n->next;
    n->have_cur = true;
    otpca_memzero(&n->next, sizeof n->next);
    if (rejoin) {
        n->state = OTPCA_NODE_DONE;
        n->deadline = OTPCA_NODE_DEADLINE_NONE;
        logf_(n, OTPCA_NODE_LOG_INFO, "rejoined: network key committed");
        return OTPCA_ERR_OK;
    }
    logf_(n, OTPCA_NODE_LOG_INFO, "certificate and network key committed; confirming");
    n->phase = 1;
    if ((ret = build_confirm(n, now)) != OTPCA_ERR_OK) {
        fail(n, ret);
        return ret;
    }
    arm_send(n);
    return OTPCA_ERR_OK;
}

static otpca_err on_confirm_ack(otpca_node_ctx *n, const uint8_t *in, size_t len, uint64_t now)
{
    otpca_cose_sign1 c;
    otpca_confirm_ack a;
    uint8_t old_kid[OTPCA_NODE_KID_LEN], new_kid[OTPCA_NODE_KID_LEN];
    otpca_err ret = verify_signed(n, in, len, otpca_node_time(n, now), &c);
    if (ret)
        return ret;
    if ((ret = otpca_msg_decode(&otpca_desc_confirm_ack, c.payload.p, c.payload.len, &a)) != OTPCA_ERR_OK)
        return ret;
    if (memcmp(a.nonce.p, n->nonce, 16) != 0 || memcmp(a.record.p, n->cur.record, 16) != 0)
        return OTPCA_ERR_PROTO_VALUE;
    /* Confirmed: rewritten with the flag, which also retires the previous credential. */
    n->next = n->cur;
    n->next.flags |= OTPCA_NODE_CRED_CONFIRMED;
    ret = otpca_node_slots_commit(n->cfg.store, &n->next);
    if (ret == OTPCA_ERR_OK)
        n->cur = n->next;
    otpca_memzero(&n->next, sizeof n->next);
    if (ret) {
        fail(n, ret);
        return ret;
    }
    otpca_p256_kid(n->signer_pub, old_kid);
    otpca_p256_kid(n->cur.pub, new_kid);
    if (n->flow == OTPCA_NODE_FLOW_KEYUPDATE && n->cfg.hal->key_destroy && memcmp(old_kid, new_kid, 8) != 0 &&
        n->cfg.hal->key_destroy(n->cfg.hal->ctx, old_kid) != OTPCA_ERR_OK)
        logf_(n, OTPCA_NODE_LOG_WARN, "the old device key could not be destroyed");
    n->state = OTPCA_NODE_DONE;
    n->deadline = OTPCA_NODE_DEADLINE_NONE;
    logf_(n, OTPCA_NODE_LOG_INFO, "credential confirmed by the manager");
    return OTPCA_ERR_OK;
}

static otpca_err on_error(otpca_node_ctx *n, const uint8_t *in, size_t len, uint64_t now)
{
    otpca_error_msg e;
    otpca_err ret = otpca_msg_decode(&otpca_desc_error, in, len, &e);
    if (ret)
        return ret;
    if (e.nonce.p && memcmp(e.nonce.p, n->nonce, 16) != 0)
        return OTPCA_ERR_PROTO_VALUE;
    n->wire_code = (unsigned)e.code;
    n->last_err = OTPCA_ERR_REFUSED;
    /* Unsigned: only ever a reason to retry later, never to change credentials. */
    if ((e.code == OTPCA_WIRE_BUSY || e.code == OTPCA_WIRE_INTERNAL) && n->tries < n->cfg.max_tries) {
        uint64_t wait = (e.present & OTPCA_MSG_BIT(3)) ? e.retry_after * 1000u : n->wait_ms;
        if (wait > n->cfg.backoff_max_ms)
            wait = n->cfg.backoff_max_ms;
        n->state = OTPCA_NODE_BACKOFF;
        n->deadline = now + wait;
        return OTPCA_ERR_REFUSED;
    }
    fail(n, OTPCA_ERR_REFUSED);
    return OTPCA_ERR_REFUSED;
}

otpca_err otpca_node_handle_input(otpca_node_ctx *n, const uint8_t *in, size_t len, uint64_t now)
{
    unsigned type = 0;
    otpca_err ret;
    if (!in || len == 0 || len > OTPCA_NODE_IN_MAX)
        return n->last_err = OTPCA_ERR_CBOR_LIMIT;
    if (n->state != OTPCA_NODE_WAIT && n->state != OTPCA_NODE_SEND)
        return n->last_err = OTPCA_ERR_STATE;
    n->bytes_in += len;
    n->msgs_in++;
    /* A signed answer is a tagged COSE_Sign1; an Error is a plain map. */
    if (otpca_msg_peek_type(in, len, &type) == OTPCA_ERR_OK) {
        ret = type == OTPCA_MSG_ERROR ? on_error(n, in, len, now) : OTPCA_ERR_PROTO_MSG_TYPE;
    } else if (n->flow == OTPCA_NODE_FLOW_TIME) {
        ret = on_time_response(n, in, len, now);
    } else if (n->phase == 0) {
        ret = on_enroll_response(n, in, len, now);
    } else {
        ret = on_confirm_ack(n, in, len, now);
    }
    if (ret != OTPCA_ERR_OK)
        n->last_err = ret;
    return ret;
}

otpca_node_state otpca_node_step(otpca_node_ctx *n, uint64_t now, uint64_t *next_deadline)
{
    if (n->state == OTPCA_NODE_WAIT && now >= n->deadline) {
        if (n->tries >= n->cfg.max_tries) {
            fail(n, OTPCA_ERR_TIMEOUT);
        } else {
            /* The same bytes again: the manager answers a repeated nonce with the same response. */
            n->state = OTPCA_NODE_SEND;
            n->wait_ms = n->wait_ms * 2 > n->cfg.backoff_max_ms ? n->cfg.backoff_max_ms : n->wait_ms * 2;
            n->deadline = OTPCA_NODE_DEADLINE_NONE;
        }
    } else if (n->state == OTPCA_NODE_BACKOFF && now >= n->deadline) {
        /* A fresh request (new nonce, new TOTP) after BUSY/INTERNAL. */
        unsigned tries = n->tries;
        otpca_err ret = n->phase ? build_confirm(n, now) : build_request(n, now);
        if (ret) {
            fail(n, ret);
        } else {
            arm_send(n);
            n->tries = tries;
        }
    }
    if (next_deadline)
        *next_deadline = n->state == OTPCA_NODE_WAIT || n->state == OTPCA_NODE_BACKOFF ? n->deadline
                         : n->state == OTPCA_NODE_SEND                                  ? now
                                                                                        : OTPCA_NODE_DEADLINE_NONE;
    return n->state;
}

otpca_node_state otpca_node_get_state(const otpca_node_ctx *n)
{
    return n->state;
}

otpca_err otpca_node_last_error(const otpca_node_ctx *n, unsigned *wire_code)
{
    if (wire_code)
        *wire_code = n->wire_code;
    return n->last_err;
}

const otpca_node_cred *otpca_node_credential(const otpca_node_ctx *n)
{
    return n->have_cur ? &n->cur : NULL;
}

void otpca_node_free(otpca_node_ctx *n)
{
    if (n)
        otpca_memzero(n, sizeof *n);
}
