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
 *   await asyncio.sleep(s)               weft_sleep_ms(ms)
 *   asyncio.wait_for(task, timeout)      weft_join_until(t, weft_now() + ns, &result)
 *   await asyncio.sleep(0)               weft_yield()
 *   loop.call_later(delay, cb, arg)      weft_timer_create(rt, cb, arg, &tm);
 *                                        weft_timer_arm(tm, weft_now() + ns)
 *
 * A task body is an ordinary C function running on its own stack. It may block (join,
 * sleep, yield) anywhere in its call chain: blocking parks the task, never the worker thread.
 *
 * Conventions (as in libuv):
 * - Calls that can fail return 0 or a negative errno value (-EINVAL, -ENOMEM, -EAGAIN,
 *   -EPERM, -EDEADLK, -ESHUTDOWN, -ETIMEDOUT). Calls that return a pointer return NULL and
 *   set errno.
 * - No call aborts on input a caller could pass by mistake: each such case is listed
 *   next to the declaration and answered with its error code.
 * - Names starting with `weft_` are public; everything else in the library is hidden.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h> /* struct sockaddr, socklen_t (the I/O calls) */
#include <sys/types.h>  /* ssize_t */
#include <sys/uio.h>    /* struct iovec */

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* WEFT_VERSION_MAJOR, _MINOR, _PATCH: generated from CMakeLists.txt's project(). */
#include "weft/version.h"

typedef struct weft_runtime weft_runtime; /* opaque */
typedef struct weft_task weft_task;       /* opaque join handle */
typedef void *(*weft_fn)(void *arg);

#define WEFT_FOREVER UINT64_MAX /* a deadline that never comes */

/* The monotonic clock (CLOCK_MONOTONIC) in nanoseconds: the time base of every deadline. */
WEFT_API uint64_t weft_now(void);

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
     * with EAGAIN. 0 = WEFT_DEFAULT_MAX_TASKS. At most WEFT_MAX_MAX_TASKS. Exact when
     * max_tasks < 1024 * workers; above that, workers count spawns in batches of 64
     * (no shared cache line per spawn), and a spawn may fail while up to 128 slots per
     * worker are held unused by other workers. */
    size_t max_tasks;
    /* WEFT_CONFIG_* bits; 0 = the defaults. Unknown bits: -EINVAL. */
    unsigned flags;
    /* Chaos scheduling, for stress tests: a non-zero seed perturbs the scheduler's
     * decisions (steal victims and sizes, extra yields at spawns and joins, joins not
     * inlined, delays before parking) from that seed, so that races show up, and show
     * up again with the same seed. 0 = the seed in the environment variable WEFT_CHAOS
     * if set (announced once on stderr), else off. README.md, "Testing and stress". */
    uint64_t chaos_seed;
    /* The blocking pool (weft_spawn_blocking): most threads it runs at once; 0 =
     * WEFT_DEFAULT_BLOCKING_THREADS. At most WEFT_MAX_BLOCKING_THREADS. */
    unsigned max_blocking_threads;
    /* How long an idle pool thread waits for work before it exits, in ms; 0 =
     * WEFT_DEFAULT_BLOCKING_KEEP_ALIVE_MS. */
    unsigned blocking_keep_alive_ms;
    /* A run slice longer than this (in microseconds) counts in slices_long (see
     * "Metrics" below): a task that keeps its worker that long without parking or
     * yielding delays every other task and timer there. 0 = WEFT_DEFAULT_LONG_SLICE_US. */
    unsigned long_slice_us;
} weft_config;

/* Inline joins (the default): weft_join of a task that has not started yet and is the
 * next task its worker would run (it was spawned last by the joiner and no other worker
 * took it) runs that task's function right there, on the joiner's stack, as Cilk and
 * oneTBB do: a function call instead of a fresh stack, two switches, a park and a wake.
 * The task is still itself (its id, name, spawns, joins and sleeps are its own); it is
 * only inlined when at least 3/4 of stack_size is free on the joiner's stack, so a task
 * run this way may have 3/4 of stack_size rather than all of it. This flag turns it off:
 * every task then runs on a stack of its own. */
#define WEFT_CONFIG_NO_INLINE_JOIN 1u
/* Ignore WEFT_CHAOS in the environment: for programs (and tests) that depend on the
 * exact order in which one worker runs its tasks, which chaos scheduling perturbs. */
#define WEFT_CONFIG_NO_CHAOS 2u

