/*
 * worker.c: a worker's loop: find work, run it, park. Owns the switch between a
 * worker's own stack (its scheduler) and its tasks, what happens after each switch,
 * and where runnable tasks go.
 *
 * Where a worker looks for work, in order:
 *   1. every 61st round, the injection queue and then its yield queue first, so that
 *      a worker whose deque never empties still serves them (61, as Go and Tokio use:
 *      a prime, so the check does not beat in step with a program's own periods);
 *   2. its deque, newest first (LIFO: fork-join recursion runs depth-first);
 *   3. its yield queue, oldest first (a task that yielded runs after every other
 *      runnable task of the worker);
 *   4. the injection queue, taking a fair share in one batch;
 *   5. what its driver has ready now (the driver's poll; io/reactor.c: I/O readiness),
 *      and 1-4 again;
 *   6. as a searcher (idle.c), the other workers' deques, from a random victim on,
 *      and the injection queue again;
 *   7. it parks (idle.c) on its driver (driver.h) until a submitter claims it, the
 *      driver's next deadline (its earliest timer) comes, or the driver has something
 *      due (I/O events read while parked in the poller).
 * Before each round it lets its driver fire what is due (time/timer.c: timers; io/
 * reactor.c: events, and a poll every 61st round).
 *
 * Switching: a task that parks or exits switches to its worker's scheduler context with
 * the reason, and the worker acts on the reason only after the switch, once the task's
 * registers are saved on its stack: only then may another thread resume or free it. Two
 * paths skip the scheduler: a yield when the only other runnable work is another
 * yielded task switches straight to it (the yield queue is owner-only, so nobody can
 * resume the yielder before its registers are saved), and an inline join runs its child
 * on the joiner's stack without any switch (weft__worker_join_inline).
 *
 * Threads: fields marked "owner only" in worker.h are touched only on the worker's
 * thread. Thread-local state (`this_worker`) is read through weft__worker_current, never
 * cached across a switch.
 */
#include "sched/worker.h"

#include "sched/cancel.h"
#include "sched/fault.h"
#include "sched/idle.h"
#include "sched/runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

#define WEFT__FAIRNESS_INTERVAL 61
#define WEFT__INJECT_BATCH_MAX  32
#define WEFT__ID_BLOCK          1024

static _Thread_local weft__worker *this_worker;
static weft__atomic_word next_task_id = 1;

__attribute__((noinline)) weft__worker *weft__worker_current(void) {
    weft__worker *w = this_worker;
    /* The memory clobber keeps the compiler from treating this function as pure and
     * reusing one call's result across a stack switch (which may change the thread). */
    __asm__ volatile("" : "+r"(w) : : "memory");
    return w;
}

uint64_t weft__worker_next_id(weft__worker *w) {
    if (w && w->next_id < w->id_limit)
        return w->next_id++;
    /* Relaxed: uniqueness needs only the RMW's atomicity. */
    if (!w)
        return weft__atomic_fetch_add_relaxed(&next_task_id, 1);
    w->next_id = weft__atomic_fetch_add_relaxed(&next_task_id, WEFT__ID_BLOCK);
    w->id_limit = w->next_id + WEFT__ID_BLOCK;
    return w->next_id++;
}

void weft__worker_unpark(weft__worker *w) {
    /* Release: pairs with the parked worker's acquire load of wake_word; the work that
     * made us wake it is visible to it. */
    weft__atomic_u32_store_release(&w->wake_word, 1);
    w->driver->ops->unpark(w->driver, &w->wake_word);
}

/* (IDLE-N2, IDLE-N3) of idle.c, after new work became visible. */
static void notify_one(weft_runtime *rt) {
    int index = weft__idle_claim_sleeper(&rt->idle);
    if (index >= 0)
        weft__worker_unpark(rt->workers[index]);
}

/* (IDLE-N1) Pushes t on w's deque; when the deque is full, moves its older half and t to the
 * injection queue in one batch (Tokio's overflow policy). Does not notify. */
