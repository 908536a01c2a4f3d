/*
 * http_server.c: a small HTTP/1.1 server on weft's I/O calls, one task per connection,
 * with a bound on connections and a graceful shutdown built on task groups and
 * cancellation.
 *
 *     http_server [--host H] [--port N] [--workers N] [--idle-timeout S]
 *                 [--max-conns N] [--grace-ms MS]
 *
 * GET / answers "Hello, World!"; GET /sleep?ms=N answers after sleeping N ms (the sleep
 * parks the task, not the worker); anything else is 404. Connections are kept alive
 * (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"),
 * pipelined requests are answered in order, a connection idle for S seconds (default
 * 30) is closed, a request head over 8 KiB is answered 431 and a body over 1 MiB 413
 * (smaller bodies are read and thrown away). Once ready it prints one line on stdout,
 * "listening on HOST:PORT" (--port 0, an ephemeral port, shows which).
 *
 * Each connection is a plain sequential task: read, parse, write, again. weft_read parks
 * the task until bytes arrive; the worker runs other connections meanwhile.
 *
 * The connections are the members of one task group (Go's errgroup with SetLimit). The
 * accept loop spawns each into it; with --max-conns of them open, weft_group_spawn
 * waits for one to close, so the loop stops accepting (new clients wait in the kernel's
 * backlog). The loop also reads the results of the connections that ended (the group
 * keeps each until then).
 *
 * Shutdown on SIGINT or SIGTERM: idle connections close at once, a request being served
 * is finished, within --grace-ms (default 5000):
 *   1. main blocks both signals before the runtime starts its threads (which inherit the
 *      mask), so they reach only main's sigwait. main is the plain (non-worker) thread
 *      that stops the server: that way no other thread is inside weft while
 *      weft_runtime_destroy runs;
 *   2. main cancels the accept loop (weft_cancel: its accept, or its spawn waiting for a
 *      slot, returns -ECANCELED), joins it and closes the listening socket;
 *   3. main sets the grace deadline and cancels every connection (weft_group_cancel).
 *      A connection waiting for its next request (none of it read yet) gets -ECANCELED
 *      from weft_read and closes. One in the middle of a request takes the -ECANCELED
 *      of its next wait as the start of its drain: it shields itself
 *      (weft_cancel_shield) and goes on, answers that request and any complete one
 *      already buffered, the last with "Connection: close", and closes. Every wait
 *      from then on ends by the grace deadline: a request not answered by then is
 *      dropped and its connection closed;
 *   4. weft_group_destroy waits for every connection, weft_runtime_destroy for the
 *      runtime.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <weft.h>

#define HEAD_LIMIT       8192                 /* request line and headers; more is 431 */
#define BODY_LIMIT       (1 << 20)            /* a body read and thrown away; more is 413 */
#define SLEEP_LIMIT_MS   60000                /* the most /sleep?ms= accepts */
#define WRITE_TIMEOUT_NS (10 * 1000000000ull) /* a reply not sent in 10 s: client gone */

static uint64_t idle_timeout_ns = 30 * 1000000000ull; /* --idle-timeout; 0: none */

/* ---- Connections and the shutdown (steps 2 and 3 above) ---------------------------- */

struct connection {
    int fd;
    bool draining;     /* cancelled in the middle of a request: shielded (step 3) */
    size_t start, end; /* the bytes not yet consumed: buf[start, end) */
    size_t scanned;    /* of those, how many hold no "\r\n\r\n" */
    char buf[HEAD_LIMIT];
};

static weft_group *connections;                        /* every connection task */
static _Atomic uint64_t grace_deadline = WEFT_FOREVER; /* set by main in step 3 */
static atomic_int exit_status;                         /* 1 if the accept loop failed */

/* The deadline for a wait inside a request: d, or the grace deadline once shutdown has
 * set one, whichever is sooner. */
static uint64_t within_grace(uint64_t d) {
    uint64_t grace = atomic_load(&grace_deadline);
    return d < grace ? d : grace;
}

/* Called when a wait inside a request returned -ECANCELED or fell short: if the task was
 * cancelled (shutdown has begun, step 3) and is not yet draining, it shields itself, so
 * that it can finish the request, and returns true: do the wait again (its deadline is
 * now within the grace). */