#define WEFT_MAX_WORKERS        1024u
#define WEFT_DEFAULT_STACK_SIZE ((size_t)64 << 10) /* 64 KiB */
#define WEFT_MIN_STACK_SIZE     ((size_t)16 << 10) /* 16 KiB */
#define WEFT_MAX_STACK_SIZE     ((size_t)1 << 30)  /* 1 GiB */
#define WEFT_DEFAULT_MAX_TASKS  ((size_t)1 << 18)  /* 262,144 */
#define WEFT_MAX_MAX_TASKS      ((size_t)1 << 26)  /* 67,108,864 */
#define WEFT_DEFAULT_BLOCKING_THREADS       512u   /* as Tokio's max_blocking_threads */
#define WEFT_MAX_BLOCKING_THREADS           65536u
#define WEFT_DEFAULT_BLOCKING_KEEP_ALIVE_MS 10000u /* as Tokio's thread_keep_alive */

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
 * NULL, or a cfg field is out of range), -ENOMEM, -EAGAIN (threads could not be created),
 * -EMFILE / -ENFILE (no fd for the runtime's epoll instance and eventfd). */
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
 * Calls from other threads may overlap it: weft_spawn_on, weft_block_on,
 * weft_join(_until), weft_detach, weft_timer_create/arm/cancel/destroy,
 * weft_spawn_blocking_on, weft_runtime_stats_get and weft_trace_start/stop count
 * themselves as they enter rt, and destroy frees nothing until every call that entered
 * has returned (a spawn or arm that arrives after destroy began fails with ESHUTDOWN). "Entered" is a few instructions into the call, and once
 * no task of rt is alive destroy may finish in microseconds: so a call from another
 * thread must either return before destroy is called, or begin while a task of rt is
 * still alive and keep it alive until then (a "gate" task, as
 * tests/stress/stress_lifecycle.c does). A call that starts later uses freed memory.
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

/* weft_join with a deadline (weft_now() time base; WEFT_FOREVER waits like weft_join).
 * Returns what weft_join returns, or -ETIMEDOUT when the deadline passed first: the
 * handle is then still valid, to join (with or without a deadline) or detach later. A
 * task that completes at the deadline may be reported either way, never both. Also
 * -ENOMEM (no memory for the timer; the handle stays valid). */
WEFT_API int weft_join_until(weft_task *t, uint64_t deadline_ns, void **result);

/* Releases the handle without waiting: the task runs to completion and its result is
 * dropped. NULL is ignored. A detach while a join holds the handle (one waiting, or
 * taking the result) is ignored, and stays ignored if that join is a weft_join_until
 * that then times out: the handle is the joiner's again, to join or detach.
 * Joining and detaching one handle from two threads at once is a misuse. weft keeps
 * it safe while the handle is valid: exactly one of them takes the handle (the join
 * returns 0; or it returns -EINVAL and the detach took it; or it is a weft_join_until
 * that returns -ETIMEDOUT and the detach takes the handle after it: then the joiner
 * must not use it again), nothing is freed twice, and a call
 * that read the handle before the other consumed it never acts on a task spawned
 * into the reused object afterwards (task objects carry a generation). A call that
 * starts after the handle was consumed is undefined, like a double free. */
WEFT_API void weft_detach(weft_task *t);

/* Lets every other runnable task of the current worker run first, then continues.
 * Outside a task it does nothing. */
WEFT_API void weft_yield(void);

/* Sleeps until weft_now() >= deadline_ns: never returns early. Inside a task it parks the
 * task; the worker runs other tasks meanwhile. From any other thread it sleeps that
 * thread. A deadline already past returns at once. Returns 0, or -EINVAL (deadline_ns
 * is WEFT_FOREVER: a sleep needs a deadline), -ENOMEM (no memory for the timer).
 *
 * Precision: a worker fires its timers between tasks and, when idle, parks in the
 * kernel until its earliest deadline, so on an idle machine a sleep wakes within tens of
 * microseconds of its deadline (bench/RESULTS.md has the figures). A task that runs
 * for long without blocking or yielding delays the timers of its worker. */
WEFT_API int weft_sleep_until(uint64_t deadline_ns);

/* weft_sleep_until(weft_now() + ms * 1,000,000). -EINVAL if that is past the clock's
 * range. */
WEFT_API int weft_sleep_ms(uint64_t ms);

/* ---- Timer handles ------------------------------------------------------------------
 *
 * A callback that runs on a worker at a deadline, and can be re-armed or cancelled from
 * any thread: Go's time.AfterFunc, libuv's uv_timer_t. For idle-connection reaping and
 * per-request timeouts: arm on every request, re-arm on activity, cancel on completion.
 * Arming and cancelling from a task cost no system call and take no global lock: the
 * timer goes to the wheel of the worker the task runs on.
 *
 *   static void on_idle(weft_timer *tm, void *conn) { connection_close(conn); }
 *   weft_timer *tm;
 *   weft_timer_create(weft_runtime_current(), on_idle, conn, &tm);
 *   weft_timer_arm(tm, weft_now() + 30 * 1000000000ull);   // and again on activity
 *   ...
 *   weft_timer_destroy(tm);   // after it returns, on_idle never runs: free conn
 *
 * The callback runs on a worker thread between tasks, not in a task: it must be short
 * and must not block (no join, no sleep, no lock held for long). weft_spawn fails there
 * with EPERM; use weft_spawn_on(weft_runtime_current(), ...) to start blocking work. It
 * may arm, cancel or destroy timers, its own included (a periodic timer re-arms itself).
 * Callbacks of one handle never run concurrently: a firing that comes due while the
 * previous callback still runs (re-armed on another worker) runs right after it. */

typedef struct weft_timer weft_timer; /* opaque */
typedef void (*weft_timer_fn)(weft_timer *timer, void *arg);

/* The runtime of the calling worker thread (in a task or a timer callback), or NULL on
 * any other thread. */
WEFT_API weft_runtime *weft_runtime_current(void);

/* Creates a disarmed timer of rt that will call fn(timer, arg). Any thread. Returns 0, or
 * -EINVAL (rt, fn or out is NULL), -ENOMEM. Handles that are not destroyed are freed by
 * weft_runtime_destroy (the pointer is then invalid). Timers do not delay a shutdown:
 * while weft_runtime_destroy waits for the tasks, armed timers still fire; once it
 * returns none fires or runs, and the timers still armed are dropped. So a callback's
 * argument may be freed after weft_runtime_destroy returns (or after the handle's
 * weft_timer_destroy), not merely once the tasks are done. */
WEFT_API int weft_timer_create(weft_runtime *rt, weft_timer_fn fn, void *arg, weft_timer **out);

/* Arms the timer to fire at deadline_ns (weft_now() time base; a deadline already past
 * fires at once), replacing any earlier arming that has not fired: a firing is never
 * doubled. Any thread. Returns 0, or -EINVAL (timer is NULL, or deadline_ns is
 * WEFT_FOREVER: to disarm, cancel), -ENOMEM (no memory for the timer). From a thread that
 * is not one of the runtime's workers also -ESHUTDOWN (the runtime is shutting down) and
 * -EAGAIN (max_tasks tasks are alive: the arm needs a task, see below). On -ENOMEM,
 * -ESHUTDOWN and -EAGAIN the earlier arming is cancelled all the same.
 * From a task or a callback, the arming is in place when the call returns. From any
 * other thread it is carried to a worker by a small task and takes effect a moment
 * later (a cancel or re-arm meanwhile supersedes it); if that worker then has no memory
 * for it, the arm is dropped. */
WEFT_API int weft_timer_arm(weft_timer *timer, uint64_t deadline_ns);

/* Stops the pending firing, if any. Any thread. Returns 1 if it stopped one, 0 if none
 * was pending (never armed, already fired, cancelled), -EINVAL (timer is NULL). A
 * callback already running is not waited for; none starts after this returns. */
WEFT_API int weft_timer_cancel(weft_timer *timer);

/* Cancels the timer and frees it. Any thread, the timer's own callback included. If the
 * callback is running on another thread, waits for it to return (callbacks are short),
 * so that arg may be freed once this returns; except when called from a timer callback
 * (its own or another's), which does not wait: two callbacks destroying each other's
 * timers would otherwise wait for each other forever. Returns 0, or -EINVAL (timer is
 * NULL).
 * Using the handle afterwards, destroying it twice included, is undefined (like free). */
WEFT_API int weft_timer_destroy(weft_timer *timer);

/* ---- I/O: sockets and pipes that park the task, not the worker ----------------------
 *
 * A task that reads a socket parks until data arrives; its worker runs other tasks
 * meanwhile. One epoll instance per runtime, driven by the workers themselves (no I/O
 * thread): an idle worker blocks in epoll_wait, busy workers look every 61 scheduling
 * rounds, and readiness wakes the waiting task. docs/ARCHITECTURE.md, "I/O", has the
 * model; README.md, "I/O", what parks and what still blocks a worker.
 *
 * Every call below takes a deadline (weft_now() time base; WEFT_FOREVER: none) and
 * returns -ETIMEDOUT, never early, when it passes first; a deadline already past makes
 * it a poll (one try, no wait). Inside a task a wait parks the task; on any other
 * thread it blocks that thread in poll(2), so an application's own threads may use
 * them too. A wait that fails has not happened: a read that times out read nothing.
 *
 * What weft does to an fd: sockets are read and written with MSG_DONTWAIT (and writes
 * with MSG_NOSIGNAL: a peer that went away gives -EPIPE, never SIGPIPE), leaving the
 * fd's flags alone; other fds (pipes, listening sockets, a socket being connected) are
 * made O_NONBLOCK on first use. The first wait on an fd registers it with the runtime's
 * epoll instance (edge-triggered); it stays registered until weft_fd_close.
 *
 * Closing. An fd weft has waited on should be closed with weft_fd_close: it wakes the
 * tasks waiting on it (-ECANCELED). After a plain close(2) weft still never reports a
 * readiness of the old fd to a new one that reuses the number, and waits on the new
 * fd work; but a task still waiting on the closed fd is left to its deadline.
 *
 * Errors common to all: -EBADF (fd < 0, or not open), -ETIMEDOUT, -EINVAL (a NULL
 * buffer with a non-zero length), -ENOMEM (no memory for the wait's timer), and the
 * errno of the system call itself (-ECONNRESET, -EPIPE, ...), negated.
 */
#define WEFT_IN  1u /* readable, or the peer hung up, or an error is pending */
#define WEFT_OUT 2u /* writable, or an error is pending */

/* Waits until fd is ready for one of `events` (WEFT_IN | WEFT_OUT). Returns the ready
 * subset (> 0), or -ETIMEDOUT, -EBADF, -EINVAL (events is 0 or has unknown bits),
 * -EBUSY (another task already waits on this fd for the same event: one reader and one
 * writer per fd at a time), -ECANCELED (weft_fd_close closed it meanwhile). Readiness
 * is a hint, as with epoll: the read that follows may still find nothing (EAGAIN). */
WEFT_API int weft_fd_wait(int fd, unsigned events, uint64_t deadline_ns);

/* read(2) on fd, waiting for data: returns as soon as some bytes are there (fewer than
 * len is normal), 0 at end of file, or a negative errno (-ETIMEDOUT and nothing read;
 * -EBUSY, -ECANCELED as weft_fd_wait). */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, uint64_t deadline_ns);

