/*
 * test_trace.c: weft_trace_start / weft_trace_stop and WEFT_TRACE (weft.h,
 * runtime/debug/trace.c): the argument and state errors; a trace of tasks that spawn,
 * park, are woken, migrate between workers and finish, checked as JSON (a syntax check
 * here, and tools/trace.d/check.py's structural checks when python3 is on PATH); rings
 * that overflow (WEFT_TRACE_RING_EVENTS=16) drop events and say how many, in the return
 * value and in the JSON; traces started and stopped over and over while tasks run, with
 * a dump in each (with and without chaos scheduling); a trace started and stopped by a
 * task; WEFT_TRACE for two runtimes (path, then path.N); a trace still running at
 * destroy, written by it. Every test ends with nothing leaked.
 */
#include "weft_criterion.h"

#include "base/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Files --------------------------------------------------------------------------- */

/* A fresh directory for a test's traces, and its files removed at the end. */
static char test_dir[64];

static void make_test_dir(void) {
    snprintf(test_dir, sizeof test_dir, "/tmp/weft-test-trace-XXXXXX");
    cr_assert(mkdtemp(test_dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static void remove_test_dir(void) {
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s/*", test_dir);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
        globfree(&g);
    }
    rmdir(test_dir);
}

static void test_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", test_dir, name);
}

/* The whole file, NUL-terminated (malloc'd); NULL if it cannot be read. */
static char *read_file(const char *path, size_t *length) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t capacity = 1 << 16, n = 0;
    char *data = malloc(capacity);
    size_t got;
    while (data && (got = fread(data + n, 1, capacity - n - 1, f)) > 0) {
        n += got;
        if (capacity - n - 1 == 0) {
            char *bigger = realloc(data, capacity * 2);
            if (!bigger) {
                free(data);
                data = NULL;
                break;
            }
            data = bigger;
            capacity *= 2;
        }
    }
    fclose(f);
    if (data)
        data[n] = '\0';
    if (length)
        *length = n;
    return data;
}

/* ---- A JSON syntax check (RFC 8259) ------------------------------------------------------- */

typedef struct json_cursor {
    const char *p, *end;
    int depth;
} json_cursor;

static void json_ws(json_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static bool json_literal(json_cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool json_string(json_cursor *c) {
    if (c->p >= c->end || *c->p != '"')
        return false;
    for (c->p++; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch == '\\') {
            if (++c->p >= c->end)
                return false;
            if (*c->p == 'u') {
                for (int k = 0; k < 4; k++)
                    if (++c->p >= c->end || !strchr("0123456789abcdefABCDEF", *c->p))
                        return false;
            } else if (!strchr("\"\\/bfnrt", *c->p)) {
                return false;
            }
        }
    }
    return false;
}

static bool json_digits(json_cursor *c) {
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start;
}

static bool json_number(json_cursor *c) {
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (!json_digits(c))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!json_digits(c))
            return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!json_digits(c))
            return false;
    }
    return true;
}

static bool json_value(json_cursor *c);

static bool json_container(json_cursor *c, char close, bool keyed) {
    c->p++; /* the opening bracket */
    if (++c->depth > 64)
        return false;
    json_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        c->depth--;
        return true;
    }
    for (;;) {
        json_ws(c);
        if (keyed) {
            if (!json_string(c))
                return false;
            json_ws(c);
            if (c->p >= c->end || *c->p++ != ':')
                return false;
        }
        if (!json_value(c))
            return false;
        json_ws(c);
        if (c->p >= c->end)
            return false;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p++ != close)
            return false;
        c->depth--;
        return true;
    }
}

static bool json_value(json_cursor *c) {
    json_ws(c);
    if (c->p >= c->end)
        return false;
    switch (*c->p) {
    case '{':
        return json_container(c, '}', true);
    case '[':
        return json_container(c, ']', false);
    case '"':
        return json_string(c);
    case 't':
        return json_literal(c, "true");
    case 'f':
        return json_literal(c, "false");
    case 'n':
        return json_literal(c, "null");
    default:
        return json_number(c);
    }
}

