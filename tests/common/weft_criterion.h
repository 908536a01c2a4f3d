/*
 * weft_criterion.h: what every unit test (tests/unit/test_*.c) includes instead of
 * <criterion/criterion.h>, so that one test file is one Criterion suite in every build,
 * ThreadSanitizer included.
 *
 * Normally it is Criterion itself: it includes <criterion/criterion.h> and changes one
 * thing, what a failed fatal assertion does off the test's own thread (below).
 *
 * With WEFT__CRITERION_SHIM defined (tests/CMakeLists.txt defines it for
 * WEFT_SANITIZE=thread builds, because Criterion 2.4.1 cannot start under TSan,
 * Snaipe/Criterion#274) it is a small stand-in written here: the subset of Criterion that
 * the tests use, as a plain executable that TSan can run.
 *
 *   Test(suite, name, .init = f, .fini = f, .signal = SIG, .exit_code = N,
 *        .disabled = true, .timeout = seconds, .description = "...")
 *   cr_assert, cr_assert_not, cr_assert_eq/neq/lt/leq/gt/geq, cr_assert_null/not_null,
 *   cr_assert_str_eq/neq/empty/not_empty, cr_assert_fail, and every cr_expect* twin;
 *   cr_skip_test, cr_log_info/warn/error.
 *   The message argument is optional and, as Criterion wants, a string literal first
 *   (the macros put an "x" before it, which the report leaves out, so that an absent
 *   message is not an empty format string).
 *
 * Its main() runs every registered test (registered by a constructor), each in a child
 * fork()ed from a parent that never starts a thread (which TSan is fine with: the test
 * makes its runtimes, and their threads, in the child), with an optional timeout; prints
 * [RUN ] / [PASS] / [FAIL] / [SKIP] per test and Criterion's closing line
 *   [====] Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N
 * and exits 1 if any test failed or crashed. Options: --jobs=N and -jN (accepted and
 * ignored: the tests run one at a time, as ctest passes --jobs=1), --timeout=S (for
 * tests without their own .timeout), --filter=GLOB (on "suite/name", as Criterion's),
 * --list, --verbose (ignored), --help. Any other option is an error.
 *
 * Whatever it does not provide fails to compile rather than being ignored: a Test()
 * parameter it lacks is "no member named ..." in weft_cr_test_params; the Criterion macros
 * listed at the end are _Static_assert failures naming themselves; any other cr_* or
 * criterion_* call is an implicit declaration, made an error here.
 *
 * Assertions from any thread, and from forked processes. weft tests assert inside tasks,
 * timer callbacks and helper threads, not only in the Test() body, and some in a process
 * they fork. A fatal assertion that fails on the test's own thread (the main thread of
 * the test's process: both Criterion and the stand-in run the test there) ends the test
 * as usual (Criterion longjmps back to run .fini; so does the stand-in). On any other
 * thread a longjmp to the test thread's stack would be undefined, so the failure is
 * reported and the process ends: with Criterion through criterion_test_die (the test is
 * reported failed), in the stand-in with _exit. In a process that the test forked, any
 * failed assertion, cr_expect* included, is printed on stderr and ends that process
 * with status 1 (Criterion's runner does not know that process): the test checks its
 * child's status, as test_limits.c does.
 */
#ifndef WEFT_CRITERION_H
#define WEFT_CRITERION_H

#include "weft_test.h"

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* The process that runs the test (Criterion's worker, the stand-in's child): its main
 * thread runs the test body. Processes that a test forks are not it. */
static pid_t weft_cr__test_pid;

static inline int weft_cr__on_test_thread(void) {
    return (pid_t)syscall(SYS_gettid) == weft_cr__test_pid;
}

static inline int weft_cr__in_test_process(void) {
    return getpid() == weft_cr__test_pid;
}

#if !defined(WEFT__CRITERION_SHIM)

#include <criterion/criterion.h>

#include <stdio.h>