/* write(2) of all len bytes, waiting for room as often as needed. Returns len; or, when
 * the deadline, a close or an error stops it after part was written, the bytes written
 * so far (< len); or a negative errno when nothing was written. */
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len, uint64_t deadline_ns);

/* weft_write of several buffers in order (writev(2)), for a header and a body without a
 * copy: all of them, or the bytes written so far, or a negative errno, as weft_write.
 * iov may be changed (advanced past what was written). -EINVAL: iovcnt < 0 or more than
 * IOV_MAX. */
WEFT_API ssize_t weft_writev(int fd, struct iovec *iov, int iovcnt, uint64_t deadline_ns);

/* accept4(2) on a listening socket, waiting for a connection. Returns the new fd
 * (non-blocking, close-on-exec) and fills addr/addrlen (both may be NULL), or a
 * negative errno. -EMFILE / -ENFILE (out of fds) are returned at once, never retried:
 * the connection stays queued in the kernel, and a server should back off (sleep a few
 * ms, or close idle connections) before it accepts again, else it spins.
 * -ECONNABORTED: a connection was reset while queued; simply accept again.
 * To stop an accept loop from another task or thread, set a flag the loop checks, then
 * weft_fd_close the listening fd: a parked accept wakes with -ECANCELED, and a loop that
 * was not parked sees the flag before it calls again (else its next call gets -EBADF,
 * or a new file that reused the number). */
WEFT_API int weft_accept(int listen_fd, struct sockaddr *addr, socklen_t *addrlen,
                         uint64_t deadline_ns);

/* connect(2) of a socket, waiting until the connection is made. Returns 0, or a negative
 * errno: -ECONNREFUSED, -ETIMEDOUT (the deadline or the kernel's), -EINVAL (addr NULL),
 * ... The socket is left non-blocking. After -ETIMEDOUT the attempt may still be in
 * progress: close the socket. */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                          uint64_t deadline_ns);

/* Wakes every task waiting on fd with -ECANCELED (in every runtime), forgets fd, and
 * closes it. Any thread, at any time: the fd calls touch no runtime but the calling
 * task's, and weft_fd_close reaches the others through a process-wide list that
 * weft_runtime_destroy leaves before it frees anything, so they may overlap a destroy.
 * Returns 0, or the negated errno of close(2) (-EBADF). To wake a reader without
 * closing (to let it still reply), shutdown(fd, SHUT_RD) on a socket makes its wait
 * return readable and its read return 0. */
