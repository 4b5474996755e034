/*
 * TFM_SP_C_MM: an IPC-model C partition whose service maps its vectors
 * (MM-IOVEC).  Call types:
 *   REVERSE (0): map in-vector 0 and out-vector 0, write the input reversed
 *                through the mapping, unmap both (out-vector: the input's length);
 *   NO_UNMAP (1): map out-vector 0, fill it with 'x', reply without unmapping;
 *   PANIC_DEEP (2): psa_panic() 32 C frames below the thread's psa_wait loop;
 *   DEEP_CALL (3): 100 C frames down, each with a 256-byte buffer, call
 *                 EXAMPLE_CHECKSUM (the thread blocks, other threads run), then
 *                 check every frame's buffer on the way up; write the CRC (4 bytes)
 *                 and how many frames were intact (4 bytes LE).
 */

#include <stdint.h>
#include <string.h>

#include "psa/service.h"
#include "psa_manifest/c_mm.h"
#include "psa_manifest/sid.h"

static void panic_at(int depth)
{
    volatile char frame[64];
    memset((void *)frame, depth, sizeof(frame));
    if (depth == 0) {
        psa_panic();
    }
    panic_at(depth - 1);
    frame[0]++;
}

static uint32_t deep_call(int depth, uint8_t crc[4])
{
    uint8_t frame[256];
    memset(frame, depth, sizeof(frame));
    uint32_t intact = 0;
    if (depth == 0) {
        static const char text[] = "deep";
        psa_invec in[1] = {{text, 4}};
        psa_outvec out[1] = {{crc, 4}};
        if (psa_call(EXAMPLE_CHECKSUM_HANDLE, PSA_IPC_CALL, in, 1, out, 1) != PSA_SUCCESS) {
            return 0;
        }
    } else {
        intact = deep_call(depth - 1, crc);
    }
    for (size_t i = 0; i < sizeof(frame); i++) {
        if (frame[i] != (uint8_t)depth) {
            return intact;
        }
    }
    return intact + 1;
}

static psa_status_t serve(const psa_msg_t *msg)
{
    switch (msg->type) {
    case 0: {
        const uint8_t *in = psa_map_invec(msg->handle, 0);
        uint8_t *out = psa_map_outvec(msg->handle, 0);
        size_t size = msg->in_size[0] < msg->out_size[0] ? msg->in_size[0] : msg->out_size[0];
        for (size_t i = 0; i < size; i++) {
            out[i] = in[msg->in_size[0] - 1 - i];
        }
        psa_unmap_invec(msg->handle, 0);
        psa_unmap_outvec(msg->handle, 0, size);
        return PSA_SUCCESS;
    }
    case 1: {
        uint8_t *out = psa_map_outvec(msg->handle, 0);
        memset(out, 'x', msg->out_size[0]);
        return PSA_SUCCESS;
    }
    case 2:
        panic_at(32);
        return PSA_SUCCESS;
    case 3: {
        uint8_t result[8] = {0};
        uint32_t intact = deep_call(100, result);
        for (int i = 0; i < 4; i++) {
            result[4 + i] = (uint8_t)(intact >> (8 * i));
        }
        psa_write(msg->handle, 0, result, sizeof(result));
        return PSA_SUCCESS;
    }
    default:
        return PSA_ERROR_NOT_SUPPORTED;
    }
}

void c_mm_main(void)
{
    psa_msg_t msg;
    for (;;) {
        psa_signal_t signals = psa_wait(PSA_WAIT_ANY, PSA_BLOCK);
        if (signals & C_MM_SIGNAL) {
            psa_get(C_MM_SIGNAL, &msg);
            psa_reply(msg.handle, serve(&msg));
        }
    }
}