static void push_local_quiet(weft__worker *w, weft_task *t) {
    while (!weft__deque_push_owner(&w->deque, t)) {
        void *batch[WEFT__DEQUE_CAPACITY / 2];
        size_t half = weft__deque_capacity(&w->deque) / 2;
        size_t n = weft__deque_steal_batch_owner(&w->deque, batch, half);
        if (n == 0)
            continue; /* thieves emptied it meanwhile: the push will succeed */
        for (size_t i = 0; i + 1 < n; i++)
            ((weft_task *)batch[i])->link.next = &((weft_task *)batch[i + 1])->link;
        ((weft_task *)batch[n - 1])->link.next = &t->link;
        weft__inject_push_batch_any(&w->runtime->inject, &((weft_task *)batch[0])->link, &t->link,
                                    n + 1);
        return;
    }
}

void weft__worker_schedule_quiet(weft_runtime *rt, weft_task *t) {
    weft__worker *w = weft__worker_current();
    if (w && w->runtime == rt) {
        /* One schedule in WEFT__DELAY_SAMPLE_EVERY is stamped (metrics.h). The task is
         * not runnable yet: the field is ours until the push publishes it. */
        if (++w->delay_sample % WEFT__DELAY_SAMPLE_EVERY == 0)
            t->runnable_at = weft__ticks();
        push_local_quiet(w, t);
    } else {
        weft__inject_push_any(&rt->inject, &t->link);
    }
}

void weft__worker_notify(weft_runtime *rt) {
    notify_one(rt);
}

/* A trace's wake-up (or spawn) event, with a flow id unique in the process (trace.h):
 * the writer draws it to the woken task's next run slice. w: the calling thread's
 * worker, tracing. */
static void trace_wake(weft__worker *w, weft_task *t, weft__trace_kind kind) {
    uint64_t flow = ((uint64_t)(w->index + 1) << 48) | ++w->trace_flows;
    weft__worker_trace(w, kind, t->id, flow, 0);
}

void weft__worker_trace_spawn(weft__worker *w, weft_task *t) {
    trace_wake(w, t, WEFT__TRACE_SPAWN); /* in the spawning task's run slice */
}

/* Only a worker of t's own runtime records the wake: flow ids are unique per runtime
 * (trace.h), and the woken task's slice is in its runtime's trace. */
void weft__worker_trace_wake(weft_task *t) {
    weft__worker *w = weft__worker_current();
    if (w && w->runtime == t->runtime && weft__worker_tracing(w))
        trace_wake(w, t, WEFT__TRACE_WAKE);
}

weft_runtime *weft__worker_wake_quiet(weft_task *t) {
    if (!weft__task_wake(t))
        return NULL;
    weft__worker *w = weft__worker_current();
    if (w && w->runtime == t->runtime && weft__worker_tracing(w))
        trace_wake(w, t, WEFT__TRACE_WAKE);
    weft__worker_schedule_quiet(t->runtime, t);
    return t->runtime;
}

void weft__worker_schedule(weft_runtime *rt, weft_task *t) {
    weft__worker_schedule_quiet(rt, t);
    WEFT__CHAOS_POINT(rt->chaos_seed, "IDLE-N1");
    notify_one(rt);
}

/* Takes a fair share of the injection queue: returns the first, pushes the rest on
 * the deque where thieves can reach them. */
static weft_task *take_from_inject(weft__worker *w) {
    weft_runtime *rt = w->runtime;
    size_t length = weft__inject_length_any(&rt->inject);
    if (length == 0)
        return NULL;
    size_t want = length / rt->worker_count + 1;
    if (want > WEFT__INJECT_BATCH_MAX)
        want = WEFT__INJECT_BATCH_MAX;
    if (weft__chaos_on(&w->chaos)) /* chaos: any steal size up to the fair share */
        want = 1 + (size_t)weft__chaos_below(&w->chaos, want);
    weft__fifo got;
    weft__fifo_init(&got);
    if (weft__inject_pop_batch_any(&rt->inject, want, &got) == 0)
        return NULL;
    weft_task *first = weft__container_of(weft__fifo_pop(&got), weft_task, link);
    if (got.count > 0) {
        weft__link *l;
        while ((l = weft__fifo_pop(&got)))
            push_local_quiet(w, weft__container_of(l, weft_task, link));
        notify_one(rt);
    }
    return first;
}

