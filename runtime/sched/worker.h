/*
 * worker.h: a worker thread and the runtime it belongs to. Fields are grouped by who
 * may touch them (Tokio's Core / Shared split).
 */
#ifndef WEFT__SCHED_WORKER_H
#define WEFT__SCHED_WORKER_H

#include "arch/context.h"
#include "base/atomic.h"
#include "base/chaos.h"
#include "sched/deque.h"
#include "sched/inject.h"
#include "base/list.h"
#include "sched/idle.h"
#include "base/sanitizer.h"
#include "sched/stack.h"
#include "sched/task.h"
#include "time/timer.h"
#include "time/timer_wheel.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct weft__worker {
    /* ---- Owner only: the worker's thread, in its scheduler or in a task running on
     * it. (A task that migrates stops being this worker's before it runs elsewhere.) */
    weft_runtime *runtime;
    unsigned index;
    weft_task *current;      /* the task running now, or NULL in the scheduler */
    weft__context scheduler; /* the worker's own stack while a task runs */
    weft__fiber scheduler_fiber;
    weft__fifo yield_queue; /* tasks that called weft_yield, oldest first */
    weft__stack_cache stacks;
    weft__pool tasks;           /* task objects spawned here */
    uint64_t tick;              /* scheduling rounds, for fairness checks */
    uint64_t random;            /* xorshift state for choosing victims */
    uint64_t next_id, id_limit; /* a block of task ids taken from the process counter */
    bool searching;             /* counted as searching in runtime->idle */
    AO_t live_credit;           /* slots of runtime->live_tasks held for spawns here */
    weft__chaos chaos;          /* chaos scheduling's decisions (chaos.h); off: state 0 */
    void *signal_stack;         /* sigaltstack for reporting stack overflows */
    weft__timer_wheel wheel;    /* timers armed by tasks running here (timer.c) */
    weft__pool timers;          /* their objects */
    size_t timers_armed;        /* entries in `wheel` */
    pthread_t thread;

    /* ---- Shared with other workers and threads. */
    weft__deque deque;              /* owner pushes and pops; anyone steals */
    weft__atomic_u32 wake_word;      /* futex: set to 1 by whoever claims this sleeper */
    weft__atomic_word steals;        /* statistics: written by the owner, read by anyone */
    weft__atomic_word tasks_spawned; /* statistics, likewise */
    weft__atomic_word joins_inline;  /* statistics, likewise */
    /* Timers of this wheel cancelled by tasks on other workers: a LIFO that they push
     * and the owner takes whole (timer.c). */
    weft__atomic_word timers_cancelled;
} weft__worker;

struct weft_runtime {
    /* ---- Immutable after weft_runtime_create. */
    unsigned worker_count;
    size_t stack_size;
    size_t max_tasks;
    bool inline_join;    /* WEFT_CONFIG_NO_INLINE_JOIN not set */
    AO_t live_batch;     /* live_tasks credits taken at a time; 0: none (runtime.c) */
    uint64_t chaos_seed; /* 0: chaos scheduling off (chaos.h) */
    weft__worker **workers;

    /* ---- Shared, each with its own synchronisation. */
    weft__inject inject;      /* spawns from other threads, deque overflow */
    weft__idle idle;          /* searching / parked workers */
    weft__stack_depot stacks; /* mutex inside */
    pthread_mutex_t shared_tasks_lock;
    weft__pool shared_tasks; /* task objects for spawns from other threads */
    /* Tasks spawned and not yet finished. Full-barrier RMWs: paired with
     * shutting_down in the shutdown protocol (runtime.c). */
    weft__atomic_word live_tasks;
    weft__atomic_word tasks_spawned;   /* statistics */
    weft__atomic_word destroy_claimed; /* CAS 0 -> 1 by the one thread destroying */
    weft__atomic_word shutting_down;   /* destroy has begun: foreign spawns fail */
    weft__atomic_word stopping;        /* every task is done: workers exit */
    weft__atomic_word foreign_calls;   /* calls from other threads inside rt (RT-D4) */
    weft__atomic_u32 quiescent;        /* futex word: bumped when live_tasks reaches 0
                                       * during shutdown */
    pthread_mutex_t timer_handles_lock;
    weft_timer *timer_handles; /* live timer handles (timer_handle.c), under the lock */
};

