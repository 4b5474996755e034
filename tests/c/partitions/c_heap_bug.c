/*
 * TFM_SP_C_HEAP_BUG: its service copies in-vector 0 into an 8-byte heap buffer
 * whatever its length: 16 bytes overflow it (AddressSanitizer reports the memcpy
 * line below).
 */

#include <stdlib.h>
#include <string.h>

#include "psa/service.h"
#include "psa_manifest/c_heap_bug.h"

psa_status_t c_heap_bug_init(void)
{
    return PSA_SUCCESS;
}

psa_status_t c_heap_bug_sfn(const psa_msg_t *msg)
{
    char input[64];
    size_t size = psa_read(msg->handle, 0, input, sizeof(input));
    char *copy = malloc(8);
    memcpy(copy, input, size); /* C_HEAP_BUG_OVERFLOW: no check against 8 */
    int first = copy[0];
    free(copy);
    return first;
}
