/* The client side of the C conformance rules: msg->type selects the client API rule,
 * exercised against TFM_SP_CRULES (c_rules.c). */
#include <string.h>

#include "psa/client.h"
#include "psa/service.h"
#include "psa_manifest/sid.h"

enum {
    FRAMEWORK = 1,
    VERSION_DEPENDENCY = 2,
    VERSION_NOT_DEPENDENCY = 3,
    CONNECT_UNKNOWN = 4,
    CALL_BAD_HANDLE = 5,
    TOO_MANY_VECTORS = 6,
    OUT_RESIZED = 7,
    NEGATIVE_TYPE = 8,
    CLIENT_ID = 9,
    STATELESS = 10,
    CONNECT_STATELESS = 11,
    SERVICE_PROGRAMMER_ERROR = 12,
};

psa_status_t cfront_sfn(const psa_msg_t *msg)
{
    psa_handle_t handle;
    psa_status_t status;

    switch (msg->type) {
    case FRAMEWORK:
        return (psa_status_t)psa_framework_version();
    case VERSION_DEPENDENCY:
        return (psa_status_t)psa_version(CRULES_SID);
    case VERSION_NOT_DEPENDENCY:
        return (psa_status_t)psa_version(CHIDDEN_SID);
    case CONNECT_UNKNOWN:
        return psa_connect(0xDEAD, 1);
    case CALL_BAD_HANDLE:
        return psa_call(12345, PSA_IPC_CALL, NULL, 0, NULL, 0);
    case TOO_MANY_VECTORS: {
        psa_invec in[5] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}};
        handle = psa_connect(CRULES_SID, 1);
        return psa_call(handle, 1, in, 5, NULL, 0);
    }
    case OUT_RESIZED: {
        char out[16];
        psa_invec in = {"hello", 5};
        psa_outvec vec = {out, sizeof(out)};
        handle = psa_connect(CRULES_SID, 1);
        status = psa_call(handle, 1, &in, 1, &vec, 1);
        psa_close(handle);
        if (status != PSA_SUCCESS || vec.len != 5 || memcmp(out, "hello", 5) != 0) {
            return -1;
        }
        return (psa_status_t)vec.len;
    }
    case NEGATIVE_TYPE:
        handle = psa_connect(CRULES_SID, 1);
        return psa_call(handle, -5, NULL, 0, NULL, 0);
    case CLIENT_ID:
        handle = psa_connect(CRULES_SID, 1);
        status = psa_call(handle, 14, NULL, 0, NULL, 0);
        psa_close(handle);
        return status;
    case STATELESS:
        return psa_call(CRULES_STATELESS_HANDLE, 7, NULL, 0, NULL, 0);
    case CONNECT_STATELESS:
        return psa_connect(CRULES_STATELESS_SID, 1);
    case SERVICE_PROGRAMMER_ERROR:
        handle = psa_connect(CRULES_SID, 1);
        return psa_call(handle, 9, NULL, 0, NULL, 0);
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}
