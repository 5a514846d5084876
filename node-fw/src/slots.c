/*
 * A/B credential slots on flash (slots.h): serialization of a credential
 * into a slot image with a generation counter and a SHA-256 trailer, the
 * choice of the current slot at boot, and the write order (erase the
 * inactive slot, program it, hash last) that makes a power cut at any
 * byte leave exactly one valid current credential, old or new.
 */
#include "otpca/node/slots.h"

#include <string.h>

#include "otpca/common/secmem.h"
#include "otpca/proto/p256.h"

#define SLOT_MAGIC "OTPS"
#define SLOT_VERSION 1
#define SLOT_HDR 16
#define SLOT_HASH 32

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Payload: cert_len (2) cert pub (65) mgr_kid (8) record (16) netkey_len (1) netkey epoch (4). */
static size_t payload_len(const otpca_node_cred *c)
{
    return 2u + c->cert_len + OTPCA_NODE_PUB_LEN + OTPCA_NODE_KID_LEN + 16u + 1u + c->netkey_len + 4u;
}

static size_t serialize(const otpca_node_cred *c, uint8_t *img)
{
    size_t n = SLOT_HDR, plen = payload_len(c);
    memcpy(img, SLOT_MAGIC, 4);
    img[4] = SLOT_VERSION;
    img[5] = c->flags;
    img[6] = img[7] = 0;
    put32(img + 8, c->generation);
    put32(img + 12, (uint32_t)plen);
    img[n++] = (uint8_t)c->cert_len;
    img[n++] = (uint8_t)(c->cert_len >> 8);
    memcpy(img + n, c->cert, c->cert_len);
    n += c->cert_len;
    memcpy(img + n, c->pub, OTPCA_NODE_PUB_LEN);
    n += OTPCA_NODE_PUB_LEN;
    memcpy(img + n, c->mgr_kid, OTPCA_NODE_KID_LEN);
    n += OTPCA_NODE_KID_LEN;
    memcpy(img + n, c->record, 16);
    n += 16;
    img[n++] = c->netkey_len;
    memcpy(img + n, c->netkey, c->netkey_len);
    n += c->netkey_len;
    put32(img + n, c->netkey_epoch);
    n += 4;
    otpca_sha256(img, n, img + n);
    return n + SLOT_HASH;
}

/* Checks a slot image (header, lengths, hash) and, if out is not NULL,
 * parses it. The image is in s->scratch. */
static otpca_err parse(const otpca_node_slots *s, otpca_node_cred *out, uint32_t *gen)
{
    const uint8_t *img = s->scratch;
    uint8_t h[SLOT_HASH];
    if (memcmp(img, SLOT_MAGIC, 4) != 0 || img[4] != SLOT_VERSION)
        return OTPCA_ERR_NOT_FOUND;
    uint32_t plen = get32(img + 12);
    if (plen > s->slot_size - SLOT_HDR - SLOT_HASH || plen < 2)
        return OTPCA_ERR_NOT_FOUND;
    otpca_sha256(img, SLOT_HDR + plen, h);
    if (!otpca_ct_equal(h, img + SLOT_HDR + plen, SLOT_HASH))
        return OTPCA_ERR_NOT_FOUND;
    *gen = get32(img + 8);
    /* The hash holds: the lengths inside were written by serialize(). Check them anyway. */
    const uint8_t *p = img + SLOT_HDR;
    size_t cl = (size_t)p[0] | (size_t)p[1] << 8;
    if (cl > OTPCA_NODE_CERT_MAX || 2 + cl + OTPCA_NODE_PUB_LEN + OTPCA_NODE_KID_LEN + 16 + 1 > plen)
        return OTPCA_ERR_NOT_FOUND;
    size_t nk = p[2 + cl + OTPCA_NODE_PUB_LEN + OTPCA_NODE_KID_LEN + 16];
    if (nk > OTPCA_NODE_NETKEY_MAX || 2 + cl + OTPCA_NODE_PUB_LEN + OTPCA_NODE_KID_LEN + 16 + 1 + nk + 4 != plen)
        return OTPCA_ERR_NOT_FOUND;
    if (!out)
        return OTPCA_ERR_OK;
    memset(out, 0, sizeof *out);
    out->generation = *gen;
    out->flags = img[5];
    out->cert_len = (uint16_t)cl;
    p += 2;
    memcpy(out->cert, p, cl);
    p += cl;
    memcpy(out->pub, p, OTPCA_NODE_PUB_LEN);
    p += OTPCA_NODE_PUB_LEN;
    memcpy(out->mgr_kid, p, OTPCA_NODE_KID_LEN);
    p += OTPCA_NODE_KID_LEN;
    memcpy(out->record, p, 16);
    p += 16;
    out->netkey_len = (uint8_t)nk;
    p++;
    memcpy(out->netkey, p, nk);
    p += nk;
    out->netkey_epoch = get32(p);
    return OTPCA_ERR_OK;
}