/* Criterion runs each test in a worker process that it starts with exec: a constructor
 * there sees the test's process. */
__attribute__((constructor)) static void weft_cr__note_test_pid(void) {
    weft_cr__test_pid = getpid();
}

/* A failed assertion in a process that the test forked must not talk to Criterion's
 * runner, which does not know that process: it is reported on stderr and ends that
 * process with status 1, for the test to see. */
static inline void weft_cr__send_assert(struct criterion_assert_stats *stats) {
    if (weft_cr__in_test_process()) {
        criterion_send_assert(stats);
        return;
    }
    if (stats->passed)
        return;
    fflush(stdout);
    fprintf(stderr, "%s:%d: Assertion Failed (in process %d, forked by the test)\n%s\n",
            stats->file, stats->line, (int)getpid(), stats->message ? stats->message : "");
    fflush(NULL);
    _exit(1);
}
#define criterion_send_assert(stats) weft_cr__send_assert(stats)

/* Criterion's fatal assertions call CR_FAIL_ABORT_ when they fail (after reporting the
 * failure), which longjmps to the test thread's stack: only right on that thread. */
__attribute__((noreturn)) static inline void weft_cr__abort_test(void) {
    if (weft_cr__on_test_thread())
        criterion_abort_test();
    criterion_test_die("a fatal assertion failed on a thread that is not the test's (a task, a "
                       "timer callback or a helper thread): see the assertion above");
    _exit(1); /* not reached: criterion_test_die exits */
}
#undef CR_FAIL_ABORT_
#define CR_FAIL_ABORT_ weft_cr__abort_test

#else /* WEFT__CRITERION_SHIM */

#if !defined(_GNU_SOURCE)
#error "weft_criterion.h's stand-in wants _GNU_SOURCE (strsignal, kill): tests/CMakeLists.txt defines it"
#endif

#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* An unknown cr_* or criterion_* call must not compile into an implicit declaration. */
#pragma GCC diagnostic error "-Wimplicit-function-declaration"

/* What Test() accepts after the name: the fields of Criterion's criterion_test_extra_data
 * that the shim implements. Any other one does not compile. */
struct weft_cr_test_params {
    int weft_cr_unused_; /* keeps the initializer non-empty when Test() has no parameters */
    void (*init)(void);
    void (*fini)(void);
    int signal;        /* the test passes only if it dies of this signal */
    int exit_code;     /* the test passes only if it exits with this status */
    bool disabled;     /* reported as skipped */
    double timeout;    /* seconds; 0: --timeout, else none */
    const char *description;
};

struct weft_cr_test {
    const char *suite, *name, *file;
    int line;
    void (*fn)(void);
    struct weft_cr_test_params params;
    struct weft_cr_test *next;
};

/* The shim's state. One test file is one translation unit, so statics will do. */
static struct {
    struct weft_cr_test *first, **last;
    pthread_mutex_t report_lock;  /* one failure report at a time, from any thread */
    volatile sig_atomic_t failed; /* a cr_expect* failed (set in the child) */
    jmp_buf abort_jmp;            /* back to the test thread's runner, as Criterion's */
    bool in_test;
} weft_cr__g = {.last = &weft_cr__g.first, .report_lock = PTHREAD_MUTEX_INITIALIZER};

/* A child's exit status for "a cr_assert* or cr_expect* failed" and "cr_skip_test". */
#define WEFT_CR__EXIT_FAILED  121
#define WEFT_CR__EXIT_SKIPPED 122

static inline void weft_cr__register(struct weft_cr_test *t) {
    *weft_cr__g.last = t;
    weft_cr__g.last = &t->next;
}

#define WEFT_CR__CAT3(a, b, c) a##_##b##_##c
#define WEFT_CR__ID(kind, suite, name) WEFT_CR__CAT3(weft_cr__##kind, suite, name)

