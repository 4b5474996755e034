/*
 * A C client of `psaspm serve` for the tests in this folder: linked with
 * `psaspm libs --client`, it talks to the server at $PSASPM_SERVER.
 *
 * client_app MODE [ARGS]; every mode prints `name=value` lines on stdout and
 * exits 0 when it ran to its end (the tests judge the values), 3 on a wrong
 * echo.  Modes:
 *   basic          framework version, versions, connect, calls, close (echo example)
 *   misuse         calls the SPM (or the library) must refuse, then a good call (one of
 *                  them made on a coroutine's stack)
 *   gone           connect, print ready, wait for a line on stdin, then call twice
 *   many N         connect, N echo calls checked byte for byte, close
 *   threads T N    T threads, each with its own connection handle, N calls each
 *   panic SID      connect to SID, call type 1 (the test service panics), call again
 *   fork           connect, fork: the child calls with its own connection
 *   fork-during-call SID
 *                  a thread holds a call (type 2) on SID; after a line on stdin, fork:
 *                  the child calls; then the held call's status once it is released
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "psa/client.h"

#define ECHO_SID 0xF000u /* examples/echo: EXAMPLE_ECHO, connection-based, version 1 */
#define ECHO 0
#define COUNT 1

static int basic(void)
{
    printf("framework_version=%u\n", psa_framework_version());
    printf("version=%u\n", psa_version(ECHO_SID));
    printf("version_unknown=%u\n", psa_version(0xABCDu));
    printf("connect_wrong_version=%d\n", psa_connect(ECHO_SID, 2));
    psa_handle_t handle = psa_connect(ECHO_SID, 1);
    printf("handle_valid=%d\n", PSA_HANDLE_IS_VALID(handle));
    char out[32];
    memset(out, '.', sizeof out);
    psa_invec in[2] = {{"hello,", 6}, {"world", 5}};
    psa_outvec outv[1] = {{out, sizeof out}};
    printf("call=%d\n", psa_call(handle, ECHO, in, 2, outv, 1));
    printf("out_len=%zu\n", outv[0].len);
    printf("out=%.*s\n", (int)outv[0].len, out);
    printf("out_rest=%c\n", out[11]); /* beyond what the service wrote: untouched */
    char small[4];
    psa_outvec smallv[1] = {{small, sizeof small}};
    printf("call_too_small=%d\n", psa_call(handle, ECHO, in, 2, smallv, 1));
    uint32_t count = 0;
    psa_outvec countv[1] = {{&count, sizeof count}};
    printf("count=%d\n", psa_call(handle, COUNT, NULL, 0, countv, 1));
    printf("count_value=%u\n", count);
    psa_close(handle);
    printf("after_close=%d\n", psa_call(handle, ECHO, in, 1, outv, 1));
    /* Vectors and vector arrays on the heap (not the stack): copied the careful way. */
    handle = psa_connect(ECHO_SID, 1);
    psa_invec *heap_in = malloc(sizeof *heap_in);
    psa_outvec *heap_out = malloc(sizeof *heap_out);
    char *heap_bytes = malloc(16);
    memcpy(heap_bytes, "heap", 4);
    *heap_in = (psa_invec){heap_bytes, 4};
    *heap_out = (psa_outvec){heap_bytes + 4, 12};
    printf("heap_call=%d\n", psa_call(handle, ECHO, heap_in, 1, heap_out, 1));
    printf("heap_out=%.*s\n", (int)heap_out->len, heap_bytes + 4);
    /* Near the protocol's limit: 200,000 bytes each way, several reads and writes. */
    size_t big = 200000;
    char *big_in = malloc(big), *big_out = malloc(big);
    for (size_t i = 0; i < big; i++) {
        big_in[i] = (char)(i * 7);
    }
    psa_invec big_inv[1] = {{big_in, big}};
    psa_outvec big_outv[1] = {{big_out, big}};
    printf("big_call=%d\n", psa_call(handle, ECHO, big_inv, 1, big_outv, 1));
    printf("big_ok=%d\n", big_outv[0].len == big && memcmp(big_in, big_out, big) == 0);
    free(big_in);
    free(big_out);
    psa_close(handle);
    free(heap_in);
    free(heap_out);
    free(heap_bytes);
    return 0;
}

