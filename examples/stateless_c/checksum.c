/*
 * TFM_SP_EXAMPLE_CHECKSUM in C: the SFN-model partition of examples/stateless,
 * written as a TF-M partition is.  Same manifest, same stateless service.
 *
 * checksum_init (the manifest's entry_init) builds the CRC-32 table once at
 * boot.  The service function reads every in-vector in small chunks
 * (psa_read returns fewer bytes at the end of a vector) and writes the
 * CRC-32 (zlib's) of all of them, 4 bytes big-endian, to out-vector 0.
 */

#include <stdint.h>

#include "psa/service.h"
#include "psa_manifest/checksum.h"

#define CHUNK 8

static uint32_t crc_table[256];
static int crc_table_ready;

psa_status_t checksum_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) {
            c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[n] = c;
    }
    crc_table_ready = 1;
    return PSA_SUCCESS;
}

psa_status_t example_checksum_sfn(const psa_msg_t *msg)
{
    if (msg->type != PSA_IPC_CALL) {
        return PSA_ERROR_NOT_SUPPORTED;
    }
    if (msg->out_size[0] < 4) {
        return PSA_ERROR_BUFFER_TOO_SMALL;
    }
    if (!crc_table_ready) {
        return PSA_ERROR_BAD_STATE; /* entry_init always runs first */
    }
    uint32_t crc = 0xFFFFFFFFu;
    uint8_t chunk[CHUNK];
    for (uint32_t i = 0; i < PSA_MAX_IOVEC; i++) {
        size_t got;
        while ((got = psa_read(msg->handle, i, chunk, sizeof(chunk))) > 0) {
            for (size_t j = 0; j < got; j++) {
                crc = crc_table[(crc ^ chunk[j]) & 0xFFu] ^ (crc >> 8);
            }
        }
    }
    crc ^= 0xFFFFFFFFu;
    uint8_t out[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                      (uint8_t)crc};
    psa_write(msg->handle, 0, out, sizeof(out));
    return PSA_SUCCESS;
}
