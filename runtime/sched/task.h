/*
 * task.h: the task object (which is also its join handle), its state word, the
 * park/wake protocol and the per-worker pools task objects come from. The protocols
 * are written out in task.c (WAKE-*) and join.c (JOIN-*).
 */
#ifndef WEFT__SCHED_TASK_H
#define WEFT__SCHED_TASK_H

#include "arch/context.h"
#include "base/atomic.h"
#include "base/list.h"
#include "base/pool.h"
#include "base/sanitizer.h"
#include "sched/stack.h"

#include "weft.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The state word's bits. Once set, COMPLETE, RELEASED, START_FAILED and the CANCELLED
 * bits are never cleared for one incarnation of the object (until its pool hands it out again:
 * weft__task_alloc clears the bits and bumps the generation); NOTIFIED and PARKED come and go;
 * JOIN_CLAIMED and JOIN_WAITING are cleared only by a deadline join that withdraws (join.c,
 * JOIN-X1). */
enum {
    /* A wake-up arrived while the task was running or on its way to park: the next park
     * returns at once instead of sleeping. */
    WEFT__TASK_NOTIFIED = 1u << 0,
    /* Off its worker and in no queue: whoever clears this bit must schedule the task. */
    WEFT__TASK_PARKED = 1u << 1,
    /* fn has returned (or the task could not start) and result is final. Set by the
     * worker after the task's last switch, so the object is no longer in use by it. */
    WEFT__TASK_COMPLETE = 1u << 2,
    /* The joiner that claimed the handle has published itself in `joiner` and waits for
     * COMPLETE. Set only together with JOIN_CLAIMED. */
    WEFT__TASK_JOIN_WAITING = 1u << 3,
    /* The handle was detached: whoever sets COMPLETE frees the object. */
    WEFT__TASK_RELEASED = 1u << 4,
    /* No stack could be mapped when the task was due to start: it never ran. */
    WEFT__TASK_START_FAILED = 1u << 5,
    /* The completer is done with the joiner (set with COMPLETE when nobody waits, or
     * right after waking the joiner): the joiner may free the object and run on. */
    WEFT__TASK_WAKE_DONE = 1u << 6,
    /* A join owns the handle (JOIN-J2): a second join fails with -EINVAL and a detach
     * does nothing; `joiner` is the claimant's to write. */
    WEFT__TASK_JOIN_CLAIMED = 1u << 7,
    /* weft_cancel was called (cancel.c, CANCEL-1): sticky for this incarnation. */
    WEFT__TASK_CANCELLED = 1u << 8,
    /* A hint, sticky too: a task this one may be running inline for (a joiner up its
     * chain) was cancelled: its cancellation points must look up the chain (cancel.c). */
    WEFT__TASK_HOST_CANCELLED = 1u << 9,
    /* The object is back in its pool (weft__task_free): for a dump, which walks the
     * pools' memory. */
    WEFT__TASK_FREED = 1u << 10,
};

/* Bits 16 and up: the object's generation, one more each time its pool hands it out
 * again (weft__task_alloc keeps the old word's generation and adds one). A join or
 * detach reads the word once on entry and fails any later CAS whose expected value
 * has another generation: the handle it was given has been consumed and the object
 * reused by a new spawn, and acting on it would join or release a stranger (found by a
 * cold review: a late detach released the next task spawned into the object). */
#define WEFT__TASK_GENERATION_ONE  ((AO_t)1 << 16)
#define WEFT__TASK_GENERATION_MASK (~(WEFT__TASK_GENERATION_ONE - 1))

struct weft_task;
/* What an owner's exit hook leaves to be run after the task's completion is published:
 * run(a, b), if run is set. It must not touch the task. */
typedef struct weft__task_exit_later {
    void (*run)(void *a, void *b);
    void *a, *b;
} weft__task_exit_later;

/* Called on the worker, after the task's last switch and before its completion is
 * published (worker.c, finish), for a task spawned with an owner (weft__spawn_prepare):
 * the owner learns that the task has finished. It must not block; wake-ups (system
 * calls) go in *later. */
