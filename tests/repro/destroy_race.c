/*
 * destroy_race.c: a reproduction (not built by CMake, not a CTest test) of a suspected
 * bug found while writing tests/stress/stress_sync.c (issue 12): a waiter whose deadline
 * fires at the moment it is woken reads `done == WAITING` in settle() (sched/wait.c,
 * WAIT-B3) and calls weft__waitq_withdraw (sync/waitq.c, SYNC-Q3), which takes the
 * object's spinlock, AFTER the waker has delivered (WAIT-D0..D3) and its
 * weft_sem_destroy has returned 0 (the queue is empty, nothing held). weft.h says that
 * after a destroy returns 0 "the memory may be reused"; here it is freed, and ASan
 * reports a heap-use-after-free in weft__waitq_withdraw. The same path serves every
 * waitq user (mutex, cond, sem, waitgroup, event, channels).
 *
 * Waiters are tasks that announce themselves before weft_sem_acquire; the waker waits
 * for all four, then (>= 1 ms later, at ~their deadline) releases four permits and
 * destroys until 0.
 *
 *   cmake --preset asan && cmake --build --preset asan
 *   gcc -O1 -g -fsanitize=address,undefined -pthread -Iinclude -Ibuild/asan/include \
 *       tests/repro/destroy_race.c build/asan/libweft.a -o /tmp/destroy_race
 *   setarch x86_64 -R /tmp/destroy_race 20000      # with or without WEFT_CHAOS=1
 */
#include "weft.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
typedef struct { weft_sem *s; uint64_t deadline; volatile int arrived; } ctx;
static void *waiter(void *a) { ctx *c = a; __atomic_fetch_add(&c->arrived, 1, __ATOMIC_SEQ_CST); int rc = weft_sem_acquire(c->s, c->deadline); if (rc && rc != -ETIMEDOUT) abort(); return NULL; }
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    weft_runtime *rt;
    if (weft_runtime_create(&(weft_config){.workers = 2}, &rt)) return 2;
    for (int r = 0; r < rounds; r++) {
        ctx c = {calloc(1, sizeof(weft_sem)), weft_now() + 2000000 + (uint64_t)(r % 64) * 1000};
        weft_task *t[4];
        for (int i = 0; i < 4; i++) t[i] = weft_spawn_on(rt, waiter, &c);
        while (__atomic_load_n(&c.arrived, __ATOMIC_SEQ_CST) < 4) ;
        if (weft_now() + 1000000 > c.deadline) { for (int i = 0; i < 4; i++) weft_join(t[i], NULL); free(c.s); continue; }
        uint64_t at = c.deadline - 30000 + (uint64_t)(r % 61) * 1000;
        while (weft_now() < at) ;
        for (int i = 0; i < 4; i++) weft_sem_release(c.s);
        int rc;
        while ((rc = weft_sem_destroy(c.s)) == -EBUSY) ;
        free(c.s); /* weft.h: after destroy returns 0 the memory may be reused */
        for (int i = 0; i < 4; i++) weft_join(t[i], NULL);
    }
    weft_runtime_destroy(rt);
    puts("no report");
    return 0;
}
