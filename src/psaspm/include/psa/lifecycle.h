/*
 * psaspm: the PSA RoT lifecycle states (FF-M 1.1, psa/lifecycle.h).
 *
 * Values are the PSA Security Model's, as TF-M declares them; the text of
 * this file is psaspm's own.
 * SPDX-License-Identifier: BSD-3-Clause
 */

#ifndef __PSA_LIFECYCLE_H__
#define __PSA_LIFECYCLE_H__

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bits 15..8: the PSA lifecycle state; bits 7..0: an implementation's own. */
#define PSA_LIFECYCLE_PSA_STATE_MASK            (0xff00u)
#define PSA_LIFECYCLE_IMP_STATE_MASK            (0x00ffu)

#define PSA_LIFECYCLE_UNKNOWN                   (0x0000u)
#define PSA_LIFECYCLE_ASSEMBLY_AND_TEST         (0x1000u)
#define PSA_LIFECYCLE_PSA_ROT_PROVISIONING      (0x2000u)
#define PSA_LIFECYCLE_SECURED                   (0x3000u)
#define PSA_LIFECYCLE_NON_PSA_ROT_DEBUG         (0x4000u)
#define PSA_LIFECYCLE_RECOVERABLE_PSA_ROT_DEBUG (0x5000u)
#define PSA_LIFECYCLE_DECOMMISSIONED            (0x6000u)

/* The current lifecycle state of the PSA RoT. */
uint32_t psa_rot_lifecycle_state(void);

#ifdef __cplusplus
}
#endif

#endif /* __PSA_LIFECYCLE_H__ */