static weft_task *pop_yielded(weft__worker *w) {
    weft__link *l = weft__fifo_pop(&w->yield_queue);
    if (!l)
        return NULL;
    weft__metric_add(&w->yield_length, (AO_t)-1);
    return weft__container_of(l, weft_task, link);
}

static weft_task *next_local(weft__worker *w) {
    weft_task *t;
    if (++w->tick % WEFT__FAIRNESS_INTERVAL == 0) {
        if ((t = take_from_inject(w)) || (t = pop_yielded(w)))
            return t;
    }
    /* Chaos: sometimes the injection queue before the deque (never the yield queue
     * early: weft_yield promises the worker's other runnable tasks run first). */
    if (weft__chaos_one_in(&w->chaos, 16) && (t = take_from_inject(w)))
        return t;
    if ((t = weft__deque_pop_owner(&w->deque)))
        return t;
    if ((t = pop_yielded(w)))
        return t;
    return take_from_inject(w);
}

static uint64_t next_random(weft__worker *w) {
    uint64_t x = w->random; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->random = x;
    return x;
}

static weft_task *steal(weft__worker *w) {
    weft_runtime *rt = w->runtime;
    unsigned n = rt->worker_count;
    for (int round = 0; round < 2; round++) {
        bool contended = false;
        unsigned start = (unsigned)(next_random(w) % n);
        for (unsigned i = 0; i < n; i++) {
            weft__worker *victim = rt->workers[(start + i) % n];
            if (victim == w)
                continue;
            void *item;
            weft__metric_add(&w->metrics.steal_attempts, 1);
            weft__steal_result r = weft__deque_steal_any(&victim->deque, &item);
            if (r == WEFT__STEAL_SUCCESS) {
                /* Relaxed: a statistic only we write. */
                weft__atomic_store_relaxed(&w->steals, weft__atomic_load_relaxed(&w->steals) + 1);
                weft__worker_trace(w, WEFT__TRACE_STEAL, ((weft_task *)item)->id, 0, victim->index);
                return item;
            }
            if (r == WEFT__STEAL_RETRY)
                contended = true;
        }
        weft_task *t = take_from_inject(w);
        if (t || !contended)
            return t;
    }
    return NULL;
}

/* (IDLE-P2) Is any work visible anywhere? Called after IDLE-P1's barrier. */
static bool work_visible(weft_runtime *rt) {
    if (weft__inject_length_any(&rt->inject) > 0)
        return true;
    for (unsigned i = 0; i < rt->worker_count; i++)
        if (weft__deque_size_any(&rt->workers[i]->deque) > 0)
            return true;
    return false;
}

/* A searcher that found nothing keeps looking for a short while before it parks, as
 * Go's spinning threads do: work that a busy worker spawns a few microseconds later is
 * then stolen without a futex wake-up on the spawner's side and a sleep and wake on
 * ours (spawn_many, one producer and one thief: with the spin its median went from 172
 * to 160 ms on the 2-core VM, 2026-11-25, five interleaved runs each). While it searches, spawns
 * wake nobody (IDLE-N3). Bounded, and only by a worker that was just busy: an idle runtime still
 * burns no CPU. */
#ifndef WEFT__SEARCH_SPIN_NS
#define WEFT__SEARCH_SPIN_NS 20000
#endif

static weft_task *search_a_while(weft__worker *w) {
    weft_runtime *rt = w->runtime;
    uint64_t until = weft_now() + WEFT__SEARCH_SPIN_NS;
    do {
        for (int i = 0; i < 32; i++)
            weft__cpu_relax();
        if (weft__atomic_load_acquire(&rt->stopping) || w->driver->ops->has_due(w->driver))
            return NULL; /* the loop has something else to do first */
        if (work_visible(rt)) {
            weft_task *t = steal(w);
            if (t)
                return t;
        }
    } while (weft_now() < until);
    return NULL;
}