#define Test(Suite, Name, ...)                                                                     \
    static void WEFT_CR__ID(fn, Suite, Name)(void);                                                \
    static struct weft_cr_test WEFT_CR__ID(test, Suite, Name) = {                                  \
        #Suite, #Name, __FILE__, __LINE__, WEFT_CR__ID(fn, Suite, Name),                           \
        {.weft_cr_unused_ = 0, __VA_ARGS__}, NULL};                                                \
    __attribute__((constructor)) static void WEFT_CR__ID(register, Suite, Name)(void) {            \
        weft_cr__register(&WEFT_CR__ID(test, Suite, Name));                                        \
    }                                                                                              \
    static void WEFT_CR__ID(fn, Suite, Name)(void)

/* ---- reports ------------------------------------------------------------------------- */

static inline double weft_cr__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints "[----] prefix line" for each line of text. */
static inline void weft_cr__print_lines(const char *text) {
    while (*text) {
        const char *nl = strchr(text, '\n');
        int len = nl ? (int)(nl - text) : (int)strlen(text);
        fprintf(stderr, "[----]   %.*s\n", len, text);
        text += len + (nl ? 1 : 0);
    }
}

/* After a failed fatal assertion: back to the runner on the test's thread (as
 * Criterion's longjmp), out of the process on any other. */
__attribute__((noreturn)) static inline void weft_cr__abort_test(void) {
    if (weft_cr__g.in_test && weft_cr__on_test_thread())
        longjmp(weft_cr__g.abort_jmp, 1);
    fputs("[----]   (a fatal assertion failed on a thread that is not the test's: the test "
          "ends here)\n",
          stderr);
    fflush(NULL);
    _exit(WEFT_CR__EXIT_FAILED);
}

/* A failed assertion: where, what, and the message if there is one. */
__attribute__((format(printf, 5, 6))) static inline void
weft_cr__fail(const char *file, int line, bool fatal, const char *what, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&weft_cr__g.report_lock);
    fflush(stdout);
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n", file, line);
    weft_cr__print_lines(what);
    weft_cr__print_lines(msg + 1); /* after the "x" that the macros put first */
    fflush(stderr);
    weft_cr__g.failed = 1;
    pthread_mutex_unlock(&weft_cr__g.report_lock);
    if (!weft_cr__in_test_process()) { /* forked by the test: it sees the status */
        fflush(NULL);
        _exit(1);
    }
    if (fatal)
        weft_cr__abort_test();
}

#define WEFT_CR__CHECK(fatal, cond, what, ...)                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            weft_cr__fail(__FILE__, __LINE__, fatal, what, "x" __VA_ARGS__);                        \
    } while (0)

/* Criterion's wording. */
#define WEFT_CR__FALSE(text) "The expression " text " is false."

