/* Included by the generated shim.c (tools/gen_api.py); hand-written, not generated.
 *
 * The OS-thread mode.  Each C partition's code runs on an OS thread of its own
 * (struct psaspm_thread), one runnable at a time: a baton of two semaphores,
 * passed outside the GIL.  The kernel stays on the SPE thread: the partition's
 * greenlet calls psaspm_thread_run, which hands the baton to the OS thread and
 * waits; each PSA call there (psaspm_remote) hands the call back, and the
 * greenlet makes it (psaspm_dispatch: the same Python callback, on the
 * partition's greenlet, which may block and switch) and hands the result over.
 * Entering the code again while it waits in a call (a FLIH, an SFN service of
 * the same partition) runs it further up the same OS thread's stack, as an
 * interrupt does; calls nest strictly.  The stacks are mmapped below 2 GiB
 * (MAP_32BIT): TF-M code keeps pointers in uint32_t.
 *
 * A thread waiting for the baton spins on it for a while before it sleeps
 * (psaspm_sem_wait): a PSA call is two hand-offs, each of which wakes the other
 * thread, and waking a thread asleep on another CPU costs tens of microseconds
 * where that CPU idles in a virtual machine, against a fraction of one while the
 * thread still spins.  The spin is bounded (PSASPM_SPIN_NS), and there is none
 * when the process may use one CPU only: the spinner would hold the CPU the
 * other thread needs.
 */
#include <sched.h>
#include <time.h>

#ifndef MAP_32BIT
#define MAP_32BIT 0 /* x86 only: elsewhere the stacks are not kept below 2 GiB */
#endif

#define PSASPM_SPIN_NS 30000L /* the longest a waiting thread spins, in nanoseconds */
enum psaspm_baton {
    PSASPM_ENTER = 1, /* to the OS thread: run kind/fn/arg through psaspm_enter */
    PSASPM_RESULT,    /* to the OS thread: the call returned value */
    PSASPM_UNWIND,    /* to the OS thread: the call raised; unwind to the trampoline */
    PSASPM_EXIT,      /* to the OS thread: end */
    PSASPM_CALL,      /* to the SPE thread: make call number with args */
    PSASPM_DONE,      /* to the SPE thread: the code entered returned value */
};

struct psaspm_thread {
    sem_t to_c;   /* the baton, to the OS thread */
    sem_t to_spe; /* the baton, back to the SPE thread */
    int what;     /* enum psaspm_baton */
    int kind;
    int number;
    uintptr_t fn, arg;
    uint64_t args[8];
    int64_t value;
    int depth; /* entries still running on the OS thread */
    pthread_t id;
    char *stack;
    size_t stack_size;
    long spin_ns; /* how long a wait for the baton spins before sleeping */
};

#define PSASPM_GUARD 4096