typedef void (*weft__task_exit_fn)(struct weft_task *t, weft__task_exit_later *later);

/* What a task's owner is to the scheduler: the first member of the owner's object. */
typedef struct weft__task_owner {
    weft__task_exit_fn on_exit;
} weft__task_owner;

/* What a parked task waits on, for weft_runtime_dump (weft__task_note_wait). */
typedef enum weft__wait_kind {
    WEFT__WAITING_NONE = 0,
    WEFT__WAITING_JOIN,      /* object: the joined task's id */
    WEFT__WAITING_SLEEP,     /* object: the deadline (weft_now() time base) */
    WEFT__WAITING_FD,        /* object: fd << 2 | events (WEFT_IN, WEFT_OUT) */
    WEFT__WAITING_CHAN_SEND, /* object: the channel's address */
    WEFT__WAITING_CHAN_RECV,
    WEFT__WAITING_SELECT,    /* object: the number of cases */
    WEFT__WAITING_MUTEX,     /* object: the mutex's address (likewise below) */
    WEFT__WAITING_COND,
    WEFT__WAITING_SEM,
    WEFT__WAITING_WAITGROUP,
    WEFT__WAITING_EVENT,
    WEFT__WAITING_GROUP_NEXT, /* object: the group's address */
    WEFT__WAITING_GROUP_WAIT,
    WEFT__WAITING_GROUP_SLOT,
    WEFT__WAITING_BLOCKING,   /* object: the blocking-pool call's function */
    WEFT__WAITING_OTHER,
} weft__wait_kind;

/* Why a task switched back to its worker: the value it passes across the switch. */
typedef enum weft__switch_reason {
    WEFT__SWITCH_PARK = 1,
    WEFT__SWITCH_YIELD = 2,
    WEFT__SWITCH_EXIT = 3,
} weft__switch_reason;

struct weft_task {
    /* Link in whichever single queue holds the task: the injection queue, a worker's
     * yield queue, a pool's free or remote-free list. Owner: that queue. */
    weft__link link;
    /* While switched out: the saved stack pointer. Owner: the worker running the task,
     * or the queue that holds it (handed over with the task). */
    weft__context context;
    weft__stack *stack; /* NULL until the task first runs, and again after it exits */
    weft_runtime *runtime;
    weft_fn fn;
    void *arg;
    union {
        /* Written by the task before it exits; read by the joiner after COMPLETE
         * (acquire). */
        void *result;
        /* Until then, the scheduler's: ticks when the task was last made runnable, if
         * that schedule was sampled (metrics.h), else 0; consumed (zeroed) when it runs.
         * One word for both: a task is never made runnable after its function returned
         * (a wake-up of a task that is not parked schedules nothing), and one whose
         * start failed has no result (NULL, by START_FAILED). */
        uint64_t runnable_at;
    };
    weft__atomic_word state;
    /* Who waits in weft_join: a weft_task *, or a weft__foreign_waiter * with bit 0
     * set. Written only by the join holding JOIN_CLAIMED, published by the JOIN_WAITING
     * CAS (JOIN-J3, release), read by the completer only after its CAS that set
     * COMPLETE replaced a state with JOIN_WAITING (JOIN-C3): from then no withdraw and
     * no new registration can change it. Stale otherwise; never read then. */
    weft__atomic_word joiner;
    weft__pool *home; /* the pool the object returns to; set at allocation */
    uint64_t id;
    weft__fiber fiber;
    char name[WEFT_NAME_MAX];
    /* ---- Cancellation (cancel.c). `inline_child`: the task this one runs inline in a
     * join now (CANCEL-I1..I4), or 0; written by this task, read by cancellers.
     * `cancel_pins`: cancellers reading `inline_child` now; the joiner waits for 0 before
     * it frees the child (CANCEL-I4). */
    weft__atomic_word inline_child;
    weft__atomic_u32 cancel_pins;
    /* ---- For weft_runtime_dump (debug/dump.c): written by the task itself (wait_*,
     * before it parks) or by the worker running it (`switches`, one more at each switch
     * to it), read by a dump from any thread, which trusts what it read only if
     * `switches` and the state word did not change meanwhile. `wait_since`: ms of
     * CLOCK_MONOTONIC_COARSE, wrapping (a dump shows seconds). */
    weft__atomic_u32 switches;
    weft__atomic_u32 wait_since;
    /* Bytes the task's own: `cancel_shield` (weft_cancel_shield); `no_inline` (never
     * run inline by its joiner: a blocking-pool carrier, whose wait is not cancellable,
     * so a joiner running it could not be cancelled; set by the spawner before it hands
     * the handle out, read only by the joiner); `runs_inline` (it runs inline in a join
     * now: set by that joiner, whose task is then `joiner`, the host its cancellation
     * points also answer to, cancel.c); `wait_kind` (a weft__wait_kind, for a dump). */
    uint8_t cancel_shield;
    uint8_t no_inline;
    uint8_t runs_inline;
    volatile uint8_t wait_kind;
    weft__atomic_word wait_object; /* see weft__wait_kind */
    uint64_t parent;               /* the spawning task's id (0: a thread), for a dump */
    /* ---- An owner (a task group), or NULL: set before the task is first scheduled and
     * immutable for the incarnation; its on_exit hears that the task finished. The links
     * are the owner's, under its own lock. */
    const struct weft__task_owner *owner;
    struct weft_task *owner_prev, *owner_next;
};

