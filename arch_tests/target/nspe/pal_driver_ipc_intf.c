/*
 * psa-arch-tests host target for psaspm: the non-secure side's PAL.
 *
 * As on the suite's TF-M boards, the non-secure side owns no device: it
 * prints, programs the watchdog and reads and writes NVMEM through the driver
 * partition's RoT services (DRIVER_UART, DRIVER_WATCHDOG, DRIVER_NVMEM),
 * connecting for each request in the connection-based build and calling the
 * stateless handles in the STATELESS_ROT build.
 */

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "pal_interfaces_ns.h"

/* ns_main.c: where pal_terminate_simulation returns to. */
extern jmp_buf psaspm_arch_end;

uint8_t test_status_buffer[256] = {0};

static addr_t uart_base = PLATFORM_UART_BASE;

#if STATELESS_ROT == 1
#define DRIVER_REQUEST(SVC, in, n_in, out, n_out) \
    request_stateless(SVC##_HANDLE, in, n_in, out, n_out)

static int request_stateless(psa_handle_t handle, const psa_invec *in, size_t n_in,
                             psa_outvec *out, size_t n_out)
{
    return psa_call(handle, 0, in, n_in, out, n_out) == PSA_SUCCESS ? PAL_STATUS_SUCCESS
                                                                    : PAL_STATUS_ERROR;
}
#else
#define DRIVER_REQUEST(SVC, in, n_in, out, n_out) \
    request_connected(SVC##_SID, SVC##_VERSION, in, n_in, out, n_out)

static int request_connected(uint32_t sid, uint32_t version, const psa_invec *in, size_t n_in,
                             psa_outvec *out, size_t n_out)
{
    psa_handle_t handle = psa_connect(sid, version);
    psa_status_t status;

    if (!PSA_HANDLE_IS_VALID(handle))
        return PAL_STATUS_ERROR;
    status = psa_call(handle, 0, in, n_in, out, n_out);
    psa_close(handle);
    return status == PSA_SUCCESS ? PAL_STATUS_SUCCESS : PAL_STATUS_ERROR;
}
#endif

int pal_uart_init_ns(void)
{
    uart_fn_type_t uart_fn = UART_INIT;
    psa_invec in[3] = {{&uart_fn, sizeof(uart_fn)}, {&uart_base, sizeof(uart_base)}, {NULL, 0}};

    return DRIVER_REQUEST(DRIVER_UART, in, 3, NULL, 0);
}

int pal_print_ns(const char *str, int32_t data)
{
    uart_fn_type_t uart_fn = UART_PRINT;
    psa_invec in[3] = {{&uart_fn, sizeof(uart_fn)}, {str, strlen(str) + 1}, {&data, sizeof(data)}};

    return DRIVER_REQUEST(DRIVER_UART, in, 3, NULL, 0);
}

static int watchdog_request(wd_fn_type_t fn, uint32_t time_us, uint32_t timer_tick_us)
{
    wd_param_t wd_param;
    psa_invec in[1] = {{&wd_param, sizeof(wd_param)}};

    wd_param.wd_fn_type = fn;
    wd_param.wd_base_addr = (addr_t)PLATFORM_WD_BASE;
    wd_param.wd_time_us = time_us;
    wd_param.wd_timer_tick_us = timer_tick_us;
    return DRIVER_REQUEST(DRIVER_WATCHDOG, in, 1, NULL, 0);
}

int pal_wd_timer_init_ns(uint32_t time_us, uint32_t timer_tick_us)
{
    return watchdog_request(WD_INIT_SEQ, time_us, timer_tick_us);
}

int pal_watchdog_enable(void)
{
    return watchdog_request(WD_ENABLE_SEQ, 0, 0);
}

int pal_watchdog_disable(void)
{
    return watchdog_request(WD_DISABLE_SEQ, 0, 0);
}

int pal_nvm_read(uint32_t offset, void *buffer, size_t size)
{
    nvmem_param_t param = {NVMEM_READ, (addr_t)PLATFORM_NVM_BASE, offset, (int)size};
    psa_invec in[1] = {{&param, sizeof(param)}};
    psa_outvec out[1] = {{buffer, size}};

    return DRIVER_REQUEST(DRIVER_NVMEM, in, 1, out, 1);
}

int pal_nvm_write(uint32_t offset, void *buffer, size_t size)
{
    nvmem_param_t param = {NVMEM_WRITE, (addr_t)PLATFORM_NVM_BASE, offset, (int)size};
    psa_invec in[2] = {{&param, sizeof(param)}, {buffer, size}};

    return DRIVER_REQUEST(DRIVER_NVMEM, in, 2, NULL, 0);
}

/* The end of the run: back to ns_main.c's main(), which returns 0 to psaspm. */
void pal_terminate_simulation(void)
{
    longjmp(psaspm_arch_end, 1);
}

/* PSASPM_ARCH_TESTS="21" or "1,21,44" runs only those tests (numbers as in the
 * test names, i021); unset or empty runs every test of the build. */
bool_t pal_is_test_enabled(test_id_t test_id)
{
    const char *only = getenv("PSASPM_ARCH_TESTS");
    char *end;

    if (only == NULL || *only == '\0')
        return 1;
    while (*only != '\0') {
        unsigned long number = strtoul(only, &end, 10);
        if (end == only)
            return 0;
        if (number == test_id)
            return 1;
        only = (*end == ',') ? end + 1 : end;
    }
    return 0;
}

/* The FF suite calls no crypto, storage or attestation service; the VAL's
 * tables name these PAL entries, which refuse. */
int32_t pal_crypto_function(int type, va_list valist)
{
    (void)type;
    (void)valist;
    return PAL_STATUS_UNSUPPORTED_FUNC;
}

uint32_t pal_its_function(int type, va_list valist)
{
    (void)type;
    (void)valist;
    return PAL_STATUS_UNSUPPORTED_FUNC;
}

uint32_t pal_ps_function(int type, va_list valist)
{
    (void)type;
    (void)valist;
    return PAL_STATUS_UNSUPPORTED_FUNC;
}

int32_t pal_attestation_function(int type, va_list valist)
{
    (void)type;
    (void)valist;
    return PAL_STATUS_UNSUPPORTED_FUNC;
}
