/*
 * dump.c: weft_runtime_dump (weft.h): every worker and every live task of a runtime,
 * with what each task waits on and a backtrace of its stack; the process's list of
 * runtimes and the WEFT_DUMP_SIGNAL handler that dumps them all.
 *
 * No stop-the-world. Go stops every goroutine for its dump; weft cannot count on a
 * worker reaching a safe point (a worker stuck in a task that never yields is exactly
 * what a dump must show). So the dump reads a running program, as a seqlock reader
 * does: for each task object (every slot of every task pool: type-stable memory that
 * stays mapped until the runtime is destroyed, base/pool.h) it reads the state word and
 * the task's switch count (acquire), copies what it shows (id, name, parent, wait
 * reason, saved stack pointer and stack bounds), walks the saved frame-pointer chain,
 * then reads the state word and the switch count again (after an acquire fence). If
 * either changed, the task moved under the read: it is reported as "running" without
 * its copy. Every read of the stack is bounds-checked against the stack's own limits
 * (read from the descriptor at its top, inside the same mapping), so a stale or torn
 * copy yields at worst a wrong frame, never a fault. Task stacks are mapped until the
 * runtime is destroyed (sched/stack.c never unmaps a pooled stack before), and the
 * dump is a foreign call (RT-D4), so the runtime outlives it.
 *
 * These reads race with the owners' plain writes by design (they are validated, not
 * synchronised), so the functions that do them are not instrumented by ThreadSanitizer
 * or AddressSanitizer (another task's stack holds ASan's redzones): WEFT__UNCHECKED.
 *
 * The list of runtimes (for WEFT_DUMP_SIGNAL) is guarded by `runtimes_lock`; a runtime
 * leaves it in its destroy once its workers have exited (so a program stuck in its
 * shutdown still dumps), and the signal's helper pins each runtime as a foreign call
 * (RT-D4) under the lock, then dumps without it. The signal handler only writes a byte
 * to a non-blocking pipe (async-signal-safe); the helper thread reads it and dumps,
 * outside signal context.
 *
 * The switch count is a seqlock: odd while the task is on a worker (running, or running
 * a child inline on its stack), even while off (sched/worker.c, bump_switches; a task
 * that hands its thread over directly is made even by the task it resumed, once its
 * registers are saved). A copy is trusted only if it read the same even count before
 * and after (found by a cold review: a count bumped only on switches to a task let a
 * task that started running just before the read, and was still running, pass as
 * runnable with frames walked from its live stack).
 *
 * Rejected: libunwind from the saved registers. It unwinds code without frame pointers,
 * but reads the stack without bounds, so a torn copy could fault; weft is built with
 * frame pointers (CMakeLists.txt), and code without them shows its frames up to its
 * first one.
 */
#include "debug/debug.h"

#include "arch/context.h"
#include "base/memory.h"
#include "sched/runtime.h"
#include "time/timer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef WEFT_HAVE_LIBDW
#include <elfutils/libdwfl.h>
#else
#include <dlfcn.h>
#endif

#define WEFT__UNCHECKED   __attribute__((no_sanitize("thread", "address"), noinline))
#define WEFT__DUMP_FRAMES 32

/* ---- Output ------------------------------------------------------------------------------ */

typedef struct weft__out {
    int fd;
    int error; /* the first write error, negative */
    size_t length;
    char buffer[8192];
} weft__out;

static void out_flush(weft__out *o) {
    size_t done = 0;
    while (done < o->length && !o->error) {
        ssize_t n = write(o->fd, o->buffer + done, o->length - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            o->error = n < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)n;
    }
    o->length = 0;
}

__attribute__((format(printf, 2, 3))) static void out_printf(weft__out *o, const char *format,
                                                             ...) {
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t room = sizeof(o->buffer) - o->length;
        va_list args;
        va_start(args, format);
        int n = vsnprintf(o->buffer + o->length, room, format, args);
        va_end(args);
        if (n < 0)
            return;
        if ((size_t)n < room) {
            o->length += (size_t)n;
            return;
        }
        if (attempt == 1) { /* longer than the whole buffer: what fitted, cut */
            o->length = sizeof(o->buffer) - 1;
            return;
        }
        out_flush(o); /* then once more, into the empty buffer */
    }
}

/* ---- Copying a task ----------------------------------------------------------------------- */