static bool json_valid(const char *text, size_t length) {
    json_cursor c = {text, text + length, 0};
    if (!json_value(&c))
        return false;
    json_ws(&c);
    return c.p == c.end;
}

static size_t count_of(const char *text, const char *needle) {
    size_t n = 0, len = strlen(needle);
    for (const char *p = text; (p = strstr(p, needle)); p += len)
        n++;
    return n;
}

/* otherData's `"key":N`, or UINT64_MAX when absent. */
static uint64_t other_number(const char *text, const char *key) {
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *other = strstr(text, "\"otherData\":");
    const char *p = other ? strstr(other, needle) : NULL;
    return p ? strtoull(p + strlen(needle), NULL, 10) : UINT64_MAX;
}

/* tools/trace.d/check.py on the file when python3 is there: 0 it passed, 1 it failed,
 * -1 not run (also when options hold --skip-python). */
static int python_check(const char *path, const char *options) {
    if (strstr(options, "--skip-python"))
        return -1;
    static const char self[] = __FILE__;
    static const char tail[] = "tests/unit/test_trace.c";
    size_t n = strlen(self), t = strlen(tail);
    if (n < t || strcmp(self + n - t, tail) != 0)
        return -1;
    char script[1024];
    snprintf(script, sizeof script, "%.*stools/trace.d/check.py", (int)(n - t), self);
    if (access(script, R_OK) != 0 || system("command -v python3 >/dev/null 2>&1") != 0)
        return -1;
    char command[3072];
    snprintf(command, sizeof command, "python3 '%s' --quiet %s '%s'", script, options, path);
    return system(command) == 0 ? 0 : 1;
}

/* The file at path is a whole trace: valid JSON with weft's metadata, and (when python3
 * is there) check.py's structure. Returns the text (to free). */
static char *assert_trace(const char *path, const char *check_options) {
    size_t length = 0;
    char *text = read_file(path, &length);
    cr_assert(text != NULL, "%s: cannot read it", path);
    cr_assert(length > 0, "%s: empty", path);
    cr_assert(json_valid(text, length), "%s: not valid JSON", path);
    cr_assert(strncmp(text, "{\"traceEvents\":[", 16) == 0, "%s: not a traceEvents object", path);
    cr_assert(other_number(text, "dropped_events") != UINT64_MAX, "%s: no dropped_events", path);
    cr_assert(count_of(text, "\"name\":\"thread_name\"") >= 1, "%s: no thread names", path);
    cr_assert_neq(python_check(path, check_options), 1, "%s: tools/trace.d/check.py failed", path);
    return text;
}

/* ---- Errors -------------------------------------------------------------------------- */