WEFT_API int weft_fd_close(int fd);

/* A TCP listening socket bound to host:port (host NULL or "": every local address,
 * IPv6 and IPv4; port 0: an ephemeral port, see weft_socket_port). SO_REUSEADDR is set,
 * the backlog is `backlog` (0: SOMAXCONN). Returns the fd (non-blocking, close-on-exec)
 * or a negative errno: -EADDRINUSE, -EADDRNOTAVAIL (host has no usable address),
 * -EINVAL (port > 65535, backlog < 0). A host name is resolved with getaddrinfo(3),
 * on the blocking pool when called from a task. */
WEFT_API int weft_tcp_listen(const char *host, unsigned port, int backlog);

/* A TCP connection to host:port (a name or a numeric address; every address the name
 * resolves to is tried in turn until the deadline), with TCP_NODELAY set. Returns the
 * fd (non-blocking, close-on-exec) or a negative errno: -ECONNREFUSED, -ETIMEDOUT,
 * -EADDRNOTAVAIL (no address for host), -EINVAL (host NULL, port 0 or > 65535).
 * Resolution runs on the blocking pool when called from a task. */
WEFT_API int weft_tcp_connect(const char *host, unsigned port, uint64_t deadline_ns);

/* The local port a socket is bound to (after weft_tcp_listen with port 0), or a
 * negative errno (-EBADF, -ENOTSOCK, -EAFNOSUPPORT for a socket that is not IP). */
WEFT_API int weft_socket_port(int fd);

/* ---- Blocking calls: a thread pool beside the workers -------------------------------
 *
 * For calls that block a thread and have no non-blocking form: disk I/O, getaddrinfo,
 * a C library that blocks. fn(arg) runs on a pool thread; the handle joins (or
 * detaches) like any task's, from a task or a thread, and weft_runtime_destroy waits
 * for calls still running. The pool starts threads on demand, up to
 * cfg.max_blocking_threads; a thread idle for cfg.blocking_keep_alive_ms exits. At the
 * cap, calls wait in a FIFO queue for a thread; the queue is bounded because each call
 * in it is a live task (spawns past max_tasks fail with EAGAIN). fn runs on a plain
 * thread, not in a task: weft_spawn fails there (EPERM); weft_spawn_on and
 * weft_join work from it as from any thread. */

/* From a task: fn(arg) on rt's pool, where rt is the task's runtime. NULL with errno:
 * EPERM (no current task: use weft_spawn_blocking_on), EINVAL (fn is NULL), and the
 * errors of weft_spawn. */
WEFT_API weft_task *weft_spawn_blocking(weft_fn fn, void *arg);

/* From any thread: fn(arg) on rt's pool. NULL with errno as weft_spawn_on's. */
WEFT_API weft_task *weft_spawn_blocking_on(weft_runtime *rt, weft_fn fn, void *arg);

/* ---- Coordination between tasks: mutex, condition, semaphore, wait group, event -----
 *
 * Each waits by parking the task (never the worker) and also works from any other
 * thread (blocking that thread), across runtimes too: an application's own threads can
 * use them to talk to tasks. They are inline objects whose zeroed state is valid (Go's
 * useful zero value): `weft_mutex m = {0};` or a calloc'ed struct needs no init call;
 * `_init` zeroes. Waiters are served first come, first served. A wait with a deadline
 * (weft_now() time base, WEFT_FOREVER: none) returns -ETIMEDOUT, never early, and then
 * has not happened (took no permit, holds no lock it did not hold before). No call has
 * spurious wake-ups. `_destroy` returns -EBUSY while the object is held or waited on
 * (and changes nothing; a waiter counts until it has returned from its call), else 0;
 * afterwards the memory may be reused (or re-initialised). Free or reuse an object only
 * after its `_destroy` returned 0, a zeroed one too: a call that woke a waiter may still
 * be finishing with the object when the waiter returns, and destroy waits for it.
 * Fields are private. ThreadSanitizer sees every hand-off (they are built on atomics).
 */
typedef struct weft_mutex { uint64_t private_[6]; } weft_mutex;
typedef struct weft_cond { uint64_t private_[4]; } weft_cond;
typedef struct weft_sem { uint64_t private_[4]; } weft_sem;
typedef struct weft_waitgroup { uint64_t private_[4]; } weft_waitgroup;
typedef struct weft_event { uint64_t private_[4]; } weft_event;

/* A mutex for tasks and threads. Fairness: a released mutex goes to whoever takes it
 * first (a running task may barge ahead of the waiters: that keeps the lock hot), except
 * that once the oldest waiter has waited longer than 1 ms the unlock hands the mutex to
 * it directly (Go's starvation mode), so no waiter starves. It records its owner (the
 * task, or the thread): an unlock by anyone else is -EPERM. Not recursive: locking it
 * again from its owner is -EDEADLK. */
WEFT_API void weft_mutex_init(weft_mutex *m);
/* 0, or -EINVAL (m NULL), -EDEADLK. Not a cancellation point (as pthread_mutex_lock). */
WEFT_API int weft_mutex_lock(weft_mutex *m);
/* weft_mutex_lock with a deadline: also -ETIMEDOUT. */
WEFT_API int weft_mutex_lock_until(weft_mutex *m, uint64_t deadline_ns);
/* 0, or -EBUSY when held (by anyone, the caller included), -EINVAL. */
WEFT_API int weft_mutex_trylock(weft_mutex *m);
/* 0, or -EPERM (the caller does not hold it), -EINVAL. */
WEFT_API int weft_mutex_unlock(weft_mutex *m);
WEFT_API int weft_mutex_destroy(weft_mutex *m);