static bool start_draining(struct connection *c) {
    if (c->draining || !weft_cancelled())
        return false;
    c->draining = true;
    weft_cancel_shield(1);
    return true;
}

/* weft_read of part of a request (see start_draining). */
static ssize_t read_in_request(struct connection *c, void *buf, size_t len, uint64_t deadline) {
    ssize_t got;
    do
        got = weft_read(c->fd, buf, len, within_grace(deadline));
    while (got == -ECANCELED && start_draining(c));
    return got;
}

/* ---- Parsing ------------------------------------------------------------------------ */

enum route { ROUTE_HELLO, ROUTE_SLEEP, ROUTE_NOT_FOUND };

struct request {
    enum route route;
    unsigned sleep_ms;
    bool http_1_0;
    bool keep_alive;
    uint64_t body_length;
};

/* The length of the complete request head at the start of the unconsumed bytes, up to
 * and including its "\r\n\r\n", or 0 if it is not all there yet. */
static size_t head_length(struct connection *c) {
    const char *p = c->buf + c->start;
    size_t n = c->end - c->start;
    for (size_t i = c->scanned; i + 4 <= n; i++)
        if (p[i] == '\r' && memcmp(p + i, "\r\n\r\n", 4) == 0)
            return i + 4;
    c->scanned = n >= 3 ? n - 3 : 0;
    return 0;
}

static bool equals(const char *s, size_t n, const char *literal) {
    return strlen(literal) == n && strncasecmp(s, literal, n) == 0;
}

/* Whether a comma-separated header value holds `token` (case-insensitive). */
static bool has_token(const char *value, size_t n, const char *token) {
    size_t k = strlen(token);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(value + i, token, k) == 0 && (i == 0 || strchr(" ,", value[i - 1])) &&
            (i + k == n || strchr(" ,", value[i + k])))
            return true;
    return false;
}