typedef struct weft__task_copy {
    uint64_t id, parent;
    AO_t state;
    char name[WEFT_NAME_MAX];
    weft__wait_kind wait_kind;
    uint64_t wait_object;
    unsigned wait_since;   /* ms, wrapping (task.h) */
    uint64_t inline_child; /* the id of the task it runs inline in a join, or 0 */
    size_t first_frame;    /* its frames in weft__copies.frames[first_frame..+frames) */
    int frames;
    bool on_worker; /* `switches` odd: running (or running a child inline) */
    bool changed;   /* it switched while we read it: the copy is not trusted */
    bool started;   /* has a stack (has run) */
} weft__task_copy;

/* Grows `*items` (of `size` bytes each) to hold `need`; false when out of memory. */
static bool reserve(void **items, size_t *capacity, size_t need, size_t size) {
    if (need <= *capacity)
        return true;
    size_t grown = *capacity ? *capacity * 2 : 256;
    while (grown < need)
        grown *= 2;
    void *p = realloc(*items, grown * size);
    if (!p)
        return false;
    *items = p;
    *capacity = grown;
    return true;
}

/* The copies of a dump: ~100 bytes a task, and the frames of those that have any. */
typedef struct weft__copies {
    weft__task_copy *items;
    size_t count, capacity;
    uintptr_t *frames;
    size_t frame_count, frame_capacity;
    bool out_of_memory;
} weft__copies;

/* Walks the frame-pointer chain of a suspended context on [low, top): every read in
 * bounds, every frame above the last. */
WEFT__UNCHECKED static int walk(uintptr_t sp, uintptr_t low, uintptr_t top, uintptr_t *pc) {
    if (sp < low || sp > top - WEFT__CONTEXT_INITIAL_FRAME || (sp & 7))
        return 0;
    int n = 0;
    pc[n] = *(volatile uintptr_t *)(sp + WEFT__CONTEXT_SAVED_PC);
    if (pc[n++] == 0)
        return 0;
    uintptr_t fp = *(volatile uintptr_t *)(sp + WEFT__CONTEXT_SAVED_FP);
    uintptr_t previous = sp;
    while (n < WEFT__DUMP_FRAMES && fp > previous && fp >= low &&
           fp <= top - (WEFT__CONTEXT_FRAME_RETURN + sizeof(uintptr_t)) && !(fp & 7)) {
        uintptr_t ret = *(volatile uintptr_t *)(fp + WEFT__CONTEXT_FRAME_RETURN);
        if (ret == 0)
            break; /* the trampoline: the base of the task's stack */
        pc[n++] = ret;
        previous = fp;
        fp = *(volatile uintptr_t *)fp;
    }
    return n;
}

/* The seqlock read of one slot (see the top of the file). */
WEFT__UNCHECKED static void copy_task(void *object, void *context) {
    weft__copies *copies = context;
    weft_task *t = object;
    /* Acquire: what the task's last writer published before (and the fields below). */
    AO_t s1 = weft__atomic_load_acquire(&t->state);
    unsigned switches = weft__atomic_u32_load_acquire(&t->switches);
    if ((s1 & WEFT__TASK_GENERATION_MASK) == 0 || (s1 & WEFT__TASK_FREED))
        return; /* never handed out, or back in its pool */
    if (!reserve((void **)&copies->items, &copies->capacity, copies->count + 1,
                 sizeof(*copies->items)) ||
        !reserve((void **)&copies->frames, &copies->frame_capacity,
                 copies->frame_count + WEFT__DUMP_FRAMES, sizeof(*copies->frames))) {
        copies->out_of_memory = true;
        return;
    }
    weft__task_copy *c = &copies->items[copies->count];
    memset(c, 0, sizeof(*c));
    c->state = s1;
    c->on_worker = (switches & 1) != 0;
    c->id = *(volatile uint64_t *)&t->id;
    c->parent = *(volatile uint64_t *)&t->parent;
    for (size_t i = 0; i + 1 < sizeof(c->name); i++)
        c->name[i] = ((volatile char *)t->name)[i];
    c->wait_kind = (weft__wait_kind)t->wait_kind;
    c->wait_object = weft__atomic_load_relaxed(&t->wait_object);
    c->wait_since = weft__atomic_u32_load_relaxed(&t->wait_since);
    weft_task *child = (weft_task *)weft__atomic_load_relaxed(&t->inline_child);
    if (child)
        c->inline_child = *(volatile uint64_t *)&child->id;
    weft__stack *stack = *(weft__stack *volatile *)&t->stack;
    void *saved = *(void *volatile *)&t->context;
    c->started = stack != NULL;
    c->first_frame = copies->frame_count;
    /* Only a task off its worker has a saved context that is its stack's present. */
    if (stack && saved && !c->on_worker && !child && !(s1 & WEFT__TASK_COMPLETE)) {
        uintptr_t top = (uintptr_t)stack; /* the descriptor sits at the top */
        uintptr_t low = (uintptr_t) * (unsigned char *volatile *)&stack->low;
        if (low < top)
            c->frames = walk((uintptr_t)saved, low, top, copies->frames + c->first_frame);
    }
    weft__atomic_fence_full(); /* the reads above before the second look */
    c->changed = weft__atomic_load_acquire(&t->state) != s1 ||
                 weft__atomic_u32_load_acquire(&t->switches) != switches;
    if (c->changed)
        c->frames = 0;
    copies->frame_count += (size_t)c->frames;
    copies->count++;
}

