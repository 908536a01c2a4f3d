/*
 * echo_server.c: a TCP echo server on weft's I/O calls, one task per connection.
 *
 *     echo_server [--host H] [--port N] [--workers N] [--idle-timeout S]
 *
 * Every byte a client sends comes back. Once ready it prints one line on stdout,
 * "listening on HOST:PORT" (--port 0, an ephemeral port, shows which). A connection idle
 * for S seconds (default 30) is closed.
 *
 * The skeleton of any weft server: an accept loop in a task spawns a detached task per
 * connection, and each connection task is plain sequential code (read, write, again)
 * whose weft_read parks the task, not the worker, until bytes arrive.
 *
 * Shutdown on SIGINT or SIGTERM, echoing every byte already read:
 *   1. main blocks both signals before the runtime starts its threads (which inherit the
 *      mask), so they reach only main's sigwait;
 *   2. main, under registry_lock, sets `stopping`, closes the listening socket with
 *      weft_fd_close (the accept loop wakes with -ECANCELED and returns) and shuts down
 *      the reading side of every open connection (shutdown(SHUT_RD)): a task waiting for
 *      bytes reads end-of-file; a task writing finishes its write, then sees `stopping`;
 *   3. weft_runtime_destroy waits for every task, then returns.
 * The accept loop registers a new connection under the same lock and closes it if
 * `stopping` is set; a task unregisters before it closes its fd, so step 2 never touches
 * a closed (or reused) fd. http_server.c is the same server speaking HTTP.
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
#include <sys/socket.h>
#include <unistd.h>

#include <weft.h>

#define WRITE_TIMEOUT_NS (10 * 1000000000ull) /* bytes not sent back in 10 s: client gone */

static uint64_t idle_timeout_ns = 30 * 1000000000ull; /* --idle-timeout; 0: none */

/* ---- Open connections, for the shutdown (step 2 above) ------------------------------ */

struct connection {
    int fd;
    struct connection *prev, *next; /* in `registry`, under registry_lock */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct connection *registry; /* every open connection, under registry_lock */
static atomic_bool stopping;        /* set once, under registry_lock */
static atomic_int exit_status;      /* 1 if the accept loop failed */

static bool register_connection(struct connection *c) {
    pthread_mutex_lock(&registry_lock);
    bool ok = !atomic_load(&stopping);
    if (ok) {
        c->prev = NULL;
        c->next = registry;
        if (registry)
            registry->prev = c;
        registry = c;
    }
    pthread_mutex_unlock(&registry_lock);
    return ok;
}

static void unregister_connection(struct connection *c) {
    pthread_mutex_lock(&registry_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        registry = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&registry_lock);
}

static void stop_server(int listen_fd) {
    pthread_mutex_lock(&registry_lock);
    atomic_store(&stopping, true);
    weft_fd_close(listen_fd);
    for (struct connection *c = registry; c; c = c->next)
        shutdown(c->fd, SHUT_RD);
    pthread_mutex_unlock(&registry_lock);
}

/* ---- Tasks -------------------------------------------------------------------------- */

static void *serve_connection(void *arg) {
    struct connection *c = arg;
    char buf[16384];
    while (!atomic_load(&stopping)) {
        uint64_t deadline = idle_timeout_ns ? weft_now() + idle_timeout_ns : WEFT_FOREVER;
        ssize_t got = weft_read(c->fd, buf, sizeof buf, deadline);
        if (got <= 0) /* end of file, idle timeout, an error */
            break;
        if (weft_write(c->fd, buf, (size_t)got, weft_now() + WRITE_TIMEOUT_NS) != got)
            break;
    }
    unregister_connection(c);
    weft_fd_close(c->fd);
    free(c);
    return NULL;
}

static void start_connection(int fd) {
    struct connection *c = malloc(sizeof *c);
    weft_task *t = NULL;
    if (c) {
        c->fd = fd;
        if (register_connection(c)) {
            t = weft_spawn(serve_connection, c);
            if (!t)
                unregister_connection(c);
        }
    }
    if (!t) { /* shutting down, or out of memory or tasks: refuse this one */
        weft_fd_close(fd);
        free(c);
        return;
    }
    weft_detach(t);
}

static void *accept_loop(void *arg) {
    int listen_fd = (int)(intptr_t)arg;
    for (;;) {
        int fd = weft_accept(listen_fd, NULL, NULL, WEFT_FOREVER);
        if (fd >= 0)
            start_connection(fd);
        else if (atomic_load(&stopping)) /* -ECANCELED: main closed the socket */
            return NULL;
        else if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM)
            weft_sleep_ms(10); /* out of fds or memory: let connections close, retry */
        else if (fd != -ECONNABORTED && fd != -EINTR) {
            fprintf(stderr, "echo_server: accept: %s\n", strerror(-fd));
            atomic_store(&exit_status, 1);
            kill(getpid(), SIGTERM); /* main's sigwait takes it and shuts down */
            return NULL;
        }
    }
}

/* ---- Command line and main ---------------------------------------------------------- */

static void usage(FILE *out) {
    fprintf(out,
            "usage: echo_server [--host H] [--port N] [--workers N] [--idle-timeout S]\n"
            "  --host H          address to listen on (default 127.0.0.1)\n"
            "  --port N          port (default 7007; 0: an ephemeral port, printed)\n"
            "  --workers N       worker threads (default 0: one per CPU)\n"
            "  --idle-timeout S  close a connection idle for S seconds (default 30; 0: never)\n"
            "Prints \"listening on HOST:PORT\" once ready; stops on SIGINT or SIGTERM.\n");
}

/* The number after option argv[*i] (which it steps over); exits on a bad one. */
static unsigned long number_argument(int argc, char **argv, int *i, unsigned long max) {
    const char *name = argv[*i], *text = *i + 1 < argc ? argv[++*i] : "";
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-' || value > max) {
        fprintf(stderr, "echo_server: %s wants a number from 0 to %lu\n", name, max);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    unsigned long port = 7007, workers = 0, idle_s = 30;
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
        } else {
            fprintf(stderr, "echo_server: unknown argument: %s\n", argv[i]);
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
        fprintf(stderr, "echo_server: weft_runtime_create: %s\n", strerror(-rc));
        return 1;
    }
    int listen_fd = weft_tcp_listen(host, (unsigned)port, 0);
    weft_task *acceptor = NULL;
    if (listen_fd < 0)
        fprintf(stderr, "echo_server: cannot listen on %s port %lu: %s\n", host, port,
                strerror(-listen_fd));
    else if (!(acceptor = weft_spawn_on(rt, accept_loop, (void *)(intptr_t)listen_fd)))
        fprintf(stderr, "echo_server: weft_spawn_on: %s\n", strerror(errno));
    if (!acceptor) {
        if (listen_fd >= 0)
            weft_fd_close(listen_fd);
        weft_runtime_destroy(rt);
        return 1;
    }
    weft_detach(acceptor);
    bool ipv6 = strchr(host, ':') != NULL;
    printf("listening on %s%s%s:%d\n", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
           weft_socket_port(listen_fd));
    fflush(stdout);

    int signal_number;
    sigwait(&signals, &signal_number);
    stop_server(listen_fd);        /* step 2 */
    rc = weft_runtime_destroy(rt); /* step 3: waits for the connections to finish */
    if (rc != 0)
        fprintf(stderr, "echo_server: weft_runtime_destroy: %s\n", strerror(-rc));
    return rc != 0 ? 1 : atomic_load(&exit_status);
}