static void park(weft__worker *w) {
    weft_runtime *rt = w->runtime;
    /* A parked worker holds no live_tasks credits: once every task has finished, the
     * last worker to park empties live_tasks and wakes a destroyer (live.c, RT-F2). */
    weft__runtime_release_credit(rt, w);
    weft__chaos_delay(&w->chaos); /* chaos: widen the window before IDLE-P1 */
    /* (IDLE-P1) */
    weft__idle_prepare_park(&rt->idle, w->index, w->searching);
    w->searching = false;
    WEFT__CHAOS_POINT(rt->chaos_seed, "IDLE-P1");
    /* (IDLE-P2) Every parking worker, not only the last searcher (idle.c explains why). */
    if (work_visible(rt))
        notify_one(rt);
    weft__chaos_delay(&w->chaos); /* chaos: and between IDLE-P2 and the futex wait */
    /* (IDLE-P3) Acquire on wake_word pairs with weft__worker_unpark's release; acquire on
     * stopping pairs with the release store in weft_runtime_destroy. Sleeps no later
     * than this worker's earliest timer: a parked worker fires its timers on time. */
    while (weft__atomic_u32_load_acquire(&w->wake_word) == 0) {
        if (weft__atomic_load_acquire(&rt->stopping))
            return;
        uint64_t deadline = w->driver->ops->next_deadline(w->driver);
        if ((deadline != UINT64_MAX && weft_now() >= deadline) ||
            w->driver->ops->has_due(w->driver)) {
            if (weft__idle_unpark_self(&rt->idle, w->index))
                return; /* awake for our timers or events, neither parked nor searching */
            continue;   /* a submitter claimed us: wake_word is being set */
        }
        weft__metric_add(&w->metrics.parks, 1);
        weft__atomic_store_relaxed(&w->parked, 1);
        weft__worker_trace(w, WEFT__TRACE_PARK, 0, 0, 0);
        w->driver->ops->park(w->driver, &w->wake_word, deadline);
        weft__atomic_store_relaxed(&w->parked, 0);
        weft__worker_trace(w, WEFT__TRACE_UNPARK, 0, 0, 0);
    }
    weft__atomic_u32_store_release(&w->wake_word, 0); /* only we clear it */
    w->searching = true; /* the claimer counted us as a searcher (IDLE-N3) */
}

/* Runs when a task's function has returned, or when it could not start, on the worker
 * that ran it. After weft__task_complete the object may be freed: do not touch it. */
static void finish(weft__worker *w, weft_task *t) {
    weft_runtime *rt = w->runtime;
    if (t->stack) {
        weft__stack_put_owner(&rt->stacks, &w->stacks, t->stack);
        t->stack = NULL;
    }
    /* The live slot first: a joiner that sees COMPLETE may spawn at once, and must find
     * the slot free (max_tasks). Should this let a destroyer past RT-D2, it still waits
     * for this thread (RT-D3) and for a foreign joiner we wake (RT-D4) before freeing
     * anything. */
    weft__runtime_task_done(rt, w);
    weft__metric_add(&w->tasks_finished, 1);
    /* An owner learns of the end before the completion is published: the owner frees
     * the object only after it has seen COMPLETE (a group: weft_group_next). */
    weft__task_exit_later later = {NULL, NULL, NULL};
    if (t->owner)
        t->owner->on_exit(t, &later);
    weft__task_complete(w, t);
    if (later.run)
        later.run(later.a, later.b);
}

/* The task's function, in a frame that returns (see WEFT__NO_SANITIZER_FRAME). */
__attribute__((noinline)) static void run_function(weft_task *t) {
    t->result = t->fn(t->arg);
}

/* The last switch of a task: never returns. */
WEFT__NO_SANITIZER_FRAME __attribute__((noinline, noreturn)) static void exit_current(void) {
    weft__worker *w = weft__worker_current();
    weft_task *t = w->current;
    weft__fiber_before_switch(&t->fiber, &w->scheduler_fiber, true);
    weft__context_switch(&t->context, w->scheduler, (void *)(uintptr_t)WEFT__SWITCH_EXIT);
    __builtin_unreachable();
}

