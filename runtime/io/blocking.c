/*
 * blocking.c: the blocking pool: threads beside the workers that run calls which block
 * a thread (weft_spawn_blocking). Owns the pool's queue and threads.
 *
 * How a call travels. weft_spawn_blocking spawns an ordinary task (the call's "carrier")
 * and returns its handle, so joining, detaching, deadlines and shutdown are the task's
 * (join.c), nothing new. The carrier puts a job, which lives on its stack, on the pool's
 * queue and waits (sched/wait.h, no deadline); a pool thread takes the job, runs fn(arg)
 * and delivers the result to the waiting carrier (WAIT-D*), which returns it as the
 * task's result. The carrier costs a task and a stack page while the call runs: small
 * beside a thread, and it is what makes the handle a task's.
 *
 * Threads are started on demand: a job that finds no idle thread starts one, up to
 * max_threads. A thread idle for keep_alive exits. At the cap, jobs wait in the FIFO
 * queue; it cannot grow without bound, because each queued job is a live carrier task,
 * and spawns past max_tasks fail with EAGAIN (weft.h). If no thread can be started and
 * none runs (pthread_create fails: out of memory or of threads), the carrier runs the
 * call itself, blocking its worker, rather than wait for a thread that will never come.
 *
 * Shutdown. weft_runtime_destroy waits for every task, so for every carrier and thus
 * every call (RT-D2); only then (free_runtime) does the pool tell its threads to exit.
 * A thread's last touch of the pool is under its lock, and destroy takes that lock
 * after the last thread has counted itself out. A pool thread delivering a result is
 * not one of the runtime's workers: the wake-up pins the runtime (WAIT-D2, RT-D4), and
 * anyway the carrier cannot finish, nor destroy pass RT-D2, before WAIT-D3.
 *
 * Locking: one mutex per pool guards everything below it in the struct; the calls are
 * blocking by nature, so a lock per job (two acquisitions) is noise beside them.
 */
#include "io/blocking.h"

#include "base/list.h"
#include "base/memory.h"
#include "sched/runtime.h"
#include "sched/wait.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

struct weft__blocking_pool {
    weft_runtime *runtime;  /* immutable */
    unsigned max_threads;   /* immutable */
    uint64_t keep_alive_ns; /* immutable */
    pthread_mutex_t lock;
    pthread_cond_t work; /* a job was queued, or stop */
    pthread_cond_t gone; /* the last thread left */
    weft__fifo queue;    /* jobs, oldest first */
    unsigned threads;    /* started and not yet exited */
    unsigned idle;       /* of which wait for a job */
    unsigned busy;       /* of which run one */
    bool stopping;
};

typedef struct weft__blocking_job {
    weft__link link; /* in the queue */
    weft_fn fn;
    void *arg;
    void *result;
    weft__wait wait; /* the carrier's */
} weft__blocking_job;

/* What weft_spawn_blocking hands the carrier task (freed by it when it starts). */
typedef struct weft__blocking_call {
    weft__blocking_pool *pool;
    weft_fn fn;
    void *arg;
} weft__blocking_call;

weft__blocking_pool *weft__blocking_pool_create(weft_runtime *rt, unsigned max_threads,
                                                uint64_t keep_alive_ns) {
    weft__blocking_pool *pool = weft__alloc(sizeof(*pool), 64);
    if (!pool)
        return NULL;
    pool->runtime = rt;
    pool->max_threads = max_threads;
    pool->keep_alive_ns = keep_alive_ns;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->work, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&pool->gone, NULL);
    weft__fifo_init(&pool->queue);
    return pool;
}

void weft__blocking_pool_destroy(weft__blocking_pool *pool) {
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work);
    while (pool->threads > 0)
        pthread_cond_wait(&pool->gone, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_cond_destroy(&pool->gone);
    pthread_cond_destroy(&pool->work);
    pthread_mutex_destroy(&pool->lock);
    weft__free(pool, sizeof(*pool));
}

void weft__blocking_pool_stats(weft__blocking_pool *pool, weft__blocking_stats *out) {
    pthread_mutex_lock(&pool->lock);
    out->threads = pool->threads;
    out->busy = pool->busy;
    out->queued = pool->queue.count;
    pthread_mutex_unlock(&pool->lock);
}

static void deliver(weft__blocking_job *job) {
    weft__wake_batch batch = WEFT__WAKE_BATCH_INIT;
    weft__wait_deliver(&job->wait, 0, &batch);
    weft__wake_batch_finish(&batch);
}

