/*
 * tcp.c: TCP conveniences over the fd calls (weft.h): listen and connect by host and
 * port, the port a socket is bound to. Owns no state. Name resolution (getaddrinfo(3)
 * blocks on DNS) runs on the blocking pool when the caller is a task.
 */
#include "sched/cancel.h"
#include "sched/runtime.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct weft__resolve {
    const char *host;
    char service[8];
    struct addrinfo hints;
    struct addrinfo *list;
    int status; /* getaddrinfo's */
    int error;  /* errno after it, on the thread that called it (EAI_SYSTEM) */
} weft__resolve;

static void *resolve_now(void *arg) {
    weft__resolve *r = arg;
    r->status = getaddrinfo(r->host, r->service, &r->hints, &r->list);
    r->error = errno;
    return NULL;
}

static int resolve_error(int status, int error) {
    switch (status) {
    case EAI_AGAIN:
        return -EAGAIN; /* a resolver could not be reached: try later */
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return error ? -error : -EIO;
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_SERVICE:
    case EAI_BADFLAGS:
        return -EINVAL;
    default: /* EAI_NONAME, EAI_NODATA, EAI_FAIL, EAI_ADDRFAMILY */
        return -EADDRNOTAVAIL;
    }
}

/* A resolution on the blocking pool, shared by the pool thread and the task that asked:
 * the task may stop waiting (a deadline, a cancel) while getaddrinfo still runs, so the
 * job is on the heap, holds its own copy of the host name, and whichever side lets go of
 * it last frees it (`refs`, 2 at the start). */
typedef struct weft__resolve_job {
    weft__atomic_word refs;
    weft__resolve r;
    char host[];
} weft__resolve_job;

static void resolve_job_release(weft__resolve_job *job) {
    /* Full: the last side sees everything the other wrote (status, list) before it
     * frees. */
    if (weft__atomic_fetch_add_full(&job->refs, (AO_t)-1) != 1)
        return;
    if (job->r.status == 0 && job->r.list)
        freeaddrinfo(job->r.list);
    free(job);
}

static void *resolve_job_run(void *arg) {
    weft__resolve_job *job = arg;
    resolve_now(&job->r);
    resolve_job_release(job);
    return NULL;
}

/* getaddrinfo on the blocking pool from a task (a cancellation point: the lookup then
 * finishes on its own), directly elsewhere. */
static int resolve(weft__resolve *r) {
    if (!weft__worker_current_task(NULL)) {
        resolve_now(r);
        return r->status == 0 ? 0 : resolve_error(r->status, r->error);
    }
    size_t host_len = r->host ? strlen(r->host) + 1 : 0;
    weft__resolve_job *job = malloc(sizeof(*job) + host_len);
    if (!job)
        return -ENOMEM;
    weft__atomic_store_relaxed(&job->refs, 2); /* published by the spawn */
    job->r = *r;
    if (r->host) {
        memcpy(job->host, r->host, host_len);
        job->r.host = job->host;
    }
    weft_task *t = weft_spawn_blocking(resolve_job_run, job);
    if (!t) {
        int err = -errno;
        free(job);
        return err;
    }
    /* No deadline here: a join with one could fail with -ENOMEM for its timer (handle
     * valid) or for a call that never started (handle consumed), and we must know which. */
    int rc = weft_join(t, NULL);
    if (rc == -ECANCELED) {
        weft_detach(t); /* the pool thread finishes and lets go of the job */
        resolve_job_release(job);
        return rc;
    }
    if (rc < 0) { /* -ENOMEM: the call never started, so the job is ours alone */
        free(job);
        return rc;
    }
    r->status = job->r.status;
    r->error = job->r.error;
    r->list = job->r.list;
    job->r.list = NULL; /* ours now */
    resolve_job_release(job);
    return r->status == 0 ? 0 : resolve_error(r->status, r->error);
}

static void resolve_init(weft__resolve *r, const char *host, unsigned port, int flags) {
    memset(r, 0, sizeof(*r));
    r->host = host;
    snprintf(r->service, sizeof(r->service), "%u", port);
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->hints.ai_flags = AI_NUMERICSERV | flags;
}

static int listen_on(const struct addrinfo *ai, int backlog) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) /* "every address": IPv4 too, where the system allows */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

WEFT_API int weft_tcp_listen(const char *host, unsigned port, int backlog) {
    if (port > 65535 || backlog < 0)
        return -EINVAL;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    if (backlog == 0)
        backlog = SOMAXCONN;
    bool any = !host || !*host;
    weft__resolve r;
    /* Every address: the IPv6 wildcard (dual-stack) first, IPv4's if IPv6 is off. */
    resolve_init(&r, any ? NULL : host, port, AI_PASSIVE | (any ? 0 : AI_ADDRCONFIG));
    if (any)
        r.hints.ai_family = AF_INET6;
    int rc = resolve(&r);
    if (rc < 0 && rc != -ECANCELED && any) {
        r.hints.ai_family = AF_INET;
        rc = resolve(&r);
    }
    if (rc < 0)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = r.list; ai; ai = ai->ai_next) {
        rc = listen_on(ai, backlog);
        if (rc >= 0)
            break;
    }
    freeaddrinfo(r.list);
    if (rc < 0 && any && (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL)) {
        /* A kernel without IPv6: IPv4's wildcard. */
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        struct addrinfo ai = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM,
                              .ai_addr = (struct sockaddr *)&sin, .ai_addrlen = sizeof(sin)};
        rc = listen_on(&ai, backlog);
    }
    return rc;
}

WEFT_API int weft_tcp_connect(const char *host, unsigned port, uint64_t deadline_ns) {
    if (!host || port == 0 || port > 65535)
        return -EINVAL;
    int cancelled = weft__cancel_point(); /* a cancellation point: at once (weft.h) */
    if (cancelled)
        return cancelled;
    weft__resolve r;
    resolve_init(&r, host, port, AI_ADDRCONFIG);
    int rc = resolve(&r);
    if (rc < 0)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = r.list; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = weft_connect(fd, ai->ai_addr, ai->ai_addrlen, deadline_ns);
        if (rc == 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            rc = fd;
            break;
        }
        weft_fd_close(fd);
        if (rc == -ETIMEDOUT && deadline_ns != WEFT_FOREVER && weft_now() >= deadline_ns)
            break; /* out of time for the other addresses too */
    }
    freeaddrinfo(r.list);
    return rc;
}

WEFT_API int weft_socket_port(int fd) {
    if (fd < 0)
        return -EBADF;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}
