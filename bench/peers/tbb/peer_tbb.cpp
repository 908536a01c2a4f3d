/*
 * oneTBB peer: tbb::task_group run()/wait() inside a tbb::task_arena of T slots
 * (the main thread takes one slot, T-1 TBB workers the others).
 *
 * yield, sleepers and timeouts are skipped: TBB tasks are run-to-completion calls on
 * the worker's own stack, so a task cannot yield, sleep or wait on a timer without
 * blocking its worker thread, and TBB has no timers. The round-2 channel and mutex
 * workloads are skipped for the same reason: TBB's concurrent_bounded_queue and its
 * mutexes block (or spin) the worker thread, never park a task.
 */
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <tbb/version.h>

#include <memory>

#include "../common/peer_common.h"

#define RUNTIME "tbb"

static uint64_t fib(uint64_t n)
{
    if (n < 2)
        return n;
    uint64_t x, y;
    tbb::task_group g;
    g.run([&] { x = fib(n - 1); });
    y = fib(n - 2);
    g.wait();
    return x + y;
}

static uint64_t skynet(uint64_t num, uint64_t size)
{
    if (size == 1)
        return num;
    uint64_t r[10], sub = size / 10, sum = 0;
    tbb::task_group g;
    for (int i = 0; i < 10; i++)
        g.run([&r, i, num, sub] { r[i] = skynet(num + (uint64_t)i * sub, sub); });
    g.wait();
    for (int i = 0; i < 10; i++)
        sum += r[i];
    return sum;
}

/* One task spawns N tasks, each returning its index into its own slot; the
 * task_group's wait() joins them all (task_group has no per-task handle), then the
 * slots are summed in order. */
static uint64_t spawn_many(uint64_t n)
{
    std::unique_ptr<uint64_t[]> r(new uint64_t[n]);
    uint64_t *rp = r.get(), sum = 0;
    tbb::task_group g;
    for (uint64_t i = 0; i < n; i++)
        g.run([rp, i] { rp[i] = i; });
    g.wait();
    for (uint64_t i = 0; i < n; i++)
        sum += rp[i];
    return sum;
}

int main(int argc, char **argv)
{
    static const int supported[W_COUNT] = {1, 1, 1, 0, 0, 0, 0};
    static const char *const why[W_COUNT] = {
        nullptr, nullptr, nullptr,
        "TBB_tasks_are_run-to-completion_(no_task_yield)",
        "TBB_tasks_cannot_sleep_without_blocking_their_worker_(no_timers)",
        "TBB_has_no_timers",
        "raw_switch_floor_is_measured_by_peer-boost-context",
        "TBB_has_no_task_channels_(concurrent_bounded_queue_blocks_the_worker_thread)",
        "TBB_has_no_task_channels_(concurrent_bounded_queue_blocks_the_worker_thread)",
        "TBB_mutexes_block_the_worker_thread_not_the_task",
        "TBB_mutexes_block_the_worker_thread_not_the_task",
    };
    struct peer_args a = peer_parse(argc, argv, RUNTIME, supported, why);
    uint64_t t0 = 0, t1 = 0, result = 0;

    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, a.threads);
    tbb::task_arena arena(a.threads);
    /* Start the arena and its workers before timing. */
    arena.execute([&] {
        tbb::parallel_for(0, 1000 * a.threads, [](int) {});
    });
    arena.execute([&] {
        t0 = peer_now_ns();
        switch (a.workload) {
        case W_FIB: result = fib(a.size); break;
        case W_SKYNET: result = skynet(0, a.size); break;
        case W_SPAWN_MANY: result = spawn_many(a.size); break;
        }
        t1 = peer_now_ns();
    });
    return peer_report(&a, RUNTIME, t0, t1, result, nullptr);
}
