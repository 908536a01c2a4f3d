/*
 * fault.c: stack-overflow reports. Owns the process's SIGSEGV and SIGBUS handlers while
 * any runtime exists (installed by the first weft_runtime_create, restored by the last
 * weft_runtime_destroy if nobody replaced them meanwhile), and each worker thread's
 * alternate signal stack.
 *
 * A fault on a worker whose current task's guard page contains the faulting address is
 * a stack overflow: report it (task id, name, stack size) on stderr and abort. Any other
 * fault goes to the handler that was installed before ours, or gets the default action,
 * so an application's own crash handler keeps working.
 *
 * The handler runs on the worker's sigaltstack, because the task's stack is exactly what
 * just ran out. Everything it calls is async-signal-safe: write(2), abort(), sigaction,
 * and a hand-written formatter (snprintf is not on POSIX's list).
 */
#include "sched/fault.h"
#include "sched/runtime.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Enough for the handler, the C library's signal frame and the XSAVE area on machines
 * with AVX-512 (MINSIGSTKSZ is not a constant on glibc 2.34+). */
#define WEFT__SIGNAL_STACK_BYTES (64u << 10)

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned install_count;         /* under install_lock */
static struct sigaction previous_segv; /* under install_lock; read by the handler */
static struct sigaction previous_bus;
static size_t page_size;

struct text {
    char buffer[256];
    size_t length;
};

static void put_string(struct text *t, const char *s) {
    while (*s && t->length < sizeof(t->buffer) - 1)
        t->buffer[t->length++] = *s++;
}

static void put_number(struct text *t, uint64_t v, unsigned base) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    while (n > 0 && t->length < sizeof(t->buffer) - 1)
        t->buffer[t->length++] = digits[--n];
}

_Noreturn void weft__report_overflow(const weft_task *task, size_t stack_size, const void *addr,
                                     const char *how) {
    struct text t = {.length = 0};
    put_string(&t, "weft: stack overflow in task ");
    put_number(&t, task->id, 10);
    put_string(&t, " \"");
    put_string(&t, task->name[0] ? task->name : "(unnamed)");
    put_string(&t, "\": it used more than its ");
    put_number(&t, stack_size, 10);
    put_string(&t, "-byte stack (");
    put_string(&t, how);
    if (addr) {
        put_string(&t, " at 0x");
        put_number(&t, (uint64_t)(uintptr_t)addr, 16);
    }
    put_string(&t, "); raise weft_config.stack_size. Aborting.\n");
    ssize_t r = write(2, t.buffer, t.length);
    (void)r;
    abort();
}

static void forward(int sig, siginfo_t *info, void *context) {
    const struct sigaction *prev = sig == SIGBUS ? &previous_bus : &previous_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, info, context);
        return;
    }
    if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: reinstate it and return; the faulting instruction runs again and
     * the kernel applies it (a core dump, as the user would get without weft). Ignoring
     * a synchronous fault is not possible, so SIG_IGN is treated as the default too. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

static void on_fault(int sig, siginfo_t *info, void *context) {
    int saved_errno = errno;
    weft__worker *w = weft__worker_current();
    weft_task *t = w ? w->current : NULL;
    if (t && t->stack && weft__stack_guard_contains(t->stack, page_size, info->si_addr))
        weft__report_overflow(t, w->runtime->stack_size, info->si_addr,
                              "it touched the guard page");
    errno = saved_errno;
    forward(sig, info, context);
}

int weft__fault_install(void) {
    pthread_mutex_lock(&install_lock);
    int result = 0;
    if (install_count == 0) {
        page_size = (size_t)sysconf(_SC_PAGESIZE);
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSEGV, &sa, &previous_segv) != 0 ||
            sigaction(SIGBUS, &sa, &previous_bus) != 0)
            result = -errno;
    }
    if (result == 0)
        install_count++;
    pthread_mutex_unlock(&install_lock);
    return result;
}

static void restore_if_ours(int sig, const struct sigaction *previous) {
    struct sigaction current;
    if (sigaction(sig, NULL, &current) == 0 && (current.sa_flags & SA_SIGINFO) &&
        current.sa_sigaction == on_fault)
        sigaction(sig, previous, NULL);
}

void weft__fault_uninstall(void) {
    pthread_mutex_lock(&install_lock);
    if (install_count > 0 && --install_count == 0) {
        restore_if_ours(SIGSEGV, &previous_segv);
        restore_if_ours(SIGBUS, &previous_bus);
    }
    pthread_mutex_unlock(&install_lock);
}

void *weft__fault_thread_init(void) {
    void *mem = mmap(NULL, WEFT__SIGNAL_STACK_BYTES, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return NULL; /* overflows are then reported as plain faults; nothing else changes */
    stack_t ss = {.ss_sp = mem, .ss_size = WEFT__SIGNAL_STACK_BYTES, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, WEFT__SIGNAL_STACK_BYTES);
        return NULL;
    }
    return mem;
}

void weft__fault_thread_exit(void *signal_stack) {
    if (!signal_stack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(signal_stack, WEFT__SIGNAL_STACK_BYTES);
}
