/*
 * cancel_and_groups.c: the asyncio tutorial continued (after create_task.c): timeouts,
 * cancellation, gather, as_completed and TaskGroup, in C.
 *
 * The same simulated API call as in create_task.c, which may now fail or be cancelled:
 *
 *     async def call_api(name, price, delay):
 *         print(f"Get stock price of {name}...")
 *         await asyncio.sleep(delay)          # raises CancelledError once cancelled
 *         return price
 *
 * In C a call's result is its return value; a failure is a negative errno value in its
 * place: -EIO for a call that fails ("raise ConnectionError"), -ECANCELED for one that
 * was cancelled.
 *
 * 1. "wait_for": asyncio.wait_for(task, timeout=1): a 0.5 s call returns its price; a
 *    3 s call times out, is cancelled (its sleep returns -ECANCELED) and joined: 1.5 s
 *    in all.
 * 2. "gather": asyncio.gather of calls of 3, 1 and 2 s: the prices in the order asked
 *    for, after 3 s (the longest call), not 6.
 * 3. "as_completed": the same calls in a task group come out as they finish: after 1,
 *    2 and 3 s.
 * 4. "task_group": asyncio.TaskGroup: one call fails after 0.5 s, the code cancels the
 *    others (TaskGroup does), a cancelled call closes its session under a shield
 *    (asyncio.shield), and weft_group_destroy waits for all of them: 0.6 s, not 3.
 *
 * Each program checks its results and timings and exits non-zero if one is off.
 *
 *     cancel_and_groups [wait_for|gather|as_completed|task_group] [workers]
 *                       (default: all four, 1 worker)
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft.h>

#define MS 1000000ull /* nanoseconds */

struct api_call {
    const char *name;
    intptr_t price;    /* or -EIO: the call fails */
    uint64_t delay_ms; /* how long it takes (or takes to fail) */
    bool session;      /* holds a session, to close if cancelled */
};

static uint64_t start;             /* when the current program began */
static atomic_int failed_checks;   /* across all tasks */
static atomic_int calls_cancelled; /* calls whose sleep returned -ECANCELED */
static atomic_int sessions_closed; /* cleanups that ran to their end under the shield */

static double elapsed(void) {
    return (double)(weft_now() - start) / 1e9;
}

static void check(bool ok, const char *what) {
    if (!ok) {
        printf("CHECK FAILED: %s\n", what);
        atomic_fetch_add(&failed_checks, 1);
    }
}

/* Whether the program has run for `seconds` (sleeps never end early), give or take a
 * scheduling delay. */
static bool took(double seconds) {
    double t = elapsed();
    return t >= seconds && t < seconds + 0.3;
}

/* Cleanup that has to wait, in a cancelled task. The cancel is sticky: from now on every
 * cancellation point returns -ECANCELED at once, so the wait goes under a shield, as
 * `await asyncio.shield(close_session())` would. */
static void close_session(const struct api_call *call) {
    check(weft_sleep_ms(100) == -ECANCELED, "an unshielded sleep after the cancel");
    int old = weft_cancel_shield(1);
    int rc = weft_sleep_ms(100); /* say goodbye to the server: 0, the full 100 ms */
    weft_cancel_shield(old);
    check(rc == 0, "the shielded sleep");
    printf("%4.1f s  %s: session closed (shielded)\n", elapsed(), call->name);
    atomic_fetch_add(&sessions_closed, 1);
}

static void *call_api(void *arg) {
    const struct api_call *call = arg;
    printf("%4.1f s  Get stock price of %s...\n", elapsed(), call->name);
    int rc = weft_sleep_ms(call->delay_ms); /* await asyncio.sleep(delay) */
    if (rc == -ECANCELED) {                 /* except asyncio.CancelledError: */
        printf("%4.1f s  %s: cancelled, its sleep returned -ECANCELED\n", elapsed(), call->name);
        atomic_fetch_add(&calls_cancelled, 1);
        if (call->session)
            close_session(call);
        return (void *)(intptr_t)-ECANCELED;
    }
    if (call->price < 0)
        printf("%4.1f s  %s: connection error\n", elapsed(), call->name);
    return (void *)call->price;
}

/* asyncio.create_task(), started in creation order as in create_task.c. */
static weft_task *create_task(const struct api_call *call) {
    weft_task *t = weft_spawn(call_api, (void *)call);
    weft_yield();
    return t;
}

/* tg.create_task(): a member of the group g. */
static int group_create_task(weft_group *g, const struct api_call *call) {
    int rc = weft_group_spawn(g, call_api, (void *)call);
    weft_yield();
    return rc;
}

static void report(void) {
    printf("It took %.1f second(s) to complete.\n", elapsed());
}

static const struct api_call goog = {.name = "GOOG", .price = 300, .delay_ms = 3000};
static const struct api_call appl = {.name = "APPL", .price = 400, .delay_ms = 1000};
static const struct api_call msft = {.name = "MSFT", .price = 500, .delay_ms = 2000};

/* 1. try: price = await asyncio.wait_for(call_api(...), timeout=1)
 *    except TimeoutError: ... (wait_for has cancelled the call and waited for it) */
