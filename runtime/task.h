/*
 * task.h: the task object (which is also its join handle), its state word, the
 * park/wake protocol and the per-worker pools task objects come from. The protocols
 * are written out in task.c.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include "arch/context.h"
#include "atomic.h"
#include "list.h"
#include "sanitizer.h"
#include "stack.h"

#include "weft.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The state word's bits. Once set, COMPLETE, RELEASED and START_FAILED are never
 * cleared for the life of the object; NOTIFIED and PARKED come and go. */
enum {
    /* A wake-up arrived while the task was running or on its way to park: the next park
     * returns at once instead of sleeping. */
    WEFT_TASK_NOTIFIED = 1u << 0,
    /* Off its worker and in no queue: whoever clears this bit must schedule the task. */
    WEFT_TASK_PARKED = 1u << 1,
    /* fn has returned (or the task could not start) and result is final. Set by the
     * worker after the task's last switch, so the object is no longer in use by it. */
    WEFT_TASK_COMPLETE = 1u << 2,
    /* A joiner has registered in `joiner` and waits for COMPLETE. */
    WEFT_TASK_JOIN_WAITING = 1u << 3,
    /* The handle was detached: whoever sets COMPLETE frees the object. */
    WEFT_TASK_RELEASED = 1u << 4,
    /* No stack could be mapped when the task was due to start: it never ran. */
    WEFT_TASK_START_FAILED = 1u << 5,
    /* The completer is done with the joiner (set with COMPLETE when nobody waits, or
     * right after waking the joiner): the joiner may free the object and run on. */
    WEFT_TASK_WAKE_DONE = 1u << 6,
    /* Bits 7-15 are reserved for cancellation and deadline-bounded waits. */
};

/* Why a task switched back to its worker: the value it passes across the switch. */
typedef enum weft__switch_reason {
    WEFT_SWITCH_PARK = 1,
    WEFT_SWITCH_YIELD = 2,
    WEFT_SWITCH_EXIT = 3,
} weft__switch_reason;

typedef struct weft__task_pool weft__task_pool;

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
    void *result; /* written by the task before it exits; read by the joiner after
                   * COMPLETE (acquire) */
    weft_atomic_word state;
    /* Who waits in weft_join: a weft_task *, or a weft__foreign_waiter * with bit 0
     * set. Claimed by CAS from 0 (so a second joiner fails), published by the
     * JOIN_WAITING bit, read by the completer before it sets COMPLETE. */
    weft_atomic_word joiner;
    weft__task_pool *home; /* the pool the object returns to; immutable */
    uint64_t id;
    weft__fiber fiber;
    char name[WEFT_NAME_MAX];
};

/* A thread that is not a worker waiting in weft_join: lives on that thread's stack. */
typedef struct weft__foreign_waiter {
    weft_atomic_u32 done; /* futex word: 0 waiting, 1 woken */
} weft__foreign_waiter;

#define WEFT_TASKS_PER_CHUNK 64

typedef struct weft__task_chunk weft__task_chunk;

/*
 * A pool of task objects. A worker's pool is touched without locks by its owner (the
 * worker's thread, in the scheduler or in a task running there); other threads return
 * objects through `remote`. The runtime's shared pool, for spawns from threads that
 * are not workers, has `lock` and is touched only under it. Objects are never returned
 * to the allocator before the runtime is destroyed, which frees the chunks whole.
 */
struct weft__task_pool {
    weft__link *free;         /* owner only, or under lock */
    weft_atomic_word remote;  /* a LIFO of weft__link: any thread pushes, owner takes all */
    weft__task_chunk *chunks; /* owner only, or under lock */
    pthread_mutex_t *lock;    /* non-NULL only for the shared pool */
    /* Statistics (tasks_live): allocated and freed_local written by the owner,
     * freed_remote added to by anyone; all read relaxed by weft_runtime_stats_get. */
    weft_atomic_word allocated;
    weft_atomic_word freed_local;
    weft_atomic_word freed_remote;
};

void weft__task_pool_init(weft__task_pool *p, pthread_mutex_t *lock);
void weft__task_pool_destroy(weft__task_pool *p);
uint64_t weft__task_pool_live(weft__task_pool *p);

/* A fresh task object from p (owner, or any thread for a locked pool); NULL with errno
 * ENOMEM. `owner_is_current` says whether the calling thread owns p. */
weft_task *weft__task_alloc(weft__task_pool *p);
/* Returns t to its home pool. `caller_pool` is the pool the calling thread owns (NULL
 * for a thread that is not a worker). */
void weft__task_free(weft_task *t, weft__task_pool *caller_pool);

/* Wakes a task that is parked or about to park; see the protocol in task.c. Returns
 * true if the caller must now schedule it (it was parked). */
bool weft__task_wake(weft_task *t);

/* After a task's last switch, on its worker: records completion, wakes the joiner
 * (scheduling it through `schedule` when it was parked) or frees a detached object. */
void weft__task_complete(weft_task *t, weft__task_pool *caller_pool,
                         void (*schedule)(weft_task *joiner));

/* The joiner's side, once it has seen COMPLETE: waits out the completer's last touch
 * (WAKE_DONE, a few instructions away) and returns the final state word. */
AO_t weft__task_await_wake_done(weft_task *t);

/* After a task switched out to park, on its worker: PARKED is set and true returned,
 * or a wake-up already arrived (NOTIFIED consumed) and false is returned: the caller
 * runs the task again. */
bool weft__task_finish_park(weft_task *t);

#endif /* WEFT_TASK_H */
