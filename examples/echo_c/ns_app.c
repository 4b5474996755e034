/* Non-secure application for the echo example, in C: connect, call, close.
 *
 *   psaspm run examples/echo_c/echo_service.yaml --ns examples/echo_c/ns_app.c
 *
 * The SID comes from the system's generated psa_manifest/sid.h, as in TF-M. */
#include <stdio.h>
#include <string.h>

#include "psa/client.h"
#include "psa_manifest/sid.h"

#define ECHO 0

int main(void)
{
    printf("EXAMPLE_ECHO: SID 0x%x, version %u\n", (unsigned)EXAMPLE_ECHO_SID,
           (unsigned)psa_version(EXAMPLE_ECHO_SID));
    psa_handle_t handle = psa_connect(EXAMPLE_ECHO_SID, 1);
    if (handle <= 0) {
        printf("psa_connect failed: %d\n", (int)handle);
        return 1;
    }
    char out[32];
    psa_invec in_vec[2] = {{"hello, ", 7}, {"secure world", 12}};
    psa_outvec out_vec[1] = {{out, sizeof(out)}};
    psa_status_t status = psa_call(handle, ECHO, in_vec, 2, out_vec, 1);
    printf("psa_call(ECHO) -> %d, out = '%.*s' (%zu bytes)\n", (int)status,
           (int)out_vec[0].len, out, out_vec[0].len);
    psa_close(handle);
    return status == PSA_SUCCESS && out_vec[0].len == 19 && memcmp(out, "hello, secure world", 19) == 0
               ? 0
               : 2;
}
