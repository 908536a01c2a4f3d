/*
 * test_idle_cpu.c: an idle runtime parks its workers in the kernel: over one second of
 * idleness, after a burst of work has woken every worker, the whole process uses under
 * 2% of one core (getrusage). A worker that spun or polled while idle would fail this.
 */
#include "weft_test.h"

#include "weft_criterion.h"
#include <sys/resource.h>

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void *fib(void *arg) {
    intptr_t n = (intptr_t)arg;
    if (n < 2)
        return (void *)n;
    weft_task *t = weft_spawn(fib, (void *)(n - 1));
    intptr_t b = (intptr_t)fib((void *)(n - 2));
    void *a;
    weft_join(t, &a);
    return (void *)((intptr_t)a + b);
}

Test(idle, parked_workers_use_no_cpu) {
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 4}, &rt), 0);
    void *r;
    cr_assert_eq(weft_block_on(rt, fib, (void *)18, &r), 0); /* wakes and busies workers */
    cr_assert_eq((intptr_t)r, 2584);
    weft_test_sleep_ms(50); /* let the searchers give up and park */
    double before = cpu_seconds();
    weft_test_sleep_ms(1000);
    double used = cpu_seconds() - before;
    cr_expect_lt(used, 0.02, "an idle runtime used %.1f ms of CPU in 1 s", used * 1e3);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    char why[160];
    cr_expect(!weft_test_leaks(why, sizeof why), "weft leaked: %s", why);
}
