/*
 * psaspm: the PSA client API (FF-M 1.1, psa/client.h).
 *
 * Types, macros, values and function signatures follow FF-M 1.1 as TF-M
 * declares them, so TF-M-style client and partition code compiles unchanged;
 * the text of this file is psaspm's own.  Under psaspm these functions act for
 * the secure partition that calls them, or, in non-secure code, for its NS
 * client through the TrustZone NS agent.
 * SPDX-License-Identifier: BSD-3-Clause
 */

#ifndef __PSA_CLIENT_H__
#define __PSA_CLIENT_H__

#include <stddef.h>
#include <stdint.h>

#include "psa/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef IOVEC_LEN
/* The number of vectors in an array of psa_invec or psa_outvec. */
#define IOVEC_LEN(arr) ((uint32_t)(sizeof(arr) / sizeof(arr[0])))
#endif

/* size_t as a 32-bit RoT Service sees it (TF-M's rot_size_t). */
typedef uint32_t rot_size_t;
#define ROT_SIZE_MAX UINT32_MAX

/* The framework version psaspm implements: FF-M 1.1 (major 1, minor 1). */
#define PSA_FRAMEWORK_VERSION       (0x0101u)

/* psa_version() of a service that is absent or that the caller may not use. */
#define PSA_VERSION_NONE            (0u)

/* No connection, no message. */
#define PSA_NULL_HANDLE             ((psa_handle_t)0)

/* A handle from psa_connect() is valid when it is positive ... */
#define PSA_HANDLE_IS_VALID(handle) ((psa_handle_t)(handle) > 0)

/* ... and otherwise it is the status of the failed connection. */
#define PSA_HANDLE_TO_ERROR(handle) ((psa_status_t)(handle))

/* At most this many vectors, in and out together, in one psa_call(). */
#define PSA_MAX_IOVEC               (4u)

/* The range of psa_call() types (TF-M packs the type into 16 bits). */
#define PSA_CALL_TYPE_MIN           (0)
#define PSA_CALL_TYPE_MAX           (INT16_MAX)

/* The generic request type. */
#define PSA_IPC_CALL                (0)

typedef int32_t psa_handle_t;

/* A read-only buffer of the client's, passed to a service. */
typedef struct psa_invec {
    const void *base;   /* first byte */
    size_t len;         /* length in bytes */
} psa_invec;

/* A writable buffer of the client's, for a service's output.  After
 * psa_call() returns, len is the number of bytes the service wrote. */
typedef struct psa_outvec {
    void *base;         /* first byte */
    size_t len;         /* capacity in bytes on entry, bytes written on return */
} psa_outvec;

/* The framework version: bits 15..8 major, 7..0 minor. */
uint32_t psa_framework_version(void);

/* The version of service sid, or PSA_VERSION_NONE when it is absent or the
 * caller may not use it. */
uint32_t psa_version(uint32_t sid);

/* Connect to a connection-based service: a handle > 0, or
 * PSA_ERROR_CONNECTION_REFUSED / PSA_ERROR_CONNECTION_BUSY. */
psa_handle_t psa_connect(uint32_t sid, uint32_t version);

/* Send a request of the given type (0 .. PSA_CALL_TYPE_MAX) on a connection
 * or through a stateless service's handle; returns the service's status.
 * in_len + out_len must not exceed PSA_MAX_IOVEC. */
psa_status_t psa_call(psa_handle_t handle, int32_t type,
                      const psa_invec *in_vec,
                      size_t in_len,
                      psa_outvec *out_vec,
                      size_t out_len);

/* Close a connection; PSA_NULL_HANDLE is ignored. */
void psa_close(psa_handle_t handle);

#ifdef __cplusplus
}
#endif

#endif /* __PSA_CLIENT_H__ */
