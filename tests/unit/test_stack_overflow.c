/*
 * test_stack_overflow.c: a task that overflows its stack is reported on stderr with its
 * id, name and stack size, and the process aborts; a fault that is not a stack overflow
 * reaches the application's own SIGSEGV handler. Each case runs in a forked child whose
 * stderr and fate the parent checks, for each kind of guard (MADV_GUARD_INSTALL where
 * the kernel has it, mprotect, and the canary used past the mapping budget).
 * Under ASan and TSan this test runs with handle_segv=0 (tests/CMakeLists.txt).
 */
#include "weft_test.h"

#include "sched/runtime.h"

#include "weft_criterion.h"
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STACK_SIZE (64u << 10)

/* Recurses until `depth` runs out (never, for the sizes used), touching every byte of
 * each frame. */
static volatile unsigned long depth_limit = ~0ul;

__attribute__((noinline)) static int recurse(volatile char *previous, unsigned long depth) {
    volatile char frame[512];
    for (size_t i = 0; i < sizeof frame; i++)
        frame[i] = (char)i;
    if (depth >= depth_limit)
        return 0;
    return recurse(frame, depth + 1) + frame[previous ? previous[0] & 1 : 0];
}

static void *overflow_task(void *arg) {
    (void)arg;
    weft_set_name("deep-thought");
    return (void *)(intptr_t)recurse(NULL, 0);
}

/* Overflows by a few hundred bytes, writing every byte of every frame, until a whole
 * frame lies below the stack's lowest usable byte (in canary mode the page below is
 * mapped, so nothing faults), then returns: the worker checks the canary when the task
 * switches out for the last time. */
__attribute__((noinline)) static void sink_below(const unsigned char *low) {
    volatile char frame[256];
    for (size_t i = 0; i < sizeof frame; i++)
        frame[i] = (char)i;
    if ((const unsigned char *)frame + sizeof frame > low)
        sink_below(low);
}

static void *canary_task(void *arg) {
    (void)arg;
    weft_set_name("canary-task");
    sink_below(weft__worker_current()->current->stack->low);
    return NULL;
}

static volatile uintptr_t bad_address = 8;

static void *null_task(void *arg) {
    (void)arg;
    /* Not NULL itself: UBSan would report a null load before the fault happened. */
    return (void *)(intptr_t) * (volatile int *)bad_address;
}

static void app_handler(int sig) {
    (void)sig;
    static const char msg[] = "application handler ran\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(42);
}

struct outcome {
    int status;
    char err[4096];
};

/* Runs fn in a child with WEFT_STACK_GUARD=guard (NULL: unset); captures its stderr. */
static struct outcome run_child(const char *guard, weft_fn fn, bool app_segv_handler) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        if (guard)
            setenv("WEFT_STACK_GUARD", guard, 1);
        if (app_segv_handler)
            signal(SIGSEGV, app_handler);
        weft_run(&(weft_config){.workers = 2, .stack_size = STACK_SIZE}, fn, NULL, NULL);
        _exit(0); /* not reached when the task faults */
    }
    close(fds[1]);
    struct outcome o = {0};
    size_t used = 0;
    ssize_t n;
    while ((n = read(fds[0], o.err + used, sizeof o.err - 1 - used)) > 0)
        used += (size_t)n;
    close(fds[0]);
    waitpid(pid, &o.status, 0);
    return o;
}

static void expect_overflow_report(struct outcome o, const char *name, const char *how) {
    cr_expect(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
              "the child must abort (status %#x); stderr: %s", o.status, o.err);
    cr_expect_not_null(strstr(o.err, "stack overflow in task "), "stderr: %s", o.err);
    cr_expect_not_null(strstr(o.err, name), "the report names the task; stderr: %s", o.err);
    cr_expect_not_null(strstr(o.err, "65536-byte stack"), "the report gives the size: %s", o.err);
    cr_expect_not_null(strstr(o.err, how), "stderr: %s", o.err);
}

Test(stack_overflow, guard_page_default) {
#if defined(WEFT_TEST_UNDER_EMULATOR)
    /* qemu-user answers madvise(MADV_GUARD_INSTALL) with success and installs nothing. */
    cr_skip_test("under an emulator (qemu-user): madvise guard pages are not emulated");
#endif
    expect_overflow_report(run_child(NULL, overflow_task, false), "\"deep-thought\"", "guard page");
}

Test(stack_overflow, guard_page_mprotect) {
    expect_overflow_report(run_child("mprotect", overflow_task, false), "\"deep-thought\"",
                           "guard page");
}

Test(stack_overflow, canary_without_guard_page) {
    expect_overflow_report(run_child("canary", canary_task, false), "\"canary-task\"", "canary");
}

Test(stack_overflow, other_faults_reach_the_application_handler) {
    struct outcome o = run_child(NULL, null_task, true);
    cr_expect(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 42, "status %#x; stderr: %s",
              o.status, o.err);
    cr_expect_not_null(strstr(o.err, "application handler ran"), "stderr: %s", o.err);
    cr_expect_null(strstr(o.err, "stack overflow"), "stderr: %s", o.err);
}

Test(stack_overflow, other_faults_get_the_default_action) {
    struct outcome o = run_child(NULL, null_task, false);
    cr_expect(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSEGV, "status %#x; stderr: %s",
              o.status, o.err);
    cr_expect_null(strstr(o.err, "stack overflow"), "stderr: %s", o.err);
}