WEFT__NO_SANITIZER_FRAME static void task_entry(void *value) {
    weft_task *t = value;
    weft__fiber_after_switch(&t->fiber);
    run_function(t);
    exit_current();
}

/* Gives t its stack on its first run. False if none could be had: t is finished. */
static bool start(weft__worker *w, weft_task *t) {
    weft_runtime *rt = w->runtime;
    weft__stack *s = weft__stack_get_owner(&rt->stacks, &w->stacks);
    if (!s) {
        /* Full: the bit is clear (it is set only here, once), so adding sets it; the
         * barrier orders it before COMPLETE, which the joiner reads with acquire. */
        weft__atomic_fetch_add_full(&t->state, WEFT__TASK_START_FAILED);
        finish(w, t);
        return false;
    }
    t->stack = s;
    weft__fiber_init_task(&t->fiber, s->low, weft__stack_usable(s), &s->sanitizer_fiber);
    t->context = weft__context_make(s->top, task_entry);
    return true;
}

/* The seqlock a dump reads tasks under (debug/dump.c): `switches` is odd while the task
 * is on a worker (running, or running a child inline), even while it is off, and a dump
 * trusts a copy only if it read the same even value before and after. Owner-written. */
static inline void bump_switches(weft_task *t) {
    /* Release: the task's fields as they were before the change; pairs with the dump's
     * acquire loads. */
    weft__atomic_u32_store_release(&t->switches, weft__atomic_u32_load_relaxed(&t->switches) + 1);
}

/* A task resumed by a direct hand-over (weft__worker_yield_current) makes the task that
 * handed over even: its registers are saved now. Every task a hand-over resumes was
 * suspended in weft__worker_yield_current or weft__worker_suspend_current (a yielded
 * one), and both call this after their switch. */
static inline void settle_handed_over_on(weft__worker *w) {
    if (w->handed_over) {
        bump_switches(w->handed_over); /* even: off its worker */
        w->handed_over = NULL;
    }
}

static inline void settle_handed_over(void) {
    settle_handed_over_on(weft__worker_current());
}

/* Bookkeeping as t gets the worker's thread: the dump's view, the sampled delay, the
 * trace. `now`: ticks. */
static inline void enter_task(weft__worker *w, weft_task *t, uint64_t now) {
    w->current = t;
    /* Relaxed: read by a dump, which checks them against each other. */
    weft__atomic_store_relaxed(&w->running_id, t->id);
    bump_switches(t); /* odd: on a worker */
    if (t->runnable_at) { /* a sampled schedule (metrics.h) */
        uint64_t delay = now > t->runnable_at ? now - t->runnable_at : 0;
        t->runnable_at = 0;
        unsigned b = weft__histogram_bucket(weft__ticks_to_ns(delay, w->runtime->tick_factor));
        weft__metric_add(&w->metrics.delay_histogram[b], 1);
        weft__metric_add(&w->metrics.delay_samples, 1);
    }
    if (weft__worker_tracing(w))
        weft__worker_trace_at(w, now, WEFT__TRACE_RUN_BEGIN, t->id, 0, 0);
}

/* A trace's record of `to` taking the worker's thread without the scheduler (a direct
 * yield, an inline join and its end): the running task's slice ends (`reason`), to's
 * begins. One event, not a RUN_END and a RUN_BEGIN: these paths are the hottest a trace
 * records (a yield is ~15 ns), and the ring's memory traffic is most of a recorded
 * event's cost. Owner only. */
static inline void trace_handover(weft__worker *w, uint32_t reason, weft_task *to) {
    if (weft__worker_tracing(w))
        weft__worker_trace(w, WEFT__TRACE_RUN_SWITCH, to->id, 0, reason);
}

/* Ends the open run slice (metrics.h) at `now`, if one is open. Owner-written counters. */
static inline void close_slice(weft__worker *w, uint64_t now) {
    if (!w->slice_start)
        return;
    /* A counter that went backwards (an unsynchronised TSC after a migration of the
     * worker's thread) counts as 0, not as 2^64 ticks. */
    uint64_t slice = now > w->slice_start ? now - w->slice_start : 0;
    weft__metric_add(&w->metrics.busy_ticks, slice);
    weft__metric_add(&w->metrics.slices, 1);
    if (slice > w->runtime->long_slice_ticks)
        weft__metric_add(&w->metrics.slices_long, 1);
    unsigned bucket = weft__histogram_bucket(weft__ticks_to_ns(slice, w->runtime->tick_factor));
    weft__metric_add(&w->metrics.slice_histogram[bucket], 1);
}