#define WEFT_CR__OP(fatal, op, a, b, ...)                                                          \
    WEFT_CR__CHECK(fatal, (a)op(b), WEFT_CR__FALSE("(" #a ") " #op " (" #b ")"), __VA_ARGS__)
#define WEFT_CR__STR(fatal, op, a, b, ...)                                                         \
    WEFT_CR__CHECK(fatal, strcmp((a), (b)) op 0,                                                   \
                   WEFT_CR__FALSE("strcmp((" #a "), (" #b ")) " #op " 0"), __VA_ARGS__)

#define cr_assert(c, ...)        WEFT_CR__CHECK(true, c, WEFT_CR__FALSE(#c), __VA_ARGS__)
#define cr_expect(c, ...)        WEFT_CR__CHECK(false, c, WEFT_CR__FALSE(#c), __VA_ARGS__)
#define cr_assert_not(c, ...)    WEFT_CR__CHECK(true, !(c), WEFT_CR__FALSE("!(" #c ")"), __VA_ARGS__)
#define cr_expect_not(c, ...)    WEFT_CR__CHECK(false, !(c), WEFT_CR__FALSE("!(" #c ")"), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)  WEFT_CR__OP(true, ==, a, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...)  WEFT_CR__OP(false, ==, a, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) WEFT_CR__OP(true, !=, a, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) WEFT_CR__OP(false, !=, a, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...)  WEFT_CR__OP(true, <, a, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...)  WEFT_CR__OP(false, <, a, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) WEFT_CR__OP(true, <=, a, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) WEFT_CR__OP(false, <=, a, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...)  WEFT_CR__OP(true, >, a, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...)  WEFT_CR__OP(false, >, a, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) WEFT_CR__OP(true, >=, a, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) WEFT_CR__OP(false, >=, a, b, __VA_ARGS__)
#define cr_assert_null(p, ...)                                                                     \
    WEFT_CR__CHECK(true, (p) == NULL, WEFT_CR__FALSE("(" #p ") == NULL"), __VA_ARGS__)
#define cr_expect_null(p, ...)                                                                     \
    WEFT_CR__CHECK(false, (p) == NULL, WEFT_CR__FALSE("(" #p ") == NULL"), __VA_ARGS__)
#define cr_assert_not_null(p, ...)                                                                 \
    WEFT_CR__CHECK(true, (p) != NULL, WEFT_CR__FALSE("(" #p ") != NULL"), __VA_ARGS__)
#define cr_expect_not_null(p, ...)                                                                 \
    WEFT_CR__CHECK(false, (p) != NULL, WEFT_CR__FALSE("(" #p ") != NULL"), __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)  WEFT_CR__STR(true, ==, a, b, __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...)  WEFT_CR__STR(false, ==, a, b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) WEFT_CR__STR(true, !=, a, b, __VA_ARGS__)
#define cr_expect_str_neq(a, b, ...) WEFT_CR__STR(false, !=, a, b, __VA_ARGS__)
#define cr_assert_str_empty(s, ...)                                                                \
    WEFT_CR__CHECK(true, (s)[0] == '\0', WEFT_CR__FALSE("(" #s ")[0] == '\\0'"), __VA_ARGS__)
#define cr_expect_str_empty(s, ...)                                                                \
    WEFT_CR__CHECK(false, (s)[0] == '\0', WEFT_CR__FALSE("(" #s ")[0] == '\\0'"), __VA_ARGS__)
#define cr_assert_str_not_empty(s, ...)                                                            \
    WEFT_CR__CHECK(true, (s)[0] != '\0', WEFT_CR__FALSE("(" #s ")[0] != '\\0'"), __VA_ARGS__)
#define cr_expect_str_not_empty(s, ...)                                                            \
    WEFT_CR__CHECK(false, (s)[0] != '\0', WEFT_CR__FALSE("(" #s ")[0] != '\\0'"), __VA_ARGS__)
#define cr_assert_fail(...)                                                                        \
    weft_cr__fail(__FILE__, __LINE__, true, "The conditions for this assertion were not met.",     \
                  "x" __VA_ARGS__)
#define cr_expect_fail(...)                                                                        \
    weft_cr__fail(__FILE__, __LINE__, false, "The conditions for this assertion were not met.",    \
                  "x" __VA_ARGS__)

/* Ends the test, reported as skipped. From the test's thread. */
__attribute__((noreturn, format(printf, 1, 2))) static inline void weft_cr__skip(const char *fmt,
                                                                                 ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "[----] skipped: %s\n", msg + 1); /* after the macro's "x" */
    fflush(NULL);
    _exit(WEFT_CR__EXIT_SKIPPED);
}
#define cr_skip_test(...) weft_cr__skip("x" __VA_ARGS__)

__attribute__((format(printf, 2, 3))) static inline void weft_cr__log(const char *level,
                                                                       const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&weft_cr__g.report_lock);
    fprintf(stderr, "[%s] %s\n", level, msg);
    pthread_mutex_unlock(&weft_cr__g.report_lock);
}
#define cr_log_info(...)  weft_cr__log("----", __VA_ARGS__)
#define cr_log_warn(...)  weft_cr__log("WARN", __VA_ARGS__)
#define cr_log_error(...) weft_cr__log("ERR ", __VA_ARGS__)

/* ---- the runner ------------------------------------------------------------------------ */

/* In the child: the test, between its init and fini. */
__attribute__((noreturn)) static inline void weft_cr__run_child(const struct weft_cr_test *t) {
    weft_cr__test_pid = getpid();
    if (t->params.init)
        t->params.init();
    weft_cr__g.in_test = true;
    if (setjmp(weft_cr__g.abort_jmp) == 0)
        t->fn();
    weft_cr__g.in_test = false;
    if (t->params.fini)
        t->params.fini();
    fflush(NULL);
    exit(weft_cr__g.failed ? WEFT_CR__EXIT_FAILED : 0);
}

enum weft_cr__outcome { WEFT_CR__PASSED, WEFT_CR__FAILED, WEFT_CR__CRASHED, WEFT_CR__SKIPPED };

static inline enum weft_cr__outcome weft_cr__run_one(const struct weft_cr_test *t,
                                                     double default_timeout) {
    fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
    fflush(NULL); /* the child must not inherit buffered output */
    double start = weft_cr__now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("[FAIL] fork");
        return WEFT_CR__CRASHED;
    }
    if (pid == 0)
        weft_cr__run_child(t);

    double timeout = t->params.timeout > 0 ? t->params.timeout : default_timeout;
    long nap_ns = 100000;
    int status = 0;
    bool timed_out = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0) {
            perror("[FAIL] waitpid");
            return WEFT_CR__CRASHED;
        }
        if (timeout > 0 && weft_cr__now() - start > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = true;
            break;
        }
        nanosleep(&(struct timespec){0, nap_ns}, NULL);
        if (nap_ns < 10000000)
            nap_ns *= 2;
    }
    double took = weft_cr__now() - start;
    const char *who_suite = t->suite, *who = t->name;
    int want_signal = t->params.signal, want_exit = t->params.exit_code;

    if (timed_out) {
        fprintf(stderr, "[FAIL] %s::%s: Timed out. (%.2fs)\n", who_suite, who, timeout);
        return WEFT_CR__CRASHED;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (want_signal && sig == want_signal) {
            fprintf(stderr, "[PASS] %s::%s: (%.2fs)\n", who_suite, who, took);
            return WEFT_CR__PASSED;
        }
        fprintf(stderr, "[FAIL] %s::%s: CRASH! (signal %d: %s) (%.2fs)\n", who_suite, who, sig,
                strsignal(sig), took);
        return WEFT_CR__CRASHED;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == WEFT_CR__EXIT_SKIPPED) {
        fprintf(stderr, "[SKIP] %s::%s: (%.2fs)\n", who_suite, who, took);
        return WEFT_CR__SKIPPED;
    }
    if (code == WEFT_CR__EXIT_FAILED) {
        fprintf(stderr, "[FAIL] %s::%s: (%.2fs)\n", who_suite, who, took);
        return WEFT_CR__FAILED;
    }
    if (want_signal) {
        fprintf(stderr, "[FAIL] %s::%s: expected to die of signal %d (%s), exited with %d (%.2fs)\n",
                who_suite, who, want_signal, strsignal(want_signal), code, took);
        return WEFT_CR__FAILED;
    }
    if (code != want_exit) {
        fprintf(stderr, "[FAIL] %s::%s: exited with status %d%s, expected %d (%.2fs)\n", who_suite,
                who, code, code == 66 ? " (a ThreadSanitizer report: see above)" : "", want_exit,
                took);
        return code == 0 ? WEFT_CR__FAILED : WEFT_CR__CRASHED;
    }
    fprintf(stderr, "[PASS] %s::%s: (%.2fs)\n", who_suite, who, took);
    return WEFT_CR__PASSED;
}

static inline int weft_cr__usage(const char *argv0, FILE *f, int status) {
    fprintf(f,
            "usage: %s [--jobs=N] [--timeout=S] [--filter=GLOB] [--list] [--verbose]\n"
            "  weft's Criterion stand-in for ThreadSanitizer builds (tests/common/"
            "weft_criterion.h):\n"
            "  runs each test in a forked child; --jobs is accepted and ignored (one at a "
            "time);\n"
            "  --filter matches \"suite/name\"; --timeout applies to tests without .timeout\n",
            argv0);
    return status;
}

int main(int argc, char **argv) {
    double default_timeout = 0;
    const char *filter = NULL;
    bool list = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--jobs=", 7) == 0 || (strncmp(a, "-j", 2) == 0 && a[2]) ||
            strcmp(a, "--verbose") == 0 || strncmp(a, "--verbose=", 10) == 0)
            continue;
        if (strncmp(a, "--timeout=", 10) == 0)
            default_timeout = atof(a + 10);
        else if (strncmp(a, "--filter=", 9) == 0)
            filter = a + 9;
        else if (strcmp(a, "--list") == 0 || strcmp(a, "-l") == 0)
            list = true;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return weft_cr__usage(argv[0], stdout, 0);
        else {
            fprintf(stderr, "%s: '%s' is not an option of weft's Criterion stand-in\n", argv[0], a);
            return weft_cr__usage(argv[0], stderr, 2);
        }
    }

    int tested = 0, passing = 0, failing = 0, crashing = 0, skipped = 0;
    for (struct weft_cr_test *t = weft_cr__g.first; t; t = t->next) {
        char id[512];
        snprintf(id, sizeof id, "%s/%s", t->suite, t->name);
        if (filter && fnmatch(filter, id, 0) != 0)
            continue;
        if (list) {
            printf("%s::%s\n", t->suite, t->name);
            continue;
        }
        if (t->params.disabled) {
            fprintf(stderr, "[SKIP] %s::%s: test is disabled\n", t->suite, t->name);
            skipped++;
            continue;
        }
        switch (weft_cr__run_one(t, default_timeout)) {
        case WEFT_CR__PASSED: tested++, passing++; break;
        case WEFT_CR__FAILED: tested++, failing++; break;
        case WEFT_CR__CRASHED: tested++, failing++, crashing++; break; /* as Criterion counts */
        case WEFT_CR__SKIPPED: skipped++; break;
        }
    }
    if (list)
        return 0;
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n",
            tested, passing, failing, crashing);
    if (skipped)
        fprintf(stderr, "[====] (skipped: %d)\n", skipped);
    return failing ? 1 : 0;
}

/* ---- Criterion features the shim does not provide: a compile error each ----------------- */

#define WEFT_CR__UNSUPPORTED(what)                                                                 \
    _Static_assert(0, what " is not in weft's Criterion stand-in for TSan builds "                 \
                           "(tests/common/weft_criterion.h): add it there")
#define TestSuite(...)                   WEFT_CR__UNSUPPORTED("TestSuite")
#define ParameterizedTest(...)           WEFT_CR__UNSUPPORTED("ParameterizedTest")
#define ParameterizedTestParameters(...) WEFT_CR__UNSUPPORTED("ParameterizedTestParameters")
#define Theory(...)                      WEFT_CR__UNSUPPORTED("Theory")
#define TheoryDataPoints(...)            WEFT_CR__UNSUPPORTED("TheoryDataPoints")
#define ReportHook(...)                  WEFT_CR__UNSUPPORTED("ReportHook")
#define cr_fatal(...)                    WEFT_CR__UNSUPPORTED("cr_fatal")
#define cr_log(...)                      WEFT_CR__UNSUPPORTED("cr_log")
#define cr_assert_float_eq(...)          WEFT_CR__UNSUPPORTED("cr_assert_float_eq")
#define cr_expect_float_eq(...)          WEFT_CR__UNSUPPORTED("cr_expect_float_eq")
#define cr_assert_float_neq(...)         WEFT_CR__UNSUPPORTED("cr_assert_float_neq")
#define cr_expect_float_neq(...)         WEFT_CR__UNSUPPORTED("cr_expect_float_neq")
#define cr_assert_zero(...)              WEFT_CR__UNSUPPORTED("cr_assert_zero")
#define cr_expect_zero(...)              WEFT_CR__UNSUPPORTED("cr_expect_zero")
#define cr_assert_not_zero(...)          WEFT_CR__UNSUPPORTED("cr_assert_not_zero")
#define cr_expect_not_zero(...)          WEFT_CR__UNSUPPORTED("cr_expect_not_zero")
#define cr_assert_str_lt(...)            WEFT_CR__UNSUPPORTED("cr_assert_str_lt")
#define cr_assert_str_leq(...)           WEFT_CR__UNSUPPORTED("cr_assert_str_leq")
#define cr_assert_str_gt(...)            WEFT_CR__UNSUPPORTED("cr_assert_str_gt")
#define cr_assert_str_geq(...)           WEFT_CR__UNSUPPORTED("cr_assert_str_geq")
#define cr_expect_str_lt(...)            WEFT_CR__UNSUPPORTED("cr_expect_str_lt")
#define cr_expect_str_leq(...)           WEFT_CR__UNSUPPORTED("cr_expect_str_leq")
#define cr_expect_str_gt(...)            WEFT_CR__UNSUPPORTED("cr_expect_str_gt")
#define cr_expect_str_geq(...)           WEFT_CR__UNSUPPORTED("cr_expect_str_geq")
#define cr_assert_arr_eq(...)            WEFT_CR__UNSUPPORTED("cr_assert_arr_eq")
#define cr_expect_arr_eq(...)            WEFT_CR__UNSUPPORTED("cr_expect_arr_eq")
#define cr_assert_arr_neq(...)           WEFT_CR__UNSUPPORTED("cr_assert_arr_neq")
#define cr_expect_arr_neq(...)           WEFT_CR__UNSUPPORTED("cr_expect_arr_neq")
#define cr_assert_arr_eq_cmp(...)        WEFT_CR__UNSUPPORTED("cr_assert_arr_eq_cmp")
#define cr_expect_arr_eq_cmp(...)        WEFT_CR__UNSUPPORTED("cr_expect_arr_eq_cmp")
#define cr_assert_throw(...)             WEFT_CR__UNSUPPORTED("cr_assert_throw")
#define cr_assert_any_throw(...)         WEFT_CR__UNSUPPORTED("cr_assert_any_throw")
#define cr_assert_none_throw(...)        WEFT_CR__UNSUPPORTED("cr_assert_none_throw")
#define cr_redirect_stdout(...)          WEFT_CR__UNSUPPORTED("cr_redirect_stdout")
#define cr_redirect_stderr(...)          WEFT_CR__UNSUPPORTED("cr_redirect_stderr")
#define cr_redirect_stdin(...)           WEFT_CR__UNSUPPORTED("cr_redirect_stdin")
#define cr_malloc(...)                   WEFT_CR__UNSUPPORTED("cr_malloc")
#define cr_free(...)                     WEFT_CR__UNSUPPORTED("cr_free")
#define criterion_options                WEFT_CR__UNSUPPORTED("criterion_options")

#endif /* WEFT__CRITERION_SHIM */

/* Every runtime destroyed, every stack unmapped, every runtime allocation freed
 * (weft_test_leaks); what a test ends with. */
#define WEFT_ASSERT_NO_LEAKS()                                                                     \
    do {                                                                                           \
        char why_[160];                                                                            \
        cr_assert(!weft_test_leaks(why_, sizeof why_), "weft leaked: %s", why_);                   \
    } while (0)

#endif /* WEFT_CRITERION_H */
