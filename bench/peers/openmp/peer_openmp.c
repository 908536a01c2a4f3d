/*
 * OpenMP peer (GCC's libgomp): explicit tasks with `#pragma omp task` and
 * `#pragma omp taskwait`, in a team of T threads. The root runs in the implicit task
 * of the `single` thread; the rest of the team executes the tasks.
 *
 * yield, sleepers and timeouts are skipped: OpenMP tasks cannot sleep or wait on a
 * timer without blocking their thread, and `taskyield` is only a scheduling hint
 * (libgomp implements it as a no-op), so there is nothing to measure. OpenMP has no
 * channels, and omp_lock_t blocks the thread, not the task: the round-2 channel and
 * mutex workloads are skipped too.
 */
#include <omp.h>

#include "../common/peer_common.h"

#define RUNTIME "openmp"

static uint64_t fib(uint64_t n)
{
    uint64_t x, y;
    if (n < 2)
        return n;
#pragma omp task shared(x) firstprivate(n)
    x = fib(n - 1);
    y = fib(n - 2);
#pragma omp taskwait
    return x + y;
}

static uint64_t skynet(uint64_t num, uint64_t size)
{
    uint64_t r[10], sum = 0, sub = size / 10;
    int i;
    if (size == 1)
        return num;
    for (i = 0; i < 10; i++) {
#pragma omp task shared(r) firstprivate(i, num, sub)
        r[i] = skynet(num + (uint64_t)i * sub, sub);
    }
#pragma omp taskwait
    for (i = 0; i < 10; i++)
        sum += r[i];
    return sum;
}

/* One task spawns N tasks, each returning its index into its own slot; one taskwait
 * joins them all (OpenMP has no per-task handle), then the slots are summed in order. */
static uint64_t spawn_many(uint64_t n)
{
    uint64_t *r = malloc(n * sizeof *r), sum = 0, i;
    if (!r) {
        perror("malloc");
        exit(2);
    }
    for (i = 0; i < n; i++) {
#pragma omp task firstprivate(i) shared(r)
        r[i] = i;
    }
#pragma omp taskwait
    for (i = 0; i < n; i++)
        sum += r[i];
    free(r);
    return sum;
}

int main(int argc, char **argv)
{
    static const int supported[W_COUNT] = {[W_FIB] = 1, [W_SKYNET] = 1, [W_SPAWN_MANY] = 1};
    static const char *const why[W_COUNT] = {
        [W_YIELD] = "omp_taskyield_is_only_a_hint_(a_no-op_in_libgomp)_no_task_switch_to_measure",
        [W_SLEEPERS] = "OpenMP_tasks_cannot_sleep_without_blocking_their_thread_(no_timers)",
        [W_TIMEOUTS] = "OpenMP_has_no_timers",
        [W_SWITCH] = "raw_switch_floor_is_measured_by_peer-boost-context",
        [W_CHAN_PINGPONG] = "OpenMP_has_no_channels",
        [W_CHAN_MPMC] = "OpenMP_has_no_channels",
        [W_MUTEX_CONTENDED] = "omp_lock_blocks_the_thread_not_the_task",
        [W_MUTEX_YIELD] = "omp_lock_blocks_the_thread_not_the_task",
    };
    struct peer_args a = peer_parse(argc, argv, RUNTIME, supported, why);
    uint64_t t0 = 0, t1 = 0, result = 0;

    omp_set_dynamic(0);
    /* Start the team before timing (libgomp keeps its threads for later regions). */
#pragma omp parallel num_threads(a.threads)
    {
#pragma omp barrier
    }

#pragma omp parallel num_threads(a.threads)
#pragma omp single
    {
        t0 = peer_now_ns();
        switch (a.workload) {
        case W_FIB: result = fib(a.size); break;
        case W_SKYNET: result = skynet(0, a.size); break;
        case W_SPAWN_MANY: result = spawn_many(a.size); break;
        }
        t1 = peer_now_ns();
    }
    return peer_report(&a, RUNTIME, t0, t1, result, NULL);
}
