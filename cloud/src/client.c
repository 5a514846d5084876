/* The manager's side of the cloud link (client.h). */
#include "otpca/cloud/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/proto/cose.h"
#include "otpca/proto/p256.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_RETRIES 2
/* Upper bound on the batches of one sync (a 1M-device snapshot in 2048-
 * entry chunks is ~500): a cloud that never says "no more" cannot keep a
 * manager in the loop for ever. */
#define SYNC_BATCHES_MAX 100000
#define ENDPOINT_LEN 256 /* each endpoint of a list below this */
#define LIST_LEN (OTPCA_CLOUD_ENDPOINTS_MAX * (ENDPOINT_LEN + 1))

struct otpca_cloud_client {
    otpca_cloud_client_config cfg;
    char endpoint[LIST_LEN], notices[LIST_LEN], manager[65]; /* as configured (for the logs) */
    char req_ep[OTPCA_CLOUD_ENDPOINTS_MAX][ENDPOINT_LEN], sub_ep[OTPCA_CLOUD_ENDPOINTS_MAX][ENDPOINT_LEN];
    size_t nreq, nsub; /* more than one request endpoint: several instances */
    uint8_t *secret; /* locked */
    void *zctx, *sock, *mon, *sub;
    unsigned mon_seq;
    unsigned broken_handshakes; /* handshakes the peer dropped since the last connect (wrong server key?) */
    uint8_t *req, *ans; /* OTPCA_MSG_CLOUD_MAX each */
    size_t ans_len;
    unsigned err_code;
    char err_detail[257];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static otpca_buf str_buf(const char *s)
{
    return (otpca_buf){(const uint8_t *)s, strlen(s)};
}

static void curve_client(otpca_cloud_client *c, void *s)
{
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->cfg.server_key, 32);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->cfg.public_key, 32);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->secret, 32);
}

static void disconnect(otpca_cloud_client *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->mon)
        zmq_close(c->mon);
    c->sock = c->mon = NULL;
}

/* Splits a comma-separated list of endpoints (spaces around an item are
 * dropped) into out; the number of items, or -1 for an empty item, too
 * many, or one too long. "" (or NULL) is no endpoint at all. */
static int split_endpoints(const char *list, char out[][ENDPOINT_LEN], const char *what)
{
    int n = 0;
    if (!list || !*list)
        return 0;
    for (const char *p = list;; n++) {
        const char *end = p + strcspn(p, ",");
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b || (size_t)(b - a) >= ENDPOINT_LEN || n == OTPCA_CLOUD_ENDPOINTS_MAX) {
            log_error("cloud client: %s: item %d of the endpoint list is %s", what, n + 1,
                      a == b ? "empty" : n == OTPCA_CLOUD_ENDPOINTS_MAX ? "one too many" : "too long");
            return -1;
        }
        memcpy(out[n], a, (size_t)(b - a));
        out[n][b - a] = '\0';
        if (!*end)
            return n + 1;
        p = end + 1;
    }
}

static otpca_err connect_sock(otpca_cloud_client *c)
{
    char mon[64];
    int64_t max = OTPCA_MSG_CLOUD_MAX;
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->sock)
        return OTPCA_ERR_IO;
    curve_client(c, c->sock);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (c->nreq > 1) {
        /* Queue only to instances whose handshake is done: a request must
         * not wait in the pipe of one that is down while another is up. */
        int one = 1;
        zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    }
    /* A monitor tells a refused handshake (ZAP said no) from silence, and
     * counts handshakes the peer dropped without a word: what a server
     * does with a HELLO it cannot open, i.e. a client pinning another
     * CURVE key than the server's. */
    snprintf(mon, sizeof mon, "inproc://otpca-cloud-client-%p-%u", (void *)c, c->mon_seq++);
    c->broken_handshakes = 0;
    if (zmq_socket_monitor(c->sock, mon,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
        c->mon = zmq_socket(c->zctx, ZMQ_PAIR);
        if (c->mon && zmq_connect(c->mon, mon) != 0) {
            zmq_close(c->mon);
            c->mon = NULL;
        }
    }
    for (size_t i = 0; i < c->nreq; i++)
        if (zmq_connect(c->sock, c->req_ep[i]) != 0) {
            log_error("cloud client: cannot connect to %s: %s", c->req_ep[i], zmq_strerror(zmq_errno()));
            disconnect(c);
            return OTPCA_ERR_CONFIG;
        }
    return OTPCA_ERR_OK;
}

