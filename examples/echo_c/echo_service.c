/*
 * TFM_SP_EXAMPLE_ECHO in C: the IPC-model echo partition of examples/echo,
 * written as a TF-M partition is.  Same manifest, same service, same replies.
 *
 * Its thread waits for messages and serves them one at a time.  Each
 * connection keeps a session, allocated on CONNECT and freed on DISCONNECT,
 * in its reverse handle (psa_set_rhandle).  Call types: ECHO (0) copies the
 * in-vectors, concatenated, to out-vector 0; COUNT (1) writes how many ECHO
 * calls the connection made (4 bytes, little-endian).
 */

#include <stdint.h>
#include <stdlib.h>

#include "psa/service.h"
#include "psa_manifest/echo_service.h"

#define ECHO  0
#define COUNT 1

struct session {
    uint32_t calls;
};

static psa_status_t echo(const psa_msg_t *msg, struct session *session)
{
    size_t total = 0;
    for (uint32_t i = 0; i < PSA_MAX_IOVEC; i++) {
        total += msg->in_size[i];
    }
    if (total > msg->out_size[0]) {
        return PSA_ERROR_BUFFER_TOO_SMALL;
    }
    uint8_t chunk[64]; /* a stack buffer: psa_read copies into it */
    for (uint32_t i = 0; i < PSA_MAX_IOVEC; i++) {
        size_t got;
        while ((got = psa_read(msg->handle, i, chunk, sizeof(chunk))) > 0) {
            psa_write(msg->handle, 0, chunk, got); /* each write appends */
        }
    }
    session->calls++;
    return PSA_SUCCESS;
}

static psa_status_t count(const psa_msg_t *msg, const struct session *session)
{
    uint8_t bytes[4];
    for (int i = 0; i < 4; i++) {
        bytes[i] = (uint8_t)(session->calls >> (8 * i));
    }
    psa_write(msg->handle, 0, bytes, sizeof(bytes));
    return PSA_SUCCESS;
}

static psa_status_t serve(const psa_msg_t *msg)
{
    struct session *session = msg->rhandle;

    switch (msg->type) {
    case PSA_IPC_CONNECT:
        session = calloc(1, sizeof(*session));
        if (session == NULL) {
            return PSA_ERROR_CONNECTION_BUSY;
        }
        psa_set_rhandle(msg->handle, session);
        return PSA_SUCCESS;
    case PSA_IPC_DISCONNECT:
        free(session);
        return PSA_SUCCESS;
    case ECHO:
        return echo(msg, session);
    case COUNT:
        return count(msg, session);
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}

void echo_main(void)
{
    psa_msg_t msg;

    for (;;) {
        psa_signal_t signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK);
        if (signals & EXAMPLE_ECHO_SIGNAL) {
            if (psa_get(EXAMPLE_ECHO_SIGNAL, &msg) != PSA_SUCCESS) {
                continue;
            }
            psa_reply(msg.handle, serve(&msg));
        }
    }
}
