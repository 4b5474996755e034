/*
 * For psaspm's C runtime shim only: it defines every PSA function, the
 * MM-IOVEC ones included (a configuration without MM-IOVEC never calls them).
 * SPDX-License-Identifier: BSD-3-Clause
 */
#ifndef __PSASPM_SHIM_FRAMEWORK_FEATURE_H__
#define __PSASPM_SHIM_FRAMEWORK_FEATURE_H__
#define PSA_FRAMEWORK_ISOLATION_LEVEL 1
#define PSA_FRAMEWORK_HAS_MM_IOVEC 1
#endif