otpca_err otpca_cloud_client_new(const otpca_cloud_client_config *cfg, otpca_cloud_client **out)
{
    *out = NULL;
    if (!cfg || !cfg->endpoint || !cfg->manager_id || !cfg->signer.sign || strlen(cfg->endpoint) >= LIST_LEN ||
        (cfg->notices && strlen(cfg->notices) >= LIST_LEN) || strlen(cfg->manager_id) == 0 ||
        strlen(cfg->manager_id) > 64)
        return OTPCA_ERR_INVALID_ARG;
    otpca_cloud_client *c = calloc(1, sizeof *c);
    if (!c)
        return OTPCA_ERR_NOMEM;
    int nreq = split_endpoints(cfg->endpoint, c->req_ep, "cloud");
    int nsub = split_endpoints(cfg->notices, c->sub_ep, "cloud notices");
    if (nreq < 1 || nsub < 0) {
        if (nreq == 0)
            log_error("cloud client: no cloud endpoint");
        free(c);
        return OTPCA_ERR_INVALID_ARG;
    }
    c->nreq = (size_t)nreq;
    c->nsub = (size_t)nsub;
    c->cfg = *cfg;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", cfg->endpoint);
    snprintf(c->notices, sizeof c->notices, "%s", cfg->notices ? cfg->notices : "");
    snprintf(c->manager, sizeof c->manager, "%s", cfg->manager_id);
    c->cfg.endpoint = c->endpoint;
    c->cfg.manager_id = c->manager;
    c->cfg.notices = NULL;
    otpca_memzero(c->cfg.secret_key, sizeof c->cfg.secret_key);
    if (c->cfg.timeout_ms <= 0)
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (c->cfg.retries == 0)
        c->cfg.retries = DEFAULT_RETRIES;
    else if (c->cfg.retries < 0)
        c->cfg.retries = 0;
    c->secret = otpca_secmem_alloc(32);
    c->req = malloc(OTPCA_MSG_CLOUD_MAX);
    c->ans = malloc(OTPCA_MSG_CLOUD_MAX);
    c->zctx = zmq_ctx_new();
    if (!c->secret || !c->req || !c->ans || !c->zctx) {
        otpca_cloud_client_destroy(&c);
        return OTPCA_ERR_NOMEM;
    }
    memcpy(c->secret, cfg->secret_key, 32);
    *out = c;
    return OTPCA_ERR_OK;
}

void otpca_cloud_client_destroy(otpca_cloud_client **pc)
{
    otpca_cloud_client *c = pc ? *pc : NULL;
    if (!c)
        return;
    disconnect(c);
    if (c->sub)
        zmq_close(c->sub);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    if (c->secret)
        otpca_secmem_free(c->secret, 32);
    free(c->req);
    free(c->ans);
    otpca_memzero(c, sizeof *c);
    free(c);
    *pc = NULL;
}

unsigned otpca_cloud_client_error(const otpca_cloud_client *c, const char **detail)
{
    if (detail)
        *detail = c->err_detail;
    return c->err_code;
}

