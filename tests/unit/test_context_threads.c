/*
 * test_context_threads.c: a context made on one thread resumes on another, as tasks move
 * between workers. The main thread makes 8 contexts; two threads then hand them back and
 * forth (a mutex and a condition variable per thread), so every resumption happens on the
 * other thread than the previous one. Each context, each time it runs, counts, checks
 * with gettid() that it really is on the thread that resumed it, and switches back to
 * that thread. 100,000 resumptions in all (WEFT_TEST_SCALE scales it; a tenth under TSan).
 *
 * The sanitizer annotations follow worker.c exactly: one weft__fiber per thread stack and
 * one per context (its TSan fiber created with weft__fiber_init_task and destroyed with
 * weft__fiber_destroy_stack once the context is done); the entry and the last switch
 * away are WEFT__NO_SANITIZER_FRAME and the body runs in an ordinary frame that returns.
 * It must be clean under TSan and ASan. The contexts' counters are plain memory handed
 * between threads: TSan checks that the hand-off orders them.
 */
#include "weft_criterion.h"

#include "arch/context.h"
#include "base/sanitizer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CONTEXTS   8
#define THREADS    2
#define STACK_SIZE ((size_t)128 << 10)

/* What a context passes when it switches back to its thread. */
#define SWITCH_YIELD ((void *)(uintptr_t)1)
#define SWITCH_EXIT  ((void *)(uintptr_t)2)

typedef struct thread_state {
    int index;
    pthread_t thread;
    pid_t tid;
    weft__context sched; /* the thread's own stack while a context runs */
    weft__fiber fiber;
    size_t resumptions;
    size_t bad_values; /* switches that came back with neither YIELD nor EXIT */
} thread_state;

typedef struct ctx {
    int index;
    weft__context sp;
    weft__fiber fiber;
    void *tsan_slot;
    unsigned char *map;
    size_t map_size;
    thread_state *resumer; /* set by the thread that resumes us, before the switch */
    size_t quota;          /* yields before the body returns */
    /* Written only by the context itself, on whichever thread runs it. */
    size_t count;
    size_t ran_on[THREADS];
    size_t wrong_thread; /* gettid() was not the resumer's */
    size_t no_migration; /* resumed by the same thread as the previous time */
    int last;
} ctx;

/* The hand-off: a queue of contexts per thread. */
static struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond[THREADS];
    ctx *queue[THREADS][CONTEXTS];
    size_t head[THREADS], len[THREADS];
    int exited;
} hand = {.mutex = PTHREAD_MUTEX_INITIALIZER,
          .cond = {PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER}};

static void enqueue(int thread, ctx *c) {
    cr_assert(hand.len[thread] < CONTEXTS, "queue %d overflow", thread);
    hand.queue[thread][(hand.head[thread] + hand.len[thread]++) % CONTEXTS] = c;
}

static ctx *dequeue(int thread) {
    ctx *c = hand.queue[thread][hand.head[thread]];
    hand.head[thread] = (hand.head[thread] + 1) % CONTEXTS;
    hand.len[thread]--;
    return c;
}

static pid_t current_tid(void) {
    return (pid_t)syscall(SYS_gettid); /* a syscall each time: nothing cached across switches */
}

/* Runs in the context, each time it is resumed. */
static void note_resumption(ctx *c) {
    thread_state *t = c->resumer;
    c->count++;
    c->ran_on[t->index]++;
    if (current_tid() != t->tid)
        c->wrong_thread++;
    if (c->last == t->index)
        c->no_migration++;
    c->last = t->index;
}

/* Switches back to the thread that resumed us; returns on the thread that resumes us
 * next. As weft__worker_suspend_current. */
__attribute__((noinline)) static void yield_to_resumer(ctx *c) {
    thread_state *t = c->resumer;
    weft__fiber_before_switch(&c->fiber, &t->fiber, false);
    weft__context_switch(&c->sp, t->sched, SWITCH_YIELD);
    /* Resumed, maybe (here: always) on the other thread: `t` is stale from here on. */
    weft__fiber_after_switch(&c->fiber);
}

/* The context's work, in a frame that returns (see WEFT__NO_SANITIZER_FRAME). */
__attribute__((noinline)) static void ctx_body(ctx *c) {
    for (size_t i = 0; i < c->quota; i++) {
        note_resumption(c);
        yield_to_resumer(c);
    }
}

/* The last switch of a context: never returns. As worker.c's exit_current. */
WEFT__NO_SANITIZER_FRAME __attribute__((noinline, noreturn)) static void ctx_exit(ctx *c) {
    thread_state *t = c->resumer;
    weft__fiber_before_switch(&c->fiber, &t->fiber, true);
    weft__context_switch(&c->sp, t->sched, SWITCH_EXIT);
    __builtin_unreachable();
}

WEFT__NO_SANITIZER_FRAME static void ctx_entry(void *value) {
    ctx *c = value;
    weft__fiber_after_switch(&c->fiber);
    ctx_body(c);
    ctx_exit(c);
}

