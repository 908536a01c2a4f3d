/*
 * reactor.h: the I/O room's core: one reactor per runtime (a poller, poller.h, and a
 * table of per-fd slots), each worker's I/O driver (a driver, sched/driver.h, that wraps
 * the worker's time driver and polls the reactor), and the wait a task makes for an fd's
 * readiness. The protocols (IO-*) are written out in reactor.c. Includes sched/ headers;
 * sched/ and time/ include nothing of this room.
 */
#ifndef WEFT__IO_REACTOR_H
#define WEFT__IO_REACTOR_H

#include "sched/driver.h"
#include "sched/wait.h"
#include "sched/worker.h"

#include <stddef.h>
#include <stdint.h>

#include "weft.h"

typedef struct weft__reactor weft__reactor;

/* rt's reactor (runtime.c, at create). NULL with errno. */
weft__reactor *weft__reactor_create(weft_runtime *rt);
/* After every worker has exited. */
void weft__reactor_destroy(weft__reactor *r);

/* Worker w's I/O driver, on top of `inner` (its time driver), which it delegates timers
 * to and destroys with itself. NULL on ENOMEM. */
weft__driver *weft__io_driver_create(weft__reactor *r, weft__worker *w, weft__driver *inner);

/* Inside a task of r's runtime: parks until fd is ready for some of `events` (WEFT_IN |
 * WEFT_OUT), the deadline passes, or fd is closed by weft_fd_close. Returns the ready
 * subset (> 0); 0 when the caller should simply try its system call again (a readiness
 * that may be stale, or a wake-up meant for an earlier file under the same number);
 * -ETIMEDOUT, -ECANCELED (weft_fd_close), -EBUSY (another task waits on fd for one of
 * these events), -EBADF (fd beyond the table), -ENOMEM. For an fd the poller cannot
 * watch (a regular file: always ready) returns `events`. */
int weft__reactor_wait(weft__reactor *r, int fd, unsigned events, uint64_t deadline_ns);

/* The parts of weft__reactor_wait, for a caller that waits on an fd and on other things
 * at once (weft_select). */
typedef struct weft__io_waits {
    weft__wait waits[2];        /* IN, OUT */
    weft__wait *published[2];   /* those published, in `count` */
    void *words[2];             /* the slot words they are published in */
    size_t count;
    uint64_t generation;        /* the registration they belong to */
    weft__atomic_u32 *thread_word; /* set by the caller before publish: see wait.h */
} weft__io_waits;
/* (IO-W1..W3) Registers fd and publishes waits for `events` in io. Returns 0 with
 * io->count > 0 (published: block on io->published with weft__reactor_withdraw over
 * io->words, then read weft__reactor_result), 0 with io->count 0 (look again), the
 * ready subset (> 0, nothing published), or a negative errno (as weft__reactor_wait). */
int weft__reactor_publish(weft__reactor *r, int fd, unsigned events, weft__io_waits *io);
bool weft__reactor_withdraw(weft__wait *wait, void *word);
/* After the block: the ready mask, -ECANCELED, or 0 (look again). */
int weft__reactor_result(const weft__io_waits *io);
/* A delivered readiness the caller will not use (its select performed another case):
 * left for the next wait on the fd. */
void weft__reactor_keep_edge(weft__io_waits *io, size_t i);
/* Likewise for the ready subset weft__reactor_publish returned (nothing was published). */
void weft__reactor_keep_ready(weft__reactor *r, int fd, const weft__io_waits *io,
                              unsigned ready);

/* fd.c: one poll(2) of fd without waiting: the ready subset of events (0: none), or
 * -EBADF. For a select's first look (sync/select.c) as for weft_fd_wait's. */
int weft__fd_poll_once(int fd, unsigned events);

/* weft_fd_close: every runtime's reactor forgets fd and wakes its waiters with
 * -ECANCELED, and fd is closed (IO-C1..C3). Any thread. 0 or close(2)'s -errno. */
int weft__reactor_close(int fd);

/* Statistics of worker `index`'s driver (relaxed: a report). */
void weft__reactor_worker_stats(weft__reactor *r, unsigned index, uint64_t *polls,
                                uint64_t *events);

#endif /* WEFT__IO_REACTOR_H */