static void run(weft__worker *w, weft_task *t) {
    if (!t->stack && !start(w, t))
        return;
    /* One counter read per task run: it ends the previous slice and begins this one. */
    uint64_t begin = weft__ticks();
    close_slice(w, begin);
    w->slice_start = begin;
    enter_task(w, t, begin);
    weft__fiber_before_switch(&w->scheduler_fiber, &t->fiber, false);
    void *reason = weft__context_switch(&w->scheduler, t->context, t);
    weft__fiber_after_switch(&w->scheduler_fiber);
    /* The task that switched back is not always t: tasks hand the worker to each other
     * directly (weft__worker_yield_current) and a task run inline by its joiner parks
     * under its own identity (weft__worker_join_inline). */
    t = w->current;
    w->current = NULL;
    bump_switches(t); /* even: off its worker */
    weft__atomic_store_relaxed(&w->running_id, 0);
    weft__worker_trace(w, WEFT__TRACE_RUN_END, t->id, (uint64_t)(uintptr_t)reason, 0);
    if (!weft__stack_canary_intact(t->stack))
        weft__report_overflow(t, w->runtime->stack_size, NULL, "its canary was overwritten");
    switch ((weft__switch_reason)(uintptr_t)reason) {
    case WEFT__SWITCH_PARK:
        WEFT__CHAOS_POINT(w->runtime->chaos_seed, "WAKE-P0");
        if (!weft__task_finish_park(t)) {
            push_local_quiet(w, t); /* woken already: runs next (LIFO) */
        }
        break;
    case WEFT__SWITCH_YIELD:
        weft__fifo_push(&w->yield_queue, &t->link);
        weft__metric_add(&w->yield_length, 1);
        break;
    case WEFT__SWITCH_EXIT:
        finish(w, t);
        break;
    }
}

bool weft__worker_yield_current(void) {
    weft__worker *w = weft__worker_current();
    weft_task *self = w->current;
    /* Anything but another yielded task to run, or a timer due: let the scheduler choose
     * (fairness, timers, stealing). */
    if (weft__deque_size_any(&w->deque) != 0 || weft__inject_length_any(&w->runtime->inject) != 0 ||
        w->driver->ops->has_due(w->driver) || weft__chaos_one_in(&w->chaos, 4))
        return false;
    weft__link *l = weft__fifo_pop(&w->yield_queue);
    if (!l)
        return true; /* nothing else is runnable here: the yield is a no-op */
    weft_task *next = weft__container_of(l, weft_task, link);
    if (!weft__stack_canary_intact(self->stack))
        weft__report_overflow(self, w->runtime->stack_size, NULL, "its canary was overwritten");
    /* Owner-only queue: nobody can resume self before its registers are saved by the
     * switch below, because only this worker pops its yield queue, and it is busy
     * switching. */
    weft__fifo_push(&w->yield_queue, &self->link);
    w->tick++;
    w->current = next;
    /* One run slice for the scheduler (metrics.h), but a dump and a trace see each task. */
    weft__atomic_store_relaxed(&w->running_id, next->id);
    bump_switches(next); /* odd: on it */
    w->handed_over = self; /* made even by next, once self's registers are saved */
    trace_handover(w, WEFT__SWITCH_YIELD, next);
    weft__fiber_before_switch(&self->fiber, &next->fiber, false);
    weft__context_switch(&self->context, next->context, next);
    weft__fiber_after_switch(&self->fiber);
    /* Resumed by a hand-over or by the scheduler, but on w either way: only w takes
     * tasks from its yield queue. */
    settle_handed_over_on(w);
    return true;
}

/* Runs t's function on the calling task's own stack (see weft__worker_join_inline). The
 * frame that returns: t may park in it and resume on another worker. */
