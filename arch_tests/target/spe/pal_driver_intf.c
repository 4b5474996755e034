/*
 * psa-arch-tests host target for psaspm: the driver partition's PAL.
 *
 * - UART: characters go to the process's stdout (the suite's val_printf
 *   formats; pal_print writes each character).
 * - NVMEM: plain memory at PLATFORM_NVM_BASE, which the runner maps from a
 *   file (shared), so it survives every reboot of the system.
 * - Watchdog: bookkeeping of the suite's requests only.  A hang is ended by
 *   psaspm's watchdog (load(watchdog=SECONDS)): it panics the SPE, the runner
 *   reboots, and the suite finds the test still in progress (a SIM ERROR).
 * - Interrupt: the driver partition's FF_TEST_UART_IRQ line, raised and
 *   lowered through psaspm's interrupt lines (psaspm/hal.h).
 */

#include <stdio.h>
#include <string.h>

#include "pal_interfaces_s.h"
#include "psaspm/hal.h"

#define PSASPM_ARCH_IRQ "FF_TEST_UART_IRQ"

uint8_t test_status_buffer[256] = {0};

static int wd_enabled;

void pal_uart_init(addr_t uart_base_addr)
{
    (void)uart_base_addr;
}

int pal_print(uint8_t c)
{
    putchar(c);
    return PAL_STATUS_SUCCESS;
}

int pal_nvmem_write(addr_t base, uint32_t offset, void *buffer, int size)
{
    if (buffer == NULL || size < 0 || base + offset < NVMEM_0_START ||
        base + offset + (uint32_t)size > NVMEM_0_END + 1)
        return 0;
    memcpy((void *)(uintptr_t)(base + offset), buffer, (size_t)size);
    return 1;
}

int pal_nvmem_read(addr_t base, uint32_t offset, void *buffer, int size)
{
    if (buffer == NULL || size < 0 || base + offset < NVMEM_0_START ||
        base + offset + (uint32_t)size > NVMEM_0_END + 1)
        return 0;
    memcpy(buffer, (const void *)(uintptr_t)(base + offset), (size_t)size);
    return 1;
}

int pal_wd_timer_init(addr_t base_addr, uint32_t time_us, uint32_t timer_tick_us)
{
    (void)base_addr;
    (void)time_us;
    (void)timer_tick_us;
    return PAL_STATUS_SUCCESS;
}

int pal_wd_timer_enable(addr_t base_addr)
{
    (void)base_addr;
    wd_enabled = 1;
    return PAL_STATUS_SUCCESS;
}

int pal_wd_timer_disable(addr_t base_addr)
{
    (void)base_addr;
    wd_enabled = 0;
    return PAL_STATUS_SUCCESS;
}

int pal_wd_timer_is_enabled(addr_t base_addr)
{
    (void)base_addr;
    return wd_enabled;
}

void pal_generate_interrupt(void)
{
    psaspm_hal_assert_irq(PSASPM_ARCH_IRQ);
}

void pal_disable_interrupt(void)
{
    psaspm_hal_deassert_irq(PSASPM_ARCH_IRQ);
}
