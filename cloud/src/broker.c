/* The load-balancing broker between a ROUTER and worker threads (broker.h). */
#include "otpca/cloud/broker.h"

#include <errno.h>
#include <string.h>

#include "otpca/common/log.h"

#define READY "\001"

int otpca_zmq_recv_parts(void *sock, zmq_msg_t *msgs, int max)
{
    int n = 0, more = 1, over = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n && i < max; i++)
                zmq_msg_close(&msgs[i]);
            return -2;
        }
        more = zmq_msg_more(&m);
        if (n < max)
            msgs[n] = m;
        else {
            zmq_msg_close(&m);
            over = 1;
        }
        n++;
    }
    if (over) {
        for (int i = 0; i < max; i++)
            zmq_msg_close(&msgs[i]);
        return -1;
    }
    return n;
}

int otpca_broker_backend_in(otpca_broker *b, void *backend, void *frontend)
{
    zmq_msg_t f[3];
    int n = otpca_zmq_recv_parts(backend, f, 3);
    if (n < 0)
        return n == -2 ? -1 : 0;
    if (n == 3) { /* worker id, client id, reply */
        zmq_msg_send(&f[1], frontend, ZMQ_SNDMORE);
        zmq_msg_send(&f[2], frontend, 0);
        zmq_msg_close(&f[1]);
        zmq_msg_close(&f[2]);
    } else if (n != 2 || b->nidle >= OTPCA_BROKER_WORKERS_MAX) { /* 2: worker id, READY */
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        return 0;
    } else {
        zmq_msg_close(&f[1]);
    }
    b->idle[b->nidle++] = f[0];
    return 0;
}

int otpca_broker_frontend_in(otpca_broker *b, void *frontend, void *backend)
{
    zmq_msg_t f[2];
    int n = otpca_zmq_recv_parts(frontend, f, 2);
    if (n == -2)
        return -1;
    if (n != 2 || b->nidle == 0) { /* one otpca message per ZeroMQ message, one frame */
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        log_warn("dropped a request that was not exactly one frame");
        return 0;
    }
    const char *who = zmq_msg_gets(&f[1], "User-Id");
    zmq_msg_t worker = b->idle[--b->nidle];
    zmq_msg_send(&worker, backend, ZMQ_SNDMORE);
    zmq_msg_close(&worker);
    zmq_msg_send(&f[0], backend, ZMQ_SNDMORE);
    zmq_send(backend, who ? who : "", who ? strlen(who) : 0, ZMQ_SNDMORE);
    zmq_msg_send(&f[1], backend, 0);
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    return 0;
}

void otpca_broker_clear(otpca_broker *b)
{
    for (unsigned i = 0; i < b->nidle; i++)
        zmq_msg_close(&b->idle[i]);
    b->nidle = 0;
}

void otpca_broker_worker(void *sock, otpca_broker_handler handle, void *arg)
{
    if (zmq_send(sock, READY, 1, 0) < 0)
        return;
    for (;;) {
        zmq_msg_t f[3];
        int n = otpca_zmq_recv_parts(sock, f, 3);
        if (n == -2)
            return; /* context shut down */
        if (n != 3) {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            continue;
        }
        char user[65];
        size_t ul = zmq_msg_size(&f[1]) < sizeof user - 1 ? zmq_msg_size(&f[1]) : sizeof user - 1;
        memcpy(user, zmq_msg_data(&f[1]), ul);
        user[ul] = '\0';
        const uint8_t *out = NULL;
        size_t len = handle(arg, user, &f[0], zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &out);
        zmq_msg_close(&f[1]);
        zmq_msg_close(&f[2]);
        if (len == OTPCA_BROKER_DEFERRED) { /* the handler kept the client id */
            zmq_msg_close(&f[0]);
            if (zmq_send(sock, READY, 1, 0) < 0)
                return;
            continue;
        }
        /* [client id, reply] back to the broker */
        if (zmq_msg_send(&f[0], sock, ZMQ_SNDMORE) < 0 || zmq_send(sock, out, len, 0) < 0) {
            zmq_msg_close(&f[0]);
            return;
        }
    }
}

int otpca_broker_forward(void *from, void *frontend, int flags)
{
    zmq_msg_t f[2];
    zmq_msg_init(&f[0]);
    if (zmq_msg_recv(&f[0], from, flags) < 0) {
        zmq_msg_close(&f[0]);
        return zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -1;
    }
    if (!zmq_msg_more(&f[0])) {
        zmq_msg_close(&f[0]);
        return 0;
    }
    int n = otpca_zmq_recv_parts(from, &f[1], 1);
    if (n == -2) {
        zmq_msg_close(&f[0]);
        return -1;
    }
    if (n != 1) {
        zmq_msg_close(&f[0]);
        return 0;
    }
    zmq_msg_send(&f[0], frontend, ZMQ_SNDMORE);
    zmq_msg_send(&f[1], frontend, 0);
    zmq_msg_close(&f[0]);
    zmq_msg_close(&f[1]);
    return 1;
}
