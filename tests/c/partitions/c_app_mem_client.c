/*
 * TFM_SP_C_APP_MEM_CLIENT: the client side of tf-m-tests' PSA_ACCESS_APP_MEM
 * pattern.  Call types:
 *   POKE (0): hand C_APP_MEM the address of a stack buffer as a uint32_t; after
 *             the call, out-vector 0: the status (4 bytes LE), then the buffer;
 *   ERRNO (1): set errno to EDOM, call C_APP_MEM (which sets its own errno);
 *              out-vector 0: the status, then errno as this partition sees it
 *              after the call (4 bytes LE each).
 */

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "psa/client.h"
#include "psa/service.h"
#include "psa_manifest/c_app_mem_client.h"
#include "psa_manifest/sid.h"

static psa_status_t poke(const psa_msg_t *msg)
{
    char buffer[32];
    memset(buffer, '.', sizeof(buffer));
    uint32_t address = (uint32_t)(uintptr_t)buffer;
    psa_invec in[1] = {{&address, sizeof(address)}};
    int32_t status = psa_call(C_APP_MEM_HANDLE, 0, in, 1, NULL, 0);
    psa_write(msg->handle, 0, &status, sizeof(status));
    psa_write(msg->handle, 0, buffer, sizeof(buffer));
    return PSA_SUCCESS;
}

static psa_status_t keep_errno(const psa_msg_t *msg)
{
    int seen = 0;
    psa_outvec out[1] = {{&seen, sizeof(seen)}};
    errno = EDOM;
    int32_t status = psa_call(C_APP_MEM_HANDLE, 1, NULL, 0, out, 1);
    int mine = errno;
    psa_write(msg->handle, 0, &status, sizeof(status));
    psa_write(msg->handle, 0, &mine, sizeof(mine));
    psa_write(msg->handle, 0, &seen, sizeof(seen));
    return PSA_SUCCESS;
}

void c_app_mem_client_main(void)
{
    psa_msg_t msg;
    for (;;) {
        psa_signal_t signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK);
        if (signals & C_APP_MEM_CLIENT_SIGNAL) {
            psa_get(C_APP_MEM_CLIENT_SIGNAL, &msg);
            psa_reply(msg.handle, msg.type == 0 ? poke(&msg) : keep_errno(&msg));
        }
    }
}