__attribute__((noinline)) static void run_inline(weft_task *t) {
    t->result = t->fn(t->arg);
}

/* (CANCEL-I4) Waits out the cancellers of self that may still touch the child it
 * published in CANCEL-I1 (a few instructions each, no system call among them). */
static void await_cancellers(weft_task *self) {
    unsigned rounds = 0;
    /* Acquire: pairs with CANCEL-4's release decrement. */
    while (weft__atomic_u32_load_acquire(&self->cancel_pins) != 0)
        weft__spin_wait(&rounds);
}

/* (CANCEL-I3, CANCEL-I4) The child published in CANCEL-I1 will not run inline after all.
 * The RMW is the full barrier between the store and the pins' load (the rare path). */
static void decline_inline(weft_task *self) {
    weft__atomic_store_relaxed(&self->inline_child, 0);
    if (weft__atomic_u32_fetch_add_full(&self->cancel_pins, 0) != 0)
        await_cancellers(self);
}

bool weft__worker_join_inline(weft_task *t) {
    weft__worker *w = weft__worker_current();
    weft_task *self = w->current;
    weft_runtime *rt = w->runtime;
    if (t->runtime != rt || t->no_inline) /* immutable while the handle is ours */
        return false;
    if (weft__chaos_one_in(&w->chaos, 4)) /* chaos: take the parking path instead */
        return false;
    /* (CANCEL-I1, cancel.c) A canceller of ours may find t from here on. Release: t's
     * fields as we see them; the pop's full RMW below orders it before t's first check of
     * our mark. */
    weft__atomic_store_release(&self->inline_child, (AO_t)t);
    /* (INLINE-I1) Only the bottom of our own deque: the next task this worker would run anyway,
     * that no thief took. Pop it to look, push it back if it is not t: both are owner
     * operations, so the deque is as it was. */
    void *bottom = weft__deque_pop_owner(&w->deque);
    /* Popped from our deque, t is ours and not running: `stack` may be read. A task
     * that already ran (woken after a park) is resumed, not inlined. */
    if (bottom != t || t->stack) {
        decline_inline(self);
        if (bottom && !weft__deque_push_owner(&w->deque, bottom))
            weft__worker_schedule_quiet(rt, bottom); /* cannot fail: we just popped */
        return false;
    }
    /* (INLINE-I2) Enough stack left for t: at least 3/4 of the configured size (weft.h). */
    unsigned char *sp = __builtin_frame_address(0);
    if (!self->stack || sp < self->stack->low ||
        (size_t)(sp - self->stack->low) < rt->stack_size / 4 * 3) {
        decline_inline(self);
        push_local_quiet(w, t);
        return false;
    }
    WEFT__CHAOS_POINT(rt->chaos_seed, "CANCEL-I1");
    /* t's cancellation points answer to ours too while it runs here (cancel.c). */
    t->runs_inline = 1; /* its `joiner` is self (JOIN-J3) */
    weft__cancel_inherit_hint(self, t); /* (CANCEL-I2) */
    /* (INLINE-I3) t runs as itself on our stack: its spawns, joins and parks act for t. Its
     * `stack` points at ours, so that if it parks, the scheduler resumes its saved
     * context rather than starting it afresh; its fiber is ours (the same stack). */
    t->stack = self->stack;
    t->fiber = self->fiber;
    w->current = t;
    weft__atomic_store_relaxed(&w->running_id, t->id); /* for a dump */
    bump_switches(t);                                  /* odd: on a worker */
    trace_handover(w, WEFT__TRACE_END_JOIN_INLINE, t); /* t's slice, not self's */
    /* A statistic, owner-written: relaxed. */
    weft__atomic_store_relaxed(&w->joins_inline, weft__atomic_load_relaxed(&w->joins_inline) + 1);
    run_inline(t);
    /* (INLINE-I4) t's function returned, perhaps on another worker if it parked. We are self
     * again; complete t as finish() would, minus the stack, which is ours. */
    w = weft__worker_current();
    w->current = self;
    weft__atomic_store_relaxed(&w->running_id, self->id);
    trace_handover(w, WEFT__SWITCH_EXIT, self);
    self->fiber = t->fiber;
    t->stack = NULL;
    t->runs_inline = 0;
    bump_switches(t); /* even: off its worker for good */
    /* (CANCEL-I3) No canceller finds t from here on; the completion CAS below is the full
     * barrier between this store and CANCEL-I4's load. */
    weft__atomic_store_relaxed(&self->inline_child, 0);
    weft__runtime_task_done(rt, w); /* the slot first, as finish() does */
    weft__metric_add(&w->tasks_finished, 1);
    weft__task_complete_inline(t);
    weft__atomic_fence_after_rmw(); /* the CAS then CANCEL-I4's load, on Arm too */
    WEFT__CHAOS_POINT(rt->chaos_seed, "CANCEL-I3");
    await_cancellers(self);
    return true;
}

