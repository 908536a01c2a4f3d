/*
 * io_util.h: plain-syscall helpers for the I/O tests (tests/unit/test_io.c,
 * tests/stress/stress_io_storm.c): loopback socket pairs made without weft, a send
 * buffer filled to the brim, a byte pattern to check streams with, and the count of open
 * fds (a runtime must give back the fds it opened). Nothing here asserts: each helper
 * returns 0 or a negative errno, so both Criterion suites and stress.h programs use it.
 */
#ifndef WEFT_IO_UTIL_H
#define WEFT_IO_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Byte i of stream `stream`: every stream differs, and so do neighbouring bytes, so a
 * byte lost, doubled or swapped between streams shows. */
static inline uint8_t io_pattern(uint64_t stream, uint64_t i) {
    uint64_t z = stream * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull;
    z ^= z >> 29;
    z *= 0x94d049bb133111ebull;
    return (uint8_t)(z >> 56);
}

static inline void io_pattern_fill(uint8_t *buf, size_t len, uint64_t stream, uint64_t from) {
    for (size_t i = 0; i < len; i++)
        buf[i] = io_pattern(stream, from + i);
}

/* The offset of the first byte of buf that is not stream's byte from + i, or len. */
static inline size_t io_pattern_check(const uint8_t *buf, size_t len, uint64_t stream,
                                      uint64_t from) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != io_pattern(stream, from + i))
            return i;
    return len;
}

/* Open fds of the process (entries of /proc/self/fd, less the one opendir holds), or -1. */
static inline int io_open_fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

/* Small socket buffers, so that filling one takes kilobytes, not megabytes. */
static inline void io_small_buffers(int fd) {
    int size = 4096; /* the kernel doubles it, and has a floor */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
}

/* Writes stream's bytes from *offset into fd with send(MSG_DONTWAIT) until the kernel
 * takes not one more byte (bounded: at most 64 MiB). Advances *offset; returns 0 or a
 * negative errno. */
static inline int io_fill(int fd, uint64_t stream, uint64_t *offset) {
    uint8_t chunk[4096];
    size_t len = sizeof chunk;
    for (int rounds = 0; rounds < 1 << 16 && *offset < (64u << 20); rounds++) {
        io_pattern_fill(chunk, len, stream, *offset);
        ssize_t n = send(fd, chunk, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            *offset += (uint64_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (len == 1)
                return 0;
            len /= 2;
        } else {
            return n < 0 ? -errno : -EIO;
        }
    }
    return -EFBIG;
}

/* A listening TCP socket on 127.0.0.1, an ephemeral port, with the given backlog; its
 * address in *addr. Returns the fd (blocking) or a negative errno. */
static inline int io_loopback_listener(int backlog, struct sockaddr_in *addr) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *addr;
    if (bind(l, (struct sockaddr *)addr, sizeof *addr) != 0 || listen(l, backlog) != 0 ||
        getsockname(l, (struct sockaddr *)addr, &len) != 0) {
        int e = -errno;
        close(l);
        return e;
    }
    return l;
}

/* A connected TCP pair over 127.0.0.1, made with blocking syscalls: sv[0] the client,
 * sv[1] the accepted end. Returns 0 or a negative errno. */
static inline int io_tcp_pair(int sv[2]) {
    struct sockaddr_in addr;
    int l = io_loopback_listener(1, &addr);
    if (l < 0)
        return l;
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int e = 0;
    if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof addr) != 0) {
        e = -errno;
    } else {
        int a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        if (a < 0) {
            e = -errno;
        } else {
            sv[0] = c;
            sv[1] = a;
        }
    }
    if (e && c >= 0)
        close(c);
    close(l);
    return e;
}

static inline int io_fd_flags(int fd) {
    return fcntl(fd, F_GETFL);
}

static inline int io_fd_cloexec(int fd) {
    int f = fcntl(fd, F_GETFD);
    return f >= 0 && (f & FD_CLOEXEC);
}

#endif /* WEFT_IO_UTIL_H */