Test(trace, errors) {
    make_test_dir();
    char path[128], other[128];
    test_path(path, sizeof path, "a.json");
    test_path(other, sizeof other, "b.json");
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    cr_assert_eq(weft_trace_start(NULL, path), -EINVAL);
    cr_assert_eq(weft_trace_start(rt, NULL), -EINVAL);
    cr_assert_eq(weft_trace_stop(NULL), -EINVAL);
    cr_assert_eq(weft_trace_stop(rt), -EINVAL, "no trace ever started");
    cr_assert_eq(weft_trace_start(rt, "/nonexistent-weft-dir/trace.json"), -ENOENT);
    cr_assert_eq(weft_trace_stop(rt), -EINVAL, "the failed start left no trace");
    cr_assert_eq(weft_trace_start(rt, path), 0);
    cr_assert_eq(weft_trace_start(rt, other), -EBUSY);
    cr_assert_eq(access(other, F_OK), -1, "a refused start created its file");
    cr_assert_geq(weft_trace_stop(rt), 0);
    cr_assert_eq(weft_trace_stop(rt), -EINVAL, "stopped already");
    free(assert_trace(path, ""));
    /* Again, on the same rings. */
    cr_assert_eq(weft_trace_start(rt, other), 0);
    cr_assert_geq(weft_trace_stop(rt), 0);
    free(assert_trace(other, ""));
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- Tasks that spawn, wake, migrate and finish ---------------------------------------- */

#define CHILDREN 64

typedef struct family {
    uint64_t ids[CHILDREN];
    weft_chan *ping, *pong;
} family;

static void spin_us(uint64_t us) {
    uint64_t until = weft_now() + us * 1000;
    while (weft_now() < until)
        ;
}

static void *child(void *arg) {
    uint64_t *id = arg;
    *id = weft_current_id();
    spin_us(20);                       /* long enough for idle workers to steal us */
    cr_assert_eq(weft_sleep_ms(1), 0); /* parks; a timer wakes it */
    weft_yield();
    spin_us(5);
    return NULL;
}

/* Wakes from task to task: each message wakes the other side. */
static void *ponger(void *arg) {
    family *f = arg;
    int v;
    while (weft_chan_recv(f->ping, &v, WEFT_FOREVER) == 0 && v >= 0)
        cr_assert_eq(weft_chan_send(f->pong, &v, WEFT_FOREVER), 0);
    return NULL;
}

static void *family_main(void *arg) {
    family *f = arg;
    weft_task *t[CHILDREN];
    for (int i = 0; i < CHILDREN; i++)
        cr_assert_not_null(t[i] = weft_spawn(child, &f->ids[i]));
    weft_task *p = weft_spawn(ponger, f);
    cr_assert_not_null(p);
    for (int i = 0; i < 50; i++) {
        int v = i;
        cr_assert_eq(weft_chan_send(f->ping, &v, WEFT_FOREVER), 0);
        cr_assert_eq(weft_chan_recv(f->pong, &v, WEFT_FOREVER), 0);
    }
    int done = -1;
    cr_assert_eq(weft_chan_send(f->ping, &done, WEFT_FOREVER), 0);
    for (int i = 0; i < CHILDREN; i++)
        cr_assert_eq(weft_join(t[i], NULL), 0);
    cr_assert_eq(weft_join(p, NULL), 0);
    return NULL;
}

static void run_family(weft_runtime *rt) {
    family f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(weft_chan_create(sizeof(int), 0, &f.ping), 0);
    cr_assert_eq(weft_chan_create(sizeof(int), 0, &f.pong), 0);
    cr_assert_eq(weft_block_on(rt, family_main, &f, NULL), 0);
    weft_chan_destroy(f.ping);
    weft_chan_destroy(f.pong);
}

Test(trace, tasks_spawn_wake_migrate_finish, .timeout = 60) {
    make_test_dir();
    char path[128];
    test_path(path, sizeof path, "family.json");
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 3}, &rt), 0);
    cr_assert_eq(weft_trace_start(rt, path), 0);
    family f;
    memset(&f, 0, sizeof f);
    cr_assert_eq(weft_chan_create(sizeof(int), 0, &f.ping), 0);
    cr_assert_eq(weft_chan_create(sizeof(int), 0, &f.pong), 0);
    cr_assert_eq(weft_block_on(rt, family_main, &f, NULL), 0);
    int dropped = weft_trace_stop(rt);
    cr_assert_geq(dropped, 0, "stop: %s", strerror(-dropped));
    weft_chan_destroy(f.ping);
    weft_chan_destroy(f.pong);
    cr_assert_eq(weft_runtime_destroy(rt), 0);

    char *text = assert_trace(path, dropped ? "" : "--min-flows 1");
    cr_assert_eq(other_number(text, "dropped_events"), (uint64_t)dropped);
    cr_assert_eq(other_number(text, "workers"), 3);
    if (dropped == 0) { /* 2 MiB rings per worker: nothing of this is lost */
        for (int i = 0; i < CHILDREN; i++) {
            char name[48];
            snprintf(name, sizeof name, "\"name\":\"task %llu\"", (unsigned long long)f.ids[i]);
            cr_assert(strstr(text, name), "no run slice of child %d (%s)", i, name);
            snprintf(name, sizeof name, "\"name\":\"spawn task %llu\"",
                     (unsigned long long)f.ids[i]);
            cr_assert(strstr(text, name), "no spawn of child %d (%s)", i, name);
        }
        size_t starts = count_of(text, "\"ph\":\"s\""), ends = count_of(text, "\"ph\":\"f\"");
        cr_assert_eq(starts, ends, "%zu flow starts, %zu ends", starts, ends);
        cr_assert_geq(starts, CHILDREN, "an arrow from each spawn at least");
        cr_assert(strstr(text, "\"cat\":\"wake\",\"name\":\"wake task"), "no wake-up recorded");
        cr_assert(strstr(text, "\"cat\":\"timers\""), "no timer pass recorded");
        cr_assert(strstr(text, "\"end\":\"exit\""), "no slice ended by its task's exit");
        cr_assert(strstr(text, "\"end\":\"park\""), "no slice ended by a park");
    }
    free(text);
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- Overflow --------------------------------------------------------------------------- */

