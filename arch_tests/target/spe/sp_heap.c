/*
 * psa-arch-tests host target for psaspm: a partition's heap, bounded by its
 * manifest's heap_size (PSASPM_ARCH_HEAP_SIZE, given by arch_tests/run.py;
 * 0 when the manifest has none, so every malloc fails).
 *
 * Linked into each partition's image with hidden visibility, so the
 * partition's own malloc/calloc/realloc/free calls come here while the C
 * library keeps the host's allocator.  The heap is a static array of the
 * image: each boot's fresh image starts with an empty heap.  As the suite
 * expects (i067): the bookkeeping lies outside the heap, so one block may
 * take all heap_size bytes; malloc returns zeroed memory; free scrubs the
 * block; realloc moves the object to a new block, zeroing the added bytes,
 * and frees (scrubs) the old one.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef PSASPM_ARCH_HEAP_SIZE
#error "PSASPM_ARCH_HEAP_SIZE (the manifest's heap_size) is not defined"
#endif

#define HEAP_ALIGN 8
#define MAX_BLOCKS 64

#define HIDDEN __attribute__((visibility("hidden")))

static _Alignas(16) uint8_t heap[PSASPM_ARCH_HEAP_SIZE + 1];
static struct {
    size_t offset, size;
} blocks[MAX_BLOCKS]; /* in offset order */
static size_t n_blocks;

static size_t rounded(size_t size)
{
    return (size + HEAP_ALIGN - 1) & ~(size_t)(HEAP_ALIGN - 1);
}

HIDDEN void *malloc(size_t size)
{
    size_t need = rounded(size == 0 ? 1 : size);
    size_t at = 0;

    if (size > PSASPM_ARCH_HEAP_SIZE || n_blocks == MAX_BLOCKS)
        return NULL;
    for (size_t i = 0; i <= n_blocks; i++) {
        size_t end = i < n_blocks ? blocks[i].offset : PSASPM_ARCH_HEAP_SIZE;
        if (end >= at && end - at >= need) {
            memmove(&blocks[i + 1], &blocks[i], (n_blocks - i) * sizeof(blocks[0]));
            blocks[i].offset = at;
            blocks[i].size = need;
            n_blocks++;
            memset(&heap[at], 0, need);
            return &heap[at];
        }
        if (i < n_blocks)
            at = blocks[i].offset + blocks[i].size;
    }
    return NULL;
}

static long find(const void *ptr)
{
    for (size_t i = 0; i < n_blocks; i++)
        if (&heap[blocks[i].offset] == ptr)
            return (long)i;
    return -1;
}

HIDDEN void free(void *ptr)
{
    long i = ptr == NULL ? -1 : find(ptr);

    if (i < 0)
        return;
    memset(&heap[blocks[i].offset], 0, blocks[i].size);
    memmove(&blocks[i], &blocks[i + 1], (n_blocks - (size_t)i - 1) * sizeof(blocks[0]));
    n_blocks--;
}

HIDDEN void *calloc(size_t count, size_t size)
{
    if (size != 0 && count > PSASPM_ARCH_HEAP_SIZE / size)
        return NULL;
    return malloc(count * size); /* zeroed */
}

HIDDEN void *realloc(void *ptr, size_t size)
{
    long i = ptr == NULL ? -1 : find(ptr);
    uint8_t *moved;

    if (ptr == NULL)
        return malloc(size);
    if (i < 0)
        return NULL;
    moved = malloc(size);
    if (moved == NULL)
        return NULL;
    i = find(ptr); /* malloc may have shifted the table */
    memcpy(moved, ptr, blocks[i].size < size ? blocks[i].size : size);
    free(ptr);
    return moved;
}
