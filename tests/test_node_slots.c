/*
 * The node's A/B credential store (node-fw slots.h) on a RAM flash that
 * behaves like NOR (erase to 0xFF, programming only clears bits) and can
 * lose power after any number of bytes: a power cut at every byte offset
 * of a slot's erase and of its write leaves exactly one valid current
 * credential after reboot, the old one or the new one, never none; the
 * same for the confirm rewrite; a corrupted byte makes a slot invalid.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "otpca/node/slots.h"

#define SLOT 4096u
#define FLASH (2 * SLOT)

typedef struct ramflash {
    uint8_t mem[FLASH];
    long budget; /* bytes that may still change; < 0: unlimited */
    int cut;     /* the power went */
} ramflash;

static ramflash rf;

static bool spend(void)
{
    if (rf.cut)
        return false;
    if (rf.budget == 0) {
        rf.cut = 1;
        return false;
    }
    if (rf.budget > 0)
        rf.budget--;
    return true;
}

static otpca_err rf_read(void *ctx, uint32_t off, uint8_t *p, size_t len)
{
    (void)ctx;
    if (rf.cut)
        return OTPCA_ERR_IO;
    cr_assert_leq(off + len, FLASH);
    memcpy(p, rf.mem + off, len);
    return OTPCA_ERR_OK;
}

static otpca_err rf_write(void *ctx, uint32_t off, const uint8_t *p, size_t len)
{
    (void)ctx;
    cr_assert_leq(off + len, FLASH);
    for (size_t i = 0; i < len; i++) {
        if (!spend())
            return OTPCA_ERR_IO;
        rf.mem[off + i] &= p[i];
    }
    return OTPCA_ERR_OK;
}

static otpca_err rf_erase(void *ctx, uint32_t off, size_t len)
{
    (void)ctx;
    cr_assert_leq(off + len, FLASH);
    cr_assert_eq(off % SLOT, 0);
    for (size_t i = 0; i < len; i++) {
        if (!spend())
            return OTPCA_ERR_IO;
        rf.mem[off + i] = 0xff;
    }
    return OTPCA_ERR_OK;
}

static const otpca_node_hal hal = {.flash_read = rf_read, .flash_write = rf_write, .flash_erase = rf_erase};
static uint8_t scratch[SLOT];

static void make_cred(otpca_node_cred *c, uint8_t tag, size_t cert_len)
{
    memset(c, 0, sizeof *c);
    c->cert_len = (uint16_t)cert_len;
    for (size_t i = 0; i < cert_len; i++)
        c->cert[i] = (uint8_t)(tag + i * 7);
    memset(c->pub, tag, sizeof c->pub);
    c->pub[0] = 4;
    memset(c->mgr_kid, tag ^ 0x5a, sizeof c->mgr_kid);
    memset(c->record, tag ^ 0x33, sizeof c->record);
    c->netkey_len = 16;
    memset(c->netkey, tag ^ 0xc3, 16);
    c->netkey_epoch = tag;
}

/* Same content (generation aside)? */
static bool same(const otpca_node_cred *a, const otpca_node_cred *b)
{
    return a->flags == b->flags && a->cert_len == b->cert_len && !memcmp(a->cert, b->cert, a->cert_len) &&
           !memcmp(a->pub, b->pub, 65) && !memcmp(a->mgr_kid, b->mgr_kid, 8) && !memcmp(a->record, b->record, 16) &&
           a->netkey_len == b->netkey_len && !memcmp(a->netkey, b->netkey, a->netkey_len) &&
           a->netkey_epoch == b->netkey_epoch;
}

/* Boot: the store finds one current credential; which one. */
static int boot(const otpca_node_cred *old, const otpca_node_cred *nw, otpca_node_cred *got)
{
    otpca_node_slots s;
    rf.cut = 0;
    rf.budget = -1;
    cr_assert_eq(otpca_node_slots_init(&s, &hal, 0, SLOT, scratch), OTPCA_ERR_OK);
    otpca_err e = otpca_node_slots_load(&s, got);
    if (e != OTPCA_ERR_OK)
        return 0;
    if (old && same(got, old))
        return 1;
    if (nw && same(got, nw))
        return 2;
    return 3;
}

TestSuite(node_slots, .timeout = 120);

Test(node_slots, empty_flash_has_no_credential_then_one)
{
    otpca_node_slots s;
    otpca_node_cred a, got;
    memset(rf.mem, 0xff, sizeof rf.mem);
    rf.budget = -1;
    rf.cut = 0;
    cr_assert_eq(otpca_node_slots_init(&s, &hal, 0, SLOT, scratch), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_slots_load(&s, &got), OTPCA_ERR_NOT_FOUND);
    make_cred(&a, 1, 500);
    cr_assert_eq(otpca_node_slots_commit(&s, &a), OTPCA_ERR_OK);
    cr_expect_eq(a.generation, 1);
    cr_assert_eq(boot(&a, NULL, &got), 1);
    cr_expect_eq(got.generation, 1);
}

Test(node_slots, a_slot_too_small_is_refused)
{
    otpca_node_slots s;
    cr_expect_eq(otpca_node_slots_init(&s, &hal, 0, 1024, scratch), OTPCA_ERR_INVALID_ARG);
}

/* A power cut after every possible number of bytes of a commit (erase of
 * the inactive slot, then its write): after reboot the old credential or
 * the new one is current, never none, never a mix; and the new one only
 * once the commit has completed. */