static void *yielder(void *arg) {
    for (uintptr_t i = 0; i < (uintptr_t)arg; i++)
        weft_yield();
    return NULL;
}

static void *yield_pair(void *arg) {
    weft_task *a = weft_spawn(yielder, arg), *b = weft_spawn(yielder, arg);
    cr_assert(a && b);
    cr_assert_eq(weft_join(a, NULL), 0);
    cr_assert_eq(weft_join(b, NULL), 0);
    return NULL;
}

Test(trace, overflow_drops_and_counts) {
    make_test_dir();
    char path[128];
    test_path(path, sizeof path, "overflow.json");
    /* Read at the runtime's first start, when its rings are made. */
    cr_assert_eq(setenv("WEFT_TRACE_RING_EVENTS", "16", 1), 0);
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 1}, &rt), 0);
    cr_assert_eq(weft_trace_start(rt, path), 0);
    /* Two yielders hand the worker to each other, two events per yield, far more than
     * 16 per drain period (1 ms). */
    cr_assert_eq(weft_block_on(rt, yield_pair, (void *)(uintptr_t)weft_test_size(20000, 4), NULL),
                 0);
    int dropped = weft_trace_stop(rt);
    cr_assert_gt(dropped, 0, "a 16-event ring dropped nothing (stop: %d)", dropped);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    unsetenv("WEFT_TRACE_RING_EVENTS");
    char *text = assert_trace(path, "--expect-dropped");
    cr_assert_eq(other_number(text, "dropped_events"), (uint64_t)dropped);
    cr_assert_eq(other_number(text, "ring_events"), 16);
    free(text);
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- Start and stop while tasks run ------------------------------------------------------ */

typedef struct churn {
    weft__atomic_word stop;
    weft__atomic_word finished;
} churn;

static void *churn_leaf(void *arg) {
    churn *c = arg;
    spin_us(2);
    if (weft_current_id() % 3 == 0)
        weft_sleep_ms(0);
    else
        weft_yield();
    weft__atomic_fetch_add_relaxed(&c->finished, 1);
    return NULL;
}

/* Spawns and joins short tasks (stolen by the other workers) until told to stop. */
static void *churn_main(void *arg) {
    churn *c = arg;
    /* Acquire: pairs with the test's release store. */
    while (!weft__atomic_load_acquire(&c->stop)) {
        weft_task *t[16];
        for (int i = 0; i < 16; i++)
            cr_assert_not_null(t[i] = weft_spawn(churn_leaf, c));
        for (int i = 0; i < 16; i++)
            cr_assert_eq(weft_join(t[i], NULL), 0);
    }
    return NULL;
}

static void start_stop_while_running(uint64_t chaos_seed) {
    make_test_dir();
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 3, .chaos_seed = chaos_seed}, &rt),
                 0);
    churn c = {0, 0};
    weft_task *main_task = weft_spawn_on(rt, churn_main, &c);
    cr_assert_not_null(main_task);
    int rounds = (int)weft_test_size(12, 2);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    cr_assert_geq(devnull, 0);
    for (int i = 0; i < rounds; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/round-%d.json", test_dir, i);
        cr_assert_eq(weft_trace_start(rt, path), 0);
        weft_test_sleep_ms(1);
        /* A dump while the trace records (both read the workers as they run). */
        cr_assert_eq(weft_runtime_dump(rt, devnull), 0);
        weft_test_sleep_ms(2);
        int dropped = weft_trace_stop(rt);
        cr_assert_geq(dropped, 0, "stop: %s", strerror(-dropped));
        /* Every round's JSON; check.py (slower) on the first and the last. */
        char *text = assert_trace(path, i == 0 || i == rounds - 1 ? "" : "--skip-python");
        free(text);
    }
    close(devnull);
    weft__atomic_store_release(&c.stop, 1);
    cr_assert_eq(weft_join(main_task, NULL), 0);
    cr_assert_gt(weft__atomic_load_relaxed(&c.finished), 0);
    cr_assert_eq(weft_runtime_destroy(rt), 0);
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}

