/*
 * The load-balancing broker both daemons use between their ROUTER (the
 * managers' link at the cloud, the nodes' link at a manager) and their
 * worker threads (ZeroMQ's "load balancing" pattern): a request goes only
 * to an idle worker, so one long request never queues others behind it,
 * and a daemon with every worker busy stops reading its ROUTER (back
 * pressure). Requests are one frame; anything else is dropped.
 *
 *   frontend ROUTER  [client id, request]
 *   backend  ROUTER  [worker id, client id, user id, request] -> worker
 *                    [worker id, client id, reply] <- worker ("\1" = ready)
 *
 * The user id is the ZAP User-Id of the connection (the manager's id at
 * the cloud), "" without one. Library otpca-broker.
 */
#ifndef OTPCA_CLOUD_BROKER_H
#define OTPCA_CLOUD_BROKER_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define OTPCA_BROKER_WORKERS_MAX 16

typedef struct otpca_broker {
    zmq_msg_t idle[OTPCA_BROKER_WORKERS_MAX];
    unsigned nidle;
} otpca_broker;

/* One multipart message of up to max frames into msgs: the frame count,
 * -1 if it had more (all read and dropped), -2 if the context is gone. */
int otpca_zmq_recv_parts(void *sock, zmq_msg_t *msgs, int max);

/* Readable backend: a worker's reply (forwarded) or its ready message; the
 * worker goes back to the idle queue. -1: context gone. */
int otpca_broker_backend_in(otpca_broker *b, void *backend, void *frontend);
/* Readable frontend (only poll it while b->nidle > 0): the request goes to
 * an idle worker. -1: context gone. */
int otpca_broker_frontend_in(otpca_broker *b, void *frontend, void *backend);
/* Drops the idle queue (at shutdown). */
void otpca_broker_clear(otpca_broker *b);

/* A worker: answers each request with handle(arg, user, client, request)
 * (the reply is out[0..returned)); returns when the context shuts down.
 * sock is a DEALER connected to the backend.
 *
 * Deferred replies: a handler that cannot answer yet (the manager sends an
 * issuance only after its journal's group commit) moves *client into its
 * own zmq_msg_t (zmq_msg_move) and returns OTPCA_BROKER_DEFERRED; the
 * worker is then ready for the next request at once, and the reply goes
 * out later as [client, reply] on a socket of the owner's, which its main
 * loop passes on with otpca_broker_forward. */
#define OTPCA_BROKER_DEFERRED SIZE_MAX
typedef size_t (*otpca_broker_handler)(void *arg, const char *user, zmq_msg_t *client, const uint8_t *in, size_t len,
                                       const uint8_t **out);
void otpca_broker_worker(void *sock, otpca_broker_handler handle, void *arg);

/* Reads one deferred reply [client, reply] from `from` and sends it to the
 * frontend; anything else is dropped. flags: 0 or ZMQ_DONTWAIT. 1: one
 * passed on, 0: nothing to read (ZMQ_DONTWAIT) or dropped, -1: context
 * gone. */
int otpca_broker_forward(void *from, void *frontend, int flags);

#endif