/* A call made on another stack (a coroutine's, on the heap), with an in-vector in an
 * unmapped page between that stack and the thread's own. */
static ucontext_t main_context, other_context;
static psa_handle_t other_handle;
static const void *other_gap;
static int other_status;

static void call_on_the_other_stack(void)
{
    char out[8];
    psa_invec in[1] = {{other_gap, 4}};
    psa_outvec outv[1] = {{out, sizeof out}};
    other_status = psa_call(other_handle, ECHO, in, 1, outv, 1);
}

static int call_from_another_stack(psa_handle_t handle)
{
    void *gap = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gap, 4096);
    size_t size = 1 << 16;
    char *stack = malloc(size);
    other_handle = handle;
    other_gap = gap;
    getcontext(&other_context);
    other_context.uc_stack.ss_sp = stack;
    other_context.uc_stack.ss_size = size;
    other_context.uc_link = &main_context;
    makecontext(&other_context, call_on_the_other_stack, 0);
    swapcontext(&main_context, &other_context);
    free(stack);
    return other_status;
}

static int misuse(void)
{
    psa_handle_t handle = psa_connect(ECHO_SID, 1);
    char out[8];
    memset(out, '.', sizeof out);
    psa_invec in[1] = {{"abc", 3}};
    psa_outvec outv[1] = {{out, sizeof out}};
    printf("bad_handle=%d\n", psa_call(12345, ECHO, in, 1, outv, 1));
    printf("null_handle=%d\n", psa_call(PSA_NULL_HANDLE, ECHO, in, 1, outv, 1));
    psa_invec five[5] = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}, {"e", 1}};
    printf("too_many=%d\n", psa_call(handle, ECHO, five, 4, outv, 1));
    psa_invec unreadable[1] = {{(const void *)16, 4}};
    printf("unreadable=%d\n", psa_call(handle, ECHO, unreadable, 1, outv, 1));
    void *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    psa_outvec readonly[1] = {{page, 8}};
    printf("unwritable=%d\n", psa_call(handle, ECHO, in, 1, readonly, 1));
    printf("null_vectors=%d\n", psa_call(handle, ECHO, NULL, 1, NULL, 0));
    psa_outvec huge[1] = {{out, (size_t)1 << 20}};
    printf("over_limit=%d\n", psa_call(handle, ECHO, in, 1, huge, 1));
    printf("negative_type=%d\n", psa_call(handle, -1, in, 1, outv, 1));
    printf("other_stack_unmapped=%d\n", call_from_another_stack(handle));
    printf("still_works=%d\n", psa_call(handle, ECHO, in, 1, outv, 1));
    printf("out=%.*s\n", (int)outv[0].len, out);
    psa_close(handle);
    return 0;
}

static int gone(void)
{
    psa_handle_t handle = psa_connect(ECHO_SID, 1);
    printf("ready=%d\n", PSA_HANDLE_IS_VALID(handle));
    fflush(stdout);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) {
        return 2;
    }
    char out[4];
    psa_invec in[1] = {{"ping", 4}};
    psa_outvec outv[1] = {{out, sizeof out}};
    printf("first=%d\n", psa_call(handle, ECHO, in, 1, outv, 1));
    printf("second=%d\n", psa_call(handle, ECHO, in, 1, outv, 1));
    printf("connect=%d\n", psa_connect(ECHO_SID, 1));
    psa_close(handle);
    printf("end=1\n");
    return 0;
}

static int echo_calls(psa_handle_t handle, int calls, int tag)
{
    char in[64], out[64];
    for (int i = 0; i < calls; i++) {
        snprintf(in, sizeof in, "client %d call %d", tag, i);
        size_t len = strlen(in);
        psa_invec inv[1] = {{in, len}};
        psa_outvec outv[1] = {{out, sizeof out}};
        psa_status_t status = psa_call(handle, ECHO, inv, 1, outv, 1);
        if (status != PSA_SUCCESS || outv[0].len != len || memcmp(in, out, len) != 0) {
            printf("bad_call=%d status=%d\n", i, status);
            return 0;
        }
    }
    return 1;
}