/* One monitor event: 1 if the handshake was refused. */
static int refused_handshake(otpca_cloud_client *c)
{
    zmq_msg_t ev, addr;
    int refused = 0;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, c->mon, 0) >= 0 && zmq_msg_more(&ev) && zmq_msg_recv(&addr, c->mon, 0) >= 0 &&
        zmq_msg_size(&ev) >= 6) {
        const uint8_t *d = zmq_msg_data(&ev);
        unsigned event = d[0] | (unsigned)d[1] << 8;
        uint32_t value = d[2] | (uint32_t)d[3] << 8 | (uint32_t)d[4] << 16 | (uint32_t)d[5] << 24;
        refused = event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            c->broken_handshakes++;
        if (refused)
            log_error("cloud client: %s refused our CURVE key (manager %s; ZAP status %u)", c->endpoint, c->manager,
                      (unsigned)value);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return refused;
}

/* Several instances: waits until the DEALER may send, i.e. the handshake
 * with at least one instance is done (ZMQ_IMMEDIATE). OTPCA_ERR_TIMEOUT
 * if none was by the deadline, OTPCA_ERR_AUTH if one refused our key. */
static otpca_err wait_writable(otpca_cloud_client *c, uint64_t deadline)
{
    for (;;) {
        uint64_t now = mono_ms();
        zmq_pollitem_t items[] = {{c->sock, 0, ZMQ_POLLOUT, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, c->mon ? 2 : 1, now >= deadline ? 0 : (long)(deadline - now));
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc < 0)
            return OTPCA_ERR_IO;
        if (c->mon && (items[1].revents & ZMQ_POLLIN) && refused_handshake(c))
            return OTPCA_ERR_AUTH;
        if (items[0].revents & ZMQ_POLLOUT)
            return OTPCA_ERR_OK;
        if (mono_ms() >= deadline)
            return OTPCA_ERR_TIMEOUT;
    }
}

/* Sends req once on the socket (made if needed); *deadline: by when its
 * answer is due. OTPCA_ERR_TIMEOUT: no instance could take it (try again
 * on a fresh socket); AUTH or IO: give up. */
static otpca_err send_once(otpca_cloud_client *c, const uint8_t *req, size_t len, uint64_t *deadline)
{
    otpca_err ret;
    if (!c->sock && (ret = connect_sock(c)))
        return ret;
    if (c->nreq > 1) {
        *deadline = mono_ms() + (uint64_t)c->cfg.timeout_ms;
        ret = wait_writable(c, *deadline);
        if (ret == OTPCA_ERR_AUTH)
            disconnect(c);
        if (ret == OTPCA_ERR_TIMEOUT) {
            log_warn("cloud client: no instance of %s reachable in %d ms", c->endpoint, c->cfg.timeout_ms);
            disconnect(c);
        }
        if (ret)
            return ret;
    }
    if (zmq_send(c->sock, req, len, c->nreq > 1 ? ZMQ_DONTWAIT : 0) < 0) {
        disconnect(c);
        return OTPCA_ERR_TIMEOUT;
    }
    if (c->nreq == 1)
        *deadline = mono_ms() + (uint64_t)c->cfg.timeout_ms;
    return OTPCA_ERR_OK;
}

/* Waits until deadline for the answer to what send_once sent, into
 * c->ans. An Error answer: OTPCA_ERR_REFUSED with err_code/err_detail
 * set. OTPCA_ERR_TIMEOUT: none came, and the socket is dropped, so that a
 * late answer is never taken for the next request's. */
