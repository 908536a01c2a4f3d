/*
 * weft.h: the whole public API of weft, a multi-threaded, work-stealing runtime for
 * green tasks.
 *
 * The model is Python's asyncio made multi-threaded and stackful:
 *
 *   asyncio                              weft
 *   asyncio.run(main())                  weft_run(&cfg, main_fn, arg, &result)
 *   asyncio.create_task(coro)            weft_task *t = weft_spawn(fn, arg)
 *   await task                           weft_join(t, &result)
 *   await asyncio.sleep(0)               weft_yield()
 *
 * A task body is an ordinary C function running on its own stack. It may block (join,
 * yield) anywhere in its call chain: blocking parks the task, never the worker thread.
 *
 * Conventions (as in libuv):
 * - Calls that can fail return 0 or a negative errno value (-EINVAL, -ENOMEM, -EAGAIN,
 *   -EPERM, -EDEADLK, -ESHUTDOWN). Calls that return a pointer return NULL and set errno.
 * - No call aborts on input a caller could pass by mistake: each such case is listed
 *   next to the declaration and answered with its error code.
 * - Names starting with `weft_` are public; everything else in the library is hidden.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

typedef struct weft_runtime weft_runtime; /* opaque */
typedef struct weft_task weft_task;       /* opaque join handle */
typedef void *(*weft_fn)(void *arg);

/* Runtime configuration. A zeroed field always means "the default", so
 * `weft_config cfg = {0};` or a NULL pointer gives the defaults. */
typedef struct weft_config {
    /* Worker threads; 0 = one per online CPU. At most WEFT_MAX_WORKERS. */
    unsigned workers;
    /* Usable stack bytes per task (rounded up to whole pages); 0 = WEFT_DEFAULT_STACK_SIZE.
     * From WEFT_MIN_STACK_SIZE to WEFT_MAX_STACK_SIZE. Every stack also gets a guard
     * page below it (see "Stacks" below). */
    size_t stack_size;
    /* Most tasks alive at once (spawned and not yet finished); a spawn past it fails
     * with EAGAIN. 0 = WEFT_DEFAULT_MAX_TASKS. At most WEFT_MAX_MAX_TASKS. */
    size_t max_tasks;
} weft_config;

#define WEFT_MAX_WORKERS        1024u
#define WEFT_DEFAULT_STACK_SIZE ((size_t)64 << 10) /* 64 KiB */
#define WEFT_MIN_STACK_SIZE     ((size_t)16 << 10) /* 16 KiB */
#define WEFT_MAX_STACK_SIZE     ((size_t)1 << 30)  /* 1 GiB */
#define WEFT_DEFAULT_MAX_TASKS  ((size_t)1 << 18)  /* 262,144 */
#define WEFT_MAX_MAX_TASKS      ((size_t)1 << 26)  /* 67,108,864 */

/*
 * Stacks. A task gets its stack when it first runs, not when it is spawned, from a
 * per-worker pool: in the steady state spawn and exit make no system call. Stacks are
 * mapped with MAP_NORESERVE, so a task pays in memory only for the pages it touches.
 * Below every stack lies a guard page. On Linux 6.13 and later the guard is installed
 * with MADV_GUARD_INSTALL and costs no kernel mapping, so the number of live tasks is
 * limited only by max_tasks and memory. On older kernels each guard page costs two
 * entries of vm.max_map_count (65530 by default): weft guards stacks while it stays under
 * half of that limit, and maps the rest without a guard page but with a canary word at
 * the bottom that is checked each time the task is switched out.
 *
 * A task that overflows its stack is reported on stderr with its id, its name and its
 * stack size, and the process aborts. A fault that is not a stack overflow goes to the
 * SIGSEGV/SIGBUS handler the application had installed (or the default action).
 *
 * Scale, measured and tested: 100,000 tasks blocked at once work with the default
 * configuration; 1,000,000 need { .max_tasks = 1 << 20, .stack_size = 16 << 10 }.
 */

/* ---- Whole program --------------------------------------------------------------- */

/* Creates a runtime, runs fn(arg) as its first task, waits for it and every task it
 * spawned (detached ones included), shuts the runtime down. cfg and result may be NULL.
 * Returns 0, or: -EINVAL (fn is NULL, or a cfg field is out of range), -ENOMEM, -EAGAIN
 * (threads could not be created), -EDEADLK (called from a worker thread of a runtime). */
WEFT_API int weft_run(const weft_config *cfg, weft_fn fn, void *arg, void **result);

/* ---- Embedding in an application that owns its own threads ----------------------- */

/* Starts a runtime and its worker threads. Returns 0 and sets *rt, or: -EINVAL (rt is
 * NULL, or a cfg field is out of range), -ENOMEM, -EAGAIN (threads could not be created). */
