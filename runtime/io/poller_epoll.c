/*
 * poller_epoll.c: poller.h on Linux: one epoll instance and one eventfd. Owns both fds.
 * Stateless beyond them: every field is written once, by weft__poller_init.
 */
#include "io/poller.h"

#include "weft.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* The eventfd's registration; fds are reported with 32-bit numbers, so no fd's data
 * (the reactor puts the fd in the low 32 bits) has all 64 bits set. */
#define WEFT__KICK_DATA UINT64_MAX

int weft__poller_init(weft__poller *p) {
    p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epoll_fd < 0)
        return -errno;
    p->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->kick_fd < 0) {
        int err = -errno;
        close(p->epoll_fd);
        return err;
    }
    /* Level-triggered: readable until the wait that sees it reads the counter. */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WEFT__KICK_DATA};
    if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->kick_fd, &ev) != 0) {
        int err = -errno;
        close(p->kick_fd);
        close(p->epoll_fd);
        return err;
    }
    return 0;
}

void weft__poller_destroy(weft__poller *p) {
    close(p->kick_fd);
    close(p->epoll_fd);
}

int weft__poller_add(weft__poller *p, int fd, uint64_t data) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = data};
    return epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : -errno;
}

void weft__poller_remove(weft__poller *p, int fd) {
    struct epoll_event ev = {0}; /* kernels before 2.6.9 wanted a non-NULL pointer */
    (void)epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, fd, &ev);
}

static unsigned ready_mask(uint32_t events) {
    unsigned ready = 0;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        ready |= WEFT_IN;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        ready |= WEFT_OUT;
    return ready;
}

/* epoll_pwait2 (Linux 5.11) takes the timeout in nanoseconds; epoll_wait's milliseconds
 * would make every timer of a polling worker up to 1 ms late. Older kernels (or an
 * emulator without it): milliseconds, rounded up, so never early. */
static int wait_kernel(int epoll_fd, struct epoll_event *events, int max, uint64_t deadline_ns) {
    static int have_pwait2 = 1; /* a hint, racy by design: any value is correct */
    uint64_t now = deadline_ns == UINT64_MAX || deadline_ns == 0 ? 0 : weft_now();
    uint64_t left = deadline_ns == UINT64_MAX ? UINT64_MAX : deadline_ns > now ? deadline_ns - now : 0;
    if (__atomic_load_n(&have_pwait2, __ATOMIC_RELAXED)) {
        struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        int n = epoll_pwait2(epoll_fd, events, max, left == UINT64_MAX ? NULL : &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        __atomic_store_n(&have_pwait2, 0, __ATOMIC_RELAXED);
    }
    int ms = left == UINT64_MAX ? -1 : left / 1000000u >= INT32_MAX ? INT32_MAX : (int)((left + 999999u) / 1000000u);
    return epoll_wait(epoll_fd, events, max, ms);
}

int weft__poller_wait(weft__poller *p, weft__poll_event *out, int max, uint64_t deadline_ns) {
    struct epoll_event events[64];
    if (max > 64)
        max = 64;
    int n = wait_kernel(p->epoll_fd, events, max, deadline_ns);
    if (n < 0)
        return 0; /* EINTR: the caller's loop looks again */
    int count = 0;
    for (int i = 0; i < n; i++) {
        if (events[i].data.u64 == WEFT__KICK_DATA) {
            uint64_t value;
            ssize_t r = read(p->kick_fd, &value, sizeof(value)); /* EAGAIN: drained already */
            (void)r;
            continue;
        }
        out[count].data = events[i].data.u64;
        out[count].ready = ready_mask(events[i].events);
        count++;
    }
    return count;
}

void weft__poller_kick(weft__poller *p) {
    uint64_t one = 1;
    ssize_t r = write(p->kick_fd, &one, sizeof(one)); /* EAGAIN: the counter is full: kicked */
    (void)r;
}