static otpca_err await_answer(otpca_cloud_client *c, uint64_t deadline, int raw)
{
    c->err_code = 0;
    c->err_detail[0] = '\0';
    /* At least one look, past the deadline too: a pipelined answer may
     * have waited in the queue while the caller was busy. */
    for (int looked = 0;; looked = 1) {
        uint64_t now = mono_ms();
        if (now >= deadline && looked)
            break;
        zmq_pollitem_t items[] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, c->mon ? 2 : 1, now >= deadline ? 0 : (long)(deadline - now));
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc < 0)
            return OTPCA_ERR_IO;
        if (c->mon && (items[1].revents & ZMQ_POLLIN) && refused_handshake(c)) {
            disconnect(c);
            return OTPCA_ERR_AUTH;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int n = zmq_recv(c->sock, c->ans, OTPCA_MSG_CLOUD_MAX, 0);
            if (n < 0 || n > OTPCA_MSG_CLOUD_MAX)
                continue; /* truncated: not an answer we can use */
            c->ans_len = (size_t)n;
            unsigned type = 0;
            otpca_error_msg e;
            if (!raw && otpca_msg_peek_type(c->ans, c->ans_len, &type) == OTPCA_ERR_OK &&
                type == OTPCA_MSG_ERROR) {
                if (otpca_msg_decode(&otpca_desc_error, c->ans, c->ans_len, &e) == OTPCA_ERR_OK) {
                    c->err_code = (unsigned)e.code;
                    size_t dn = e.detail.p ? (e.detail.len < 256 ? e.detail.len : 256) : 0;
                    memcpy(c->err_detail, e.detail.p ? (const char *)e.detail.p : "", dn);
                    c->err_detail[dn] = '\0';
                } else {
                    c->err_code = OTPCA_WIRE_BAD_REQUEST;
                }
                log_warn("cloud client: the cloud answered error %u: %s", c->err_code, c->err_detail);
                return OTPCA_ERR_REFUSED;
            }
            return OTPCA_ERR_OK;
        }
    }
    log_warn("cloud client: no answer from %s in %d ms", c->endpoint, c->cfg.timeout_ms);
    if (c->broken_handshakes)
        log_error("cloud client: %s dropped our CURVE handshake %u times: unless it was stopping, the pinned "
                  "cloud CURVE key is not the key of that instance (after a cloud key rotation: pin the key "
                  "its curve_key has)",
                  c->endpoint, c->broken_handshakes);
    disconnect(c);
    return OTPCA_ERR_TIMEOUT;
}

/* Sends req and waits for one answer into c->ans, retrying on a fresh
 * socket after a timeout (cfg.retries times); errors as await_answer's.
 *
 * With several instances a fresh socket connects to all of them again, so
 * the retry of a request that died with its instance goes to a live one
 * (ZMQ_IMMEDIATE: only instances that completed the handshake get it);
 * every request is idempotent at the cloud, whichever instance answers. */
static otpca_err request(otpca_cloud_client *c, const uint8_t *req, size_t len, int raw)
{
    otpca_err ret = OTPCA_ERR_TIMEOUT;
    for (int attempt = 0; attempt <= c->cfg.retries; attempt++) {
        uint64_t deadline = 0;
        if (attempt)
            log_warn("cloud client: sending again (attempt %d of %d)", attempt + 1, c->cfg.retries + 1);
        ret = send_once(c, req, len, &deadline);
        if (!ret)
            ret = await_answer(c, deadline, raw);
        if (ret != OTPCA_ERR_TIMEOUT)
            return ret;
    }
    return ret;
}

static otpca_err sign_request(otpca_cloud_client *c, const otpca_msg_desc *d, const void *m, size_t *len)
{
    return otpca_msg_sign(d, m, &c->cfg.signer, (otpca_buf){NULL, 0}, c->req, OTPCA_MSG_CLOUD_MAX, len);
}

/* Decodes and verifies a message signed by the cloud. */
static otpca_err open_cloud_signed(const uint8_t cloud_pub[65], const otpca_msg_desc *d, const uint8_t *in, size_t len,
                                   void *out)
{
    otpca_cose_sign1 cs;
    otpca_err ret = otpca_cose_sign1_decode(in, len, &cs);
    if (!ret)
        ret = otpca_cose_sign1_verify(&cs, cloud_pub, 65);
    if (!ret)
        ret = otpca_msg_decode(d, cs.payload.p, cs.payload.len, out);
    return ret;
}

/* ----------------------------------------------------------------- lease */

/* Says so when a cloud message names another signing key than the pinned
 * one: a cloud instance with another sign_key (a rotation half done). */