static void *pool_thread(void *arg) {
    weft__blocking_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        weft__link *l = weft__fifo_pop(&pool->queue);
        if (!l) {
            if (pool->stopping)
                break;
            struct timespec until;
            uint64_t deadline = weft_now() + pool->keep_alive_ns;
            until.tv_sec = (time_t)(deadline / 1000000000u);
            until.tv_nsec = (long)(deadline % 1000000000u);
            pool->idle++;
            int rc = 0;
            while (pool->queue.count == 0 && !pool->stopping && rc != ETIMEDOUT)
                rc = pthread_cond_timedwait(&pool->work, &pool->lock, &until);
            pool->idle--;
            if (pool->queue.count == 0 && !pool->stopping)
                break; /* idle for keep_alive: leave */
            continue;
        }
        weft__blocking_job *job = weft__container_of(l, weft__blocking_job, link);
        pool->busy++;
        pthread_mutex_unlock(&pool->lock);
        job->result = job->fn(job->arg);
        /* Not busy any more before the carrier can return: a caller that joined the
         * handle and then reads the statistics sees the call finished (a test found
         * busy 1 after every join had returned). */
        pthread_mutex_lock(&pool->lock);
        pool->busy--;
        pthread_mutex_unlock(&pool->lock);
        deliver(job); /* the job (on the carrier's stack) is not touched after this */
        pthread_mutex_lock(&pool->lock);
    }
    /* Our last touch of the pool, under its lock: destroy frees it only after it took
     * the lock and saw threads == 0. */
    if (--pool->threads == 0 && pool->stopping)
        pthread_cond_signal(&pool->gone);
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Queues job; starts a thread if none is idle and the cap allows. False if no thread
 * runs and none could be started: the caller runs the job itself. */
static bool submit(weft__blocking_pool *pool, weft__blocking_job *job) {
    pthread_mutex_lock(&pool->lock);
    if (pool->idle <= pool->queue.count && pool->threads < pool->max_threads) {
        pthread_attr_t attr;
        pthread_t thread;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attr, pool_thread, pool) == 0)
            pool->threads++;
        pthread_attr_destroy(&attr);
        if (pool->threads == 0) {
            pthread_mutex_unlock(&pool->lock);
            return false;
        }
    }
    weft__fifo_push(&pool->queue, &job->link);
    pthread_cond_signal(&pool->work);
    pthread_mutex_unlock(&pool->lock);
    return true;
}

static bool never_withdraw(weft__wait *wait, void *structure) {
    (void)wait;
    (void)structure;
    return false; /* a job is always run: the carrier waits for it without a deadline */
}

/* The carrier task's function. */
static void *carry(void *arg) {
    weft__blocking_call *call = arg;
    weft__blocking_pool *pool = call->pool;
    weft__blocking_job job = {.fn = call->fn, .arg = call->arg};
    weft__free(call, sizeof(*call));
    weft__wait_init(&job.wait);
    /* A cancel of the carrier lets the call finish (weft.h): no thread is interrupted. */
    job.wait.cancellable = false;
    job.wait.kind = WEFT__WAITING_BLOCKING; /* for a dump: the call's function */
    job.wait.object = (uint64_t)(uintptr_t)job.fn;
    if (!submit(pool, &job))
        return job.fn(job.arg);
    (void)weft__wait_block(&job.wait, WEFT_FOREVER, never_withdraw, NULL);
    return job.result;
}

static weft_task *spawn_blocking(weft_runtime *rt, weft_fn fn, void *arg, bool from_task) {
    weft__blocking_call *call = weft__alloc(sizeof(*call), sizeof(void *));
    if (!call) {
        errno = ENOMEM;
        return NULL;
    }
    call->pool = rt->blocking;
    call->fn = fn;
    call->arg = arg;
    weft_task *t = from_task ? weft_spawn(carry, call) : weft_spawn_on(rt, carry, call);
    if (!t) {
        int saved = errno;
        weft__free(call, sizeof(*call));
        errno = saved;
        return NULL;
    }
    /* Never inline: the carrier's wait is not cancellable, and a joiner running it on its
     * own stack could not return on a cancel (found by a cold review: weft_tcp_connect
     * waited out getaddrinfo). Only the handle's holder, us, could run it inline. */
    t->no_inline = true;
    return t;
}

WEFT_API weft_task *weft_spawn_blocking(weft_fn fn, void *arg) {
    weft__worker *w;
    if (!weft__worker_current_task(&w)) {
        errno = EPERM;
        return NULL;
    }
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    return spawn_blocking(w->runtime, fn, arg, true);
}

WEFT_API weft_task *weft_spawn_blocking_on(weft_runtime *rt, weft_fn fn, void *arg) {
    if (!rt || !fn) {
        errno = EINVAL;
        return NULL;
    }
    /* rt->blocking is immutable; the spawn counts itself as a foreign call (RT-D4). A
     * spawn that fails after destroy began frees only `call`, which is ours. */
    return spawn_blocking(rt, fn, arg, false);
}
