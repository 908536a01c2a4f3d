/*
 * embed.c: weft inside an application that owns its own threads (a server's accept
 * loop, a GUI thread): the application creates a runtime, hands it work from its own
 * threads with weft_spawn_on, waits with weft_join or weft_block_on, and destroys the
 * runtime at exit, which lets every task, detached ones included, finish first.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <weft.h>

static void *handle_request(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    uintptr_t work = 0; /* stands for parsing, a database call, rendering... */
    for (uintptr_t i = 0; i < 1000 * (id % 7 + 1); i++) {
        work += i % 3;
        if (i % 500 == 0)
            weft_yield(); /* a long request lets others run */
    }
    return (void *)(work + id);
}

static void *log_line(void *arg) {
    (void)arg; /* fire-and-forget work: detached */
    return NULL;
}

struct acceptor {
    weft_runtime *rt;
    uintptr_t first, count;
    uintptr_t checksum;
};

static void *acceptor_thread(void *arg) {
    struct acceptor *a = arg;
    weft_task *pending[64];
    for (uintptr_t i = 0; i < a->count; i++) {
        pending[i] = weft_spawn_on(a->rt, handle_request, (void *)(a->first + i));
        weft_task *log = weft_spawn_on(a->rt, log_line, NULL);
        if (!pending[i] || !log)
            return (void *)1;
        weft_detach(log);
    }
    for (uintptr_t i = 0; i < a->count; i++) {
        void *result;
        if (weft_join(pending[i], &result) != 0) /* blocks this thread, not a worker */
            return (void *)1;
        a->checksum += (uintptr_t)result;
    }
    return NULL;
}

static void *startup(void *arg) {
    (void)arg;
    return "runtime is up";
}

int main(void) {
    weft_runtime *rt;
    if (weft_runtime_create(&(weft_config){.workers = 2}, &rt) != 0)
        return 1;
    void *message;
    weft_block_on(rt, startup, NULL, &message);
    printf("embed: %s\n", (const char *)message);

    struct acceptor acceptors[2] = {{rt, 0, 64, 0}, {rt, 64, 64, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, acceptor_thread, &acceptors[i]);
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(threads[i], &rc);
        failed |= rc != NULL;
    }
    weft_runtime_stats st;
    weft_runtime_stats_get(rt, &st);
    printf("embed: 2 application threads served 128 requests on %u workers "
           "(%llu tasks spawned, %llu stolen between workers), checksum %lu\n",
           st.workers, (unsigned long long)st.tasks_spawned, (unsigned long long)st.steals,
           (unsigned long)(acceptors[0].checksum + acceptors[1].checksum));
    if (weft_runtime_destroy(rt) != 0 || failed)
        return 1;
    weft_stats leftover;
    weft_stats_get(&leftover);
    printf("embed: runtime destroyed; %llu bytes of stacks and %llu bytes of heap left\n",
           (unsigned long long)leftover.stack_bytes, (unsigned long long)leftover.heap_bytes);
    return 0;
}
