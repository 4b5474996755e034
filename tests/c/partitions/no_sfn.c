/* TFM_SP_C_PROBE's entry_init without its service function: a missing symbol. */
#include "psa/service.h"

psa_status_t c_probe_init(void)
{
    return PSA_SUCCESS;
}
