/*
 * idle_conns.c: the client side of the idle_conns workload (bench/WORKLOADS.md). It opens
 * N keep-alive connections to an HTTP server, sends one `GET /` on each and reads the
 * reply, so that the server really holds whatever it keeps per connection (a task, a
 * goroutine, a future, their buffers), then holds them all open and idle while
 * tools/bench reads the server's memory, and at the end checks that each is still open.
 *
 *     weft-idle-conns --port P [--host H] [--connections N] [--hold S] [--timeout S]
 *
 * On stdout: "ready connections=N setup_ms=T" once every connection has its reply (the
 * moment tools/bench reads the server's VmHWM), then after the hold one line
 *
 *     workload=idle_conns connections=N ready=R open_after_hold=K setup_ms=T
 *
 * Exit status 0 if all N got a 200 and were still open after the hold, 1 otherwise, 2 on
 * a bad command line. Plain C and epoll, no weft: the client is not what is measured.
 * Bounded: at most 256 connections in progress at once, and the whole setup within
 * --timeout seconds (default 60); the hold is --hold seconds (default 3).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IN_PROGRESS_LIMIT 256 /* connections connecting or waiting for their reply */
#define REPLY_LIMIT       1024

enum state { CONNECTING, WAITING_REPLY, READY };

struct connection {
    int fd;
    enum state state;
    size_t got;
    char reply[REPLY_LIMIT];
};

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *out) {
    fprintf(out, "usage: weft-idle-conns --port P [--host H (IPv4, default 127.0.0.1)]\n"
                 "       [--connections N (default 10000)] [--hold S (default 3)]\n"
                 "       [--timeout S (default 60)]\n");
}

/* Lets this process open `need` fds: raises the soft limit, and the hard one if allowed. */
static bool raise_fd_limit(rlim_t need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur >= need)
        return true;
    if (rl.rlim_max < need)
        rl.rlim_max = need; /* only root may; otherwise setrlimit fails below */
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/* Whether c->reply holds a whole 200 reply: a head and Content-Length bytes of body. -1:
 * a reply that is not a 200 or cannot be read. */
static int reply_complete(const struct connection *c) {
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= c->got; i++)
        if (memcmp(c->reply + i, "\r\n\r\n", 4) == 0) {
            end = c->reply + i + 4;
            break;
        }
    if (!end)
        return c->got == REPLY_LIMIT ? -1 : 0;
    if (c->got < 12 || memcmp(c->reply, "HTTP/1.1 200", 12) != 0)
        return -1;
    size_t head = (size_t)(end - c->reply), body = 0;
    for (const char *line = c->reply; line < end; line = strchr(line, '\n') + 1)
        if (strncasecmp(line, "content-length:", 15) == 0)
            body = strtoul(line + 15, NULL, 10);
    return c->got >= head + body ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = -1, count = 10000, hold_s = 3, timeout_s = 60;
    for (int i = 1; i < argc; i++) {
        long *target = strcmp(argv[i], "--port") == 0          ? &port
                       : strcmp(argv[i], "--connections") == 0 ? &count
                       : strcmp(argv[i], "--hold") == 0        ? &hold_s
                       : strcmp(argv[i], "--timeout") == 0     ? &timeout_s
                                                               : NULL;
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (target && i + 1 < argc) {
            char *end;
            *target = strtol(argv[++i], &end, 10);
            if (*end || *target < 0)
                *target = -1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || count < 1 || count > 1000000 || hold_s < 0 ||
        hold_s > 3600 || timeout_s < 1 || timeout_s > 3600 ||
        inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        usage(stderr);
        return 2;
    }
    if (!raise_fd_limit((rlim_t)count + 64)) {
        fprintf(stderr, "weft-idle-conns: cannot raise RLIMIT_NOFILE to %ld: %s\n", count + 64,
                strerror(errno));
        return 1;
    }
    struct connection *conns = calloc((size_t)count, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!conns || ep < 0) {
        perror("weft-idle-conns");
        return 1;
    }

    double start = now_ms(), deadline = start + (double)timeout_s * 1e3;
    long started = 0, ready = 0, in_progress = 0;
    const char *failure = NULL;
    while (ready < count && !failure && now_ms() < deadline) {
        while (in_progress < IN_PROGRESS_LIMIT && started < count) { /* start more */
            struct connection *c = &conns[started];
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 &&
                              errno != EINPROGRESS)) {
                failure = "socket/connect";
                break;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)started};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            started++;
            in_progress++;
        }
        struct epoll_event events[256];
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n && !failure; i++) {
            struct connection *c = &conns[events[i].data.u64];
            if (c->state == CONNECTING) {
                int error = 0;
                socklen_t len = sizeof error;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
                if (error || send(c->fd, request, sizeof request - 1, MSG_NOSIGNAL) !=
                                 (ssize_t)(sizeof request - 1)) {
                    errno = error ? error : errno;
                    failure = "connect/send";
                    break;
                }
                c->state = WAITING_REPLY;
                struct epoll_event ev = {.events = EPOLLIN, .data = events[i].data};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                continue;
            }
            ssize_t got = recv(c->fd, c->reply + c->got, REPLY_LIMIT - c->got, 0);
            if (got <= 0) {
                if (got < 0 && errno == EAGAIN)
                    continue;
                errno = got == 0 ? ECONNRESET : errno;
                failure = "reading the reply";
                break;
            }
            c->got += (size_t)got;
            int complete = reply_complete(c);
            if (complete < 0) {
                errno = EPROTO;
                failure = "the reply is not a 200";
            } else if (complete > 0) {
                c->state = READY;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                ready++;
                in_progress--;
            }
        }
    }
    double setup_ms = now_ms() - start;
    if (failure)
        fprintf(stderr, "weft-idle-conns: connection %ld: %s: %s\n", started, failure,
                strerror(errno));
    else if (ready < count)
        fprintf(stderr, "weft-idle-conns: only %ld of %ld ready after %ld s\n", ready, count,
                timeout_s);
    else {
        printf("ready connections=%ld setup_ms=%.0f\n", count, setup_ms);
        fflush(stdout);
        struct timespec hold = {.tv_sec = hold_s};
        while (nanosleep(&hold, &hold) != 0 && errno == EINTR)
            ;
    }

    long open_after = 0;
    for (long i = 0; i < started; i++) {
        char byte;
        if (conns[i].state == READY && recv(conns[i].fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
            errno == EAGAIN)
            open_after++; /* nothing to read and no end of file: still open */
        if (conns[i].fd > 0)
            close(conns[i].fd);
    }
    printf("workload=idle_conns connections=%ld ready=%ld open_after_hold=%ld setup_ms=%.0f\n",
           count, ready, open_after, setup_ms);
    return ready == count && open_after == count ? 0 : 1;
}