/* The worker running on the calling thread, or NULL. Not inlined, and read fresh on
 * every call: a task may resume on another thread after any switch, so callers must
 * not keep the result across weft_yield, a join, or anything that parks. */
weft__worker *weft__worker_current(void);

/* The worker's thread body. */
void *weft__worker_main(void *worker);

/* Makes t runnable: on the calling worker's deque if it is one of t's runtime's
 * workers, else on the injection queue; then wakes an idle worker if none is
 * searching. */
void weft__worker_schedule(weft_runtime *rt, weft_task *t);

/* The two halves of weft__worker_schedule, for callers that must finish touching an
 * object before the system call that waking a worker may take (task.c C4, timer.c). */
void weft__worker_schedule_quiet(weft_runtime *rt, weft_task *t);
void weft__worker_notify(weft_runtime *rt);

/* Inside a task: switches to the worker with `reason` (park or yield), returns when
 * the task runs again (possibly on another worker). */
void weft__worker_suspend_current(weft__switch_reason reason);

/* weft_yield's fast path, inside a task: if another yielded task is the only thing this
 * worker could run, switches to it directly (one switch instead of two through the
 * scheduler), leaving the caller at the end of the yield queue; if nothing at all could
 * run, returns at once. Returns false when the scheduler must decide (other work, or
 * a due timer): the caller then suspends with WEFT__SWITCH_YIELD. */
bool weft__worker_yield_current(void);

/* A join's fast path, inside a task: if t has not started and is the bottom of this
 * worker's deque (the task it would run next), and the calling task's stack has at
 * least 3/4 of the configured stack size free, runs t to completion on the caller's
 * stack, as t (a function call instead of a stack, two switches, a park and a wake).
 * t may park meanwhile; the caller then waits under it. The caller must already be
 * registered as t's joiner (J2, J3 in task.c), so that no other join or detach can
 * touch t meanwhile. Returns true if t completed this way (its result is then waiting
 * in t), false if nothing was done. */
bool weft__worker_join_inline(weft_task *t);

/* Chaos scheduling (chaos.h): inside a task, sometimes yields. A preemption point for
 * spawn and join; does nothing with chaos off. */
void weft__worker_chaos_yield(void);

/* A fresh task id (process-wide unique, never 0). w may be NULL. */
uint64_t weft__worker_next_id(weft__worker *w);

/* Wakes worker w if it sleeps (shutdown: every worker). */
void weft__worker_unpark(weft__worker *w);

/* Bookkeeping when a task has finished (runtime.c): the live count and shutdown. w is
 * the worker it finished on (NULL: not counted on a worker). */
void weft__runtime_task_done(weft_runtime *rt, weft__worker *w);
/* Brackets a call into rt from a thread that is not one of rt's tasks (runtime.c, RT-D4):
 * weft_runtime_destroy frees nothing while one is inside. */
void weft__runtime_foreign_enter(weft_runtime *rt);
void weft__runtime_foreign_leave(weft_runtime *rt);
/* weft__runtime_foreign_enter unless the caller is one of rt's workers (a task of rt or
 * its scheduler: destroy joins those threads before it frees anything). True if it
 * entered: the caller then calls weft__runtime_foreign_leave when done with rt. */
bool weft__runtime_enter_if_foreign(weft_runtime *rt);
/* A worker about to park gives back its live_tasks credits (runtime.c). */
void weft__runtime_release_credit(weft_runtime *rt, weft__worker *w);

/* A worker's deque holds this many tasks; past it, half go to the injection queue.
 * 256, as Tokio's local queue: enough that overflow is rare outside spawn storms, small
 * enough (2 KiB) to stay in cache. */
#define WEFT__DEQUE_CAPACITY 256

/* Stack overflow report (fault.c): the message, then abort(). Async-signal-safe. */
_Noreturn void weft__report_overflow(const weft_task *t, size_t stack_size, const void *addr,
                                     const char *how);

/* fault.c: the SIGSEGV/SIGBUS handler, installed while any runtime exists, and each
 * worker thread's signal stack. */
int weft__fault_install(void);
void weft__fault_uninstall(void);
void *weft__fault_thread_init(void);
void weft__fault_thread_exit(void *signal_stack);

#endif /* WEFT__SCHED_WORKER_H */
