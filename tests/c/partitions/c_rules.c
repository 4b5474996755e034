/* The service side of the C conformance rules: msg->type selects the rule exercised.
 * Every call type below is one test of tests/c/test_c_conformance.py. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "psa/service.h"
#include "psa_manifest/sid.h"

enum {
    ECHO = 1,
    READ_CLAMP = 2,
    SKIP_CLAMP = 3,
    READ_ABSENT = 4,
    READ_BAD_INDEX = 5,
    WRITE_TWICE = 6,
    WRITE_OVERFLOW = 7,
    WRITE_ABSENT = 8,
    REPLY_PROGRAMMER_ERROR = 9,
    COUNT_RHANDLE = 10,
    DISCONNECTS = 11,
    PANIC = 12,
    LIFECYCLE = 13,
    CLIENT_ID = 14,
    SIZES = 15,
};

static int disconnects; /* DISCONNECT messages received since boot */

psa_status_t crules_sfn(const psa_msg_t *msg)
{
    uint8_t buf[64];
    size_t n, m;

    switch (msg->type) {
    case PSA_IPC_CONNECT: {
        int *calls = calloc(1, sizeof(*calls)); /* per-connection state behind the rhandle */
        psa_set_rhandle(msg->handle, calls);
        return PSA_SUCCESS;
    }
    case PSA_IPC_DISCONNECT:
        disconnects++;
        free(msg->rhandle);
        return PSA_SUCCESS;
    case ECHO:
        n = psa_read(msg->handle, 0, buf, sizeof(buf));
        psa_write(msg->handle, 0, buf, n);
        return PSA_SUCCESS;
    case READ_CLAMP:
        n = psa_read(msg->handle, 0, buf, sizeof(buf));
        m = psa_read(msg->handle, 0, buf, sizeof(buf));
        return (psa_status_t)(n * 100 + m);
    case SKIP_CLAMP:
        n = psa_skip(msg->handle, 0, 3);
        m = psa_read(msg->handle, 0, buf, sizeof(buf));
        psa_write(msg->handle, 0, buf, m);
        return (psa_status_t)(n * 100 + psa_skip(msg->handle, 0, 10));
    case READ_ABSENT:
        return (psa_status_t)psa_read(msg->handle, 3, buf, sizeof(buf));
    case READ_BAD_INDEX:
        psa_read(msg->handle, 4, buf, 1);
        return PSA_SUCCESS;
    case WRITE_TWICE:
        psa_write(msg->handle, 0, "ab", 2);
        psa_write(msg->handle, 0, "cd", 2);
        return PSA_SUCCESS;
    case WRITE_OVERFLOW:
        memset(buf, 'x', sizeof(buf));
        psa_write(msg->handle, 0, buf, msg->out_size[0] + 1);
        return PSA_SUCCESS;
    case WRITE_ABSENT:
        psa_write(msg->handle, 2, "x", 1);
        return PSA_SUCCESS;
    case REPLY_PROGRAMMER_ERROR:
        return PSA_ERROR_PROGRAMMER_ERROR;
    case COUNT_RHANDLE:
        return ++*(int *)msg->rhandle;
    case DISCONNECTS:
        return disconnects;
    case PANIC:
        psa_panic();
    case LIFECYCLE:
        return (psa_status_t)psa_rot_lifecycle_state();
    case CLIENT_ID:
        return msg->client_id;
    case SIZES:
        return (psa_status_t)(msg->in_size[0] * 1000 + msg->in_size[1] * 100 + msg->out_size[0] * 10 +
                              msg->out_size[1]);
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}

psa_status_t crules_stateless_sfn(const psa_msg_t *msg)
{
    if (msg->type == 1) {
        psa_set_rhandle(msg->handle, NULL); /* a stateless message has no rhandle: panic */
    } else if (msg->type == 2) {
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    return msg->type;
}

psa_status_t chidden_sfn(const psa_msg_t *msg)
{
    (void)msg;
    return PSA_SUCCESS;
}