/* ---- Symbols -------------------------------------------------------------------------------- */

typedef struct weft__symbols {
#ifdef WEFT_HAVE_LIBDW
    Dwfl *dwfl;
#else
    int unused;
#endif
} weft__symbols;

static void symbols_open(weft__symbols *sym) {
#ifdef WEFT_HAVE_LIBDW
    static char *debuginfo_path = NULL;
    static const Dwfl_Callbacks callbacks = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .debuginfo_path = &debuginfo_path,
    };
    sym->dwfl = dwfl_begin(&callbacks);
    if (sym->dwfl && (dwfl_linux_proc_report(sym->dwfl, getpid()) != 0 ||
                      dwfl_report_end(sym->dwfl, NULL, NULL) != 0)) {
        dwfl_end(sym->dwfl);
        sym->dwfl = NULL;
    }
#else
    (void)sym;
#endif
}

static void symbols_close(weft__symbols *sym) {
#ifdef WEFT_HAVE_LIBDW
    if (sym->dwfl)
        dwfl_end(sym->dwfl);
#else
    (void)sym;
#endif
}

/* One frame's line: the function and, where known, the file and line of the call. Every
 * pc is a return address (frame 0's too: the one the switch saved), which points after
 * the call: the call's own line is looked up at pc - 1. */
static void print_frame(weft__out *o, weft__symbols *sym, int index, uintptr_t pc) {
    const char *function = NULL, *file = NULL;
    int line = 0;
#ifdef WEFT_HAVE_LIBDW
    if (sym->dwfl) {
        Dwarf_Addr address = (Dwarf_Addr)(pc - 1);
        Dwfl_Module *module = dwfl_addrmodule(sym->dwfl, address);
        if (module) {
            function = dwfl_module_addrname(module, address);
            Dwfl_Line *l = dwfl_module_getsrc(module, address);
            if (l)
                file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
        }
    }
#else
    (void)sym;
    Dl_info info;
    if (dladdr((void *)pc, &info) && info.dli_sname)
        function = info.dli_sname;
#endif
    out_printf(o, "    #%-2d 0x%012" PRIxPTR " %s", index, pc, function ? function : "??");
    if (file) {
        const char *slash = strrchr(file, '/');
        const char *dir_end = slash;
        /* The last two path components: enough to tell runtime/sched/x.c from tests/x.c. */
        if (slash && slash > file) {
            const char *p = slash - 1;
            while (p > file && *p != '/')
                p--;
            dir_end = *p == '/' ? p + 1 : p;
        }
        out_printf(o, " (%s:%d)", dir_end ? dir_end : file, line);
    }
    out_printf(o, "\n");
}

/* ---- The dump ------------------------------------------------------------------------------ */

static const char *wait_names[] = {
    [WEFT__WAITING_NONE] = "nothing",
    [WEFT__WAITING_JOIN] = "join",
    [WEFT__WAITING_SLEEP] = "sleep",
    [WEFT__WAITING_FD] = "fd",
    [WEFT__WAITING_CHAN_SEND] = "channel send",
    [WEFT__WAITING_CHAN_RECV] = "channel receive",
    [WEFT__WAITING_SELECT] = "select",
    [WEFT__WAITING_MUTEX] = "mutex",
    [WEFT__WAITING_COND] = "condition",
    [WEFT__WAITING_SEM] = "semaphore",
    [WEFT__WAITING_WAITGROUP] = "wait group",
    [WEFT__WAITING_EVENT] = "event",
    [WEFT__WAITING_GROUP_NEXT] = "group next",
    [WEFT__WAITING_GROUP_WAIT] = "group wait",
    [WEFT__WAITING_GROUP_SLOT] = "group slot",
    [WEFT__WAITING_BLOCKING] = "blocking-pool call",
    [WEFT__WAITING_OTHER] = "something",
};