static int many(int calls)
{
    psa_handle_t handle = psa_connect(ECHO_SID, 1);
    int ok = echo_calls(handle, calls, (int)getpid());
    psa_close(handle);
    printf("ok=%d\n", ok);
    return ok ? 0 : 3;
}

struct worker {
    pthread_t thread;
    int calls, tag, ok;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    psa_handle_t handle = psa_connect(ECHO_SID, 1);
    w->ok = PSA_HANDLE_IS_VALID(handle) && echo_calls(handle, w->calls, w->tag);
    psa_close(handle);
    return NULL;
}

static int threads(int count, int calls)
{
    struct worker workers[16];
    if (count > 16) {
        count = 16;
    }
    for (int i = 0; i < count; i++) {
        workers[i] = (struct worker){.calls = calls, .tag = i};
        pthread_create(&workers[i].thread, NULL, work, &workers[i]);
    }
    int ok = 0;
    for (int i = 0; i < count; i++) {
        pthread_join(workers[i].thread, NULL);
        ok += workers[i].ok;
    }
    printf("threads_ok=%d\n", ok);
    return ok == count ? 0 : 3;
}

static int panic(uint32_t sid)
{
    psa_handle_t handle = psa_connect(sid, 1);
    printf("handle_valid=%d\n", PSA_HANDLE_IS_VALID(handle));
    printf("panic_call=%d\n", psa_call(handle, 1, NULL, 0, NULL, 0));
    printf("after_panic=%d\n", psa_call(handle, 0, NULL, 0, NULL, 0));
    printf("end=1\n");
    return 0;
}

struct held {
    pthread_t thread;
    psa_handle_t handle;
    psa_status_t status;
};

static void *hold(void *arg)
{
    struct held *h = arg;
    h->status = psa_call(h->handle, 2, NULL, 0, NULL, 0); /* HOLD: answered at RELEASE */
    return NULL;
}

/* fork() while another thread is inside a call (holding the library's lock). */
static int fork_during_call(uint32_t sid)
{
    struct held h = {.handle = psa_connect(sid, 1), .status = 1};
    pthread_create(&h.thread, NULL, hold, &h);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL) { /* the test saw the call held */
        return 2;
    }
    pid_t child = fork();
    if (child == 0) {
        psa_handle_t own = psa_connect(sid, 1);
        char out[4];
        psa_invec in[1] = {{"kid", 3}};
        psa_outvec outv[1] = {{out, sizeof out}};
        printf("child_call=%d\n", psa_call(own, 0, in, 1, outv, 1));
        psa_close(own);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    fflush(stdout);
    pthread_join(h.thread, NULL);
    printf("held_call=%d\n", h.status);
    psa_close(h.handle);
    return 0;
}

static int forked(void)
{
    psa_handle_t handle = psa_connect(ECHO_SID, 1);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* The parent's handle belongs to the parent's connection (its NS client). */
        printf("child_parent_handle=%d\n", psa_call(handle, ECHO, NULL, 0, NULL, 0));
        psa_handle_t own = psa_connect(ECHO_SID, 1);
        printf("child_ok=%d\n", echo_calls(own, 10, 1));
        psa_close(own);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    printf("parent_ok=%d\n", echo_calls(handle, 10, 0));
    psa_close(handle);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "basic") == 0) {
        return basic();
    }
    if (strcmp(mode, "misuse") == 0) {
        return misuse();
    }
    if (strcmp(mode, "gone") == 0) {
        return gone();
    }
    if (strcmp(mode, "many") == 0 && argc > 2) {
        return many(atoi(argv[2]));
    }
    if (strcmp(mode, "threads") == 0 && argc > 3) {
        return threads(atoi(argv[2]), atoi(argv[3]));
    }
    if (strcmp(mode, "panic") == 0 && argc > 2) {
        return panic((uint32_t)strtoul(argv[2], NULL, 0));
    }
    if (strcmp(mode, "fork") == 0) {
        return forked();
    }
    if (strcmp(mode, "fork-during-call") == 0 && argc > 2) {
        return fork_during_call((uint32_t)strtoul(argv[2], NULL, 0));
    }
    fprintf(stderr, "usage: client_app basic|misuse|gone|many N|threads T N|panic SID|fork|"
                    "fork-during-call SID\n");
    return 2;
}
