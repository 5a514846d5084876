/*
 * The smallest firmware around the node core that keeps every entry point
 * a real device calls (node-fw/cortexm/size.sh links it for Cortex-M4 to
 * measure the core): a vector table and reset handler, HAL entries that
 * only touch a volatile "device" (no token or radio driver is counted),
 * and a main loop that runs any flow the way node.h's Use: comment does.
 * Inputs come from volatile memory so the compiler cannot prove any path
 * of the core dead. Never run; size only.
 *
 * Static RAM the firmware must provide for the core is declared here (the
 * context, the out/work buffers, the slot scratch) so that size.sh can
 * report it apart from the libraries' own .data/.bss.
 */
#include <stddef.h>
#include <stdint.h>

#include "otpca/node/node.h"
#include "otpca/node/slots.h"

/* ---- the "device": registers and buffers a real HAL would drive ---- */
static volatile uint8_t dev_reg[64];
static volatile uint32_t dev_status;
#define ROOT_DER_MAX 640 /* a P-256 root certificate is about 450-600 bytes */
/* The pinned root as the factory writes it (flash). */
__attribute__((used)) const uint8_t fw_root_der[ROOT_DER_MAX] = {0x30};
static const uint8_t fw_mac[6] = {0x02, 0, 0, 0, 0, 1};

static otpca_err hal_sign(void *ctx, const uint8_t kid[OTPCA_NODE_KID_LEN], const uint8_t digest[32], uint8_t sig[64])
{
    (void)ctx;
    for (int i = 0; i < 32; i++)
        dev_reg[i] = digest[i] ^ kid[i & 7];
    for (int i = 0; i < 64; i++)
        sig[i] = dev_reg[i];
    return dev_status ? OTPCA_ERR_PKCS11 : OTPCA_ERR_OK;
}

static otpca_err hal_ecdh(void *ctx, const uint8_t kid[OTPCA_NODE_KID_LEN], const uint8_t peer[OTPCA_NODE_PUB_LEN],
                          uint8_t z[32])
{
    (void)ctx;
    for (int i = 0; i < 32; i++)
        z[i] = dev_reg[i] ^ peer[i + 1] ^ kid[i & 7];
    return dev_status ? OTPCA_ERR_PKCS11 : OTPCA_ERR_OK;
}

static otpca_err hal_hmac(void *ctx, const uint8_t *msg, size_t msg_len, uint8_t *mac, size_t *mac_len)
{
    (void)ctx;
    for (size_t i = 0; i < msg_len; i++)
        dev_reg[i & 63] = msg[i];
    for (size_t i = 0; i < 20; i++)
        mac[i] = dev_reg[i];
    *mac_len = 20;
    return OTPCA_ERR_OK;
}

static otpca_err hal_keygen(void *ctx, uint8_t pub[OTPCA_NODE_PUB_LEN])
{
    (void)ctx;
    for (int i = 0; i < OTPCA_NODE_PUB_LEN; i++)
        pub[i] = dev_reg[i & 63];
    return dev_status ? OTPCA_ERR_PKCS11 : OTPCA_ERR_OK;
}

static otpca_err hal_key_destroy(void *ctx, const uint8_t kid[OTPCA_NODE_KID_LEN])
{
    (void)ctx;
    dev_reg[0] = kid[0];
    return OTPCA_ERR_OK;
}

static otpca_err hal_random(void *ctx, uint8_t *p, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        p[i] = dev_reg[i & 63];
    return OTPCA_ERR_OK;
}

/* wolfCrypt's CUSTOM_RAND_GENERATE_BLOCK (user_settings.h); unused by the core. */
int otpca_cortexm_rand_block(unsigned char *out, unsigned int sz)
{
    return hal_random(NULL, out, sz) == OTPCA_ERR_OK ? 0 : -1;
}

static uint64_t hal_now_ms(void *ctx)
{
    (void)ctx;
    return dev_status;
}

static otpca_err hal_flash_read(void *ctx, uint32_t off, uint8_t *p, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        p[i] = dev_reg[(off + i) & 63];
    return OTPCA_ERR_OK;
}

static otpca_err hal_flash_write(void *ctx, uint32_t off, const uint8_t *p, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        dev_reg[(off + i) & 63] &= p[i];
    return dev_status ? OTPCA_ERR_IO : OTPCA_ERR_OK;
}

static otpca_err hal_flash_erase(void *ctx, uint32_t off, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        dev_reg[(off + i) & 63] = 0xff;
    return OTPCA_ERR_OK;
}

static otpca_err hal_send(void *ctx, const uint8_t *p, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++)
        dev_reg[0] = p[i];
    return OTPCA_ERR_OK;
}

static otpca_err hal_recv(void *ctx, uint8_t *p, size_t cap, size_t *len, int timeout_ms)
{
    (void)ctx;
    size_t n = dev_status % (cap + 1);
    if (timeout_ms <= 0 || n == 0)
        return OTPCA_ERR_TIMEOUT;
    for (size_t i = 0; i < n; i++)
        p[i] = dev_reg[i & 63];
    *len = n;
    return OTPCA_ERR_OK;
}

