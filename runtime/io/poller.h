/*
 * poller.h: the operating system's readiness interface, narrowed to what the reactor
 * (reactor.c) needs: a set of fds to watch, edge-triggered, a blocking wait with a
 * deadline, and a kick that ends that wait from another thread. poller_epoll.c is the
 * Linux implementation (epoll + eventfd); nothing else in weft names epoll.
 *
 * Threads: add/remove from any thread; wait from one thread at a time (the reactor's
 * poller token); kick from any thread.
 */
#ifndef WEFT__IO_POLLER_H
#define WEFT__IO_POLLER_H

#include <stdint.h>

typedef struct weft__poller {
    int epoll_fd;
    int kick_fd; /* an eventfd, watched level-triggered: readable after a kick */
} weft__poller;

/* One readiness report: the `data` given to weft__poller_add, and what is ready. */
typedef struct weft__poll_event {
    uint64_t data;
    unsigned ready; /* WEFT_IN | WEFT_OUT: errors and hang-ups report both */
} weft__poll_event;

/* 0 or a negative errno (-EMFILE, -ENOMEM). */
int weft__poller_init(weft__poller *p);
void weft__poller_destroy(weft__poller *p);

/* Watches fd for input, output and the peer's hang-up, edge-triggered, reporting
 * `data` with each readiness. Returns 0, -EEXIST (this open file is already watched
 * under this fd number), -EPERM (the fd cannot be watched: a regular file or a
 * directory, always ready), -EBADF, -ENOMEM, -ENOSPC. */
int weft__poller_add(weft__poller *p, int fd, uint64_t data);

/* Stops watching fd (before it is closed). Errors are ignored: the fd may never have
 * been added, or be closed already. */
void weft__poller_remove(weft__poller *p, int fd);

/* Waits until something is ready, a kick, or deadline_ns (UINT64_MAX: none; 0 or a time
 * past: do not wait). Fills at most `max` events and returns their count (kicks are
 * consumed, not reported), 0 on a time-out, a kick or EINTR. */
int weft__poller_wait(weft__poller *p, weft__poll_event *events, int max, uint64_t deadline_ns);

/* Ends a weft__poller_wait in progress (or makes the next one return at once). */
void weft__poller_kick(weft__poller *p);

#endif /* WEFT__IO_POLLER_H */