static inline void psaspm_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static long psaspm_elapsed_ns(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

static void psaspm_sem_wait(sem_t *sem, long spin_ns)
{
    if (spin_ns > 0) {
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (unsigned i = 1;; i++) {
            if (sem_trywait(sem) == 0) {
                return;
            }
            psaspm_relax();
            if ((i & 63) == 0 && psaspm_elapsed_ns(&start) > spin_ns) {
                break;
            }
        }
    }
    while (sem_wait(sem) != 0) {
        if (errno != EINTR) {
            psaspm_fatal("sem_wait failed");
        }
    }
}

/* On the OS thread: run what the SPE thread handed over (an entry), report it. */
static void psaspm_thread_enter(struct psaspm_thread *t)
{
    int64_t value = psaspm_enter(t->kind, t->fn, t->arg);
    t->what = PSASPM_DONE;
    t->value = value;
    sem_post(&t->to_spe);
}

static void *psaspm_thread_main(void *arg)
{
    struct psaspm_thread *t = arg;
    psaspm_self = t;
    for (;;) {
        psaspm_sem_wait(&t->to_c, t->spin_ns);
        if (t->what == PSASPM_EXIT) {
            return NULL;
        }
        if (t->what != PSASPM_ENTER) {
            psaspm_fatal("psaspm thread: unexpected baton");
        }
        psaspm_thread_enter(t);
    }
}

/* On the OS thread: a PSA call, made on the SPE thread.  errno is the partition's
 * own, kept across the call. */
static uint64_t psaspm_remote(int number, const uint64_t *args, size_t count)
{
    struct psaspm_thread *t = psaspm_self;
    int saved = errno;
    t->what = PSASPM_CALL;
    t->number = number;
    if (count) {
        memcpy(t->args, args, count * sizeof(*args));
    }
    sem_post(&t->to_spe);
    for (;;) {
        psaspm_sem_wait(&t->to_c, t->spin_ns);
        switch (t->what) {
        case PSASPM_RESULT:
            errno = saved;
            return (uint64_t)t->value;
        case PSASPM_UNWIND:
            errno = saved;
            psaspm_unwind();
            psaspm_fatal("psaspm thread: no trampoline to unwind to");
        case PSASPM_ENTER:
            psaspm_thread_enter(t); /* nested: further up this stack */
            break;
        default:
            psaspm_fatal("psaspm thread: unexpected baton");
        }
    }
}

/* A thread for one C partition image: 0, or an errno value. */
int psaspm_thread_new(size_t stack_size, void **thread)
{
    struct psaspm_thread *t = calloc(1, sizeof(*t));
    pthread_attr_t attr;
    sigset_t all, old;
    int error;
    if (t == NULL) {
        return ENOMEM;
    }
    cpu_set_t cpus;
    t->stack_size = stack_size;
    /* The SPE thread's CPUs, which the new thread inherits. */
    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0 && CPU_COUNT(&cpus) > 1) {
        t->spin_ns = PSASPM_SPIN_NS;
    }
    t->stack = mmap(NULL, stack_size + PSASPM_GUARD, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (t->stack == MAP_FAILED) {
        error = errno;
        free(t);
        return error;
    }
    mprotect(t->stack, PSASPM_GUARD, PROT_NONE); /* the stack grows down into it */
    sem_init(&t->to_c, 0, 0);
    sem_init(&t->to_spe, 0, 0);
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, t->stack + PSASPM_GUARD, stack_size);
    /* Signals (Ctrl-C) stay the SPE thread's, where Python handles them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    error = pthread_create(&t->id, &attr, psaspm_thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (error != 0) {
        munmap(t->stack, stack_size + PSASPM_GUARD);
        free(t);
        return error;
    }
    *thread = t;
    return 0;
}

/* On the SPE thread (a partition's greenlet): run partition code fn on the OS thread,
 * making the PSA calls it hands back, until it returns or is unwound. */
int64_t psaspm_thread_run(void *thread, int kind, uintptr_t fn, uintptr_t arg)
{
    struct psaspm_thread *t = thread;
    t->what = PSASPM_ENTER;
    t->kind = kind;
    t->fn = fn;
    t->arg = arg;
    t->depth++;
    sem_post(&t->to_c);
    for (;;) {
        psaspm_sem_wait(&t->to_spe, t->spin_ns);
        if (t->what == PSASPM_DONE) {
            t->depth--;
            return t->value;
        }
        if (t->what != PSASPM_CALL) {
            psaspm_fatal("psaspm thread: unexpected baton");
        }
        uint64_t args[8];
        int number = t->number;
        memcpy(args, t->args, sizeof(args));
        jmp_buf *top = psaspm_top;
        uint64_t value = psaspm_dispatch(number, args); /* may switch greenlets */
        psaspm_top = top;
        if (psaspm_halting) {
            psaspm_halting = 0;
            t->what = PSASPM_UNWIND;
        } else {
            t->what = PSASPM_RESULT;
            t->value = (int64_t)value;
        }
        sem_post(&t->to_c);
    }
}

/* End an idle thread and free its stack: 0; 1 when code still runs on it (a C frame
 * waits in a call): it is left as it is. */
int psaspm_thread_end(void *thread)
{
    struct psaspm_thread *t = thread;
    if (t->depth != 0) {
        return 1;
    }
    t->what = PSASPM_EXIT;
    sem_post(&t->to_c);
    pthread_join(t->id, NULL);
    munmap(t->stack, t->stack_size + PSASPM_GUARD);
    sem_destroy(&t->to_c);
    sem_destroy(&t->to_spe);
    free(t);
    return 0;
}
