/*
 * The node HAL on POSIX (posix.h): token operations through
 * libotpca-token (keys found by their CKA_ID, which is the protocol's key
 * id) or a software key file, flash as a file image, a ZeroMQ DEALER to
 * the manager, the host clock and otpca's log; and the loop that drives a
 * core flow over them.
 */
#define _GNU_SOURCE
#include "otpca/node/posix.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include "otpca/common/hex.h"
#include "otpca/common/log.h"
#include "otpca/common/secmem.h"
#include "otpca/proto/p256.h"
#include "otpca/token/rig.h"

#define SOFT_KEYS_MAX 4
#define RUN_ITERATIONS_MAX 10000

struct otpca_node_posix {
    otpca_node_hal hal;
    char serial[65];
    /* token */
    otpca_token_t *tok;
    otpca_obj_t seed;
    bool sha256;
    /* or software keys */
    char *soft_path;
    otpca_p256_soft soft[SOFT_KEYS_MAX];
    size_t n_soft;
    uint8_t soft_seed[64];
    size_t soft_seed_len;
    /* flash, transport */
    int flash_fd;
    uint32_t flash_size;
    void *zctx, *sock;
    bool own_zctx;
};

uint64_t otpca_node_posix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- token ---- */

static otpca_err tok_key(otpca_node_posix *p, const uint8_t kid[8], otpca_obj_t *key)
{
    return otpca_token_find(p->tok, OTPCA_OBJ_PRIVATE_KEY, NULL, kid, OTPCA_NODE_KID_LEN, key);
}

static otpca_p256_soft *soft_key(otpca_node_posix *p, const uint8_t kid[8])
{
    uint8_t k[8];
    for (size_t i = 0; i < p->n_soft; i++) {
        otpca_p256_kid(p->soft[i].pub, k);
        if (!memcmp(k, kid, 8))
            return &p->soft[i];
    }
    return NULL;
}

static otpca_err hal_sign(void *ctx, const uint8_t kid[8], const uint8_t digest[32], uint8_t sig[64])
{
    otpca_node_posix *p = ctx;
    otpca_obj_t key;
    size_t len = 64;
    if (!p->tok) {
        otpca_p256_soft *k = soft_key(p, kid);
        return k ? otpca_p256_soft_sign(k, digest, sig) : OTPCA_ERR_OBJECT_NOT_FOUND;
    }
    otpca_err ret = tok_key(p, kid, &key);
    return ret ? ret : otpca_token_sign_digest(p->tok, key, digest, 32, OTPCA_SIG_RAW, sig, &len);
}

static otpca_err hal_ecdh(void *ctx, const uint8_t kid[8], const uint8_t peer[65], uint8_t z[32])
{
    otpca_node_posix *p = ctx;
    otpca_obj_t key;
    if (!p->tok) {
        otpca_p256_soft *k = soft_key(p, kid);
        return k ? otpca_p256_soft_ecdh(k, peer, z) : OTPCA_ERR_OBJECT_NOT_FOUND;
    }
    otpca_err ret = tok_key(p, kid, &key);
    return ret ? ret : otpca_token_ecdh(p->tok, key, peer, 65, z);
}

static otpca_err hal_hmac(void *ctx, const uint8_t *msg, size_t msg_len, uint8_t *mac, size_t *mac_len)
{
    otpca_node_posix *p = ctx;
    if (p->tok)
        return otpca_token_hmac(p->tok, p->seed, p->sha256 ? OTPCA_OTP_SHA256 : OTPCA_OTP_SHA1, msg, msg_len, mac,
                                mac_len);
    Hmac h;
    int type = p->sha256 ? WC_SHA256 : WC_SHA;
    size_t need = p->sha256 ? 32 : 20;
    otpca_err ret = OTPCA_ERR_CRYPTO;
    if (*mac_len < need)
        return OTPCA_ERR_BUFFER_TOO_SMALL;
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return OTPCA_ERR_CRYPTO;
    if (wc_HmacSetKey(&h, type, p->soft_seed, (word32)p->soft_seed_len) == 0 &&
        wc_HmacUpdate(&h, msg, (word32)msg_len) == 0 && wc_HmacFinal(&h, mac) == 0) {
        *mac_len = need;
        ret = OTPCA_ERR_OK;
    }
    wc_HmacFree(&h);
    otpca_memzero(&h, sizeof h);
    return ret;
}