static const otpca_node_hal fw_hal = {
    NULL,           hal_sign,       hal_ecdh,        hal_hmac,        hal_keygen, hal_key_destroy, hal_random,
    hal_now_ms,     hal_flash_read, hal_flash_write, hal_flash_erase, hal_send,   hal_recv,        NULL,
};

/* ---- the static RAM the core needs from the firmware ---- */
static otpca_node_ctx fw_node;
static otpca_node_slots fw_store;
static otpca_node_cred fw_prev;
static uint8_t fw_out[OTPCA_NODE_OUT_SIZE];
static uint8_t fw_work[OTPCA_NODE_WORK_SIZE];
static uint8_t fw_scratch[OTPCA_NODE_SLOT_SIZE];
static uint8_t fw_in[OTPCA_NODE_IN_MAX];

static otpca_err run_flow(otpca_node_flow flow)
{
    uint64_t now = hal_now_ms(NULL), deadline = 0;
    otpca_err ret = otpca_node_start(&fw_node, flow, now);
    if (ret)
        return ret;
    for (;;) {
        const uint8_t *p;
        size_t len;
        while ((p = otpca_node_output_buf(&fw_node, &len)) != NULL) {
            if ((ret = hal_send(NULL, p, len)) != OTPCA_ERR_OK)
                return ret;
            otpca_node_output_ack(&fw_node, hal_now_ms(NULL));
        }
        now = hal_now_ms(NULL);
        otpca_node_state st = otpca_node_step(&fw_node, now, &deadline);
        if (st == OTPCA_NODE_DONE)
            return OTPCA_ERR_OK;
        if (st == OTPCA_NODE_FAILED)
            return otpca_node_last_error(&fw_node, NULL);
        if (st == OTPCA_NODE_SEND)
            continue;
        int wait = deadline == OTPCA_NODE_DEADLINE_NONE ? 1000 : (int)(deadline > now ? deadline - now : 0);
        if (hal_recv(NULL, fw_in, sizeof fw_in, &len, wait) == OTPCA_ERR_OK &&
            otpca_node_handle_input(&fw_node, fw_in, len, hal_now_ms(NULL)) != OTPCA_ERR_OK)
            dev_reg[6] = (uint8_t)otpca_node_last_error(&fw_node, NULL); /* dropped; keep waiting */
    }
}

int main(void)
{
    otpca_node_config cfg = {0};
    if (otpca_node_slots_init(&fw_store, &fw_hal, 0x0, OTPCA_NODE_SLOT_SIZE, fw_scratch) != OTPCA_ERR_OK)
        return 1;
    if (dev_status == 0xdead && otpca_node_slots_wipe(&fw_store) != OTPCA_ERR_OK) /* factory reset */
        return 1;
    cfg.hal = &fw_hal;
    cfg.store = &fw_store;
    cfg.serial = "node-000001";
    cfg.mac = fw_mac;
    cfg.mac_len = sizeof fw_mac;
    cfg.fw = "1.0";
    cfg.root_der = fw_root_der;
    cfg.root_len = sizeof fw_root_der;
    for (int i = 0; i < OTPCA_NODE_PUB_LEN; i++)
        cfg.factory_pub[i] = dev_reg[i & 63];
    if (otpca_node_init(&fw_node, &cfg, fw_out, sizeof fw_out, fw_work, sizeof fw_work) != OTPCA_ERR_OK)
        return 1;
    if (otpca_node_slots_load_previous(&fw_store, &fw_prev) == OTPCA_ERR_OK)
        dev_reg[0] = fw_prev.flags;
    for (;;) {
        /* The flow the application asks for: time, enroll, confirm, rejoin, key update, claim. */
        otpca_node_flow flow = (otpca_node_flow)(dev_reg[1] % 7);
        otpca_err ret = run_flow(flow);
        const otpca_node_cred *c = otpca_node_credential(&fw_node);
        dev_reg[2] = (uint8_t)ret;
        dev_reg[3] = (uint8_t)otpca_node_time(&fw_node, hal_now_ms(NULL));
        dev_reg[4] = (uint8_t)otpca_node_get_state(&fw_node);
        if (c)
            dev_reg[5] = c->netkey[0];
        if (dev_status == 0xfeed)
            otpca_node_free(&fw_node);
    }
}

/* No heap: newlib's malloc (pulled in only by a libc function that wants
 * it, e.g. snprintf in wolfSSL's non-template ASN) gets nothing. */
void *_sbrk(ptrdiff_t incr);
void *_sbrk(ptrdiff_t incr)
{
    (void)incr;
    return (void *)-1;
}

/* ---- startup ---- */
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    (void)main();
    for (;;)
        ;
}

void Default_Handler(void)
{
    for (;;)
        ;
}

/* Cortex-M4 core exceptions; a real part adds its peripheral interrupts. */
__attribute__((section(".isr_vector"), used)) void (*const fw_vectors[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack, Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler,
};