/* The thread's own stack as a fiber: as worker.c's init_scheduler_fiber. */
static void init_thread_fiber(weft__fiber *f) {
    void *bottom = NULL;
    size_t size = 0;
#if defined(WEFT__ASAN)
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &bottom, &size);
        pthread_attr_destroy(&attr);
    }
#endif
    weft__fiber_init_thread(f, bottom, size);
}

static void *thread_main(void *arg) {
    thread_state *t = arg;
    int other = 1 - t->index;
    t->tid = current_tid();
    init_thread_fiber(&t->fiber);
    for (;;) {
        pthread_mutex_lock(&hand.mutex);
        while (hand.len[t->index] == 0 && hand.exited < CONTEXTS)
            pthread_cond_wait(&hand.cond[t->index], &hand.mutex);
        if (hand.len[t->index] == 0) {
            pthread_mutex_unlock(&hand.mutex);
            return NULL;
        }
        ctx *c = dequeue(t->index);
        pthread_mutex_unlock(&hand.mutex);

        c->resumer = t;
        weft__fiber_before_switch(&t->fiber, &c->fiber, false);
        void *why = weft__context_switch(&t->sched, c->sp, c);
        weft__fiber_after_switch(&t->fiber);
        t->resumptions++;

        pthread_mutex_lock(&hand.mutex);
        if (why == SWITCH_EXIT) {
            hand.exited++;
            pthread_cond_broadcast(&hand.cond[0]);
            pthread_cond_broadcast(&hand.cond[1]);
        } else {
            if (why != SWITCH_YIELD)
                t->bad_values++;
            enqueue(other, c); /* the other thread resumes it next */
            pthread_cond_signal(&hand.cond[other]);
        }
        pthread_mutex_unlock(&hand.mutex);
    }
}

Test(context_threads, contexts_migrate_between_threads) {
    size_t total = weft_test_size(100000, 10);
    size_t quota = total / CONTEXTS > 1 ? total / CONTEXTS - 1 : 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    /* Made here, on the main thread, which never resumes them. */
    static ctx contexts[CONTEXTS];
    for (int i = 0; i < CONTEXTS; i++) {
        ctx *c = &contexts[i];
        *c = (ctx){.index = i, .quota = quota, .last = -1};
        c->map_size = STACK_SIZE + page;
        void *m =
            mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        cr_assert(m != MAP_FAILED, "mmap of a stack");
        c->map = m;
        cr_assert(mprotect(c->map, page, PROT_NONE) == 0, "mprotect of a guard page");
        weft__fiber_init_task(&c->fiber, c->map + page, STACK_SIZE, &c->tsan_slot);
        c->sp = weft__context_make(c->map + c->map_size, ctx_entry);
        enqueue(i % THREADS, c); /* no thread runs yet: no lock needed */
    }

    static thread_state threads[THREADS];
    for (int k = 0; k < THREADS; k++) {
        threads[k] = (thread_state){.index = k};
        cr_assert(pthread_create(&threads[k].thread, NULL, thread_main, &threads[k]) == 0,
                   "pthread_create");
    }
    for (int k = 0; k < THREADS; k++)
        cr_assert(pthread_join(threads[k].thread, NULL) == 0, "pthread_join");

    size_t sum = 0, resumptions = 0;
    for (int k = 0; k < THREADS; k++) {
        resumptions += threads[k].resumptions;
        cr_expect(!threads[k].bad_values, "thread %d got %zu unexpected switch values", k,
                  threads[k].bad_values);
    }
    for (int i = 0; i < CONTEXTS; i++) {
        ctx *c = &contexts[i];
        sum += c->count;
        cr_expect(c->count == quota && c->ran_on[0] + c->ran_on[1] == quota,
                  "context %d counted %zu (%zu + %zu by thread), expected %zu", i, c->count,
                  c->ran_on[0], c->ran_on[1], quota);
        /* Strict alternation: each thread ran it half the time, give or take one. */
        cr_expect(c->ran_on[0] + 1 >= quota / 2 && c->ran_on[1] + 1 >= quota / 2,
                  "context %d ran %zu times on thread 0, %zu on thread 1", i, c->ran_on[0],
                  c->ran_on[1]);
        cr_expect(!c->wrong_thread && !c->no_migration,
                  "context %d ran %zu times on another thread than its resumer's, and was resumed "
                  "%zu times by the same thread twice in a row",
                  i, c->wrong_thread, c->no_migration);
        weft__fiber_destroy_stack(c->tsan_slot);
        cr_assert(munmap(c->map, c->map_size) == 0, "munmap");
    }
    cr_expect_eq(hand.exited, CONTEXTS, "%d of %d contexts exited", hand.exited, CONTEXTS);
    cr_expect(sum == CONTEXTS * quota && resumptions == CONTEXTS * (quota + 1),
              "counters sum to %zu, expected %zu; %zu resumptions, expected %zu", sum,
              CONTEXTS * quota, resumptions, CONTEXTS * (quota + 1));
    printf("test_context_threads: %d contexts, %zu resumptions alternating between %d threads, "
           "counters sum to %zu\n",
           CONTEXTS, resumptions, THREADS, sum);
}
