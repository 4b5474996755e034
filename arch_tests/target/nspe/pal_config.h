/*
 * psa-arch-tests host target for psaspm: the platform configuration the
 * suite's VAL and PAL read.  Modelled on the suite's tgt_ff_tfm_an521 target;
 * the values are this host target's own.
 *
 * Every address here is below 4 GiB and is memory of this process: the runner (arch_tests/run.py) maps each region at
 * its address before the first boot.  NVMEM is a file mapped shared, so its
 * bytes survive every reboot of the system; it starts as 0xFF.
 */

#ifndef _PAL_CONFIG_H_
#define _PAL_CONFIG_H_

#include <stdint.h>

/* The suite's types, with addr_t as wide as a host pointer: the VAL keeps
 * function and buffer addresses in addr_t (pal_common.h's default is 32 bits). */
#define TARGET_SPECIFIC_TYPES
typedef uint8_t   bool_t;
#define addr_t    undef_addr_t /* as pal_common.h: avoid a clash with a system addr_t */
typedef uintptr_t addr_t;
typedef uint32_t  test_id_t;
typedef uint32_t  block_id_t;
typedef char      char8_t;
typedef uint32_t  cfg_id_t;

/* UART: printing goes to the process's stdout (spe/pal_driver_intf.c). */
#define UART_NUM                               1
#define UART_0_BASE                            0x50202000 /* FF_TEST_UART_REGION */
#define UART_0_SIZE                            0xFFF
#define UART_0_INTR_ID                         0xFF
#define UART_0_PERMISSION                      TYPE_READ_WRITE

/* Watchdog: bookkeeping only; psaspm's own watchdog (load(watchdog=...)) ends a
 * hang as a reboot, which the suite then reports as a SIM ERROR. */
#define WATCHDOG_NUM                           1
#define WATCHDOG_0_BASE                        0x50300000 /* FF_TEST_WATCHDOG_REGION */
#define WATCHDOG_0_SIZE                        0xFFF
#define WATCHDOG_0_INTR_ID                     0xFF
#define WATCHDOG_0_PERMISSION                  TYPE_READ_WRITE
#define WATCHDOG_0_NUM_OF_TICK_PER_MICRO_SEC   0x3
#define WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_LOW    0xF4240
#define WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_MEDIUM 0x1E8480
#define WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_HIGH   0x4C4B40
#define WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_CRYPTO 0x1312D00

/* 1 KiB of non-volatile memory (a file mapped shared at this address). */
#define NVMEM_NUM                              1
#define NVMEM_0_START                          0x102FFC00
#define NVMEM_0_END                            0x102FFFFF
#define NVMEM_0_PERMISSION                     TYPE_READ_WRITE

/* Memory for the isolation tests, ordered as the suite asks:
 * nspe_mmio.0.start < server_partition_mmio.0.start < driver_partition_mmio.0.start. */
#define NSPE_MMIO_NUM                      1
#define NSPE_MMIO_0_START                  0x00300F00
#define NSPE_MMIO_0_END                    0x00300F1F
#define NSPE_MMIO_0_PERMISSION             TYPE_READ_WRITE

#define SERVER_PARTITION_MMIO_NUM          1
#define SERVER_PARTITION_MMIO_0_START      0x3801FC00
#define SERVER_PARTITION_MMIO_0_END        0x3801FD00
#define SERVER_PARTITION_MMIO_0_PERMISSION TYPE_READ_WRITE

#define DRIVER_PARTITION_MMIO_NUM          1
#define DRIVER_PARTITION_MMIO_0_START      0x3801FE00
#define DRIVER_PARTITION_MMIO_0_END        0x3801FF00
#define DRIVER_PARTITION_MMIO_0_PERMISSION TYPE_READ_WRITE

#if !defined(PSA_CMAKE_BUILD)
#error "the host target is built by arch_tests/run.py, which defines PSA_CMAKE_BUILD"
#endif

/* Print through the driver partition's UART service, as on a board. */
#define BESPOKE_PRINT_NS

#define PLATFORM_UART_BASE UART_0_BASE

#define PLATFORM_WD_BASE                        WATCHDOG_0_BASE
#define PLATFORM_WD_NUM_OF_TICK_PER_MICRO_SEC   WATCHDOG_0_NUM_OF_TICK_PER_MICRO_SEC
#define PLATFORM_WD_TIMEOUT_IN_MICRO_SEC_LOW    WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_LOW
#define PLATFORM_WD_TIMEOUT_IN_MICRO_SEC_MEDIUM WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_LOW
#define PLATFORM_WD_TIMEOUT_IN_MICRO_SEC_HIGH   WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_LOW
#define PLATFORM_WD_TIMEOUT_IN_MICRO_SEC_CRYPTO WATCHDOG_0_TIMEOUT_IN_MICRO_SEC_CRYPTO

#define PLATFORM_NVM_BASE NVMEM_0_START

#define PLATFORM_NSPE_MMIO_START NSPE_MMIO_0_START
#define PLATFORM_SERVER_PARTITION_MMIO_START SERVER_PARTITION_MMIO_0_START
#define PLATFORM_DRIVER_PARTITION_MMIO_START DRIVER_PARTITION_MMIO_0_START
#define PLATFORM_DRIVER_PARTITION_MMIO_END   DRIVER_PARTITION_MMIO_0_END

#ifdef IPC
/* psaspm's PSA client header, then the headers psaspm generates for the system. */
#include "psa/client.h"
#include "psa_manifest/sid.h"
#include "psa_manifest/pid.h"
#endif

#endif /* _PAL_CONFIG_H_ */
