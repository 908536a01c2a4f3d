/*
 * spawn.c: the task API besides joining: spawning (from a task or any thread), yielding,
 * a task's id and name, the current runtime. Spawns are counted by live.c (RT-S1/RT-S2);
 * making the task runnable is worker.c's.
 */
#include "sched/runtime.h"

#include <errno.h>
#include <string.h>

static weft_task *spawn_counted(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg);

static weft_task *spawn(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg) {
    bool is_ours = w && w->runtime == rt && w->current;
    if (is_ours) /* a task of rt: while it runs, rt cannot be destroyed */
        return spawn_counted(rt, w, fn, arg);
    /* Any other caller may race weft_runtime_destroy: it counts itself as a foreign
     * call, which destroy waits out before it frees anything (RT-D4). */
    weft__runtime_foreign_enter(rt);
    int saved_errno;
    weft_task *t = spawn_counted(rt, w, fn, arg);
    saved_errno = errno;
    weft__runtime_foreign_leave(rt);
    errno = saved_errno;
    return t;
}

/* A task counted (RT-S1, RT-S2) and allocated, not yet scheduled; NULL with errno.
 * is_ours: w is one of rt's workers, running a task. */
static inline weft_task *create_counted(weft_runtime *rt, weft__worker *w, bool is_ours, weft_fn fn,
                                        void *arg) {
    int err = weft__runtime_count_spawn(rt, w, is_ours);
    if (err) {
        errno = err;
        return NULL;
    }
    weft_task *t = weft__task_alloc(is_ours ? &w->tasks : &rt->shared_tasks);
    if (!t) {
        weft__runtime_task_done(rt, is_ours ? w : NULL);
        errno = ENOMEM;
        return NULL;
    }
    t->runtime = rt;
    t->fn = fn;
    t->arg = arg;
    t->id = weft__worker_next_id(is_ours ? w : NULL);
    weft_task *parent = w ? w->current : NULL;
    t->parent = parent ? parent->id : 0;
    /* Only a worker of rt records it (as weft__worker_trace_wake). */
    if (w && w->runtime == rt && weft__worker_tracing(w))
        weft__worker_trace_spawn(w, t); /* w is the calling thread's worker */
    return t;
}

static inline void count_spawned(weft_runtime *rt, weft__worker *w, bool is_ours) {
    if (is_ours) /* a statistic, per worker: no shared cache line on the spawn path */
        weft__atomic_store_relaxed(&w->tasks_spawned,
                                   weft__atomic_load_relaxed(&w->tasks_spawned) + 1);
    else
        weft__atomic_fetch_add_relaxed(&rt->tasks_spawned, 1);
}

static weft_task *spawn_counted(weft_runtime *rt, weft__worker *w, weft_fn fn, void *arg) {
    bool is_ours = w && w->runtime == rt && w->current;
    weft_task *t = create_counted(rt, w, is_ours, fn, arg);
    if (!t)
        return NULL;
    count_spawned(rt, w, is_ours);
    weft__worker_schedule(rt, t);
    return t;
}

weft_task *weft__spawn_prepare(weft_runtime *rt, weft_fn fn, void *arg, bool *pinned) {
    weft__worker *w = weft__worker_current();
    *pinned = !(w && w->runtime == rt && w->current);
    if (*pinned) /* as spawn(): a foreign call until the commit or the abandon */
        weft__runtime_foreign_enter(rt);
    weft_task *t = create_counted(rt, w, !*pinned, fn, arg);
    if (!t && *pinned) {
        int saved_errno = errno;
        weft__runtime_foreign_leave(rt);
        errno = saved_errno;
    }
    return t;
}

void weft__spawn_commit(weft_task *t, bool pinned) {
    weft_runtime *rt = t->runtime;
    weft__worker *w = weft__worker_current(); /* fresh: the caller may have moved */
    count_spawned(rt, w, w && w->runtime == rt && w->current);
    weft__worker_schedule(rt, t);
    if (pinned)
        weft__runtime_foreign_leave(rt);
}

void weft__spawn_abandon(weft_task *t, bool pinned) {
    weft_runtime *rt = t->runtime;
    weft__worker *w = weft__worker_current(); /* fresh: the caller may have moved */
    bool is_ours = w && w->runtime == rt;
    weft__task_free(t, is_ours ? &w->tasks : NULL);
    weft__runtime_task_done(rt, is_ours ? w : NULL);
    if (pinned)
        weft__runtime_foreign_leave(rt);
}

WEFT_API weft_task *weft_spawn(weft_fn fn, void *arg) {
    weft__worker *w;
    weft_task *self = weft__worker_current_task(&w);
    if (!self) {
        errno = EPERM;
        return NULL;
    }
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    weft_task *t = spawn(w->runtime, w, fn, arg);
    if (t && w->runtime->chaos_seed) /* chaos: a preemption point after the spawn */
        weft__worker_chaos_yield();
    return t;
}

WEFT_API weft_task *weft_spawn_on(weft_runtime *rt, weft_fn fn, void *arg) {
    if (!rt || !fn) {
        errno = EINVAL;
        return NULL;
    }
    return spawn(rt, weft__worker_current(), fn, arg);
}

WEFT_API void weft_yield(void) {
    if (!weft__worker_current_task(NULL))
        return;
    /* Straight to the next yielded task, or nothing to do; otherwise through the
     * scheduler. (It checks due timers: a task yielding in a loop must not starve the
     * timers of its own worker, which fires them only between tasks.) */
    if (weft__worker_yield_current())
        return;
    weft__worker_suspend_current(WEFT__SWITCH_YIELD);
}

WEFT_API uint64_t weft_current_id(void) {
    weft_task *self = weft__worker_current_task(NULL);
    return self ? self->id : 0;
}

WEFT_API int weft_set_name(const char *name) {
    if (!name)
        return -EINVAL;
    weft_task *self = weft__worker_current_task(NULL);
    if (!self)
        return -EPERM;
    size_t n = strnlen(name, WEFT_NAME_MAX - 1);
    memcpy(self->name, name, n);
    self->name[n] = '\0';
    return 0;
}

WEFT_API weft_runtime *weft_runtime_current(void) {
    weft__worker *w = weft__worker_current();
    return w ? w->runtime : NULL;
}