static otpca_err soft_save(otpca_node_posix *p)
{
    char tmp[4200], hex[2 * 64 + 1];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->soft_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return OTPCA_ERR_IO;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return OTPCA_ERR_IO;
    }
    for (size_t i = 0; i < p->soft_seed_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", p->soft_seed[i]);
    fprintf(f, "seed = %s\n", hex);
    for (size_t k = 0; k < p->n_soft; k++) {
        for (size_t i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", p->soft[k].priv[i]);
        fprintf(f, "key = %s\n", hex);
    }
    otpca_memzero(hex, sizeof hex);
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, p->soft_path) != 0) {
        unlink(tmp);
        return OTPCA_ERR_IO;
    }
    return OTPCA_ERR_OK;
}

static otpca_err hal_keygen(void *ctx, uint8_t pub[65])
{
    otpca_node_posix *p = ctx;
    otpca_err ret;
    if (!p->tok) {
        if (p->n_soft >= SOFT_KEYS_MAX)
            return OTPCA_ERR_BUFFER_TOO_SMALL;
        if ((ret = otpca_p256_soft_generate(&p->soft[p->n_soft])) != OTPCA_ERR_OK)
            return ret;
        p->n_soft++;
        if ((ret = soft_save(p)) != OTPCA_ERR_OK) {
            otpca_p256_soft_wipe(&p->soft[--p->n_soft]);
            return ret;
        }
        memcpy(pub, p->soft[p->n_soft - 1].pub, 65);
        return OTPCA_ERR_OK;
    }
    uint8_t r[4];
    char label[64];
    otpca_obj_t priv;
    if ((ret = otpca_token_random(p->tok, r, sizeof r)) != OTPCA_ERR_OK)
        return ret;
    snprintf(label, sizeof label, "%s-%02x%02x%02x%02x", OTPCA_RIG_DEVICE_KEY, r[0], r[1], r[2], r[3]);
    if ((ret = otpca_token_keygen_p256(p->tok, label, NULL, 0, &priv, NULL)) != OTPCA_ERR_OK)
        return ret;
    return otpca_token_pubkey_sec1(p->tok, priv, pub);
}

static otpca_err hal_key_destroy(void *ctx, const uint8_t kid[8])
{
    otpca_node_posix *p = ctx;
    otpca_err ret;
    otpca_obj_t key;
    if (!p->tok) {
        otpca_p256_soft *k = soft_key(p, kid);
        if (!k)
            return OTPCA_ERR_OBJECT_NOT_FOUND;
        size_t i = (size_t)(k - p->soft);
        otpca_p256_soft_wipe(k);
        memmove(&p->soft[i], &p->soft[i + 1], (p->n_soft - i - 1) * sizeof p->soft[0]);
        p->n_soft--;
        return soft_save(p);
    }
    if ((ret = tok_key(p, kid, &key)) != OTPCA_ERR_OK)
        return ret;
    if ((ret = otpca_token_destroy_object(p->tok, key)) != OTPCA_ERR_OK)
        return ret;
    if (otpca_token_find(p->tok, OTPCA_OBJ_PUBLIC_KEY, NULL, kid, OTPCA_NODE_KID_LEN, &key) == OTPCA_ERR_OK)
        ret = otpca_token_destroy_object(p->tok, key);
    return ret;
}

static otpca_err hal_random(void *ctx, uint8_t *buf, size_t len)
{
    otpca_node_posix *p = ctx;
    return p->tok ? otpca_token_random(p->tok, buf, len) : otpca_random(buf, len);
}

static uint64_t hal_now(void *ctx)
{
    (void)ctx;
    return otpca_node_posix_now();
}

/* ---- flash: a file image ---- */

static otpca_err hal_flash_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    otpca_node_posix *p = ctx;
    if ((uint64_t)off + len > p->flash_size)
        return OTPCA_ERR_INVALID_ARG;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(p->flash_fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return OTPCA_ERR_IO;
        done += (size_t)n;
    }
    return OTPCA_ERR_OK;
}

