/*
 * psaspm: the modelled platform, for C drivers (what psaspm.hal gives Python).
 *
 * Device registers and memory are psaspm's model of the platform: every
 * access is checked against the calling partition's MMIO regions, as the
 * isolation level requires, and a bad access faults as it would on the
 * target.
 * SPDX-License-Identifier: BSD-3-Clause
 */

#ifndef __PSASPM_HAL_H__
#define __PSASPM_HAL_H__

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read the 32-bit register or word of modelled memory at addr. */
uint32_t psaspm_hal_read32(uintptr_t addr);

/* Write value to the 32-bit register or word of modelled memory at addr. */
void psaspm_hal_write32(uintptr_t addr, uint32_t value);

/* Raise or lower the interrupt line named source (a manifest's irq source,
 * e.g. "TFM_TIMER0_IRQ"), as a device does: a FLIH or driver lowers the
 * line of the device it has served. */
void psaspm_hal_assert_irq(const char *source);
void psaspm_hal_deassert_irq(const char *source);

/* What __WFI() does on the target: platform time advances to the next event
 * of an armed device model and pending interrupts are taken.  With no armed
 * event this is a deadlock, which psaspm reports. */
void psaspm_hal_wfi(void);

#ifdef __cplusplus
}
#endif

#endif /* __PSASPM_HAL_H__ */
