/*
 * psaspm: the PSA client API for a C program in another process, over the
 * mailbox wire protocol of `psaspm serve` (docs/mailbox-protocol.md).
 *
 * psa_framework_version, psa_version, psa_connect, psa_call and psa_close of
 * psa/client.h act for one non-secure client of the served system: the
 * process's connection to the server named by $PSASPM_SERVER (`unix:PATH`, a
 * bare path, or `tcp:HOST:PORT`).  Behaviour follows psaspm.remote:
 *
 * - The connection is opened (HELLO, WELCOME) by the first call.  A failed
 *   attempt is retried by the next call; a connection that was open and is
 *   lost stays lost (its handles died with it): every later call fails.
 * - A call the SPM would reject (more than PSA_MAX_IOVEC vectors, a vector
 *   the caller may not read or write) returns PSA_ERROR_PROGRAMMER_ERROR
 *   without being sent; so does a vector over the protocol's size limits
 *   (where psaspm.remote raises ValueError).
 * - Where psaspm.remote raises (RemoteError: no server, server gone, a fatal
 *   or unexpected ERROR, a malformed frame; Panic: the SPE halted), these
 *   functions return PSA_ERROR_COMMUNICATION_FAILURE (psa_connect,
 *   psa_call), PSA_VERSION_NONE (psa_version), 0 (psa_framework_version) or
 *   nothing (psa_close), and print one line naming what happened on stderr,
 *   starting "psaspm client: ".  Nothing aborts or raises a signal: sends use
 *   MSG_NOSIGNAL, so a closed peer is an error, not SIGPIPE.
 *
 * Threads: every function is thread-safe.  Calls from several threads are
 * serialised on one connection (one request in flight per process), so a
 * call that blocks inside a service delays the other threads' calls.  A child
 * made by fork() does not share its parent's connection: its first call opens
 * its own (a new NS client), even if another thread of the parent's was inside
 * a call at the fork.
 *
 * Vectors (and the vector arrays) on the calling thread's stack, the usual
 * case, are checked by address arithmetic; any other is copied with
 * process_vm_readv/process_vm_writev on the process itself (out-vectors probed
 * before the request is sent), so an unreadable in-vector or unwritable
 * out-vector is a programmer error, never a crash.  Where those system calls
 * are refused (a seccomp filter), vectors are copied with memcpy as any C
 * library would.
 *
 * SPDX-License-Identifier: BSD-3-Clause
 */

#define _GNU_SOURCE

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "psa/client.h"

/* ---------------------------------------------------------------- protocol */

#define PROTOCOL_VERSION 1u
#define HEADER_SIZE 8u            /* version, kind, reserved, seq */
#define MAX_FRAME (1u << 20)      /* largest length (header + payload) */
#define MAX_VECTORS 4u            /* per direction, on the wire */
#define MAX_VECTOR (1u << 18)     /* largest vector */
#define MAX_OUT_TOTAL (1u << 19)  /* sum of out-vector capacities */
#define HANDSHAKE_TIMEOUT_S 10    /* as psaspm.remote.connect's default */

enum kind {
    KIND_HELLO = 0x01,
    KIND_FRAMEWORK_VERSION = 0x02,
    KIND_VERSION = 0x03,
    KIND_CONNECT = 0x04,
    KIND_CALL = 0x05,
    KIND_CLOSE = 0x06,
    KIND_WELCOME = 0x81,
    KIND_RESULT = 0x82,
    KIND_STATS_RESULT = 0x83,
    KIND_ERROR = 0xEE,
};

#define ERROR_PANIC 8u

static const char *const error_names[] = {
    "?", "MALFORMED", "TRUNCATED", "OVERSIZED", "OUT_OF_ORDER", "UNSUPPORTED_VERSION",
    "UNKNOWN_KIND", "LIMIT", "PANIC", "SHUTDOWN", "INTERNAL",
};

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* ------------------------------------------------------------------- state */

enum state { NOT_CONNECTED, CONNECTED, LOST };