/* A condition variable, used with one weft_mutex at a time. */
WEFT_API void weft_cond_init(weft_cond *c);
/* Releases m (which the caller must hold: else -EPERM, and nothing happens), waits for a
 * signal or the deadline, and takes m again before it returns, whatever it returns.
 * 0, or -ETIMEDOUT, -EPERM, -EINVAL. No lost wake-ups: a signal after the caller
 * released m wakes it (or another waiter that was waiting before it). */
WEFT_API int weft_cond_wait(weft_cond *c, weft_mutex *m, uint64_t deadline_ns);
/* Wake the oldest waiter / every waiter. 0 (also when none waits), or -EINVAL. */
WEFT_API int weft_cond_signal(weft_cond *c);
WEFT_API int weft_cond_broadcast(weft_cond *c);
WEFT_API int weft_cond_destroy(weft_cond *c);

/* A counting semaphore; a release with waiters hands the permit to the oldest. */
WEFT_API void weft_sem_init(weft_sem *s, uint64_t permits);
/* 0, or -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_sem_acquire(weft_sem *s, uint64_t deadline_ns);
/* 0, or -EAGAIN when no permit is free (even if one is about to be handed to a waiter). */
WEFT_API int weft_sem_try_acquire(weft_sem *s);
/* 0, or -EOVERFLOW (2^63 - 1 permits already), -EINVAL. */
WEFT_API int weft_sem_release(weft_sem *s);
WEFT_API int weft_sem_destroy(weft_sem *s);

/* Go's sync.WaitGroup: a counter; wait returns once it is 0. */
WEFT_API void weft_waitgroup_init(weft_waitgroup *wg);
/* Adds delta (may be negative). 0, or -EINVAL (the counter would go below 0: unchanged,
 * or wg NULL). Reaching 0 wakes every waiter. */
WEFT_API int weft_waitgroup_add(weft_waitgroup *wg, int64_t delta);
WEFT_API int weft_waitgroup_done(weft_waitgroup *wg); /* add(-1) */
/* 0 at once if the counter is 0, else when it reaches 0; or -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_waitgroup_wait(weft_waitgroup *wg, uint64_t deadline_ns);
WEFT_API int weft_waitgroup_destroy(weft_waitgroup *wg);

/* asyncio.Event: a flag that wait() waits for. */
WEFT_API void weft_event_init(weft_event *e);
WEFT_API int weft_event_set(weft_event *e);   /* wakes every waiter; 0 or -EINVAL */
WEFT_API int weft_event_clear(weft_event *e); /* 0 or -EINVAL */
WEFT_API int weft_event_is_set(const weft_event *e); /* 1, 0, or -EINVAL */
/* 0 at once if set, else once set (a set followed at once by a clear still wakes the
 * waiters that were waiting); or -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_event_wait(weft_event *e, uint64_t deadline_ns);
WEFT_API int weft_event_destroy(weft_event *e);

/* ---- Channels and select ------------------------------------------------------------
 *
 * Go's channels: copy elem_size bytes from sender to receiver; FIFO for waiters on each
 * side; many senders and receivers at once, from tasks and from any thread. */
typedef struct weft_chan weft_chan; /* opaque */

/* capacity 0: unbuffered (a send waits for a receiver, as in Go). 0, or -EINVAL
 * (elem_size 0 or above WEFT_CHAN_ELEM_MAX, out NULL, capacity above
 * WEFT_CHAN_CAPACITY_MAX), -ENOMEM. */
#define WEFT_CHAN_ELEM_MAX     ((size_t)1 << 16)
#define WEFT_CHAN_CAPACITY_MAX ((size_t)1 << 30)
WEFT_API int weft_chan_create(size_t elem_size, size_t capacity, weft_chan **out);
/* 0 once a receiver took it or it is buffered; -EPIPE (closed, before or while waiting:
 * not sent), -ETIMEDOUT (not sent), -EINVAL (ch or elem NULL). */
WEFT_API int weft_chan_send(weft_chan *ch, const void *elem, uint64_t deadline_ns);
/* 0 with *elem filled; -EPIPE (closed and drained), -ETIMEDOUT (took nothing), -EINVAL. */
WEFT_API int weft_chan_recv(weft_chan *ch, void *elem, uint64_t deadline_ns);
/* Without waiting: -EAGAIN when full / empty (unbuffered: no partner waiting now). */
WEFT_API int weft_chan_try_send(weft_chan *ch, const void *elem);
WEFT_API int weft_chan_try_recv(weft_chan *ch, void *elem);
/* After close: send -> -EPIPE; recv drains what is buffered, then -EPIPE. Every waiter
 * wakes (senders with -EPIPE, receivers with -EPIPE). Closing twice: -EPIPE. -EINVAL. */
WEFT_API int weft_chan_close(weft_chan *ch);
/* Frees ch. -EBUSY (and nothing freed) while a task or thread waits on it; -EINVAL. */
WEFT_API int weft_chan_destroy(weft_chan *ch);

#define WEFT_CASE_SEND 1
#define WEFT_CASE_RECV 2
#define WEFT_CASE_FD   3 /* ready when fd has one of `events` (WEFT_IN | WEFT_OUT) */
typedef struct weft_case {
    int kind;        /* WEFT_CASE_*; 0 = an unused slot */
    weft_chan *chan; /* SEND, RECV */
    void *elem;      /* SEND: what to send; RECV: where to store */
    int fd;          /* FD */
    unsigned events; /* FD: WEFT_IN | WEFT_OUT */
    int result;      /* out: 0, -EPIPE (closed), or FD's ready mask (or -EBADF: fd not
                      * open; -ECANCELED: weft_fd_close closed it meanwhile) */
} weft_case;
/* Stack: about 2 KiB of the calling task's (more cases than 4 use the heap). */
/* Waits until one case can proceed, performs it (exactly one), returns its index and
 * sets its `result`; among several ready ones picks at random, as Go does. A closed
 * channel's RECV case is ready (result -EPIPE), and so is its SEND case (-EPIPE, not
 * sent). A deadline already past makes it a poll. -ETIMEDOUT, -EINVAL (cases NULL with
 * n > 0, n 0 with no deadline, n above WEFT_SELECT_MAX, an unknown kind, a NULL chan
 * or elem, a bad fd or events), -EBUSY (an FD case's fd already has a task waiting for
 * that event), -ENOMEM. Unused slots (kind 0) are skipped. */