static otpca_err write_all(int fd, const uint8_t *buf, size_t len, uint32_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return OTPCA_ERR_IO;
        done += (size_t)n;
    }
    return fdatasync(fd) == 0 ? OTPCA_ERR_OK : OTPCA_ERR_IO;
}

static otpca_err hal_flash_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    otpca_node_posix *p = ctx;
    uint8_t cur[512];
    if ((uint64_t)off + len > p->flash_size)
        return OTPCA_ERR_INVALID_ARG;
    /* NOR semantics: programming only clears bits. */
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof cur ? len - done : sizeof cur;
        otpca_err ret = hal_flash_read(ctx, off + (uint32_t)done, cur, n);
        if (ret)
            return ret;
        for (size_t i = 0; i < n; i++)
            cur[i] &= buf[done + i];
        if ((ret = write_all(p->flash_fd, cur, n, off + (uint32_t)done)) != OTPCA_ERR_OK)
            return ret;
        done += n;
    }
    otpca_memzero(cur, sizeof cur);
    return OTPCA_ERR_OK;
}

static otpca_err hal_flash_erase(void *ctx, uint32_t off, size_t len)
{
    otpca_node_posix *p = ctx;
    uint8_t ff[512];
    if ((uint64_t)off + len > p->flash_size)
        return OTPCA_ERR_INVALID_ARG;
    memset(ff, 0xff, sizeof ff);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof ff ? len - done : sizeof ff;
        otpca_err ret = write_all(p->flash_fd, ff, n, off + (uint32_t)done);
        if (ret)
            return ret;
        done += n;
    }
    return OTPCA_ERR_OK;
}

/* ---- transport ---- */

static otpca_err hal_send(void *ctx, const uint8_t *buf, size_t len)
{
    otpca_node_posix *p = ctx;
    return zmq_send(p->sock, buf, len, ZMQ_DONTWAIT) == (int)len ? OTPCA_ERR_OK : OTPCA_ERR_IO;
}

