/*
 * TFM_SP_C_PROBE: C partition code for the C runtime's tests.  Each call type of
 * C_PROBE does one thing the tests check from the non-secure side.
 */

#include <stdint.h>
#include <string.h>

#include "psa/client.h"
#include "psa/service.h"
#include "psa_manifest/c_probe.h"
#include "psa_manifest/sid.h"
#include "psaspm/hal.h"

enum {
    COUNT = 0,      /* count the calls in a global; write the count (4 bytes LE) */
    PANIC = 1,      /* psa_panic() */
    BAD_HANDLE = 2, /* psa_read() of a handle that is no message's */
    BAD_WRITE = 3,  /* psa_write() from a pointer that is no memory */
    BAD_CALL = 4,   /* psa_call() with an in-vector pointing nowhere */
    NESTED = 5,     /* checksum in-vector 0 through EXAMPLE_CHECKSUM, stack vectors */
    DEEP = 6,       /* psa_read() of a bad handle 64 C frames down */
    TOO_MANY = 7,   /* psa_call() with five in-vectors */
    INITS = 8,      /* write how many times entry_init ran in this image */
    HAL = 9,        /* in-vector 0: an address; add 1 to the word there (psaspm/hal.h) */
    NULL_READ = 10, /* psa_read() into NULL: of in-vector 3 (empty), then of in-vector 0 */
    EMPTY_VECS = 11, /* call EXAMPLE_CHECKSUM with NULL, zero-length vectors around "abc" */
    OUT_AFTER = 12, /* call EXAMPLE_CHECKSUM into 0xAA bytes; write the status, the
                     * out-vector's len and its first 4 bytes */
};

static uint32_t calls;
static uint32_t inits;

psa_status_t c_probe_init(void)
{
    inits++;
    return PSA_SUCCESS;
}

static void write_u32(psa_handle_t handle, uint32_t value)
{
    uint8_t bytes[4];
    for (int i = 0; i < 4; i++) {
        bytes[i] = (uint8_t)(value >> (8 * i));
    }
    psa_write(handle, 0, bytes, sizeof(bytes));
}

/* Recurse with a live stack buffer in every frame, then misuse the API. */
static uint32_t deep(psa_handle_t handle, int depth)
{
    volatile uint8_t frame[32];
    memset((void *)frame, depth, sizeof(frame));
    if (depth == 0) {
        uint8_t byte;
        psa_read(handle + 0x100, 0, &byte, 1);
        return frame[0];
    }
    return deep(handle, depth - 1) + frame[1];
}

static psa_status_t nested(const psa_msg_t *msg)
{
    uint8_t data[64];
    size_t size = psa_read(msg->handle, 0, data, sizeof(data));
    size_t half = size / 2;
    psa_invec in[2] = {{data, half}, {data + half, size - half}};
    uint8_t crc[8] = {0};
    psa_outvec out[1] = {{crc, sizeof(crc)}};
    psa_status_t status = psa_call(EXAMPLE_CHECKSUM_HANDLE, PSA_IPC_CALL, in, 2, out, 1);
    if (status != PSA_SUCCESS) {
        return status;
    }
    psa_write(msg->handle, 0, crc, out[0].len); /* the bytes written, as TF-M sets len */
    return PSA_SUCCESS;
}

psa_status_t c_probe_sfn(const psa_msg_t *msg)
{
    static const uint8_t five[5] = {1, 2, 3, 4, 5};
    psa_invec many[5];

    switch (msg->type) {
    case COUNT:
        write_u32(msg->handle, ++calls);
        return PSA_SUCCESS;
    case PANIC:
        psa_panic();
    case BAD_HANDLE: {
        uint8_t byte;
        psa_read(msg->handle + 0x100, 0, &byte, 1);
        return PSA_SUCCESS;
    }
    case BAD_WRITE:
        psa_write(msg->handle, 0, (const void *)16, 4);
        return PSA_SUCCESS;
    case BAD_CALL: {
        psa_invec in[1] = {{(const void *)16, 8}};
        return psa_call(EXAMPLE_CHECKSUM_HANDLE, PSA_IPC_CALL, in, 1, NULL, 0);
    }
    case NESTED:
        return nested(msg);
    case DEEP:
        return (psa_status_t)deep(msg->handle, 64);
    case TOO_MANY:
        for (int i = 0; i < 5; i++) {
            many[i].base = &five[i];
            many[i].len = 1;
        }
        return psa_call(EXAMPLE_CHECKSUM_HANDLE, PSA_IPC_CALL, many, 5, NULL, 0);
    case INITS:
        write_u32(msg->handle, inits);
        return PSA_SUCCESS;
    case HAL: {
        uint64_t addr = 0;
        psa_read(msg->handle, 0, &addr, sizeof(addr));
        uint32_t value = psaspm_hal_read32((uintptr_t)addr);
        psaspm_hal_write32((uintptr_t)addr, value + 1);
        write_u32(msg->handle, psaspm_hal_read32((uintptr_t)addr));
        return PSA_SUCCESS;
    }
    case EMPTY_VECS: {
        uint8_t crc[4];
        psa_invec in[2] = {{NULL, 0}, {"abc", 3}};
        psa_outvec out[2] = {{crc, sizeof(crc)}, {NULL, 0}};
        psa_status_t status = psa_call(EXAMPLE_CHECKSUM_HANDLE, PSA_IPC_CALL, in, 2, out, 2);
        if (status == PSA_SUCCESS) {
            psa_write(msg->handle, 0, crc, out[0].len);
        }
        return status;
    }
    case OUT_AFTER: {
        uint8_t crc[8];
        memset(crc, 0xAA, sizeof(crc));
        psa_invec in[1] = {{"abc", 3}};
        psa_outvec out[1] = {{crc, sizeof(crc)}};
        psa_status_t status = psa_call(EXAMPLE_CHECKSUM_HANDLE, PSA_IPC_CALL, in, 1, out, 1);
        write_u32(msg->handle, (uint32_t)status);
        write_u32(msg->handle, (uint32_t)out[0].len);
        psa_write(msg->handle, 0, crc, 4);
        return PSA_SUCCESS;
    }
    case NULL_READ:
        write_u32(msg->handle, (uint32_t)psa_read(msg->handle, 3, NULL, 16));
        psa_read(msg->handle, 0, NULL, 16);
        return PSA_SUCCESS;
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}