static void explain_signer(const uint8_t cloud_pub[65], const uint8_t *in, size_t len)
{
    otpca_cose_sign1 cs;
    uint8_t pinned[OTPCA_KID_LEN];
    char got[2 * OTPCA_KID_LEN + 1], want[2 * OTPCA_KID_LEN + 1];
    if (otpca_cose_sign1_decode(in, len, &cs) || !cs.kid.p || cs.kid.len != OTPCA_KID_LEN)
        return;
    otpca_p256_kid(cloud_pub, pinned);
    if (!memcmp(cs.kid.p, pinned, OTPCA_KID_LEN))
        return;
    for (size_t i = 0; i < OTPCA_KID_LEN; i++) {
        snprintf(got + 2 * i, 3, "%02x", cs.kid.p[i]);
        snprintf(want + 2 * i, 3, "%02x", pinned[i]);
    }
    log_error("cloud client: signed by the cloud key with kid %s, but cloud_sign_key pins kid %s: this cloud "
              "instance uses another signing key (after a cloud key rotation: pin the key its sign_key has)",
              got, want);
}

otpca_err otpca_cloud_lease_check(const uint8_t cloud_pub[65], const char *manager_id, const uint8_t *nonce,
                                  const uint8_t *in, size_t len, otpca_cloud_lease *out)
{
    otpca_window_lease l;
    memset(out, 0, sizeof *out);
    if (len > sizeof out->raw)
        return OTPCA_ERR_PROTO_VALUE;
    otpca_err ret = open_cloud_signed(cloud_pub, &otpca_desc_window_lease, in, len, &l);
    if (ret)
        return ret;
    if (l.manager.len != strlen(manager_id) || memcmp(l.manager.p, manager_id, l.manager.len) != 0 ||
        (nonce && memcmp(l.nonce.p, nonce, OTPCA_NONCE_LEN) != 0) || l.not_after < l.not_before)
        return OTPCA_ERR_PROTO_VALUE;
    memcpy(out->window, l.window.p, 16);
    memcpy(out->operator_, l.operator_.p, l.operator_.len);
    out->not_before = l.not_before;
    out->not_after = l.not_after;
    out->max_enroll = l.max_enroll;
    out->offline = l.offline;
    if (l.scope.raw.p) {
        otpca_list_iter it;
        otpca_buf id;
        size_t used = 0;
        otpca_list_iter_init(&it, &l.scope);
        while (otpca_list_next(&it, NULL, &id) == OTPCA_ERR_OK && used + id.len + 2 < sizeof out->scope)
            used += (size_t)snprintf(out->scope + used, sizeof out->scope - used, "%s%.*s", used ? "," : "",
                                     (int)id.len, (const char *)id.p);
    }
    memcpy(out->raw, in, len);
    out->raw_len = len;
    return OTPCA_ERR_OK;
}

otpca_err otpca_cloud_window_open(otpca_cloud_client *c, const char *operator_id, uint32_t totp, uint64_t duration,
                                  uint64_t max_enroll, const char *const *scope, size_t nscope,
                                  otpca_cloud_lease *out)
{
    otpca_window_open m;
    uint8_t nonce[OTPCA_NONCE_LEN];
    otpca_buf ids[64];
    size_t len = 0;
    if (!operator_id || nscope > 64)
        return OTPCA_ERR_INVALID_ARG;
    otpca_err ret = otpca_random(nonce, sizeof nonce);
    if (ret)
        return ret;
    memset(&m, 0, sizeof m);
    m.nonce = (otpca_buf){nonce, sizeof nonce};
    m.time = (uint64_t)time(NULL);
    m.manager = str_buf(c->manager);
    m.operator_ = str_buf(operator_id);
    m.totp = totp;
    m.duration = duration;
    if (max_enroll) {
        m.max_enroll = max_enroll;
        m.present |= OTPCA_MSG_BIT(7);
    }
    for (size_t i = 0; i < nscope; i++)
        ids[i] = str_buf(scope[i]);
    if (nscope) {
        m.scope.items = ids;
        m.scope.count = nscope;
    }
    if ((ret = sign_request(c, &otpca_desc_window_open, &m, &len)) || (ret = request(c, c->req, len, 0)))
        return ret;
    ret = otpca_cloud_lease_check(c->cfg.cloud_sign_pub, c->manager, nonce, c->ans, c->ans_len, out);
    if (ret) {
        log_error("cloud client: the lease does not check out: %s", otpca_strerror(ret));
        explain_signer(c->cfg.cloud_sign_pub, c->ans, c->ans_len);
    }
    return ret;
}

