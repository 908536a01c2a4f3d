/*
 * fd.c: the public fd calls (weft.h, "I/O"): each tries its system call without
 * blocking and, on EAGAIN, waits for readiness, then tries again. Owns no state: a task
 * waits through its runtime's reactor (reactor.c), any other thread in ppoll(2).
 *
 * How a call avoids blocking a worker on an fd whose flags it does not control: sockets
 * are read and written with MSG_DONTWAIT (and MSG_NOSIGNAL), which holds for that call
 * whatever the fd's flags; anything else (a pipe, a listening socket, a socket being
 * connected) is made O_NONBLOCK first, checked with F_GETFL on every call because the
 * number may name a new file since the last one (a plain close(2) and a reuse). A
 * regular file is never "not ready": reading it still blocks the worker for the disk,
 * which is what weft_spawn_blocking is for (README.md, "I/O").
 */
#include "io/reactor.h"

#include "sched/cancel.h"
#include "sched/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The calling task's reactor, or NULL on a thread that is not running a task (a plain
 * thread, or a worker in a timer callback: neither can park). */
static weft__reactor *current_reactor(void) {
    weft__worker *w = weft__worker_current();
    return w && w->current ? w->runtime->reactor : NULL;
}

static int make_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return -errno;
    return 0;
}

static short poll_events(unsigned events) {
    return (short)(((events & WEFT_IN) ? POLLIN | POLLRDHUP : 0) | ((events & WEFT_OUT) ? POLLOUT : 0));
}

/* poll(2)'s answer for one fd: the ready subset of events (errors and hang-ups report
 * both directions, as the reactor does), or -EBADF. */
static int ready_subset(const struct pollfd *p, unsigned events) {
    if (p->revents & POLLNVAL)
        return -EBADF;
    unsigned ready = 0;
    if (p->revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR))
        ready |= WEFT_IN;
    if (p->revents & (POLLOUT | POLLHUP | POLLERR))
        ready |= WEFT_OUT;
    return (int)(ready & events);
}

int weft__fd_poll_once(int fd, unsigned events) {
    struct pollfd p = {.fd = fd, .events = poll_events(events)};
    if (poll(&p, 1, 0) <= 0)
        return 0; /* nothing, or EINTR: the callers' loops look again */
    return ready_subset(&p, events);
}