/* ms of CLOCK_MONOTONIC_COARSE, wrapping at 32 bits, as weft__task_note_wait stores. */
static unsigned coarse_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (unsigned)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

/* "what it waits on", from a copy. */
static void print_wait(weft__out *o, weft__symbols *sym, const weft__task_copy *c) {
    const char *name = (unsigned)c->wait_kind < sizeof(wait_names) / sizeof(wait_names[0]) &&
                               wait_names[c->wait_kind]
                           ? wait_names[c->wait_kind]
                           : "something";
    out_printf(o, "%s", name);
    switch (c->wait_kind) {
    case WEFT__WAITING_JOIN:
        out_printf(o, " of task %" PRIu64, c->wait_object);
        break;
    case WEFT__WAITING_SLEEP: {
        uint64_t now = weft_now();
        if (c->wait_object > now)
            out_printf(o, " until %.3f s from now", (double)(c->wait_object - now) / 1e9);
        else
            out_printf(o, " (due)");
        break;
    }
    case WEFT__WAITING_FD:
        out_printf(o, " %" PRIu64 " for %s%s%s", c->wait_object >> 2,
                   c->wait_object & WEFT_IN ? "IN" : "",
                   (c->wait_object & (WEFT_IN | WEFT_OUT)) == (WEFT_IN | WEFT_OUT) ? "|" : "",
                   c->wait_object & WEFT_OUT ? "OUT" : "");
        break;
    case WEFT__WAITING_SELECT:
        out_printf(o, " of %" PRIu64 " cases", c->wait_object);
        break;
    case WEFT__WAITING_BLOCKING: {
#ifndef WEFT_HAVE_LIBDW
        (void)sym;
#else
        if (sym->dwfl) {
            Dwfl_Module *m = dwfl_addrmodule(sym->dwfl, (Dwarf_Addr)c->wait_object);
            const char *fn = m ? dwfl_module_addrname(m, (Dwarf_Addr)c->wait_object) : NULL;
            if (fn) {
                out_printf(o, " %s()", fn);
                break;
            }
        }
#endif
        out_printf(o, " 0x%" PRIx64, c->wait_object);
        break;
    }
    case WEFT__WAITING_NONE:
    case WEFT__WAITING_OTHER:
        break;
    default:
        out_printf(o, " at 0x%" PRIx64, c->wait_object);
        break;
    }
}

static int compare_ids(const void *a, const void *b) {
    uint64_t x = ((const weft__task_copy *)a)->id, y = ((const weft__task_copy *)b)->id;
    return x < y ? -1 : x > y;
}