/* ------------------------------------------------------------------ sync */

otpca_err otpca_cloud_batch_check(const uint8_t cloud_pub[65], const uint8_t window[16], const uint8_t *in, size_t len,
                                  otpca_sync_batch *out)
{
    otpca_err ret = open_cloud_signed(cloud_pub, &otpca_desc_sync_batch, in, len, out);
    if (ret)
        return ret;
    if (memcmp(out->window.p, window, 16) != 0) {
        memset(out, 0, sizeof *out);
        return OTPCA_ERR_PROTO_VALUE;
    }
    return OTPCA_ERR_OK;
}

/* Encodes the SyncRequest for (since, cursor) into c->req. */
static otpca_err sync_request(otpca_cloud_client *c, const uint8_t window[16], uint64_t since, uint64_t max,
                              const uint8_t *cursor, size_t cursor_len, size_t *len)
{
    otpca_sync_request r;
    memset(&r, 0, sizeof r);
    r.window = (otpca_buf){window, 16};
    r.since = since;
    if (max) {
        r.max = max;
        r.present |= OTPCA_MSG_BIT(3);
    }
    if (cursor_len)
        r.cursor = (otpca_buf){cursor, cursor_len};
    return otpca_msg_encode(&otpca_desc_sync_request, &r, c->req, OTPCA_MSG_CLOUD_MAX, len);
}

/* One batch ahead: once a batch checks out, the request for the next one
 * goes before fn applies this one, so that the cloud makes batch n + 1
 * while the manager writes batch n (a first sync of 100,000 devices spent
 * a third of its time waiting for the cloud, which waited for it the
 * rest). fn's batch lives in c->ans, which the next answer overwrites
 * only once fn has returned. */
otpca_err otpca_cloud_sync(otpca_cloud_client *c, const uint8_t window[16], uint64_t since, uint64_t max,
                           otpca_cloud_batch_fn fn, void *arg, uint64_t *to)
{
    uint8_t cursor[64];
    size_t cursor_len = 0, len = 0;
    uint64_t chunk = 0, deadline = 0;
    int ahead = 0; /* the request in c->req is sent, its answer not read */
    otpca_err ret = sync_request(c, window, since, max, NULL, 0, &len);
    if (ret)
        return ret;
    for (unsigned n = 0; n < SYNC_BATCHES_MAX; n++) {
        otpca_sync_batch b;
        if (ahead) {
            ahead = 0;
            ret = await_answer(c, deadline, 0);
            if (ret == OTPCA_ERR_TIMEOUT) /* the pipelined send's attempt is spent: the usual retries */
                ret = request(c, c->req, len, 0);
        } else {
            ret = request(c, c->req, len, 0);
        }
        if (ret)
            return ret;
        if ((ret = otpca_cloud_batch_check(c->cfg.cloud_sign_pub, window, c->ans, c->ans_len, &b))) {
            log_error("cloud client: a SyncBatch does not check out: %s", otpca_strerror(ret));
            return ret;
        }
        /* Progress, or the cloud is going round in circles. */
        if (b.from != since || (b.kind == OTPCA_SYNC_DELTA && b.more && b.to <= since) ||
            (b.kind == OTPCA_SYNC_SNAPSHOT && cursor_len && b.chunk != chunk) ||
            (b.kind == OTPCA_SYNC_SNAPSHOT && b.more && (b.cursor.p ? b.cursor.len > sizeof cursor : b.to == 0))) {
            log_error("cloud client: a SyncBatch does not follow from the request");
            return OTPCA_ERR_PROTO_VALUE;
        }
        int last = 0;
        if (b.kind == OTPCA_SYNC_SNAPSHOT && b.more && b.cursor.p) {
            memcpy(cursor, b.cursor.p, b.cursor.len);
            cursor_len = b.cursor.len;
            chunk = b.chunk + 1;
        } else {
            /* A delta, or a snapshot's last chunk: `more` asks again with
             * `to` (after a snapshot: for the devices changed while it was
             * sent). */
            cursor_len = 0;
            since = b.to;
            last = !b.more;
        }
        if (!last) {
            if ((ret = sync_request(c, window, since, max, cursor, cursor_len, &len)))
                return ret;
            ret = send_once(c, c->req, len, &deadline);
            if (ret && ret != OTPCA_ERR_TIMEOUT)
                return ret;
            ahead = !ret; /* not sent: request() sends it after fn */
        }
        if ((ret = fn(arg, &b, c->ans, c->ans_len))) {
            if (ahead)
                disconnect(c); /* its answer must not be taken for the next request's */
            return ret;
        }
        if (last) {
            *to = since;
            return OTPCA_ERR_OK;
        }
    }
    if (ahead)
        disconnect(c);
    return OTPCA_ERR_PROTO_VALUE;
}