/* A plain thread's wait: ppoll(2) until ready or the deadline (never early). */
static int wait_thread(int fd, unsigned events, uint64_t deadline_ns) {
    struct pollfd p = {.fd = fd, .events = poll_events(events)};
    for (;;) {
        struct timespec ts, *timeout = NULL;
        if (deadline_ns != WEFT_FOREVER) {
            uint64_t now = weft_now();
            uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
            ts.tv_sec = (time_t)(left / 1000000000u);
            ts.tv_nsec = (long)(left % 1000000000u);
            timeout = &ts;
        }
        int n = ppoll(&p, 1, timeout, NULL);
        if (n < 0 && errno != EINTR)
            return -errno;
        int ready = n > 0 ? ready_subset(&p, events) : 0;
        if (ready != 0)
            return ready;
        if (deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
            return -ETIMEDOUT;
    }
}

/* Waits for events on fd: > 0 ready, 0 try again, < 0 an error. */
static int wait_for(int fd, unsigned events, uint64_t deadline_ns) {
    weft__reactor *r = current_reactor();
    if (r)
        return weft__reactor_wait(r, fd, events, deadline_ns);
    return wait_thread(fd, events, deadline_ns);
}

static bool would_block(ssize_t rc) {
    return rc == -EAGAIN || rc == -EWOULDBLOCK;
}

WEFT_API int weft_fd_wait(int fd, unsigned events, uint64_t deadline_ns) {
    if (fd < 0)
        return -EBADF;
    if (events == 0 || (events & ~(WEFT_IN | WEFT_OUT)))
        return -EINVAL;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    if (!current_reactor())
        return wait_thread(fd, events, deadline_ns);
    for (;;) {
        /* Level-triggered first (data may sit unread since an edge long ago): the
         * reactor's edges then report only what changes after this look. */
        int ready = weft__fd_poll_once(fd, events);
        if (ready != 0)
            return ready;
        int rc = wait_for(fd, events, deadline_ns);
        if (rc != 0)
            return rc;
    }
}

static ssize_t read_once(int fd, void *buf, size_t len) {
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    if (n >= 0)
        return n;
    if (errno != ENOTSOCK)
        return -errno;
    int rc = make_nonblocking(fd);
    if (rc < 0)
        return rc;
    n = read(fd, buf, len);
    return n >= 0 ? n : -errno;
}

WEFT_API ssize_t weft_read(int fd, void *buf, size_t len, uint64_t deadline_ns) {
    if (fd < 0)
        return -EBADF;
    if (!buf && len)
        return -EINVAL;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    for (;;) {
        ssize_t n = read_once(fd, buf, len);
        if (n == -EINTR)
            continue;
        if (!would_block(n))
            return n;
        int rc = wait_for(fd, WEFT_IN, deadline_ns);
        if (rc < 0)
            return rc;
    }
}

static ssize_t write_once(int fd, const struct iovec *iov, int iovcnt) {
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    if (errno != ENOTSOCK)
        return -errno;
    int rc = make_nonblocking(fd);
    if (rc < 0)
        return rc;
    n = writev(fd, iov, iovcnt);
    return n >= 0 ? n : -errno;
}

/* Writes every byte of iov[0..iovcnt), advancing it. */
static ssize_t write_all(int fd, struct iovec *iov, int iovcnt, uint64_t deadline_ns) {
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    size_t written = 0;
    while (iovcnt > 0 && iov[0].iov_len == 0) {
        iov++;
        iovcnt--;
    }
    while (iovcnt > 0) {
        ssize_t n = write_once(fd, iov, iovcnt);
        if (n == -EINTR)
            continue;
        if (n >= 0) {
            written += (size_t)n;
            size_t left = (size_t)n;
            while (iovcnt > 0 && left >= iov[0].iov_len) {
                left -= iov[0].iov_len;
                iov[0].iov_base = (char *)iov[0].iov_base + iov[0].iov_len;
                iov[0].iov_len = 0;
                iov++;
                iovcnt--;
            }
            if (iovcnt > 0) {
                iov[0].iov_base = (char *)iov[0].iov_base + left;
                iov[0].iov_len -= left;
            }
            continue;
        }
        if (would_block(n)) {
            int rc = wait_for(fd, WEFT_OUT, deadline_ns);
            if (rc >= 0)
                continue;
            n = rc;
        }
        return written > 0 ? (ssize_t)written : n;
    }
    return (ssize_t)written;
}

WEFT_API ssize_t weft_write(int fd, const void *buf, size_t len, uint64_t deadline_ns) {
    if (fd < 0)
        return -EBADF;
    if (!buf && len)
        return -EINVAL;
    if (len > SSIZE_MAX)
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return write_all(fd, &iov, 1, deadline_ns);
}

WEFT_API ssize_t weft_writev(int fd, struct iovec *iov, int iovcnt, uint64_t deadline_ns) {
    if (fd < 0)
        return -EBADF;
    if (iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt > 0))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    return write_all(fd, iov, iovcnt, deadline_ns);
}

WEFT_API int weft_accept(int listen_fd, struct sockaddr *addr, socklen_t *addrlen,
                         uint64_t deadline_ns) {
    if (listen_fd < 0)
        return -EBADF;
    if (addr && !addrlen)
        return -EINVAL;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    int rc = make_nonblocking(listen_fd);
    if (rc < 0)
        return rc;
    for (;;) {
        int fd = accept4(listen_fd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno; /* EMFILE, ENFILE among them: at once (weft.h) */
        rc = wait_for(listen_fd, WEFT_IN, deadline_ns);
        if (rc < 0)
            return rc;
    }
}

WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                          uint64_t deadline_ns) {
    if (fd < 0)
        return -EBADF;
    if (!addr)
        return -EINVAL;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    int rc = make_nonblocking(fd);
    if (rc < 0)
        return rc;
    if (connect(fd, addr, addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    for (;;) {
        /* Writable means connected or failed; the reactor's answer is a hint, poll(2)'s
         * is the fact. */
        int ready = weft__fd_poll_once(fd, WEFT_OUT);
        if (ready < 0)
            return ready;
        if (ready)
            break;
        rc = wait_for(fd, WEFT_OUT, deadline_ns);
        if (rc < 0)
            return rc;
    }
    int error = 0;
    socklen_t len = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0)
        return -errno;
    return -error;
}

WEFT_API int weft_fd_close(int fd) {
    if (fd < 0)
        return -EBADF;
    return weft__reactor_close(fd);
}