void weft__worker_chaos_yield(void) {
    weft__worker *w = weft__worker_current();
    if (w && w->current && weft__chaos_one_in(&w->chaos, 8))
        weft__worker_suspend_current(WEFT__SWITCH_YIELD);
}

void weft__worker_suspend_current(weft__switch_reason reason) {
    weft__worker *w = weft__worker_current();
    weft_task *t = w->current;
    weft__fiber_before_switch(&t->fiber, &w->scheduler_fiber, false);
    weft__context_switch(&t->context, w->scheduler, (void *)(uintptr_t)reason);
    /* Resumed, maybe on another worker: `w` is stale from here on. */
    weft__fiber_after_switch(&t->fiber);
    /* Only a yielded task can be resumed by a direct hand-over (it is in the yield
     * queue); a parked one is resumed by its scheduler: no lookup on the park path. */
    if (reason == WEFT__SWITCH_YIELD)
        settle_handed_over();
}

/* Called by the trampoline in the arch/ assembly if a context's entry function returns. */
__attribute__((visibility("hidden"), noreturn)) void weft__context_entry_returned(void);
void weft__context_entry_returned(void) {
    static const char msg[] = "weft: a task's entry function returned; aborting\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    abort();
}

static void init_scheduler_fiber(weft__worker *w) {
    void *bottom = NULL;
    size_t size = 0;
#if defined(WEFT__ASAN)
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &bottom, &size);
        pthread_attr_destroy(&attr);
    }
#endif
    weft__fiber_init_thread(&w->scheduler_fiber, bottom, size);
}

void *weft__worker_main(void *arg) {
    weft__worker *w = arg;
    weft_runtime *rt = w->runtime;
    this_worker = w;
    /* Timer slack: the kernel may delay a timed futex wait by the thread's slack (50 us
     * by default) to batch wake-ups; sleeps must not be late by more than needed. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    init_scheduler_fiber(w);
    w->signal_stack = weft__fault_thread_init();
    for (;;) {
        w->driver->ops->fire_due(w->driver);
        weft_task *t = next_local(w);
        if (!t) {
            /* Before stealing: what the driver has ready now (I/O readiness). */
            w->driver->ops->poll(w->driver);
            t = next_local(w);
        }
        if (!t) {
            close_slice(w, weft__ticks()); /* ran dry: the last slice ends here */
            w->slice_start = 0;
            if (!w->searching)
                w->searching = weft__idle_begin_searching(&rt->idle);
            if (w->searching && !(t = steal(w)))
                t = search_a_while(w);
        }
        if (t) {
            /* Found work, however: stop counting as a searcher (a woken worker starts
             * as one, and may find its work in the injection queue), and if we were the
             * last, hand searching on so the rest of the work is found too. */
            if (w->searching) {
                w->searching = false;
                if (weft__idle_end_searching(&rt->idle))
                    notify_one(rt);
            }
            run(w, t);
            continue;
        }
        /* Acquire: pairs with weft_runtime_destroy's release store. */
        if (weft__atomic_load_acquire(&rt->stopping))
            break;
        park(w);
    }
    weft__stack_cache_drain_owner(&rt->stacks, &w->stacks);
    weft__fault_thread_exit(w->signal_stack);
    w->signal_stack = NULL;
    this_worker = NULL;
    return NULL;
}