/* --------------------------------------------------------------- records */

static otpca_err check_ack(otpca_cloud_client *c, const uint8_t window[16], otpca_record_ack *a)
{
    otpca_err ret = open_cloud_signed(c->cfg.cloud_sign_pub, &otpca_desc_record_ack, c->ans, c->ans_len, a);
    if (!ret && memcmp(a->window.p, window, 16) != 0)
        ret = OTPCA_ERR_PROTO_VALUE;
    if (ret)
        log_error("cloud client: a RecordAck does not check out: %s", otpca_strerror(ret));
    return ret;
}

/* Marks mark[i] for each id of list that is records[i]'s id. */
static void mark_ids(const otpca_list *list, const otpca_record *records, size_t n, uint8_t *mark)
{
    otpca_list_iter it;
    otpca_buf id;
    otpca_list_iter_init(&it, list);
    while (otpca_list_next(&it, NULL, &id) == OTPCA_ERR_OK)
        for (size_t i = 0; i < n; i++)
            if (id.len == 16 && records[i].id.len == 16 && !memcmp(id.p, records[i].id.p, 16))
                mark[i] = 1;
}

otpca_err otpca_cloud_upload(otpca_cloud_client *c, const uint8_t window[16], const otpca_record *records, size_t n,
                             uint8_t *acked, uint8_t *flagged)
{
    otpca_record_upload u;
    otpca_record_ack a;
    size_t len = 0;
    if (n > 256 || !acked || !flagged)
        return OTPCA_ERR_INVALID_ARG;
    memset(acked, 0, n);
    memset(flagged, 0, n);
    memset(&u, 0, sizeof u);
    u.window = (otpca_buf){window, 16};
    u.manager = str_buf(c->manager);
    static const uint8_t none[1];
    u.records.items = n ? (const void *)records : (const void *)none;
    u.records.count = n;
    otpca_err ret = sign_request(c, &otpca_desc_record_upload, &u, &len);
    if (!ret)
        ret = request(c, c->req, len, 0);
    if (!ret)
        ret = check_ack(c, window, &a);
    if (ret)
        return ret;
    mark_ids(&a.ids, records, n, acked);
    if (a.flagged.raw.p)
        mark_ids(&a.flagged, records, n, flagged);
    return OTPCA_ERR_OK;
}

