/*
 * psaspm's C runtime shim is built once for every configuration: it needs no
 * configuration switches, only the PSA types (psa/service.h includes this).
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef __PSASPM_SHIM_CONFIG_IMPL_H__
#define __PSASPM_SHIM_CONFIG_IMPL_H__
#endif