/* A decimal number of at most `max`; false if it is not one. */
static bool parse_number(const char *s, size_t n, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (max - (uint64_t)(s[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static enum route parse_target(const char *method, size_t method_len, const char *target,
                               size_t target_len, unsigned *sleep_ms) {
    uint64_t ms;
    if (!equals(method, method_len, "GET"))
        return ROUTE_NOT_FOUND;
    if (target_len == 1 && target[0] == '/')
        return ROUTE_HELLO;
    if (target_len > 10 && memcmp(target, "/sleep?ms=", 10) == 0 &&
        parse_number(target + 10, target_len - 10, SLEEP_LIMIT_MS, &ms)) {
        *sleep_ms = (unsigned)ms;
        return ROUTE_SLEEP;
    }
    return ROUTE_NOT_FOUND;
}

/* Parses the head p[0, n) (which ends with "\r\n\r\n"). Returns 0, or the HTTP status of
 * the error to answer before closing. */
static int parse_request(const char *p, size_t n, struct request *req) {
    *req = (struct request){.route = ROUTE_NOT_FOUND};
    const char *end = p + n - 2; /* the final "\r\n" */
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp2 || eol[1] != '\n')
        return 400;
    const char *version = sp2 + 1;
    size_t version_len = (size_t)(eol - version);
    if (equals(version, version_len, "HTTP/1.1"))
        req->http_1_0 = false;
    else if (equals(version, version_len, "HTTP/1.0"))
        req->http_1_0 = true;
    else
        return 505;
    req->keep_alive = !req->http_1_0;
    req->route =
        parse_target(p, (size_t)(sp1 - p), sp1 + 1, (size_t)(sp2 - sp1 - 1), &req->sleep_ms);

    for (const char *line = eol + 2; line < end; line = eol + 2) {
        eol = memchr(line, '\r', (size_t)(end - line + 1));
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (eol[1] != '\n' || !colon)
            return 400;
        const char *value = colon + 1, *value_end = eol;
        while (value < value_end && (*value == ' ' || *value == '\t'))
            value++;
        while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
            value_end--;
        size_t name_len = (size_t)(colon - line), value_len = (size_t)(value_end - value);
        if (equals(line, name_len, "Content-Length")) {
            if (!parse_number(value, value_len, UINT64_MAX, &req->body_length))
                return 400;
            if (req->body_length > BODY_LIMIT)
                return 413;
        } else if (equals(line, name_len, "Transfer-Encoding")) {
            return 501; /* chunked request bodies: not in this example */
        } else if (equals(line, name_len, "Connection")) {
            if (has_token(value, value_len, "close"))
                req->keep_alive = false;
            else if (has_token(value, value_len, "keep-alive"))
                req->keep_alive = true;
        }
    }
    return 0;
}

/* ---- Reading and writing ------------------------------------------------------------ */

/* Waits until a complete request head is buffered and parses it. Returns 0 and fills
 * *req, an HTTP status to answer before closing, or -1: close without a reply (end of
 * file, idle timeout, an error, cancelled while idle). */
static int read_request(struct connection *c, struct request *req) {
    uint64_t deadline = idle_timeout_ns ? weft_now() + idle_timeout_ns : WEFT_FOREVER;
    size_t n;
    while ((n = head_length(c)) == 0) {
        if (c->end - c->start == HEAD_LIMIT)
            return 431;
        if (c->start > 0) { /* move a partial request to the front */
            memmove(c->buf, c->buf + c->start, c->end - c->start);
            c->end -= c->start;
            c->start = 0;
        }
        ssize_t got;
        if (c->end == 0) /* idle: a cancel (shutdown) closes the connection */
            got = weft_read(c->fd, c->buf, HEAD_LIMIT, deadline);
        else /* part of a request is here: it will be served */
            got = read_in_request(c, c->buf + c->end, HEAD_LIMIT - c->end, deadline);
        if (got <= 0)
            return -1;
        c->end += (size_t)got;
    }
    int status = parse_request(c->buf + c->start, n, req);
    c->start += n;
    c->scanned = 0;
    return status;
}

/* Reads and throws away `length` body bytes. False if the client went away first. */
static bool skip_body(struct connection *c, uint64_t length) {
    uint64_t deadline = idle_timeout_ns ? weft_now() + idle_timeout_ns : WEFT_FOREVER;
    for (;;) {
        size_t buffered = c->end - c->start;
        size_t take = buffered < length ? buffered : (size_t)length;
        c->start += take;
        length -= take;
        if (length == 0)
            return true;
        c->start = c->end = 0;
        ssize_t got = read_in_request(c, c->buf, HEAD_LIMIT, deadline);
        if (got <= 0)
            return false;
        c->end = (size_t)got;
    }
}

/* Today's date as HTTP wants it, formatted once a second per worker thread. */
static const char *http_date(void) {
    static _Thread_local time_t cached_second = -1;
    static _Thread_local char cached[40];
    time_t now = time(NULL);
    if (now != cached_second) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_second = now;
    }
    return cached;
}

static const char *reason(int status) {
    /* clang-format off */
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
    /* clang-format on */
}

static bool send_reply(struct connection *c, int status, const char *body, bool keep_alive,
                       bool http_1_0) {
    char head[256];
    size_t body_len = strlen(body);
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                            "Content-Length: %zu\r\n%s\r\n",
                            status, reason(status), http_date(), body_len,
                            !keep_alive ? "Connection: close\r\n"
                            : http_1_0  ? "Connection: keep-alive\r\n"
                                        : "");
    struct iovec iov[2] = {{head, (size_t)head_len}, {(void *)body, body_len}};
    size_t left = (size_t)head_len + body_len;
    uint64_t deadline = weft_now() + WRITE_TIMEOUT_NS;
    ssize_t sent;
    do { /* weft_writev advances iov past what it wrote (weft.h): a retry writes the rest */
        sent = weft_writev(c->fd, iov, 2, within_grace(deadline));
        if (sent > 0)
            left -= (size_t)sent;
    } while (left > 0 && start_draining(c));
    return left == 0;
}

/* GET /sleep: the request's work, a wait like the others (see start_draining). False
 * if the grace deadline came first. */
static bool sleep_in_request(struct connection *c, unsigned ms) {
    uint64_t until = weft_now() + (uint64_t)ms * 1000000u;
    int rc;
    do
        rc = weft_sleep_until(within_grace(until));
    while (rc == -ECANCELED && start_draining(c));
    return rc == 0 && weft_now() >= until;
}

/* ---- Tasks -------------------------------------------------------------------------- */

/* Closing a socket with unread bytes makes the kernel send a reset, which can destroy our
 * last reply before the client reads it. So when we close first: say we are done writing,
 * then read and drop what the client still sends, until it closes (or for 1 s at most, or
 * until the grace deadline). A cleanup step that waits: shielded, so that a cancel does
 * not cut it short (asyncio.shield). */
static void close_gently(struct connection *c) {
    int old = weft_cancel_shield(1);
    shutdown(c->fd, SHUT_WR);
    uint64_t deadline = within_grace(weft_now() + 1000000000ull);
    while (weft_read(c->fd, c->buf, HEAD_LIMIT, deadline) > 0)
        ;
    weft_cancel_shield(old);
}

static void *serve_connection(void *arg) {
    struct connection *c = arg;
    bool keep_alive = true, we_close = false;
    while (keep_alive) {
        struct request req;
        int status = read_request(c, &req);
        if (status < 0)
            break;
        if (status > 0) { /* a request we will not serve: say why, then close */
            we_close = send_reply(c, status, "request refused\n", false, false);
            break;
        }
        if (req.body_length > 0 && !skip_body(c, req.body_length))
            break;
        const char *body = "Hello, World!";
        if (req.route == ROUTE_SLEEP) {
            if (!sleep_in_request(c, req.sleep_ms))
                break; /* shutdown's grace deadline came first: drop it */
            body = "slept\n";
        } else if (req.route == ROUTE_NOT_FOUND) {
            status = 404;
            body = "not found\n";
        }
        /* Shutting down: answer what is buffered, the last reply saying "close". */
        keep_alive = req.keep_alive && !(weft_cancelled() && head_length(c) == 0);
        if (!send_reply(c, status ? status : 200, body, keep_alive, req.http_1_0))
            break;
        we_close = !keep_alive;
    }
    if (we_close)
        close_gently(c);
    weft_fd_close(c->fd);
    free(c);
    return NULL;
}

/* Serves fd in a new member of `connections`; waits for a slot while --max-conns
 * connections are open. Returns 0, or -ECANCELED (the accept loop was cancelled while it
 * waited: fd is closed). */
static int start_connection(int fd) {
    struct connection *c = malloc(sizeof *c);
    int rc = -ENOMEM;
    if (c) {
        c->fd = fd;
        c->draining = false;
        c->start = c->end = c->scanned = 0;
        rc = weft_group_spawn(connections, serve_connection, c);
    }
    if (rc != 0) { /* cancelled, or out of memory or tasks: refuse this one */
        weft_fd_close(fd);
        free(c);
    }
    return rc == -ECANCELED ? rc : 0;
}

/* Reads (and drops) the results of the connections that have ended: the group keeps a
 * finished member until then. Never waits (a deadline already past). A member that
 * could not start (-ENOMEM: no stack) never ran, and its connection is lost. */
static void reap_connections(void) {
    int rc;
    while ((rc = weft_group_next(connections, NULL, 0)) == 0 || rc == -ENOMEM)
        ;
}

static void *accept_loop(void *arg) {
    int listen_fd = (int)(intptr_t)arg;
    for (;;) {
        reap_connections();
        int fd = weft_accept(listen_fd, NULL, NULL, WEFT_FOREVER);
        if (fd >= 0) {
            if (start_connection(fd) == -ECANCELED)
                return NULL;
        } else if (fd == -ECANCELED) { /* main cancelled us (step 2) */
            return NULL;
        } else if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
            weft_sleep_ms(10); /* out of fds or memory: let connections close, retry */
        } else if (fd != -ECONNABORTED && fd != -EINTR) {
            fprintf(stderr, "http_server: accept: %s\n", strerror(-fd));
            atomic_store(&exit_status, 1);
            kill(getpid(), SIGTERM); /* main's sigwait takes it and shuts down */
            return NULL;
        }
    }
}