#define WEFT_SELECT_MAX 64
WEFT_API int weft_select(weft_case *cases, size_t n, uint64_t deadline_ns);

/* ---- Cancellation -------------------------------------------------------------------
 *
 * Cooperative and sticky, as asyncio's task.cancel() and Trio's checkpoints: a cancel
 * marks the task; from then on, until the task returns, every cancellation point it
 * reaches returns -ECANCELED: at once if the task was cancelled before the call, and
 * promptly (the task is woken) if the cancel comes while it waits. The task still runs
 * to its end, and its result is joined as usual. The cancellation points are the calls
 * that may wait: weft_sleep_until and weft_sleep_ms, weft_join and weft_join_until,
 * weft_fd_wait, weft_read, weft_write, weft_writev, weft_accept, weft_connect,
 * weft_tcp_connect, weft_tcp_listen, weft_chan_send and weft_chan_recv, weft_select,
 * weft_cond_wait, weft_sem_acquire, weft_waitgroup_wait, weft_event_wait,
 * weft_mutex_lock_until, weft_group_next, weft_group_wait, and weft_group_spawn when
 * it has to wait for a slot. Not: weft_mutex_lock (as pthread_mutex_lock is not), weft_yield, the try_
 * calls, weft_group_destroy. Only tasks are cancelled: a plain thread's waits never
 * return -ECANCELED for a cancellation. (-ECANCELED also reports an fd closed under a
 * wait by weft_fd_close, to tasks and threads alike, as round 1 fixed it: a loop that
 * must tell the two apart asks weft_cancelled().)
 *
 * A cancel that races the event a call waits for is decided once: either the event
 * won (the call returns as if there had been no cancel: a received element is
 * returned, a lock is held) and the next cancellation point returns -ECANCELED, or the
 * cancel won and the call has not happened (a recv took nothing, a send sent nothing,
 * a join left the handle valid, a cond_wait holds the mutex again). A weft_write that
 * had written part of its buffer returns the bytes written.
 *
 * A task cancelled before it first ran still runs (its argument may own resources that
 * only it frees): its first cancellation point returns -ECANCELED. A task that runs a
 * blocking-pool call (weft_spawn_blocking) is the call: the call runs to its end (a
 * thread cannot be interrupted safely), and its handle joins with the call's result.
 *
 * A join carries the cancel on: a weft_join (or weft_join_until) that returns
 * -ECANCELED has cancelled the task it joins, as cancelling an asyncio task cancels the
 * task it awaits (the handle stays valid: join it again, shielded, to wait for the
 * end). If the joiner was running that task inline (WEFT_CONFIG_NO_INLINE_JOIN above),
 * the task is cancelled the same way, but being on the joiner's stack it must return
 * before the join can: the join then returns its result (0), and the joiner's next
 * cancellation point returns -ECANCELED. Either way the joined task's fate is the same.
 */

/* Requests cancellation of t; any thread, any number of times. 0 (also for a task that
 * has finished, where it has no effect), or -EINVAL: t is NULL, or (when it can still be
 * seen) detached, its handle no longer the caller's. Like weft_detach, it is safe
 * against a join of t that races it, and never acts on a task spawned into the object
 * later; a call that starts after the handle was consumed is undefined. */
WEFT_API int weft_cancel(weft_task *t);

/* 1 if the calling task has been cancelled (whether or not shielded), or, while it runs
 * inline in a join, its joiner has; 0 if not, or outside a task: for long computations
 * that reach no cancellation point. */
WEFT_API int weft_cancelled(void);

/* on != 0: shields the calling task: its cancellation points behave as if it had not
 * been cancelled (for cleanup that must wait: flushing a reply, closing a session);
 * on == 0 lifts the shield, and a cancel that came meanwhile applies from the next
 * cancellation point. Returns the previous setting (0 or 1), so that
 * `int old = weft_cancel_shield(1); ...; weft_cancel_shield(old);` nests; -EPERM
 * outside a task. */
WEFT_API int weft_cancel_shield(int on);

/* ---- Task groups: structured concurrency ---------------------------------------------
 *
 * asyncio.TaskGroup, gather and as_completed; Tokio's JoinSet; Go's errgroup with
 * SetLimit. A group owns its members (there is no handle to join or detach): their
 * results come out of weft_group_next in the order they finished, or are dropped by
 * weft_group_wait. weft_group_destroy cancels what still runs and waits for every
 * member, so no member outlives its group. A member may own a group of its own
 * (groups nest); cancelling the outer member makes its group calls return -ECANCELED,
 * and its weft_group_destroy then cancels and waits for the inner members.
 * Cancellation of a group is sticky, like a task's: after weft_group_cancel (or once
 * weft_group_destroy has begun) a member spawned into the group starts cancelled. A
 * group may be used from any number of tasks and threads, and its members may run on
 * several runtimes; weft_group_destroy must come last. A member's task, and its result
 * until read, belong to the runtime it ran on: destroy (or empty, by weft_group_wait) a
 * group before destroying a runtime its members ran on, and make no call on the group
 * while such a runtime is being destroyed (weft_runtime_destroy waits for the members
 * to finish, not for their results to be read).
 */
typedef struct weft_group weft_group; /* opaque */

/* 0, or -EINVAL (out NULL), -ENOMEM. */
WEFT_API int weft_group_create(weft_group **out);

/* Spawns fn(arg) into g, in the current task's runtime. With a limit set and that many
 * members running, first waits for a slot (first come, first served; a cancellation
 * point), holding nothing meanwhile. 0, or: -EINVAL (g or fn NULL), -EPERM (no current
 * task: use weft_group_spawn_on), -EAGAIN (max_tasks tasks are alive), -ENOMEM,
 * -ESHUTDOWN (the runtime is being destroyed), -ECANCELED (the caller was cancelled
 * while it waited for a slot). On an error nothing was spawned and arg is still the
 * caller's. A member that cannot start at all (no stack could be mapped) never runs:
 * weft_group_next reports it with -ENOMEM, and its arg is lost to it (as with
 * weft_join); a caller whose arg owns resources keeps a reference of its own. */