struct client {
    pthread_mutex_t lock;
    enum state state;
    int fd;
    uint32_t seq;             /* last seq used; HELLO is 1 */
    char addr[256];           /* $PSASPM_SERVER when connected (cut to fit) */
    char lost[800];           /* why the connection is LOST */
    uint8_t *out;             /* the request being sent */
    size_t out_cap;
    uint8_t *buf;             /* received bytes in buf[0..have) */
    size_t cap;
    size_t have;
};

static struct client the_client = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .state = NOT_CONNECTED,
    .fd = -1,
};

static void say(const char *api, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line on stderr: "psaspm client: API: what happened". */
static void say(const char *api, const char *fmt, ...)
{
    char text[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    fprintf(stderr, "psaspm client: %s: %s\n", api, text);
}

/* Make *buf (of *cap bytes) hold at least size bytes; 0, or -1 out of memory. */
static int reserve(uint8_t **buf, size_t *cap, size_t size)
{
    if (size <= *cap) {
        return 0;
    }
    size_t grown_cap = *cap ? *cap : 4096;
    while (grown_cap < size) {
        grown_cap *= 2;
    }
    uint8_t *grown = realloc(*buf, grown_cap);
    if (grown == NULL) {
        return -1;
    }
    *buf = grown;
    *cap = grown_cap;
    return 0;
}

/* The connection is gone for good: remember why (for later calls), say it once. */
static void lose(struct client *c, const char *api, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lose(struct client *c, const char *api, const char *fmt, ...)
{
    char what[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    snprintf(c->lost, sizeof c->lost, "lost the server at %s: %s", c->addr, what);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->state = LOST;
    c->have = 0;
    say(api, "%s", c->lost);
}

/* ---------------------------------------------------------------- transport */

static int send_all(struct client *c, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Receive one whole frame into buf[0..4+length); returns its length (header
 * and payload), 0 when the server closed the stream, -1 on an error with
 * errno set, -2 for a length out of range (*bad holds it).
 */
static long recv_frame(struct client *c, uint32_t *bad)
{
    for (;;) {
        if (c->have >= 4) {
            uint32_t length = get_u32(c->buf);
            if (length < HEADER_SIZE || length > MAX_FRAME) {
                *bad = length;
                return -2;
            }
            if (c->have >= 4u + length) {
                return (long)length;
            }
            if (reserve(&c->buf, &c->cap, 4u + length) != 0) {
                errno = ENOMEM;
                return -1;
            }
        } else if (reserve(&c->buf, &c->cap, 4096) != 0) {
            errno = ENOMEM;
            return -1;
        }
        ssize_t n = recv(c->fd, c->buf + c->have, c->cap - c->have, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (n == 0) {
            return 0;
        }
        c->have += (size_t)n;
    }
}

/* Drop the frame of `length` at the start of buf, keeping what follows it. */
static void consume(struct client *c, uint32_t length)
{
    size_t used = 4u + length;
    memmove(c->buf, c->buf + used, c->have - used);
    c->have -= used;
}

/* A frame header in buf[0..12) for `kind` with `payload` bytes after it. */
static void put_header(uint8_t *p, enum kind kind, uint32_t seq, uint32_t payload)
{
    put_u32(p, HEADER_SIZE + payload);
    p[4] = PROTOCOL_VERSION;
    p[5] = (uint8_t)kind;
    p[6] = 0;
    p[7] = 0;
    put_u32(p + 8, seq);
}

/* ---------------------------------------------------------------- address */

static int open_socket(const char *api, const char *addr)
{
    if (strncmp(addr, "tcp:", 4) == 0) {
        /* The rules of psaspm.mailbox.address.parse_address, with its messages. */
        const char *rest = addr + 4;
        const char *colon = strrchr(rest, ':');
        const char *port = colon != NULL ? colon + 1 : "";
        char host[256];
        size_t host_len = colon != NULL ? (size_t)(colon - rest) : 0;
        if (host_len >= sizeof host) {
            say(api, "PSASPM_SERVER '%s': the host name is longer than %zu bytes", addr,
                sizeof host - 1);
            return -1;
        }
        memcpy(host, rest, host_len);
        host[host_len] = '\0';
        char *h = host; /* brackets stripped from both ends: [::1] */
        while (*h == '[' || *h == ']') {
            h++;
        }
        for (size_t n = strlen(h); n > 0 && (h[n - 1] == '[' || h[n - 1] == ']'); n--) {
            h[n - 1] = '\0';
        }
        if (colon == NULL || *h == '\0' || *port == '\0') {
            say(api, "PSASPM_SERVER '%s': expected tcp:HOST:PORT", addr);
            return -1;
        }
        if (strspn(port, "0123456789") != strlen(port)) {
            say(api, "PSASPM_SERVER '%s': port '%s' is not a number (0..65535)", addr, port);
            return -1;
        }
        if (strlen(port) > 5 || atol(port) > 65535) {
            say(api, "PSASPM_SERVER '%s': port %s is out of range (0..65535)", addr, port);
            return -1;
        }
        struct addrinfo hints = {0}, *found = NULL;
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int rc = getaddrinfo(h, port, &hints, &found);
        if (rc != 0) {
            say(api, "PSASPM_SERVER '%s': cannot resolve %s: %s", addr, h, gai_strerror(rc));
            return -1;
        }
        int fd = -1, err = 0;
        for (struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                break;
            }
            err = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(found);
        if (fd < 0) {
            say(api, "cannot connect to the server at %s: %s", addr, strerror(err));
            return -1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return fd;
    }
    const char *path = strncmp(addr, "unix:", 5) == 0 ? addr + 5 : addr;
    struct sockaddr_un sun = {0};
    sun.sun_family = AF_UNIX;
    if (*path == '\0') {
        say(api, "PSASPM_SERVER '%s': expected unix:PATH or tcp:HOST:PORT", addr);
        return -1;
    }
    if (strlen(path) >= sizeof sun.sun_path) {
        say(api, "PSASPM_SERVER '%s': the socket path is longer than %zu bytes", addr,
            sizeof sun.sun_path - 1);
        return -1;
    }
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        say(api, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        say(api, "cannot connect to the server at %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void set_timeout(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* The text of an ERROR frame's payload (at p, n bytes) as "NAME: text". */
static void error_text(char *out, size_t size, const uint8_t *p, uint32_t n)
{
    uint16_t code = get_u16(p);
    const char *name = code < sizeof error_names / sizeof error_names[0] ? error_names[code] : "?";
    int text_len = (int)(n - 4u > 400u ? 400u : n - 4u);
    snprintf(out, size, "%s (%u): %.*s", name, code, text_len, (const char *)p + 4);
}

/* Open the connection (HELLO, WELCOME); 0, or -1 after saying why. */
static int open_connection(struct client *c, const char *api)
{
    const char *addr = getenv("PSASPM_SERVER");
    if (addr == NULL || *addr == '\0') {
        say(api, "PSASPM_SERVER is not set (expected unix:PATH or tcp:HOST:PORT, "
                 "the address given to psaspm serve --listen)");
        return -1;
    }
    int fd = open_socket(api, addr);
    if (fd < 0) {
        return -1;
    }
    c->fd = fd;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    c->have = 0;
    c->seq = 1;
    set_timeout(fd, HANDSHAKE_TIMEOUT_S);
    uint8_t hello[12];
    put_header(hello, KIND_HELLO, 1, 0);
    if (send_all(c, hello, sizeof hello) != 0) {
        say(api, "cannot send HELLO to %s: %s", addr, strerror(errno));
        goto fail;
    }
    for (;;) {
        uint32_t bad = 0;
        long length = recv_frame(c, &bad);
        if (length == 0) {
            say(api, "the server at %s closed the connection before WELCOME", addr);
            goto fail;
        }
        if (length == -1) {
            say(api, "no WELCOME from the server at %s: %s", addr,
                errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            goto fail;
        }
        if (length == -2) {
            say(api, "protocol error from %s: a frame length of %u", addr, bad);
            goto fail;
        }
        const uint8_t *h = c->buf + 4;
        uint32_t payload = (uint32_t)length - HEADER_SIZE;
        if (h[0] != PROTOCOL_VERSION) {
            say(api, "the server at %s speaks protocol version %u, not %u", addr, h[0],
                PROTOCOL_VERSION);
            goto fail;
        }
        if (h[1] == KIND_ERROR && payload >= 4) {
            char text[512];
            error_text(text, sizeof text, h + HEADER_SIZE, payload);
            say(api, "the server at %s refused the connection: %s", addr, text);
            goto fail;
        }
        if (h[1] == KIND_WELCOME) {
            if (payload != 20) {
                say(api, "protocol error from %s: WELCOME of the wrong size", addr);
                goto fail;
            }
            consume(c, (uint32_t)length);
            break;
        }
        consume(c, (uint32_t)length); /* anything else before WELCOME: skipped */
    }
    set_timeout(fd, 0);
    c->state = CONNECTED;
    return 0;
fail:
    close(fd);
    c->fd = -1;
    c->have = 0;
    return -1;
}

/*
 * In a child made by fork(): the lock may have been held by a thread of the
 * parent's that the child does not have, and the connection is the parent's.
 * The child starts as a fresh client.  (A child made without the atfork
 * handlers, by a raw clone(), would share the parent's connection.)
 */
static void forked_child(void)
{
    struct client *c = &the_client;
    pthread_mutex_init(&c->lock, NULL);
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->have = 0;
    c->state = NOT_CONNECTED;
}

__attribute__((constructor)) static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, forked_child);
}

/* Ready to send: 0, or -1 after saying why. Caller holds the lock. */
static int ready(struct client *c, const char *api)
{
    if (c->state == CONNECTED) {
        return 0;
    }
    if (c->state == LOST) {
        say(api, "not connected: %s", c->lost);
        return -1;
    }
    return open_connection(c, api);
}

/*
 * After a failed send: the text of a fatal ERROR the server sent before it
 * closed the connection, if one is already waiting (1), else 0.
 */
static int waiting_error(struct client *c, char *why, size_t size)
{
    for (;;) {
        if (c->have >= 4 && (get_u32(c->buf) < HEADER_SIZE || get_u32(c->buf) > MAX_FRAME)) {
            return 0;
        }
        if (c->have < 4 || c->have < 4u + get_u32(c->buf)) {
            if (reserve(&c->buf, &c->cap, c->have + 4096) != 0) {
                return 0;
            }
            ssize_t n = recv(c->fd, c->buf + c->have, c->cap - c->have, MSG_DONTWAIT);
            if (n <= 0) {
                return 0;
            }
            c->have += (size_t)n;
            continue;
        }
        uint32_t length = get_u32(c->buf);
        const uint8_t *h = c->buf + 4;
        if (h[1] == KIND_ERROR && length >= HEADER_SIZE + 4 && h[HEADER_SIZE + 2] != 0) {
            error_text(why, size, h + HEADER_SIZE, length - HEADER_SIZE);
            return 1;
        }
        consume(c, length);
    }
}

/*
 * Send out[0..len) (a request with seq c->seq) and wait for its answer,
 * handling unsolicited frames.  Returns 1 with the reply's frame at buf
 * (*length, *kind; consume it after use), 0 after losing the connection.
 */
static int exchange(struct client *c, const char *api, size_t len, uint32_t *length, int *kind)
{
    uint32_t seq = c->seq;
    if (send_all(c, c->out, len) != 0) {
        int err = errno;
        char why[512];
        if (waiting_error(c, why, sizeof why)) {
            lose(c, api, "%s", why); /* the server said why it hung up (SHUTDOWN, ...) */
        } else {
            if (err == EPIPE || err == ECONNRESET) {
                lose(c, api, "TRUNCATED: the server closed the connection (%s)", strerror(err));
            } else {
                lose(c, api, "cannot send to the server: %s", strerror(err));
            }
        }
        return 0;
    }
    for (;;) {
        uint32_t bad = 0;
        long n = recv_frame(c, &bad);
        if (n == 0) {
            lose(c, api, "TRUNCATED: the server closed the connection");
            return 0;
        }
        if (n == -1) {
            lose(c, api, "TRUNCATED: %s", strerror(errno));
            return 0;
        }
        if (n == -2) {
            lose(c, api, "OVERSIZED: the server sent a frame length of %u", bad);
            return 0;
        }
        const uint8_t *h = c->buf + 4;
        uint32_t payload = (uint32_t)n - HEADER_SIZE;
        uint32_t got = get_u32(h + 4);
        if (h[0] != PROTOCOL_VERSION) {
            lose(c, api, "UNSUPPORTED_VERSION: server speaks protocol version %u", h[0]);
            return 0;
        }
        if (h[1] != KIND_ERROR && h[1] != KIND_RESULT && h[1] != KIND_WELCOME
            && h[1] != KIND_STATS_RESULT) {
            lose(c, api, "UNKNOWN_KIND: unknown server frame kind %#x", h[1]);
            return 0;
        }
        if (h[1] == KIND_ERROR && payload < 4) {
            lose(c, api, "MALFORMED: ERROR is truncated");
            return 0;
        }
        if (h[1] == KIND_ERROR && h[HEADER_SIZE + 2] != 0) { /* fatal: the server hangs up */
            char text[512];
            error_text(text, sizeof text, h + HEADER_SIZE, payload);
            lose(c, api, "%s", text);
            return 0;
        }
        if (got == seq) {
            *length = (uint32_t)n;
            *kind = h[1];
            return 1;
        }
        /* Another seq (none is in flight) or unsolicited, such as the PANIC notice sent to
         * every client when the SPE halts (the calls it hits say so): skipped. */
        consume(c, (uint32_t)n);
    }
}

/*
 * One request whose payload is already at buf[12..12+payload): the reply's
 * RESULT value in *value and 1, or 0 after saying why (connection lost, or an
 * ERROR answering it).  On 1 the RESULT frame stays at buf for the caller
 * (*length), to be consumed.
 */
static int request(struct client *c, const char *api, enum kind kind, uint32_t payload,
                   int32_t *value, uint32_t *length)
{
    c->seq = c->seq == UINT32_MAX ? 1 : c->seq + 1; /* never 0: that is unsolicited */
    put_header(c->out, kind, c->seq, payload);
    int got_kind = 0;
    if (!exchange(c, api, 12u + payload, length, &got_kind)) {
        return 0;
    }
    const uint8_t *p = c->buf + 12;
    uint32_t n = *length - HEADER_SIZE;
    if (got_kind == KIND_ERROR) {
        char text[512];
        error_text(text, sizeof text, p, n);
        if (get_u16(p) == ERROR_PANIC) {
            say(api, "the secure side halted: %s", text);
        } else {
            say(api, "the server refused the request: %s", text);
        }
        consume(c, *length);
        return 0;
    }
    if (got_kind != KIND_RESULT) {
        lose(c, api, "MALFORMED: unexpected reply kind %#x", got_kind);
        return 0;
    }
    /* RESULT: i32 value, u8 n_out, u8 0, u16 0, n_out x u32 out_len, then the bytes. */
    uint32_t n_out = n >= 8 ? p[4] : 0;
    uint64_t need = 8u + 4u * (uint64_t)n_out;
    for (uint32_t i = 0; n >= need && i < n_out; i++) {
        need += get_u32(p + 8 + 4 * i);
    }
    if (n < 8 || n_out > MAX_VECTORS || n != need) {
        lose(c, api, "MALFORMED: a RESULT of %u bytes does not match its vector sizes", n);
        return 0;
    }
    *value = (int32_t)get_u32(p);
    return 1;
}

/*
 * Before a request: the lock is held and the client ready, and buf can hold
 * `size` bytes. 0, or -1 after saying why (lock released).
 */
static int begin(struct client *c, const char *api, size_t size)
{
    pthread_mutex_lock(&c->lock);
    if (ready(c, api) != 0) {
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    if (reserve(&c->out, &c->out_cap, size) != 0) {
        say(api, "out of memory for a request of %zu bytes", size);
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    return 0;
}

/* A request with a fixed payload (`words` u32s) answered by a RESULT value. */
static int simple(const char *api, enum kind kind, const uint32_t *words, unsigned count,
                  int32_t *value)
{
    struct client *c = &the_client;
    if (begin(c, api, 12u + 4u * count) != 0) {
        return 0;
    }
    for (unsigned i = 0; i < count; i++) {
        put_u32(c->out + 12 + 4 * i, words[i]);
    }
    uint32_t length = 0;
    int ok = request(c, api, kind, 4u * count, value, &length);
    if (ok) {
        consume(c, length);
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* ------------------------------------------------------------ vector checks */

static pthread_once_t vm_once = PTHREAD_ONCE_INIT;
static int vm_ok; /* process_vm_readv/writev work on this process (not refused by seccomp) */

static void vm_probe(void)
{
    uint8_t from = 1, to = 0;
    struct iovec local = {&to, 1}, remote = {&from, 1};
    vm_ok = process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1 && to == 1;
}

/*
 * The calling thread's stack, [sp, stack_top), is mapped and writable: the
 * usual home of vectors, checked by arithmetic instead of a system call
 * (process_vm_readv costs about a microsecond).  The stack's bounds
 * [stack_lo, stack_top) are found once per thread (both 0 when they cannot be);
 * a call made on another stack (a coroutine's, a signal handler's on
 * sigaltstack) takes the checked path, since the memory above its sp need not
 * be mapped.
 */
static __thread uintptr_t stack_lo, stack_top;
static __thread int stack_looked_up;

static int on_stack(const void *base, size_t len, uintptr_t sp)
{
    if (!stack_looked_up) {
        pthread_attr_t attr;
        void *addr = NULL;
        size_t size = 0;
        stack_looked_up = 1;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
                stack_lo = (uintptr_t)addr;
                stack_top = (uintptr_t)addr + size;
            }
            pthread_attr_destroy(&attr);
        }
    }
    uintptr_t lo = (uintptr_t)base;
    if (len == 0) {
        return 1;
    }
    return sp >= stack_lo && sp < stack_top && lo >= sp && lo < stack_top &&
           len <= stack_top - lo;
}

/*
 * Copy n (at most 2 * MAX_VECTORS + 1) regions between ours[i] (this library's
 * memory) and theirs[i] (the caller's, same lengths) without faulting: from
 * theirs to ours when `reading`, else from ours to theirs.  1 when every byte
 * was copied, 0 when some byte of the caller's could not be read or written.
 * `known_good`: the caller's regions are known accessible (plain copies).
 */
static int safe_copy(const struct iovec *ours, const struct iovec *theirs, size_t n, int reading,
                     int known_good)
{
    struct iovec a[2 * MAX_VECTORS + 1], b[2 * MAX_VECTORS + 1];
    size_t total = 0;
    unsigned long m = 0;
    for (size_t i = 0; i < n; i++) {
        if (theirs[i].iov_len == 0) {
            continue;
        }
        a[m] = ours[i];
        b[m] = theirs[i];
        total += theirs[i].iov_len;
        m++;
    }
    if (m == 0) {
        return 1;
    }
    if (!known_good) {
        pthread_once(&vm_once, vm_probe);
    }
    if (known_good || !vm_ok) {
        for (unsigned long i = 0; i < m; i++) {
            if (reading) {
                memcpy(a[i].iov_base, b[i].iov_base, b[i].iov_len);
            } else {
                memcpy(b[i].iov_base, a[i].iov_base, b[i].iov_len);
            }
        }
        return 1;
    }
    ssize_t done = reading ? process_vm_readv(getpid(), a, m, b, m, 0)
                           : process_vm_writev(getpid(), a, m, b, m, 0);
    return done >= 0 && (size_t)done == total;
}

/* ------------------------------------------------------------------ the API */

uint32_t psa_framework_version(void)
{
    int32_t value = 0;
    if (!simple("psa_framework_version", KIND_FRAMEWORK_VERSION, NULL, 0, &value)) {
        return 0;
    }
    return (uint32_t)value;
}

uint32_t psa_version(uint32_t sid)
{
    int32_t value = 0;
    if (!simple("psa_version", KIND_VERSION, &sid, 1, &value)) {
        return PSA_VERSION_NONE;
    }
    return (uint32_t)value;
}

psa_handle_t psa_connect(uint32_t sid, uint32_t version)
{
    uint32_t words[2] = {sid, version};
    int32_t value = 0;
    if (!simple("psa_connect", KIND_CONNECT, words, 2, &value)) {
        return (psa_handle_t)PSA_ERROR_COMMUNICATION_FAILURE;
    }
    return (psa_handle_t)value;
}

void psa_close(psa_handle_t handle)
{
    int32_t value = 0;
    uint32_t word = (uint32_t)handle;
    (void)simple("psa_close", KIND_CLOSE, &word, 1, &value);
}

psa_status_t psa_call(psa_handle_t handle, int32_t type, const psa_invec *in_vec, size_t in_len,
                      psa_outvec *out_vec, size_t out_len)
{
    static const char api[] = "psa_call";
    struct client *c = &the_client;
    /* What the SPM would refuse, psaspm.remote refuses unsent: more than PSA_MAX_IOVEC ... */
    if (in_len > PSA_MAX_IOVEC || out_len > PSA_MAX_IOVEC || in_len + out_len > PSA_MAX_IOVEC
        || (in_len > 0 && in_vec == NULL) || (out_len > 0 && out_vec == NULL)) {
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    /* ... and vector arrays, in-vectors or out-vectors the caller may not access. */
    uintptr_t sp = (uintptr_t)&c;
    psa_invec ins[MAX_VECTORS];
    psa_outvec outs[MAX_VECTORS];
    struct iovec ours[2 * MAX_VECTORS + 1], theirs[2 * MAX_VECTORS + 1];
    size_t in_bytes = in_len * sizeof *ins, out_bytes = out_len * sizeof *outs;
    int fast = on_stack(in_vec, in_bytes, sp) && on_stack(out_vec, out_bytes, sp);
    ours[0] = (struct iovec){ins, in_bytes};
    ours[1] = (struct iovec){outs, out_bytes};
    theirs[0] = (struct iovec){(void *)in_vec, in_bytes};
    theirs[1] = (struct iovec){out_vec, out_bytes};
    if (!safe_copy(ours, theirs, 2, 1, fast)) {
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    size_t in_total = 0, out_total = 0;
    for (size_t i = 0; i < in_len; i++) {
        if (ins[i].len > MAX_VECTOR) {
            say(api, "in-vector %zu of %zu bytes exceeds the protocol's MAX_VECTOR (%u)", i,
                ins[i].len, MAX_VECTOR);
            return PSA_ERROR_PROGRAMMER_ERROR;
        }
        fast = fast && on_stack(ins[i].base, ins[i].len, sp);
        in_total += ins[i].len;
    }
    for (size_t i = 0; i < out_len; i++) {
        if (outs[i].len > MAX_VECTOR) {
            say(api, "out-vector %zu of %zu bytes exceeds the protocol's MAX_VECTOR (%u)", i,
                outs[i].len, MAX_VECTOR);
            return PSA_ERROR_PROGRAMMER_ERROR;
        }
        fast = fast && on_stack(outs[i].base, outs[i].len, sp);
        out_total += outs[i].len;
    }
    if (out_total > MAX_OUT_TOTAL) {
        say(api, "out-vectors of %zu bytes in all exceed the protocol's MAX_OUT_TOTAL (%u)",
            out_total, MAX_OUT_TOTAL);
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    /* The frame: length, header, the CALL head, the vector sizes, the in-vectors' bytes. */
    size_t head = 12u + 12u + 4u * (in_len + out_len);
    if (head - 4u + in_total > MAX_FRAME) {
        say(api, "in-vectors of %zu bytes do not fit in one frame (MAX_FRAME %u)", in_total,
            MAX_FRAME);
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    /* Room for the request, and behind it for probing the out-vectors. */
    if (begin(c, api, head + in_total + out_total) != 0) {
        return PSA_ERROR_COMMUNICATION_FAILURE;
    }
    uint8_t *p = c->out + 12;
    put_u32(p, (uint32_t)handle);
    put_u32(p + 4, (uint32_t)type);
    p[8] = (uint8_t)in_len;
    p[9] = (uint8_t)out_len;
    p[10] = 0;
    p[11] = 0;
    uint8_t *data = c->out + head;
    for (size_t i = 0; i < in_len; i++) {
        put_u32(p + 12 + 4 * i, (uint32_t)ins[i].len);
        ours[i] = (struct iovec){data, ins[i].len};
        theirs[i] = (struct iovec){(void *)ins[i].base, ins[i].len};
        data += ins[i].len;
    }
    for (size_t i = 0; i < out_len; i++) {
        put_u32(p + 12 + 4 * (in_len + i), (uint32_t)outs[i].len);
        ours[in_len + i] = (struct iovec){data, outs[i].len};
        theirs[in_len + i] = (struct iovec){outs[i].base, outs[i].len};
        data += outs[i].len;
    }
    /* The out-vector array last: its lens are written after the call. */
    ours[in_len + out_len] = (struct iovec){outs, out_bytes};
    theirs[in_len + out_len] = (struct iovec){out_vec, out_bytes};
    /* In-vectors copied into the frame, out-vectors read; the out-vectors and their array
     * written back with their own bytes (so they are known writable before the call). */
    if (!safe_copy(ours, theirs, fast ? in_len : in_len + out_len, 1, fast)
        || (!fast && !safe_copy(ours + in_len, theirs + in_len, out_len + 1, 0, 0))) {
        pthread_mutex_unlock(&c->lock);
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    int32_t value = 0;
    uint32_t length = 0;
    if (!request(c, api, KIND_CALL, (uint32_t)(head - 12u + in_total), &value, &length)) {
        pthread_mutex_unlock(&c->lock);
        return PSA_ERROR_COMMUNICATION_FAILURE;
    }
    /* RESULT (checked by request): i32 value, u8 n_out, u8 0, u16 0, n_out x u32 out_len, the
     * bytes. */
    const uint8_t *r = c->buf + 12;
    size_t n_out = r[4];
    int bad = n_out != out_len;
    for (size_t i = 0; !bad && i < n_out; i++) {
        outs[i].len = get_u32(r + 8 + 4 * i);
        bad = outs[i].len > theirs[in_len + i].iov_len;
    }
    if (bad) {
        lose(c, api, "MALFORMED: the RESULT's out-vectors do not match the call's");
        pthread_mutex_unlock(&c->lock);
        return PSA_ERROR_COMMUNICATION_FAILURE;
    }
    /* The bytes written, and each out-vector's len set to their count, as in TF-M. */
    const uint8_t *bytes = r + 8 + 4 * n_out;
    for (size_t i = 0; i < n_out; i++) {
        ours[i] = (struct iovec){(void *)bytes, outs[i].len};
        theirs[i] = (struct iovec){outs[i].base, outs[i].len};
        bytes += outs[i].len;
    }
    ours[n_out] = (struct iovec){outs, out_bytes};
    theirs[n_out] = (struct iovec){out_vec, out_bytes};
    int written = safe_copy(ours, theirs, n_out + 1, 0, fast);
    consume(c, length);
    pthread_mutex_unlock(&c->lock);
    if (!written) {
        /* Writable when the call began: another thread of the caller's unmapped it since. */
        say(api, "an out-vector became unwritable during the call");
        return PSA_ERROR_PROGRAMMER_ERROR;
    }
    return value;
}