/* ---- Command line and main ---------------------------------------------------------- */

static void usage(FILE *out) {
    fprintf(out,
            "usage: http_server [--host H] [--port N] [--workers N] [--idle-timeout S]\n"
            "                   [--max-conns N] [--grace-ms MS]\n"
            "  --host H          address to listen on (default 127.0.0.1)\n"
            "  --port N          port (default 8080; 0: an ephemeral port, printed)\n"
            "  --workers N       worker threads (default 0: one per CPU)\n"
            "  --idle-timeout S  close a connection idle for S seconds (default 30; 0: never)\n"
            "  --max-conns N     serve at most N connections at once; more wait to be\n"
            "                    accepted (default 10000; 0: no limit)\n"
            "  --grace-ms MS     on SIGINT or SIGTERM, idle connections close at once and\n"
            "                    requests in progress get MS ms to finish (default 5000)\n"
            "Prints \"listening on HOST:PORT\" once ready; stops on SIGINT or SIGTERM.\n");
}

/* The number after option argv[*i] (which it steps over); exits on a bad one. */
static unsigned long number_argument(int argc, char **argv, int *i, unsigned long max) {
    const char *name = argv[*i], *text = *i + 1 < argc ? argv[++*i] : "";
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || value > max) {
        fprintf(stderr, "http_server: %s wants a number from 0 to %lu\n", name, max);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    unsigned long port = 8080, workers = 0, idle_s = 30, max_conns = 10000, grace_ms = 5000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0) {
            port = number_argument(argc, argv, &i, 65535);
        } else if (strcmp(argv[i], "--workers") == 0) {
            workers = number_argument(argc, argv, &i, WEFT_MAX_WORKERS);
        } else if (strcmp(argv[i], "--idle-timeout") == 0) {
            idle_s = number_argument(argc, argv, &i, 86400);
        } else if (strcmp(argv[i], "--max-conns") == 0) {
            max_conns = number_argument(argc, argv, &i, WEFT_MAX_MAX_TASKS);
        } else if (strcmp(argv[i], "--grace-ms") == 0) {
            grace_ms = number_argument(argc, argv, &i, 3600000);
        } else {
            fprintf(stderr, "http_server: unknown argument: %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    idle_timeout_ns = idle_s * 1000000000ull;

    sigset_t signals; /* step 1: before the runtime's threads exist */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    weft_runtime *rt;
    int rc = weft_runtime_create(&(weft_config){.workers = (unsigned)workers}, &rt);
    if (rc != 0) {
        fprintf(stderr, "http_server: weft_runtime_create: %s\n", strerror(-rc));
        return 1;
    }
    rc = weft_group_create(&connections);
    if (rc != 0) {
        fprintf(stderr, "http_server: weft_group_create: %s\n", strerror(-rc));
        weft_runtime_destroy(rt);
        return 1;
    }
    weft_group_set_limit(connections, max_conns);
    int listen_fd = weft_tcp_listen(host, (unsigned)port, 0);
    weft_task *acceptor = NULL;
    if (listen_fd < 0)
        fprintf(stderr, "http_server: cannot listen on %s port %lu: %s\n", host, port,
                strerror(-listen_fd));
    else if (!(acceptor = weft_spawn_on(rt, accept_loop, (void *)(intptr_t)listen_fd)))
        fprintf(stderr, "http_server: weft_spawn_on: %s\n", strerror(errno));
    if (!acceptor) {
        if (listen_fd >= 0)
            weft_fd_close(listen_fd);
        weft_group_destroy(connections);
        weft_runtime_destroy(rt);
        return 1;
    }
    bool ipv6 = strchr(host, ':') != NULL;
    printf("listening on %s%s%s:%d\n", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
           weft_socket_port(listen_fd));
    fflush(stdout);

    int signal_number;
    sigwait(&signals, &signal_number);
    weft_cancel(acceptor); /* step 2 */
    weft_join(acceptor, NULL);
    weft_fd_close(listen_fd);
    atomic_store(&grace_deadline, weft_now() + grace_ms * 1000000ull); /* step 3 */
    weft_group_cancel(connections);
    weft_group_destroy(connections); /* step 4: waits for every connection */
    rc = weft_runtime_destroy(rt);
    if (rc != 0)
        fprintf(stderr, "http_server: weft_runtime_destroy: %s\n", strerror(-rc));
    return rc != 0 ? 1 : atomic_load(&exit_status);
}