/* Before a task parks for a wait: what it waits on (cheap: a coarse clock read and three
 * stores). Only the task itself; `self` is the calling task. */
void weft__task_note_wait(weft_task *self, weft__wait_kind kind, uint64_t object);
/* After the wait: nothing. */
static inline void weft__task_end_wait(weft_task *self) {
    self->wait_kind = WEFT__WAITING_NONE;
}

/* A thread that is not a worker waiting in weft_join: lives on that thread's stack. */
typedef struct weft__foreign_waiter {
    weft__atomic_u32 done; /* futex word: 0 waiting, 1 woken */
} weft__foreign_waiter;

_Static_assert(offsetof(weft_task, link) == 0, "pool objects start with their link");
#if !defined(WEFT__TSAN) && !defined(WEFT__ASAN)
/* Three cache lines: tasks are the runtime's most numerous object (a field added past
 * this is 64 more bytes for every task). */
_Static_assert(sizeof(weft_task) <= 192, "weft_task grew past three cache lines");
#endif

/* A fresh task object from p (its owner, or any thread for a locked pool), its state
 * reset; NULL with errno ENOMEM. */
weft_task *weft__task_alloc(weft__pool *p);
/* Returns t to its home pool. `caller_pool` is the pool the calling thread owns (NULL
 * for a thread that is not a worker). */
void weft__task_free(weft_task *t, weft__pool *caller_pool);

/* Wakes a task that is parked or about to park; see the protocol in task.c. Returns
 * true if the caller must now schedule it (it was parked). */
bool weft__task_wake(weft_task *t);

/* join.c, JOIN-C1..C4: after a task's last switch, on its worker w: records completion,
 * wakes the joiner (through the scheduler's wake function, then one idle worker of the
 * joiner's runtime) or frees a detached object. t may be freed when it returns. */
struct weft__worker;
void weft__task_complete(struct weft__worker *w, weft_task *t);

/* Completion of a task its registered joiner ran inline (worker.c): COMPLETE and
 * WAKE_DONE at once, no wake-up. */
void weft__task_complete_inline(weft_task *t);

/* The joiner's side, once it has seen COMPLETE: waits out the completer's last touch
 * (WAKE_DONE, a few instructions away) and returns the final state word. */
AO_t weft__task_await_wake_done(weft_task *t);

/* After a task switched out to park, on its worker: PARKED is set and true returned,
 * or a wake-up already arrived (NOTIFIED consumed) and false is returned: the caller
 * runs the task again. */
bool weft__task_finish_park(weft_task *t);

#endif /* WEFT__SCHED_TASK_H */