static void dump_locked(weft_runtime *rt, weft__out *o) {
    unsigned n = rt->worker_count;
    uint64_t running[WEFT_MAX_WORKERS];
    /* The copy first, all of it, and fast: formatting and symbols come after. The
     * workers' running tasks are read once, for their lines and the tasks' alike. The
     * shared pool's chunks are published with release like every pool's (pool.h): no
     * lock (it would hold up spawns from other threads for the whole copy). */
    weft__copies copies = {NULL, 0, 0, NULL, 0, 0, false};
    for (unsigned i = 0; i < n; i++)
        running[i] = weft__atomic_load_relaxed(&rt->workers[i]->running_id);
    for (unsigned i = 0; i < n; i++)
        weft__pool_for_each(&rt->workers[i]->tasks, copy_task, &copies);
    weft__pool_for_each(&rt->shared_tasks, copy_task, &copies);
    if (copies.count)
        qsort(copies.items, copies.count, sizeof(*copies.items), compare_ids);

    weft_runtime_stats stats;
    weft_runtime_stats_get(rt, &stats);
    out_printf(o,
               "weft runtime %" PRIu64 ": %u workers, %" PRIu64 " live tasks (%" PRIu64
               " spawned, %" PRIu64 " finished)%s\n",
               rt->number, n, stats.tasks_live, stats.tasks_spawned, stats.tasks_finished,
               copies.out_of_memory ? "; out of memory: some tasks missing" : "");
    for (unsigned i = 0; i < n && !o->error; i++) {
        weft_worker_stats ws;
        weft_worker_stats_get(rt, i, &ws);
        out_printf(o, "worker %u: ", i);
        if (running[i])
            out_printf(o, "running task %" PRIu64, running[i]);
        else
            out_printf(o, "%s", ws.parked ? "parked" : "in its scheduler");
        out_printf(o,
                   ", %" PRIu64 " queued; busy %.3f s in %" PRIu64 " slices (%" PRIu64
                   " long), %" PRIu64 " parks, %" PRIu64 "/%" PRIu64 " steals\n",
                   ws.queue_length, (double)ws.busy_ns / 1e9, ws.slices, ws.slices_long, ws.parks,
                   ws.steals, ws.steal_attempts);
    }
    out_printf(o, "injection queue: %" PRIu64 " tasks\n", stats.inject_length);

    weft__symbols sym;
    symbols_open(&sym);
    unsigned now_ms = coarse_now_ms();
    for (size_t k = 0; k < copies.count && !o->error; k++) { /* a write error: cut short */
        weft__task_copy *c = &copies.items[k];
        out_printf(o, "task %" PRIu64, c->id);
        if (c->name[0])
            out_printf(o, " \"%s\"", c->name);
        int on = -1;
        for (unsigned i = 0; i < n; i++)
            if (running[i] == c->id)
                on = (int)i;
        if (c->inline_child && !c->changed) {
            out_printf(o, ": joining task %" PRIu64 ", which runs inline on its stack",
                       c->inline_child);
        } else if (on >= 0) {
            out_printf(o, ": running on worker %d", on);
        } else if (c->changed || c->on_worker) {
            out_printf(o, ": running");
        } else if (c->state & WEFT__TASK_COMPLETE) {
            out_printf(o, ": finished, %s",
                       (c->state & WEFT__TASK_START_FAILED) ? "could not start (no stack)"
                                                            : "its result not taken yet");
        } else if ((c->state & WEFT__TASK_PARKED) && c->wait_kind != WEFT__WAITING_NONE) {
            out_printf(o, ": waiting for ");
            print_wait(o, &sym, c);
            out_printf(o, ", for %.3f s", (double)(unsigned)(now_ms - c->wait_since) / 1e3);
        } else if (c->state & WEFT__TASK_PARKED) {
            out_printf(o, ": parked");
        } else {
            out_printf(o, ": runnable%s", c->started ? "" : ", not started");
        }
        if (c->state & WEFT__TASK_CANCELLED)
            out_printf(o, ", cancelled");
        if (c->parent)
            out_printf(o, "; spawned by task %" PRIu64, c->parent);
        else
            out_printf(o, "; spawned by a thread");
        out_printf(o, "\n");
        for (int f = 0; f < c->frames; f++)
            print_frame(o, &sym, f, copies.frames[c->first_frame + (size_t)f]);
    }
    symbols_close(&sym);
    free(copies.items);
    free(copies.frames);
    out_flush(o);
}

typedef struct weft__dump_job {
    weft_runtime *rt;
    int fd;
    int rc;
} weft__dump_job;

static void *dump_now(void *arg) {
    weft__dump_job *job = arg;
    weft__out *o = malloc(sizeof(*o));
    if (!o) {
        job->rc = -ENOMEM;
        return NULL;
    }
    o->fd = job->fd;
    o->error = 0;
    o->length = 0;
    /* A foreign call (RT-D4): destroy frees nothing while we read. */
    bool foreign = weft__runtime_enter_if_foreign(job->rt);
    dump_locked(job->rt, o);
    if (foreign)
        weft__runtime_foreign_leave(job->rt);
    job->rc = o->error;
    free(o);
    return NULL;
}

WEFT_API int weft_runtime_dump(weft_runtime *rt, int fd) {
    if (!rt || fd < 0)
        return -EINVAL;
    weft__dump_job job = {rt, fd, 0};
    if (!weft__worker_current_task(NULL)) {
        /* A plain thread, or a worker in its scheduler (a timer handle's callback): on
         * the thread's own stack, which is large enough; a callback holds up its worker
         * meanwhile, as any long callback does (found by a cold review: waiting for the
         * pool from a callback blocked the worker the carrier needed). */
        dump_now(&job);
        return job.rc;
    }
    /* In a task: symbol tables take far more stack than a task has, so the dump runs on
     * the blocking pool, and we wait for it whatever happens (the job is on our stack):
     * shielded, not a cancellation point. */
    weft_task *t = weft_spawn_blocking_on(weft_runtime_current(), dump_now, &job);
    if (!t)
        return -errno;
    int shield = weft_cancel_shield(1);
    int rc = weft_join(t, NULL);
    if (shield >= 0)
        weft_cancel_shield(shield);
    return rc < 0 ? rc : job.rc;
}