otpca_err otpca_cloud_window_close(otpca_cloud_client *c, const uint8_t window[16], uint64_t enrolled,
                                   uint64_t rejected)
{
    otpca_window_close m;
    otpca_record_ack a;
    size_t len = 0;
    memset(&m, 0, sizeof m);
    m.window = (otpca_buf){window, 16};
    m.time = (uint64_t)time(NULL);
    m.enrolled = enrolled;
    m.rejected = rejected;
    otpca_err ret = sign_request(c, &otpca_desc_window_close, &m, &len);
    if (!ret)
        ret = request(c, c->req, len, 0);
    if (!ret)
        ret = check_ack(c, window, &a);
    return ret;
}

otpca_err otpca_cloud_crl_publish(otpca_cloud_client *c, const uint8_t window[16], uint64_t number,
                                  const uint8_t *der, size_t len)
{
    otpca_crl_publish m;
    otpca_record_ack a;
    size_t n = 0;
    memset(&m, 0, sizeof m);
    m.window = (otpca_buf){window, 16};
    m.manager = (otpca_buf){(const uint8_t *)c->cfg.manager_id, strlen(c->cfg.manager_id)};
    m.number = number;
    m.crl = (otpca_buf){der, len};
    otpca_err ret = sign_request(c, &otpca_desc_crl_publish, &m, &n);
    if (!ret)
        ret = request(c, c->req, n, 0);
    if (!ret)
        ret = check_ack(c, window, &a);
    return ret;
}

/* --------------------------------------------------------------- notices */

otpca_err otpca_cloud_notice_wait(otpca_cloud_client *c, int timeout_ms, otpca_notice *out, char *serial,
                                  size_t serial_cap, unsigned *dropped)
{
    if (!c->nsub || !serial || serial_cap < 65)
        return OTPCA_ERR_INVALID_ARG;
    if (!c->sub) {
        int64_t max = OTPCA_MSG_CLOUD_MAX;
        c->sub = zmq_socket(c->zctx, ZMQ_SUB);
        if (!c->sub)
            return OTPCA_ERR_IO;
        curve_client(c, c->sub);
        zmq_setsockopt(c->sub, ZMQ_MAXMSGSIZE, &max, sizeof max);
        zmq_setsockopt(c->sub, ZMQ_SUBSCRIBE, "", 0);
        /* Every instance publishes every change: listen to all of them. */
        for (size_t i = 0; i < c->nsub; i++)
            if (zmq_connect(c->sub, c->sub_ep[i]) != 0) {
                log_error("cloud client: cannot connect to %s: %s", c->sub_ep[i], zmq_strerror(zmq_errno()));
                zmq_close(c->sub);
                c->sub = NULL;
                return OTPCA_ERR_CONFIG;
            }
    }
    uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t now = mono_ms();
        zmq_pollitem_t item = {c->sub, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, now >= deadline ? 0 : (long)(deadline - now));
        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc <= 0)
            return rc == 0 ? OTPCA_ERR_TIMEOUT : OTPCA_ERR_IO;
        int n = zmq_recv(c->sub, c->ans, OTPCA_MSG_CLOUD_MAX, 0);
        if (n < 0)
            return OTPCA_ERR_IO;
        if (n <= OTPCA_MSG_CLOUD_MAX &&
            open_cloud_signed(c->cfg.cloud_sign_pub, &otpca_desc_notice, c->ans, (size_t)n, out) == OTPCA_ERR_OK) {
            memcpy(serial, out->serial.p, out->serial.len);
            serial[out->serial.len] = '\0';
            out->serial = (otpca_buf){(const uint8_t *)serial, out->serial.len};
            return OTPCA_ERR_OK;
        }
        if (dropped)
            (*dropped)++;
    }
}

otpca_err otpca_cloud_raw(otpca_cloud_client *c, const uint8_t *req, size_t len, uint8_t *ans, size_t cap,
                          size_t *ans_len)
{
    otpca_err ret = request(c, req, len, 1);
    if (ret)
        return ret;
    if (c->ans_len > cap)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    memcpy(ans, c->ans, c->ans_len);
    *ans_len = c->ans_len;
    return OTPCA_ERR_OK;
}