static void sweep(size_t old_len, size_t new_len, int old_gens)
{
    otpca_node_slots s;
    otpca_node_cred old, nw, got, base[2];
    static uint8_t image[FLASH];
    memset(rf.mem, 0xff, sizeof rf.mem);
    rf.budget = -1;
    rf.cut = 0;
    cr_assert_eq(otpca_node_slots_init(&s, &hal, 0, SLOT, scratch), OTPCA_ERR_OK);
    /* Some history, so that both slots hold something. */
    for (int g = 0; g < old_gens; g++) {
        make_cred(&base[g & 1], (uint8_t)(10 + g), old_len);
        cr_assert_eq(otpca_node_slots_commit(&s, &base[g & 1]), OTPCA_ERR_OK);
    }
    make_cred(&old, (uint8_t)(10 + old_gens), old_len);
    cr_assert_eq(otpca_node_slots_commit(&s, &old), OTPCA_ERR_OK);
    memcpy(image, rf.mem, sizeof image);
    make_cred(&nw, 99, new_len);
    /* Bytes the full commit changes: erase (SLOT) + the new image. */
    long total = -1;
    {
        rf.budget = 1L << 30;
        cr_assert_eq(otpca_node_slots_commit(&s, &nw), OTPCA_ERR_OK);
        total = (1L << 30) - rf.budget;
        cr_assert_eq(boot(&old, &nw, &got), 2);
    }
    cr_assert_gt(total, (long)SLOT);
    long olds = 0, news = 0;
    for (long cut = 0; cut <= total; cut++) {
        memcpy(rf.mem, image, sizeof image);
        rf.cut = 0;
        rf.budget = -1;
        cr_assert_eq(otpca_node_slots_init(&s, &hal, 0, SLOT, scratch), OTPCA_ERR_OK);
        rf.budget = cut;
        otpca_node_cred c = nw;
        otpca_err e = otpca_node_slots_commit(&s, &c);
        int which = boot(&old, &nw, &got);
        cr_assert(which == 1 || which == 2, "power cut after %ld of %ld bytes: %s current credential", cut, total,
                  which == 0 ? "no" : "a corrupt");
        if (e == OTPCA_ERR_OK)
            cr_assert_eq(which, 2, "a completed commit is current");
        else
            cr_assert_eq(which, 1, "cut after %ld of %ld bytes: an incomplete commit is not current", cut, total);
        if (which == 1) {
            olds++;
            cr_assert_eq(got.generation, old.generation);
        } else {
            news++;
            cr_assert_eq(got.generation, old.generation + 1);
        }
    }
    cr_expect_eq(news, 1, "only the full commit makes the new one current");
    cr_expect_eq(olds, total);
}

Test(node_slots, power_cut_at_every_byte_of_the_first_commit_over_an_empty_slot)
{
    sweep(400, 520, 0);
}

Test(node_slots, power_cut_at_every_byte_of_erase_and_write_with_both_slots_used)
{
    sweep(520, 530, 3);
}

Test(node_slots, power_cut_at_every_byte_with_the_largest_credential)
{
    sweep(OTPCA_NODE_CERT_MAX, OTPCA_NODE_CERT_MAX, 1);
}

/* The previous credential stays readable until the next commit. */
Test(node_slots, the_previous_credential_stays_until_the_next_commit)
{
    otpca_node_slots s;
    otpca_node_cred a, b, got;
    memset(rf.mem, 0xff, sizeof rf.mem);
    rf.budget = -1;
    rf.cut = 0;
    cr_assert_eq(otpca_node_slots_init(&s, &hal, 0, SLOT, scratch), OTPCA_ERR_OK);
    make_cred(&a, 1, 300);
    make_cred(&b, 2, 310);
    cr_assert_eq(otpca_node_slots_commit(&s, &a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_slots_commit(&s, &b), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_slots_load_previous(&s, &got), OTPCA_ERR_OK);
    cr_expect(same(&got, &a));
    /* Confirm: b rewritten with the flag retires a. */
    b.flags |= OTPCA_NODE_CRED_CONFIRMED;
    cr_assert_eq(otpca_node_slots_commit(&s, &b), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_slots_load(&s, &got), OTPCA_ERR_OK);
    cr_expect(same(&got, &b));
    cr_expect_eq(got.generation, 3);
    cr_assert_eq(otpca_node_slots_load_previous(&s, &got), OTPCA_ERR_OK);
    cr_expect_eq(got.flags & OTPCA_NODE_CRED_CONFIRMED, 0, "the previous is b unconfirmed");
}

/* Any flipped byte of the current slot makes it invalid: the other one is current. */
Test(node_slots, a_corrupted_slot_is_never_current)
{
    otpca_node_slots s;
    otpca_node_cred a, b, got;
    memset(rf.mem, 0xff, sizeof rf.mem);
    rf.budget = -1;
    rf.cut = 0;
    cr_assert_eq(otpca_node_slots_init(&s, &hal, 0, SLOT, scratch), OTPCA_ERR_OK);
    make_cred(&a, 1, 300);
    make_cred(&b, 2, 300);
    cr_assert_eq(otpca_node_slots_commit(&s, &a), OTPCA_ERR_OK);
    cr_assert_eq(otpca_node_slots_commit(&s, &b), OTPCA_ERR_OK); /* b in slot B */
    size_t used = 16 + 2 + 300 + 65 + 8 + 16 + 1 + 16 + 4 + 32;
    for (size_t i = 0; i < used; i += 1) {
        rf.mem[SLOT + i] ^= 0x01;
        cr_assert_eq(boot(&a, &b, &got), 1, "byte %zu flipped: the other slot is current", i);
        rf.mem[SLOT + i] ^= 0x01;
    }
    cr_assert_eq(boot(&a, &b, &got), 2);
}
