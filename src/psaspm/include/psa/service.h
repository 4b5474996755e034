/*
 * psaspm: the PSA Secure Partition API (FF-M 1.1, psa/service.h).
 *
 * Types, macros, values and function signatures follow FF-M 1.1 as TF-M
 * declares them, so TF-M-style partition code compiles unchanged; the text
 * of this file is psaspm's own.  As in TF-M, it includes two headers that
 * are generated per configuration: config_impl.h and psa/framework_feature.h
 * (`psaspm headers` writes them; psaspm's C build puts them on the include
 * path).
 * SPDX-License-Identifier: BSD-3-Clause
 */

#ifndef __PSA_SERVICE_H__
#define __PSA_SERVICE_H__

#include <stddef.h>
#include <stdint.h>

#include "config_impl.h"

#include "psa/client.h"
#include "psa/error.h"
#include "psa/framework_feature.h"

#ifdef __cplusplus
extern "C" {
#endif

/* psa_wait() timeouts: poll, or block until a signal is asserted. */
#define PSA_POLL                (0x00000000u)
#define PSA_BLOCK               (0x80000000u)

/* Every signal of the partition. */
#define PSA_WAIT_ANY            (0xFFFFFFFFu)

/* The doorbell signal (bit 3), set by psa_notify(). */
#define PSA_DOORBELL            (0x00000008u)

/* Message types besides requests (type >= PSA_IPC_CALL). */
#define PSA_IPC_CONNECT         (-1)
#define PSA_IPC_DISCONNECT      (-2)

/* What a first-level interrupt handler returns. */
#define PSA_FLIH_NO_SIGNAL      ((psa_flih_result_t) 0)
#define PSA_FLIH_SIGNAL         ((psa_flih_result_t) 1)

/* A set of signals of a partition. */
typedef uint32_t psa_signal_t;

/* An interrupt's state before psa_irq_disable(). */
typedef uint32_t psa_irq_status_t;

/* The result of a first-level interrupt handler. */
typedef uint32_t psa_flih_result_t;

/* A message as psa_get() delivers it. */
typedef struct psa_msg_t {
    int32_t type;                   /* PSA_IPC_CONNECT, PSA_IPC_DISCONNECT, or a request type >= 0 */
    psa_handle_t handle;            /* the message's handle, for psa_read/psa_write/psa_reply */
    int32_t client_id;              /* the sender: a partition ID (> 0) or an NS client ID (< 0) */
    void *rhandle;                  /* what psa_set_rhandle() stored for the connection */
    size_t in_size[PSA_MAX_IOVEC];  /* the length of each input vector */
    size_t out_size[PSA_MAX_IOVEC]; /* the capacity of each output vector */
} psa_msg_t;

/* The asserted signals among signal_mask; 0 only when polling. */
psa_signal_t psa_wait(psa_signal_t signal_mask, uint32_t timeout);

/* Take the next message of a service's signal into *msg: PSA_SUCCESS, or
 * PSA_ERROR_DOES_NOT_EXIST when there is none. */
psa_status_t psa_get(psa_signal_t signal, psa_msg_t *msg);

/* Bind service data to the connection of msg_handle; later messages on the
 * connection carry it as rhandle. */
void psa_set_rhandle(psa_handle_t msg_handle, void *rhandle);

/* Copy up to num_bytes of input vector invec_idx into buffer, from where the
 * last psa_read/psa_skip stopped; returns the bytes copied (0 at the end). */
size_t psa_read(psa_handle_t msg_handle, uint32_t invec_idx,
                void *buffer, size_t num_bytes);

/* Skip up to num_bytes of input vector invec_idx; returns the bytes skipped. */
size_t psa_skip(psa_handle_t msg_handle, uint32_t invec_idx, size_t num_bytes);

/* Append num_bytes from buffer to output vector outvec_idx; writing past its
 * end is a PROGRAMMER ERROR. */
void psa_write(psa_handle_t msg_handle, uint32_t outvec_idx,
               const void *buffer, size_t num_bytes);

/* Finish a message and hand status to the client. */
void psa_reply(psa_handle_t msg_handle, psa_status_t status);

/* Assert the doorbell of partition_id.  (TF-M marks psa_notify and
 * psa_clear deprecated; FF-M 1.1 does not, nor does psaspm.) */
void psa_notify(int32_t partition_id);

/* Clear the caller's doorbell signal. */
void psa_clear(void);

/* End of a second-level interrupt: the source may be taken again. */
void psa_eoi(psa_signal_t irq_signal);

/* Stop the calling partition; under psaspm the SPE halts as TF-M's does. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((__noreturn__))
#endif
void psa_panic(void);

/* Enable the interrupt of irq_signal. */
void psa_irq_enable(psa_signal_t irq_signal);

/* Disable the interrupt of irq_signal; returns 1 if it was enabled, else 0. */
psa_irq_status_t psa_irq_disable(psa_signal_t irq_signal);

/* Clear the asserted signal of a FLIH interrupt. */
void psa_reset_signal(psa_signal_t irq_signal);

#if PSA_FRAMEWORK_HAS_MM_IOVEC

/* Map input vector invec_idx of a message to a service with mm_iovec
 * enabled: a pointer to the client's bytes, readable until unmapped. */
const void *psa_map_invec(psa_handle_t msg_handle, uint32_t invec_idx);

/* Unmap an input vector mapped by psa_map_invec(). */
void psa_unmap_invec(psa_handle_t msg_handle, uint32_t invec_idx);

/* Map output vector outvec_idx: a pointer the service writes through. */
void *psa_map_outvec(psa_handle_t msg_handle, uint32_t outvec_idx);

/* Unmap an output vector; len bytes of it were written. */
void psa_unmap_outvec(psa_handle_t msg_handle, uint32_t outvec_idx, size_t len);

#endif /* PSA_FRAMEWORK_HAS_MM_IOVEC */

#ifdef __cplusplus
}
#endif

#endif /* __PSA_SERVICE_H__ */
