/*
 * TFM_SP_C_APP_MEM: the service side of tf-m-tests' PSA_ACCESS_APP_MEM pattern.
 * Call types:
 *   POKE (0): in-vector 0 is a uint32_t address in the client's stack; write
 *             "written by the service" there directly (not through a vector)
 *             while the client is blocked in psa_call;
 *   ERRNO (1): set this thread's errno to ERANGE; out-vector 0: errno as this
 *              partition sees it (4 bytes LE).
 */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "psa/service.h"
#include "psa_manifest/c_app_mem.h"

static const char message[] = "written by the service";

static psa_status_t serve(const psa_msg_t *msg)
{
    switch (msg->type) {
    case 0: {
        uint32_t address = 0; /* TF-M test code keeps the pointer in a uint32_t */
        if (psa_read(msg->handle, 0, &address, sizeof(address)) != sizeof(address)) {
            return PSA_ERROR_INVALID_ARGUMENT;
        }
        memcpy((char *)(uintptr_t)address, message, sizeof(message));
        return PSA_SUCCESS;
    }
    case 1: {
        errno = ERANGE;
        int seen = errno;
        psa_write(msg->handle, 0, &seen, sizeof(seen));
        return PSA_SUCCESS;
    }
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}

void c_app_mem_main(void)
{
    psa_msg_t msg;
    for (;;) {
        psa_signal_t signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK);
        if (signals & C_APP_MEM_SIGNAL) {
            psa_get(C_APP_MEM_SIGNAL, &msg);
            psa_reply(msg.handle, serve(&msg));
        }
    }
}