WEFT_API int weft_runtime_create(const weft_config *cfg, weft_runtime **rt);

/* Spawns fn(arg) as a task of rt; callable from any thread, tasks of other runtimes
 * included. Returns the join handle, or NULL with errno: EINVAL (rt or fn is NULL),
 * ESHUTDOWN (weft_runtime_destroy has begun and the caller is not one of rt's tasks),
 * EAGAIN (max_tasks tasks are alive), ENOMEM. */
WEFT_API weft_task *weft_spawn_on(weft_runtime *rt, weft_fn fn, void *arg);

/* Runs fn(arg) as a task of rt and blocks the calling thread until it returns; its
 * return value goes to *result (result may be NULL). Returns 0, or: -EINVAL (rt or fn is
 * NULL), -EDEADLK (called from a worker thread: that would block a worker), or the
 * errors of weft_spawn_on as negative values. */
WEFT_API int weft_block_on(weft_runtime *rt, weft_fn fn, void *arg, void **result);

/* Graceful shutdown: lets every task that was spawned, detached ones included, run to
 * completion (tasks may go on spawning while it waits), then stops the workers and frees
 * everything, join handles that were never joined or detached included (using one
 * afterwards is undefined). Call it once, from a thread that is not one of rt's workers.
 * Returns 0, or: -EINVAL (rt is NULL), -EDEADLK (called from one of rt's tasks),
 * -EBUSY (another thread is already destroying rt). */
WEFT_API int weft_runtime_destroy(weft_runtime *rt);

/* ---- Inside a task (the runtime is the current task's) --------------------------- */

/* Spawns fn(arg) on the current task's runtime, onto the current worker's queue (idle
 * workers steal it). Returns the join handle, or NULL with errno: EPERM (no current
 * task: use weft_spawn_on), EINVAL (fn is NULL), EAGAIN (max_tasks tasks are alive),
 * ENOMEM. Every handle must be joined or detached once. */
WEFT_API weft_task *weft_spawn(weft_fn fn, void *arg);

/* Waits until t's function has returned, stores its return value in *result (result may
 * be NULL) and consumes the handle. Inside a task it parks the task; from any other
 * thread it blocks that thread. Returns 0, or: -EINVAL (t is NULL, or another join of t
 * is already waiting, or t was detached), -EDEADLK (t is the calling task), -ENOMEM (no
 * stack could be mapped when t was due to start: t never ran, *result is NULL; the
 * handle is consumed all the same). A handle must not be used
 * after it was joined or detached: that is undefined, like a double free. */
WEFT_API int weft_join(weft_task *t, void **result);

/* Releases the handle without waiting: the task runs to completion and its result is
 * dropped. NULL is ignored; detaching a handle that a join is waiting on is ignored
 * (the join consumes it). */
WEFT_API void weft_detach(weft_task *t);

/* Lets every other runnable task of the current worker run first, then continues.
 * Outside a task it does nothing. */
WEFT_API void weft_yield(void);

/* ---- Introspection ---------------------------------------------------------------- */

/* The current task's id (unique in the process, never 0), or 0 outside a task. */
WEFT_API uint64_t weft_current_id(void);

/* Names the current task, for stack-overflow reports and debuggers; the name is copied
 * and cut to WEFT_NAME_MAX - 1 bytes. Returns 0, or -EINVAL (name is NULL), -EPERM (no
 * current task). */
#define WEFT_NAME_MAX 32
WEFT_API int weft_set_name(const char *name);

typedef struct weft_runtime_stats {
    unsigned workers;        /* worker threads */
    uint64_t tasks_spawned;  /* tasks ever spawned */
    uint64_t tasks_live;     /* task objects not yet freed: running, runnable, parked,
                              * or finished with a handle not yet joined or detached */
    uint64_t stacks_mapped;  /* task stacks mapped (in use or pooled) */
    uint64_t stacks_guarded; /* of which have a guard page (the rest have a canary) */
    uint64_t stack_bytes;    /* address space of those stacks, guards included */
    uint64_t steals;         /* tasks taken from another worker's queue */
} weft_runtime_stats;

/* Counters of rt; exact when rt is quiet, approximate while tasks run. Returns 0, or
 * -EINVAL (rt or out is NULL). */
WEFT_API int weft_runtime_stats_get(weft_runtime *rt, weft_runtime_stats *out);

typedef struct weft_stats {
    uint64_t runtimes;    /* runtimes created and not yet destroyed */
    uint64_t stack_bytes; /* task stack address space mapped by all of them */
    uint64_t heap_bytes;  /* heap held by all of them (task objects, queues, workers) */
} weft_stats;

/* Process-wide counters: all zero once every runtime has been destroyed (tests use
 * this to check that nothing leaked). out NULL is ignored. */
WEFT_API void weft_stats_get(weft_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