static void *wait_for(void *arg) {
    (void)arg;
    static const struct api_call fast = {.name = "AMZN", .price = 200, .delay_ms = 500};
    void *price;

    weft_task *t = create_task(&fast);
    int rc = weft_join_until(t, weft_now() + 1000 * MS, &price);
    check(rc == 0 && (intptr_t)price == 200 && took(0.5), "the fast call within its timeout");
    printf("%4.1f s  %ld\n", elapsed(), (long)(intptr_t)price);

    t = create_task(&goog);
    rc = weft_join_until(t, weft_now() + 1000 * MS, &price);
    check(rc == -ETIMEDOUT && took(1.5), "the slow call's timeout");
    if (rc == -ETIMEDOUT) {
        /* The handle is still ours: asyncio.wait_for cancels the task and waits for it to
         * end; weft leaves that to the caller (it could also join later, or detach). */
        printf("%4.1f s  timed out after 1 s: cancelling GOOG\n", elapsed());
        weft_cancel(t);            /* task.cancel() */
        rc = weft_join(t, &price); /* it returns promptly, not at 3 s */
        check(rc == 0 && (intptr_t)price == -ECANCELED && atomic_load(&calls_cancelled) == 1 &&
                  took(1.5),
              "the cancelled call");
    }
    report();
    return NULL;
}

/* 2. prices = await asyncio.gather(call_api(GOOG), call_api(APPL), call_api(MSFT)) */
static void *gather(void *arg) {
    (void)arg;
    const struct api_call *calls[] = {&goog, &appl, &msft};
    weft_task *tasks[3];
    intptr_t prices[3];
    for (int i = 0; i < 3; i++)
        if (!(tasks[i] = create_task(calls[i])))
            return (void *)1;
    for (int i = 0; i < 3; i++) { /* awaited in order: the results come in that order */
        void *price;
        weft_join(tasks[i], &price);
        prices[i] = (intptr_t)price;
    }
    printf("%4.1f s  [%ld, %ld, %ld]\n", elapsed(), (long)prices[0], (long)prices[1],
           (long)prices[2]);
    check(prices[0] == 300 && prices[1] == 400 && prices[2] == 500, "gather's prices");
    check(took(3.0), "gather takes as long as the longest call");
    report();
    return NULL;
}

/* 3. for call in asyncio.as_completed([call_api(GOOG), call_api(APPL), call_api(MSFT)]):
 *        print(await call) */
static void *as_completed(void *arg) {
    (void)arg;
    weft_group *g;
    if (weft_group_create(&g) != 0)
        return (void *)1;
    const struct api_call *calls[] = {&goog, &appl, &msft};
    for (int i = 0; i < 3; i++)
        if (group_create_task(g, calls[i]) != 0)
            return (void *)1;
    static const intptr_t expected[] = {400, 500, 300}; /* APPL 1 s, MSFT 2 s, GOOG 3 s */
    int n = 0;
    void *price;
    /* Each finished member, first finished first; -ECHILD once none is left. */
    while (weft_group_next(g, &price, WEFT_FOREVER) == 0) {
        printf("%4.1f s  %ld\n", elapsed(), (long)(intptr_t)price);
        check(n < 3 && (intptr_t)price == expected[n] && took((double)(n + 1)),
              "as_completed's order and timing");
        n++;
    }
    check(n == 3, "as_completed yields every call");
    weft_group_destroy(g);
    report();
    return NULL;
}

/* 4. async with asyncio.TaskGroup() as tg:
 *        tg.create_task(call_api(GOOG)); tg.create_task(call_api(APPL, fails));
 *        tg.create_task(call_api(MSFT))
 *    APPL's error cancels the other two; the `async with` ends once all three have. */
static void *task_group(void *arg) {
    (void)arg;
    static const struct api_call goog_session = {
        .name = "GOOG", .price = 300, .delay_ms = 3000, .session = true};
    static const struct api_call appl_fails = {.name = "APPL", .price = -EIO, .delay_ms = 500};
    weft_group *tg;
    if (weft_group_create(&tg) != 0)
        return (void *)1;
    const struct api_call *calls[] = {&goog_session, &appl_fails, &msft};
    for (int i = 0; i < 3; i++)
        if (group_create_task(tg, calls[i]) != 0)
            return (void *)1;
    void *price;
    intptr_t error = 0;
    while (!error && weft_group_next(tg, &price, WEFT_FOREVER) == 0) {
        if ((intptr_t)price < 0) {
            error = (intptr_t)price;
            printf("%4.1f s  a call failed (%s): cancelling the others\n", elapsed(),
                   strerror((int)-error));
            weft_group_cancel(tg); /* what TaskGroup does on the first error */
        }
    }
    check(error == -EIO && took(0.5), "APPL's failure");
    /* Leaving the `async with`: waits for every member (and would cancel any still
     * running). GOOG closes its session first: 0.1 s more. */
    weft_group_destroy(tg);
    printf("%4.1f s  the group is done: %d calls cancelled, %d session closed\n", elapsed(),
           atomic_load(&calls_cancelled), atomic_load(&sessions_closed));
    check(atomic_load(&calls_cancelled) == 2 && atomic_load(&sessions_closed) == 1 && took(0.6),
          "the cancelled calls and the cleanup");
    report();
    return NULL;
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    weft_config cfg = {.workers = argc > 2 ? (unsigned)atoi(argv[2]) : 1};
    struct {
        const char *name;
        weft_fn fn;
    } programs[] = {{"wait_for", wait_for},
                    {"gather", gather},
                    {"as_completed", as_completed},
                    {"task_group", task_group}};
    int ran = 0;
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        if (strcmp(which, "all") != 0 && strcmp(which, programs[i].name) != 0)
            continue;
        if (ran++)
            printf("\n");
        printf("== %s (%u worker%s)\n", programs[i].name, cfg.workers, cfg.workers == 1 ? "" : "s");
        atomic_store(&calls_cancelled, 0);
        atomic_store(&sessions_closed, 0);
        start = weft_now();
        void *failed;
        if (weft_run(&cfg, programs[i].fn, NULL, &failed) != 0 || failed)
            return 1;
    }
    if (!ran) {
        fprintf(stderr, "usage: cancel_and_groups [wait_for|gather|as_completed|task_group] "
                        "[workers]\n");
        return 2;
    }
    return atomic_load(&failed_checks) ? 1 : 0;
}