WEFT_API int weft_group_spawn(weft_group *g, weft_fn fn, void *arg);
/* Likewise in rt, from any thread (a thread that is not a task waits for a slot by
 * blocking). -EINVAL also for rt NULL. */
WEFT_API int weft_group_spawn_on(weft_group *g, weft_runtime *rt, weft_fn fn, void *arg);

/* At most max_running members run at once (0 = no limit, the default). Lowering it does
 * not stop members already running; raising it lets waiting spawns go. 0, -EINVAL. */
WEFT_API int weft_group_set_limit(weft_group *g, size_t max_running);

/* Waits for the next member to finish (or takes one that finished before) and stores
 * its return value in *result (result may be NULL): completion order, as
 * asyncio.as_completed and JoinSet::join_next. 0; -ENOMEM (that member could not start:
 * no stack could be mapped; it is consumed, *result is NULL); -ECHILD (no member is
 * left: none running and no result unread); -ETIMEDOUT, -ECANCELED (nothing taken);
 * -EINVAL (g NULL). Several callers may wait at once: each finished member goes to one
 * of them. A member may read its group's results; it counts as running itself, so the
 * last member left waiting in weft_group_next waits until its deadline. */
WEFT_API int weft_group_next(weft_group *g, void **result, uint64_t deadline_ns);

/* Waits until no member runs, then drops every unread result (weft_group_next then
 * returns -ECHILD until a new member is spawned). 0 (also for an empty group),
 * -ETIMEDOUT, -ECANCELED (nothing dropped), -EINVAL, -EDEADLK (the caller is a member
 * of g). */
WEFT_API int weft_group_wait(weft_group *g, uint64_t deadline_ns);

/* weft_cancel on every member running now, and on every member spawned from now on
 * (sticky). 0, -EINVAL. */
WEFT_API int weft_group_cancel(weft_group *g);

/* Cancels the members still running (and any they spawn into g meanwhile), waits for
 * every one (not a cancellation point: it always waits), and for every other call on g
 * to return (a weft_group_next then returns -ECHILD, a weft_group_wait 0), drops unread
 * results and frees g. 0, or -EINVAL (g NULL), -EDEADLK (the caller is a member of g:
 * it would wait for itself; nothing changed). No call on g may start once it has been
 * called. */
WEFT_API int weft_group_destroy(weft_group *g);

/* ---- Introspection ---------------------------------------------------------------- */

/* The current task's id (unique in the process, never 0), or 0 outside a task. */
WEFT_API uint64_t weft_current_id(void);

/* Names the current task, for stack-overflow reports and debuggers; the name is copied
 * and cut to WEFT_NAME_MAX - 1 bytes. Returns 0, or -EINVAL (name is NULL), -EPERM (no
 * current task). */
#define WEFT_NAME_MAX 32
WEFT_API int weft_set_name(const char *name);

/* ---- Metrics --------------------------------------------------------------------------
 *
 * Counters and two latency histograms kept by every worker, cheap enough to stay on in
 * production: each is written by its worker's thread alone (no shared cache line per
 * event), and the timings use the CPU's cycle counter (one read per pass through the
 * scheduler; bench/RESULTS.md has the cost on fib and yield). A run slice is the time
 * from a worker's scheduler handing its thread to a task until it hands it to the next
 * task or runs out of work (tasks that yield to each other directly stay in one slice:
 * the scheduler did not get its thread back); a scheduling delay is the time
 * from a task becoming runnable (spawned, woken) until it runs, sampled on one schedule
 * in 8. Histograms have WEFT_HISTOGRAM_BUCKETS log-scaled buckets: bucket 0 counts
 * durations below 2^10 ns (~1 us), bucket i (1 <= i < 23) those in [2^(9+i), 2^(10+i))
 * ns, bucket 23 those of 2^32 ns (~4.3 s) or more. Read while tasks run, a report is
 * approximate (each counter is exact, they are not read at one instant; a run slice is
 * counted once it has ended); once the runtime is quiet it is exact: tasks_spawned =
 * tasks_finished + the tasks not finished (running, runnable or parked), and the sum of
 * slice_histogram is `slices`. Delays are sampled where a worker of the runtime makes a
 * task runnable (spawns and wake-ups from its tasks, timers, I/O); wake-ups from other
 * threads are not sampled.
 */
#define WEFT_HISTOGRAM_BUCKETS 24
#define WEFT_DEFAULT_LONG_SLICE_US 10000

typedef struct weft_worker_stats {
    uint64_t busy_ns;        /* time in run slices */
    uint64_t slices;         /* run slices */
    uint64_t slices_long;    /* of which longer than cfg.long_slice_us */
    uint64_t parks;          /* times the worker's thread slept for lack of work */
    uint64_t steal_attempts; /* other workers' queues looked into */
    uint64_t steals;         /* tasks taken from them */
    uint64_t io_polls;       /* epoll_wait calls */
    uint64_t io_events;      /* readiness events they returned */
    uint64_t timers_armed;   /* timers put on this worker's wheel (sleeps, deadlines) */
    uint64_t timers_fired;   /* of which fired (the rest were cancelled) */
    uint64_t queue_length;   /* tasks in its run queue now */
    uint64_t running_task;   /* id of the task it runs now, 0 for none */
    int parked;              /* 1 if its thread sleeps now */
    uint64_t delay_samples;  /* sampled scheduling delays (the histogram's total) */
    uint64_t slice_histogram[WEFT_HISTOGRAM_BUCKETS];
    uint64_t delay_histogram[WEFT_HISTOGRAM_BUCKETS];
} weft_worker_stats;

/* Worker `index` (0 <= index < workers) of rt. 0, or -EINVAL (rt or out NULL, index out
 * of range). */
