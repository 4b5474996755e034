/*
 * TFM_SP_C_CLIENT: each call of C_CLIENT connects to EXAMPLE_ECHO, echoes
 * in-vector 0 twice on that connection, reads the echo's COUNT and closes;
 * it writes the echoed bytes, then the count (4 bytes LE), to out-vector 0.
 */

#include <stdint.h>

#include "psa/client.h"
#include "psa/service.h"
#include "psa_manifest/c_client.h"
#include "psa_manifest/sid.h"

psa_status_t c_client_sfn(const psa_msg_t *msg)
{
    uint8_t data[32], echoed[32], count[4];
    size_t size = psa_read(msg->handle, 0, data, sizeof(data));
    psa_handle_t echo = psa_connect(EXAMPLE_ECHO_SID, 1);
    if (echo <= 0) {
        return echo;
    }
    psa_invec in[1] = {{data, size}};
    psa_outvec out[1] = {{echoed, sizeof(echoed)}};
    for (int i = 0; i < 2; i++) {
        psa_status_t status = psa_call(echo, 0, in, 1, out, 1);
        if (status != PSA_SUCCESS) {
            psa_close(echo);
            return status;
        }
    }
    psa_outvec counted[1] = {{count, sizeof(count)}};
    psa_status_t status = psa_call(echo, 1, NULL, 0, counted, 1);
    psa_close(echo);
    if (status != PSA_SUCCESS) {
        return status;
    }
    psa_write(msg->handle, 0, echoed, out[0].len);
    psa_write(msg->handle, 0, count, counted[0].len);
    return PSA_SUCCESS;
}