static uint32_t slot_off(const otpca_node_slots *s, int i)
{
    return s->base + (uint32_t)i * s->slot_size;
}

/* Reads slot i into scratch and checks it. */
static otpca_err read_slot(otpca_node_slots *s, int i, otpca_node_cred *out, uint32_t *gen)
{
    otpca_err ret = s->hal->flash_read(s->hal->ctx, slot_off(s, i), s->scratch, s->slot_size);
    if (ret)
        return ret;
    ret = parse(s, out, gen);
    if (out)
        otpca_memzero(s->scratch, s->slot_size);
    return ret;
}

otpca_err otpca_node_slots_init(otpca_node_slots *s, const otpca_node_hal *hal, uint32_t base, uint32_t slot_size,
                                uint8_t *scratch)
{
    uint32_t gen[2] = {0, 0};
    int valid[2];
    if (!s || !hal || !scratch || slot_size < OTPCA_NODE_SLOT_MIN || !hal->flash_read || !hal->flash_write ||
        !hal->flash_erase)
        return OTPCA_ERR_INVALID_ARG;
    memset(s, 0, sizeof *s);
    s->hal = hal;
    s->base = base;
    s->slot_size = slot_size;
    s->scratch = scratch;
    s->current = -1;
    for (int i = 0; i < 2; i++) {
        otpca_err ret = read_slot(s, i, NULL, &gen[i]);
        if (ret != OTPCA_ERR_OK && ret != OTPCA_ERR_NOT_FOUND)
            return ret;
        valid[i] = ret == OTPCA_ERR_OK;
    }
    otpca_memzero(scratch, slot_size);
    /* Highest generation wins (serial-number arithmetic, so the counter may wrap). */
    if (valid[0] && valid[1])
        s->current = (int32_t)(gen[1] - gen[0]) > 0 ? 1 : 0;
    else if (valid[0] || valid[1])
        s->current = valid[0] ? 0 : 1;
    if (s->current >= 0)
        s->generation = gen[s->current];
    return OTPCA_ERR_OK;
}

otpca_err otpca_node_slots_load(otpca_node_slots *s, otpca_node_cred *out)
{
    uint32_t gen = 0;
    if (s->current < 0)
        return OTPCA_ERR_NOT_FOUND;
    return read_slot(s, s->current, out, &gen);
}

otpca_err otpca_node_slots_load_previous(otpca_node_slots *s, otpca_node_cred *out)
{
    uint32_t gen = 0;
    if (s->current < 0)
        return OTPCA_ERR_NOT_FOUND;
    return read_slot(s, 1 - s->current, out, &gen);
}

otpca_err otpca_node_slots_commit(otpca_node_slots *s, otpca_node_cred *c)
{
    otpca_err ret;
    if (c->cert_len > OTPCA_NODE_CERT_MAX || c->netkey_len > OTPCA_NODE_NETKEY_MAX ||
        SLOT_HDR + payload_len(c) + SLOT_HASH > s->slot_size)
        return OTPCA_ERR_INVALID_ARG;
    int target = s->current < 0 ? 0 : 1 - s->current;
    c->generation = s->current < 0 ? 1 : s->generation + 1;
    size_t n = serialize(c, s->scratch);
    uint32_t off = slot_off(s, target);
    if ((ret = s->hal->flash_erase(s->hal->ctx, off, s->slot_size)) != OTPCA_ERR_OK)
        goto out;
    /* Header and payload first, the hash last: the slot is valid only once complete. */
    if ((ret = s->hal->flash_write(s->hal->ctx, off, s->scratch, n - SLOT_HASH)) != OTPCA_ERR_OK)
        goto out;
    if ((ret = s->hal->flash_write(s->hal->ctx, off + (uint32_t)(n - SLOT_HASH), s->scratch + n - SLOT_HASH,
                                   SLOT_HASH)) != OTPCA_ERR_OK)
        goto out;
    /* Read back: what counts is what the flash holds. */
    uint32_t gen = 0;
    if ((ret = read_slot(s, target, NULL, &gen)) != OTPCA_ERR_OK || gen != c->generation) {
        ret = OTPCA_ERR_IO;
        goto out;
    }
    s->current = target;
    s->generation = c->generation;
    ret = OTPCA_ERR_OK;
out:
    otpca_memzero(s->scratch, s->slot_size);
    return ret;
}

otpca_err otpca_node_slots_wipe(otpca_node_slots *s)
{
    otpca_err ret = OTPCA_ERR_OK;
    for (int i = 0; i < 2 && ret == OTPCA_ERR_OK; i++)
        ret = s->hal->flash_erase(s->hal->ctx, slot_off(s, i), s->slot_size);
    if (ret == OTPCA_ERR_OK)
        s->current = -1;
    return ret;
}