/* ---- The process's runtimes, and the signal ------------------------------------------------ */

typedef struct weft__listed {
    weft_runtime *rt;
    struct weft__listed *next;
} weft__listed;

static pthread_mutex_t runtimes_lock = PTHREAD_MUTEX_INITIALIZER;
static weft__listed *runtimes; /* under runtimes_lock */
static int signal_pipe[2] = {-1, -1};
static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

static void on_signal(int signo) {
    (void)signo;
    int saved = errno;
    char byte = 1;
    ssize_t n = write(signal_pipe[1], &byte, 1); /* async-signal-safe */
    (void)n;
    errno = saved;
}

static void *signal_dumper(void *unused) {
    (void)unused;
    for (;;) {
        char byte;
        ssize_t n = read(signal_pipe[0], &byte, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        /* Each runtime pinned as a foreign call (RT-D4) under the lock, then dumped
         * without it: a stderr that blocks must not hold up every create and destroy
         * of the process, and a destroy in progress waits for our pin. */
        weft_runtime *pinned[64];
        size_t count = 0;
        pthread_mutex_lock(&runtimes_lock);
        for (weft__listed *l = runtimes; l && count < 64; l = l->next) {
            weft__runtime_foreign_enter(l->rt);
            pinned[count++] = l->rt;
        }
        pthread_mutex_unlock(&runtimes_lock);
        for (size_t i = 0; i < count; i++) {
            weft_runtime_dump(pinned[i], STDERR_FILENO);
            weft__runtime_foreign_leave(pinned[i]);
        }
    }
}

static void install_signal(void) {
    const char *name = getenv("WEFT_DUMP_SIGNAL");
    if (!name || !*name)
        return;
    int signo = strcmp(name, "QUIT") == 0 || strcmp(name, "SIGQUIT") == 0   ? SIGQUIT
                : strcmp(name, "USR1") == 0 || strcmp(name, "SIGUSR1") == 0 ? SIGUSR1
                                                                            : 0;
    if (!signo) {
        fprintf(stderr, "weft: WEFT_DUMP_SIGNAL=%s: not QUIT or USR1; ignored\n", name);
        return;
    }
    struct sigaction old;
    if (sigaction(signo, NULL, &old) == 0 && old.sa_handler != SIG_DFL) {
        fprintf(stderr,
                "weft: WEFT_DUMP_SIGNAL=%s: the program handles or ignores that signal; "
                "not installed\n",
                name);
        return;
    }
    /* The write end never blocks the handler: a full pipe means a dump is due anyway. */
    if (pipe2(signal_pipe, O_CLOEXEC) != 0 || fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "weft: WEFT_DUMP_SIGNAL: no pipe (%s); ignored\n", strerror(errno));
        return;
    }
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* The helper must not take the signal itself: block everything while creating it. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int err = pthread_create(&thread, &attr, signal_dumper, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        fprintf(stderr, "weft: WEFT_DUMP_SIGNAL: no thread (%s); ignored\n", strerror(err));
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}

void weft__debug_runtime_created(weft_runtime *rt) {
    pthread_once(&signal_once, install_signal);
    weft__listed *l = malloc(sizeof(*l));
    if (l) {
        l->rt = rt;
        pthread_mutex_lock(&runtimes_lock);
        l->next = runtimes;
        runtimes = l;
        pthread_mutex_unlock(&runtimes_lock);
    }
    weft__trace_env_start(rt);
}

void weft__debug_runtime_leaving(weft_runtime *rt) {
    pthread_mutex_lock(&runtimes_lock);
    for (weft__listed **p = &runtimes; *p; p = &(*p)->next) {
        if ((*p)->rt == rt) {
            weft__listed *l = *p;
            *p = l->next;
            free(l);
            break;
        }
    }
    pthread_mutex_unlock(&runtimes_lock);
}

void weft__debug_runtime_stopped(weft_runtime *rt) {
    weft__trace_runtime_stopped(rt);
}