static otpca_err hal_recv(void *ctx, uint8_t *buf, size_t cap, size_t *len, int timeout_ms)
{
    otpca_node_posix *p = ctx;
    zmq_pollitem_t it = {p->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&it, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (rc < 0)
        return errno == EINTR ? OTPCA_ERR_TIMEOUT : OTPCA_ERR_IO;
    if (rc == 0)
        return OTPCA_ERR_TIMEOUT;
    int n = zmq_recv(p->sock, buf, cap, ZMQ_DONTWAIT);
    if (n < 0)
        return OTPCA_ERR_TIMEOUT;
    if ((size_t)n > cap)
        return OTPCA_ERR_CBOR_LIMIT; /* oversize frame: dropped undecoded */
    *len = (size_t)n;
    return OTPCA_ERR_OK;
}

static void hal_log(void *ctx, otpca_node_log_level level, const char *msg)
{
    otpca_node_posix *p = ctx;
    static const otpca_log_level map[] = {OTPCA_LOG_DEBUG, OTPCA_LOG_INFO, OTPCA_LOG_WARN, OTPCA_LOG_ERROR};
    otpca_log(map[level <= OTPCA_NODE_LOG_ERROR ? level : OTPCA_NODE_LOG_ERROR], "%s: %s", p->serial, msg);
}

/* ---- set-up ---- */

static otpca_err soft_load(otpca_node_posix *p)
{
    FILE *f = fopen(p->soft_path, "r");
    char line[256];
    otpca_err ret = OTPCA_ERR_OK;
    if (!f) {
        if (errno != ENOENT)
            return OTPCA_ERR_IO;
        /* A new soft node: a 20-byte TOTP seed and a device key. */
        p->soft_seed_len = 20;
        if ((ret = otpca_random(p->soft_seed, p->soft_seed_len)) != OTPCA_ERR_OK ||
            (ret = otpca_p256_soft_generate(&p->soft[0])) != OTPCA_ERR_OK)
            return ret;
        p->n_soft = 1;
        return soft_save(p);
    }
    while (ret == OTPCA_ERR_OK && fgets(line, sizeof line, f)) {
        uint8_t v[64];
        size_t len = 0;
        line[strcspn(line, "\r\n")] = '\0';
        if (!strncmp(line, "seed = ", 7)) {
            ret = otpca_hex_decode(line + 7, strlen(line + 7), p->soft_seed, sizeof p->soft_seed, &p->soft_seed_len);
        } else if (!strncmp(line, "key = ", 6)) {
            if (p->n_soft >= SOFT_KEYS_MAX)
                ret = OTPCA_ERR_CONFIG;
            else if ((ret = otpca_hex_decode(line + 6, strlen(line + 6), v, sizeof v, &len)) == OTPCA_ERR_OK)
                ret = len == 32 ? otpca_p256_soft_import(&p->soft[p->n_soft++], v) : OTPCA_ERR_CONFIG;
        } else if (line[0] && line[0] != '#') {
            ret = OTPCA_ERR_CONFIG;
        }
        otpca_memzero(v, sizeof v);
    }
    otpca_memzero(line, sizeof line);
    fclose(f);
    if (ret == OTPCA_ERR_OK && (p->soft_seed_len < 16 || p->n_soft == 0))
        ret = OTPCA_ERR_CONFIG;
    return ret;
}

otpca_err otpca_node_posix_new(const otpca_node_posix_config *cfg, otpca_node_posix **out)
{
    otpca_err ret = OTPCA_ERR_INVALID_ARG;
    otpca_p11_uri uri;
    *out = NULL;
    memset(&uri, 0, sizeof uri);
    if (!cfg->serial || strlen(cfg->serial) > 64 || !cfg->flash_path || !cfg->endpoint ||
        cfg->flash_size < 2 * OTPCA_NODE_SLOT_SIZE || (!cfg->token_uri == !cfg->soft_key_file) ||
        (cfg->token_uri && !cfg->p11))
        return OTPCA_ERR_INVALID_ARG;
    otpca_node_posix *p = calloc(1, sizeof *p);
    if (!p)
        return OTPCA_ERR_NOMEM;
    p->flash_fd = -1;
    snprintf(p->serial, sizeof p->serial, "%s", cfg->serial);
    p->sha256 = cfg->hmac_sha256;
    if (cfg->token_uri) {
        if ((ret = otpca_p11_uri_parse(cfg->token_uri, &uri)) != OTPCA_ERR_OK ||
            (ret = otpca_token_open_uri(cfg->p11, &uri, NULL, &p->tok)) != OTPCA_ERR_OK ||
            (ret = otpca_token_find(p->tok, OTPCA_OBJ_SECRET_KEY, OTPCA_RIG_DEVICE_SEED, NULL, 0, &p->seed)) !=
                OTPCA_ERR_OK)
            goto out;
    } else {
        if (!(p->soft_path = strdup(cfg->soft_key_file))) {
            ret = OTPCA_ERR_NOMEM;
            goto out;
        }
        if ((ret = soft_load(p)) != OTPCA_ERR_OK)
            goto out;
    }
    p->flash_size = cfg->flash_size;
    p->flash_fd = open(cfg->flash_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct stat st;
    if (p->flash_fd < 0 || fstat(p->flash_fd, &st) != 0) {
        ret = OTPCA_ERR_IO;
        goto out;
    }
    if ((uint64_t)st.st_size < cfg->flash_size) {
        /* A new image: erased flash. */
        p->hal.ctx = p;
        if ((ret = hal_flash_erase(p, (uint32_t)st.st_size, cfg->flash_size - (size_t)st.st_size)) != OTPCA_ERR_OK)
            goto out;
    }
    p->zctx = cfg->zmq_ctx;
    if (!p->zctx) {
        p->zctx = zmq_ctx_new();
        p->own_zctx = true;
    }
    int linger = 0;
    int64_t maxsize = 64 * 1024;
    if (!p->zctx || !(p->sock = zmq_socket(p->zctx, ZMQ_DEALER)) ||
        zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(p->sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize) != 0 ||
        zmq_connect(p->sock, cfg->endpoint) != 0) {
        ret = OTPCA_ERR_IO;
        goto out;
    }
    p->hal = (otpca_node_hal){.ctx = p,
                              .sign = hal_sign,
                              .ecdh = hal_ecdh,
                              .hmac = hal_hmac,
                              .keygen = hal_keygen,
                              .key_destroy = hal_key_destroy,
                              .random = hal_random,
                              .now_ms = hal_now,
                              .flash_read = hal_flash_read,
                              .flash_write = hal_flash_write,
                              .flash_erase = hal_flash_erase,
                              .send = hal_send,
                              .recv = hal_recv,
                              .log = hal_log};
    ret = OTPCA_ERR_OK;
out:
    otpca_p11_uri_clear(&uri);
    if (ret != OTPCA_ERR_OK)
        otpca_node_posix_destroy(&p);
    *out = p;
    return ret;
}

void otpca_node_posix_destroy(otpca_node_posix **pp)
{
    otpca_node_posix *p = pp ? *pp : NULL;
    if (!p)
        return;
    if (p->sock)
        zmq_close(p->sock);
    if (p->own_zctx && p->zctx)
        zmq_ctx_term(p->zctx);
    if (p->flash_fd >= 0)
        close(p->flash_fd);
    otpca_token_destroy(&p->tok);
    for (size_t i = 0; i < SOFT_KEYS_MAX; i++)
        otpca_p256_soft_wipe(&p->soft[i]);
    free(p->soft_path);
    otpca_memzero(p, sizeof *p);
    free(p);
    *pp = NULL;
}

const otpca_node_hal *otpca_node_posix_hal(otpca_node_posix *p)
{
    return &p->hal;
}

otpca_err otpca_node_posix_factory_pub(otpca_node_posix *p, uint8_t pub[65])
{
    otpca_obj_t key;
    otpca_err ret;
    if (!p->tok) {
        memcpy(pub, p->soft[0].pub, 65);
        return OTPCA_ERR_OK;
    }
    if ((ret = otpca_token_find(p->tok, OTPCA_OBJ_PRIVATE_KEY, OTPCA_RIG_DEVICE_KEY, NULL, 0, &key)) != OTPCA_ERR_OK)
        return ret;
    return otpca_token_pubkey_sec1(p->tok, key, pub);
}

otpca_err otpca_node_posix_run(otpca_node_posix *p, otpca_node_ctx *n, otpca_node_flow flow)
{
    static const char *const flows[] = {"none", "time", "enroll", "confirm", "rejoin", "keyupdate", "claim"};
    uint8_t buf[OTPCA_NODE_IN_MAX + 1];
    uint64_t now = otpca_node_posix_now(), deadline = 0;
    otpca_err ret = otpca_node_start(n, flow, now);
    if (ret)
        return ret;
    for (int i = 0; i < RUN_ITERATIONS_MAX; i++) {
        size_t len = 0;
        const uint8_t *o;
        now = otpca_node_posix_now();
        while ((o = otpca_node_output_buf(n, &len))) {
            /* A send that fails counts as a lost message: the core's timer resends. */
            if (hal_send(p, o, len) != OTPCA_ERR_OK)
                otpca_log(OTPCA_LOG_WARN, "%s: %s: send failed", p->serial, flows[flow]);
            otpca_node_output_ack(n, now);
        }
        otpca_node_state st = otpca_node_step(n, now, &deadline);
        if (st == OTPCA_NODE_DONE)
            return OTPCA_ERR_OK;
        if (st == OTPCA_NODE_FAILED)
            return otpca_node_last_error(n, NULL);
        if (st == OTPCA_NODE_SEND)
            continue;
        int wait = deadline > now ? (deadline - now > 60000 ? 60000 : (int)(deadline - now)) : 0;
        ret = hal_recv(p, buf, sizeof buf - 1, &len, wait);
        if (ret == OTPCA_ERR_OK) {
            ret = otpca_node_handle_input(n, buf, len, otpca_node_posix_now());
            if (ret != OTPCA_ERR_OK && ret != OTPCA_ERR_REFUSED)
                otpca_log(OTPCA_LOG_WARN, "%s: %s: answer dropped: %s", p->serial, flows[flow], otpca_strerror(ret));
        } else if (ret != OTPCA_ERR_TIMEOUT) {
            otpca_log(OTPCA_LOG_WARN, "%s: %s: receive: %s", p->serial, flows[flow], otpca_strerror(ret));
        }
    }
    return OTPCA_ERR_TIMEOUT;
}
