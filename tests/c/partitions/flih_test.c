/*
 * tf-m-tests' TFM_SP_FLIH_TEST partition in C (its manifest, model dual, used
 * unmodified): the C counterpart of tests/interrupts/irq_partitions.py's FLIH
 * part.  A test case enables the timer interrupt, raises the timer's line,
 * waits for the signal the FLIH asserts and clears it.  What happened is
 * written to out-vector 0 as text, when the caller gives one.
 */

#include <stdio.h>
#include <string.h>

#include "psa/service.h"
#include "psaspm/hal.h"
#include "psa_manifest/tfm_flih_test_service.h"

#define SOURCE "TFM_TIMER0_IRQ"

static char log_text[128];
static unsigned flihs;

static void log_event(const char *event)
{
    size_t used = strlen(log_text);
    snprintf(log_text + used, sizeof(log_text) - used, "%s%s", used ? "," : "", event);
}

psa_flih_result_t tfm_timer0_irq_flih(void)
{
    flihs++;
    log_event("flih");
    psaspm_hal_deassert_irq(SOURCE);
    return PSA_FLIH_SIGNAL;
}

static psa_status_t run_case(const psa_msg_t *msg)
{
    char woken[32];
    log_text[0] = '\0';
    psa_irq_enable(TFM_TIMER0_IRQ_SIGNAL);
    log_event("timer start");
    psaspm_hal_assert_irq(SOURCE); /* the timer expires at once */
    psa_signal_t got = psa_wait(TFM_TIMER0_IRQ_SIGNAL, PSA_BLOCK);
    snprintf(woken, sizeof(woken), "woken %#x", (unsigned)got);
    log_event(woken);
    psa_reset_signal(TFM_TIMER0_IRQ_SIGNAL);
    if (msg->out_size[0] > 0) {
        size_t size = strlen(log_text);
        psa_write(msg->handle, 0, log_text, size < msg->out_size[0] ? size : msg->out_size[0]);
    }
    return PSA_SUCCESS;
}

#if TFM_SP_FLIH_TEST_MODEL_SFN
psa_status_t tfm_flih_test_case_sfn(const psa_msg_t *msg)
{
    return run_case(msg);
}
#else
void tfm_flih_test_service_entry(void)
{
    psa_msg_t msg;
    for (;;) {
        psa_signal_t signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK);
        if (signals & TFM_FLIH_TEST_CASE_SIGNAL) {
            psa_get(TFM_FLIH_TEST_CASE_SIGNAL, &msg);
            psa_reply(msg.handle, run_case(&msg));
        } else if (signals & TFM_TIMER0_IRQ_SIGNAL) {
            psa_reset_signal(TFM_TIMER0_IRQ_SIGNAL);
        }
    }
}
#endif