Test(trace, start_stop_while_tasks_run, .timeout = 60) {
    start_stop_while_running(0);
}

Test(trace, start_stop_while_tasks_run_chaos, .timeout = 60) {
    start_stop_while_running(0x7ace5eed);
}

/* ---- From a task ------------------------------------------------------------------------ */

static char task_path[128];

static void *traces_itself(void *arg) {
    (void)arg;
    weft_runtime *rt = weft_runtime_current();
    cr_assert_eq(weft_trace_start(rt, task_path), 0);
    weft_task *t[8];
    for (int i = 0; i < 8; i++)
        cr_assert_not_null(t[i] = weft_spawn(yielder, (void *)(uintptr_t)10));
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_join(t[i], NULL), 0);
    cr_assert_geq(weft_trace_stop(rt), 0);
    return NULL;
}

Test(trace, started_and_stopped_by_a_task) {
    make_test_dir();
    test_path(task_path, sizeof task_path, "task.json");
    cr_assert_eq(weft_run(&(weft_config){.workers = 2}, traces_itself, NULL, NULL), 0);
    char *text = assert_trace(task_path, "--min-slices 8");
    /* The task that stopped it was running then: its slice ends at the stop. */
    cr_assert(strstr(text, "\"end\":\"running at the stop\""), "no slice cut by the stop");
    free(text);
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}

/* ---- WEFT_TRACE, and a trace running at destroy ------------------------------------------ */

static void *small_work(void *arg) {
    return yield_pair(arg);
}

Test(trace, weft_trace_environment) {
    make_test_dir();
    char path[128];
    test_path(path, sizeof path, "env.json");
    cr_assert_eq(setenv("WEFT_TRACE", path, 1), 0);
    /* One worker: the two yielders hand it to each other, a slice per yield. */
    cr_assert_eq(weft_run(&(weft_config){.workers = 1}, small_work, (void *)(uintptr_t)100, NULL),
                 0);
    cr_assert_eq(weft_run(&(weft_config){.workers = 1}, small_work, (void *)(uintptr_t)100, NULL),
                 0);
    unsetenv("WEFT_TRACE");
    free(assert_trace(path, "--min-slices 200"));
    /* The second runtime: path.<its number>. */
    char pattern[160];
    snprintf(pattern, sizeof pattern, "%s.*", path);
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "no %s", pattern);
    cr_assert_eq(g.gl_pathc, 1, "%zu files match %s", g.gl_pathc, pattern);
    const char *suffix = g.gl_pathv[0] + strlen(path) + 1;
    cr_assert(*suffix && strspn(suffix, "0123456789") == strlen(suffix), "%s: not path.N",
              g.gl_pathv[0]);
    free(assert_trace(g.gl_pathv[0], "--min-slices 200"));
    globfree(&g);
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}

Test(trace, running_at_destroy_is_written) {
    make_test_dir();
    char path[128];
    test_path(path, sizeof path, "destroy.json");
    weft_runtime *rt;
    cr_assert_eq(weft_runtime_create(&(weft_config){.workers = 2}, &rt), 0);
    cr_assert_eq(weft_trace_start(rt, path), 0);
    run_family(rt);
    cr_assert_eq(weft_runtime_destroy(rt), 0); /* no stop: destroy writes it */
    free(assert_trace(path, "--min-flows 1"));
    remove_test_dir();
    WEFT_ASSERT_NO_LEAKS();
}