WEFT_API int weft_worker_stats_get(weft_runtime *rt, unsigned index, weft_worker_stats *out);

typedef struct weft_runtime_stats {
    unsigned workers;        /* worker threads */
    uint64_t tasks_spawned;  /* tasks ever spawned */
    uint64_t tasks_live;     /* task objects not yet freed: running, runnable, parked,
                              * or finished with a handle not yet joined or detached */
    uint64_t stacks_mapped;  /* task stacks mapped (in use or pooled) */
    uint64_t stacks_guarded; /* of which have a guard page (the rest have a canary) */
    uint64_t stack_bytes;    /* address space of those stacks, guards included */
    uint64_t steals;         /* tasks taken from another worker's queue */
    uint64_t joins_inline;   /* tasks run inline by their joiner (WEFT_CONFIG_NO_INLINE_JOIN) */
    uint64_t blocking_threads; /* blocking-pool threads alive now */
    uint64_t blocking_busy;    /* of which run a call now */
    uint64_t blocking_queued;  /* calls waiting for a pool thread (the pool is at its cap) */
    uint64_t io_polls;         /* epoll_wait calls made by the workers */
    uint64_t io_events;        /* readiness events they returned */
    /* Added up over the workers (weft_worker_stats, "Metrics" below): */
    uint64_t tasks_finished;   /* tasks whose function returned (or that could not start) */
    uint64_t busy_ns, slices, slices_long, parks, steal_attempts;
    uint64_t timers_armed, timers_fired;
    uint64_t queue_length;     /* tasks in the workers' run queues now */
    uint64_t inject_length;    /* tasks in the runtime's injection queue now */
    uint64_t delay_samples;
    uint64_t slice_histogram[WEFT_HISTOGRAM_BUCKETS];
    uint64_t delay_histogram[WEFT_HISTOGRAM_BUCKETS];
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

/* ---- Looking inside a running program ---------------------------------------------
 *
 * A dump answers "what is every task doing now": Go's SIGQUIT goroutine dump. A trace
 * answers "what happened, when, on which worker": `go tool trace`, opened in Perfetto.
 */

/* Writes a human-readable dump of rt to fd: each worker (the task it runs, its queue
 * length, parked or not, its counters) and each live task: id, name, state, what it
 * waits on (a join of task N, a sleep until T, fd F for IN/OUT, a channel, a mutex...)
 * and for how long, which task spawned it, and a symbolised backtrace of its parked
 * stack (from the frame pointers: weft is built with them; code without them shows the
 * frames up to its first one). The program keeps running while it dumps: each task is
 * read in a few microseconds and its reading checked against a concurrent switch (one
 * that changed under the read is reported as running). Any thread, any moment, and
 * from a task of rt too; not from a signal handler (it allocates and reads symbol
 * tables): for that, see WEFT_DUMP_SIGNAL below. From a task it runs on the blocking
 * pool (symbol tables need more stack than a task has) and waits for it, shielded;
 * from a timer callback it holds up that worker meanwhile. 0, or -EINVAL (rt NULL, fd
 * < 0), -ENOMEM, the errors of weft_spawn_blocking (-EAGAIN, -ESHUTDOWN) from a task, or
 * a write(2) error (negative errno; the dump stops there).
 *
 * WEFT_DUMP_SIGNAL=QUIT (or USR1) in the environment when a runtime is created
 * installs a handler for that signal that dumps every runtime of the process to stderr
 * and lets the program go on (Go's SIGQUIT dump, without the exit). The handler only
 * wakes a helper thread (async-signal-safe), which dumps. Off by default; a signal
 * handler the program had already installed for that signal is left alone (the
 * variable is then ignored, with a line on stderr). */
WEFT_API int weft_runtime_dump(weft_runtime *rt, int fd);

/* Starts recording a trace of rt into the file at path (created or truncated): each
 * worker records compact binary events into a ring buffer of its own (task run slices,
 * spawns, wake-ups with the task that woke, steals, parks and unparks, timer fires, I/O
 * readiness), which a helper thread drains every millisecond into a scratch file
 * (unnamed, in path's directory or else $TMPDIR; it vanishes with the trace).
 * weft_trace_stop stops, drains, and writes the file at path (empty until then) as
 * Chrome trace-event JSON (`{"traceEvents": [...]}`) that ui.perfetto.dev and
 * chrome://tracing open: one track per worker ("worker N"), a slice per task run ("task
 * <id>") and per sleep of a worker ("parked"), and flow arrows from each wake-up or
 * spawn to the slice it caused. Recording an event costs some 15-35 ns on the machine
 * of bench/RESULTS.md ("Tracing": loops that only spawn or yield run 1.4-2.5 times
 * slower traced, programs that work between events do not notice); while no trace runs,
 * each event point costs a load and a branch. When a ring fills faster than it drains,
 * events are dropped and counted: the JSON's "otherData" and the count returned by stop
 * say how many. WEFT_TRACE_RING_EVENTS=N in the environment when a runtime's first
 * trace starts sets its rings' size (N events of 32 bytes per worker, rounded up to a
 * power of two; default 65536). WEFT_TRACE=path in the environment starts a trace of
 * every runtime created (the first one traced writes path, every later one path.<its
 * runtime number>), stopped and written when it is destroyed; so is a trace still
 * running at weft_runtime_destroy. Any thread, a task of rt included. 0, or -EINVAL (rt
 * or path NULL), -EBUSY (a trace of rt is already running), -ESHUTDOWN
 * (weft_runtime_destroy has stopped rt's workers), -ENOMEM, or open(2)'s (for path or
 * the scratch file) or pthread_create's error as a negative errno. */
WEFT_API int weft_trace_start(weft_runtime *rt, const char *path);
/* Stops the trace of rt and writes the JSON; takes time in proportion to the trace
 * (some 0.4 us per event). Returns the number of events dropped (0 when none), or
 * -EINVAL (rt NULL, no trace running), or a write error (negative errno; the JSON may
 * then be cut short). */
WEFT_API int weft_trace_stop(weft_runtime *rt);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
