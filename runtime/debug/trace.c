/*
 * trace.c: weft_trace_start / weft_trace_stop (weft.h) and WEFT_TRACE: the consumer half
 * of the trace rings (sched/trace.h), a drainer thread that empties them into a scratch
 * file while the program runs, and the conversion of that file into Chrome trace-event
 * JSON at the stop.
 *
 * Owns: a runtime's `struct weft__trace_state` (rt->trace, guarded by rt->trace_lock)
 * with its rings, which exist from the first weft_trace_start of the runtime until
 * weft_runtime_destroy (after its workers have exited: weft__trace_runtime_stopped).
 * Between traces the rings stay, so that a worker that loaded its ring pointer just
 * before a stop still writes into valid memory.
 *
 * One trace, start to stop (the ring's own protocol is in trace.h, TRACE-P1..P3):
 *
 *   start (under trace_lock)                  stop (under trace_lock)
 *   (TRACE-S1) each ring: tail := head        (TRACE-T1) each worker: trace := NULL;
 *        (skips what a late push of an             no push begins after its worker
 *        earlier trace left; release: the          sees it, one in flight finishes
 *        earlier drainer's reads of those          into the ring (valid memory)
 *        slots come before any producer        (TRACE-T2) the drainer is told to stop
 *        reuses them); its `dropped` is the        and joined; one final drain up to
 *        trace's baseline                          each head as published (acquire):
 *   (TRACE-S2) the drainer thread starts           a slot beyond it may be being
 *   (TRACE-S3) each worker: trace := its           written and is never read
 *        ring (release: pairs with the        (TRACE-T3) what a push in flight
 *        worker's acquire in                       publishes after T2 stays in the
 *        weft__worker_trace; the ring's            ring: the next start skips it (S1),
 *        fields as initialised)                    and the conversion drops any event
 *                                                  stamped before its trace began
 *
 *   drainer (every WEFT__TRACE_DRAIN_NS, and once more by the stopper in T2)
 *   (TRACE-D1) head (acquire: pairs with the producer's release of head in P3; the
 *        slots before it are filled), the slots [tail, head) appended to the scratch
 *        file straight from the ring (writev: the kernel has read them when it
 *        returns), then tail := head (release: pairs with the producer's acquire of
 *        tail in P2; those reads come before it overwrites the slots).
 *
 * So the stop needs no wait for pushes in flight: the ring itself keeps the final drain
 * and a late producer on different slots (it writes only past the head the drain read,
 * and only into slots the consumer released), and the rings outlive every producer
 * (weft_runtime_destroy frees them after joining the workers).
 *
 * The scratch file holds chunks: {uint32 worker, uint32 count} then `count` raw
 * weft__trace_event, in drain order (so each worker's events in its order). It is
 * unnamed (O_TMPFILE in path's directory, else in $TMPDIR or /tmp, else a mkstemp file
 * unlinked at once) and vanishes when closed; the file at `path` stays empty until the
 * stop writes the JSON into it in one sequential pass (so `path` may be a pipe).
 *
 * The JSON (Chrome's trace-event format, "JSON Object Format"): one process, pid = the
 * runtime's number; one thread per worker, tid = index + 1 (tid 0 is the idle "swapper"
 * thread to Perfetto), named "worker <index>". Run slices (RUN_BEGIN to RUN_END, or to
 * and from a RUN_SWITCH) are complete events ("X") named "task <id>", with why they
 * ended; a worker's sleeps are "parked" slices; spawns, wake-ups, steals, timer passes
 * and I/O readiness are instant events ("i"). A wake-up or spawn is followed by a flow
 * start ("s", bound to that instant) and the woken task's next run slice by the flow
 * end ("f", "bp":"e") with the same id, so Perfetto draws an arrow. Two passes over the
 * scratch file: the first collects the flow ids both ends of which were recorded, the
 * second writes only those (a wake recorded before a drop, or a task never run again
 * before the stop, leaves no dangling arrow end). Within a worker, timestamps are made
 * strictly increasing (1 ns apart at least; a slice begins 1 ns after the one it
 * follows ends), so no two of its events tie but a slice and its flow end (Perfetto
 * takes the slice first: it sorts ties by duration, longest first, then by position in
 * the file) and an instant and its flow start (written in that order). A slice whose
 * begin was dropped (or came before the start) begins at the trace's start if it is the
 * worker's first, else is left out; one whose end is missing ends at the worker's next
 * slice, or at the stop; a worker that recorded no slice at all shows what it was doing
 * at the start (read then from the dump's fields), until the stop. So the JSON is valid
 * and nested whatever was dropped.
 *
 * Rejected: writing JSON from the drainer as it goes (no rewrite at the stop). The
 * arrows need both ends: a flow end can be drained before its start (rings are drained
 * one after another) and its start may never be followed by an end; only a second pass
 * knows. Rewriting `path` in place (rename of a sibling temporary file): needs a
 * writable directory and a regular file; the scratch file needs neither.
 */
#include "debug/debug.h"

#include "base/memory.h"
#include "sched/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Ring size (events per worker) unless WEFT_TRACE_RING_EVENTS says otherwise, read when
 * a runtime's first trace starts: 2 MiB per worker. With the drain period below it holds
 * 64 M events per second and worker, about one every 15 ns: only a loop of yields (~10
 * ns each, two events) records faster, and then drops (and says so). */
#define WEFT__TRACE_RING_EVENTS     65536
#define WEFT__TRACE_RING_EVENTS_MIN 16
#define WEFT__TRACE_RING_EVENTS_MAX ((size_t)1 << 26)
/* The drainer's period: 1000 wake-ups a second (a few us each) while a trace runs. */
#define WEFT__TRACE_DRAIN_NS 1000000

typedef union weft__trace_ring_line {
    weft__trace_ring ring;
    unsigned char pad[128]; /* no two rings share a cache line (nor its prefetch pair) */
} weft__trace_ring_line;

typedef struct weft__trace_chunk {
    uint32_t worker;
    uint32_t count;
} weft__trace_chunk;

struct weft__trace_state {
    /* ---- Immutable from the first start until the runtime is destroyed. */
    weft_runtime *rt;
    unsigned ring_count; /* rt->worker_count */
    size_t ring_events;  /* per ring, a power of two */
    weft__trace_ring_line *rings;

    /* ---- One trace: written by start and stop under rt->trace_lock. */
    bool running;
    int out_fd;     /* the JSON's file */
    int scratch_fd; /* the drained events */
    char *path;     /* for messages */
    uint64_t start_ticks;
    uint64_t stop_ticks;
    uint64_t *dropped_base; /* per ring: its `dropped` at the start (TRACE-S1) */
    /* Per worker at the start, for a worker that records no slice event at all: the
     * task it ran (0: none), and whether it was parked (a dump's relaxed fields). */
    uint64_t *running_at_start;
    bool *parked_at_start;
    pthread_t drainer;

    /* ---- The drainer's while it runs, the stopper's after it joined it (TRACE-T2). */
    uint64_t events;   /* events appended to the scratch file */
    uint64_t lost;     /* events that could not be appended (write error) */
    int scratch_error; /* the first write error, negative */

    /* ---- Between the stopper and the drainer. */
    pthread_mutex_t drain_lock;
    pthread_cond_t drain_cond; /* CLOCK_MONOTONIC */
    bool drain_stop;           /* under drain_lock */
};

/* ---- Writing --------------------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t length) {
    const char *p = data;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

/* A buffered writer that remembers its first error and then writes nothing more. */
typedef struct weft__jout {
    int fd;
    int error;
    size_t length;
    char buffer[65536];
} weft__jout;

static void jout_flush(weft__jout *o) {
    if (!o->error && o->length)
        o->error = write_all(o->fd, o->buffer, o->length);
    o->length = 0;
}

static inline void jout_bytes(weft__jout *o, const char *s, size_t n) {
    if (o->length + n > sizeof(o->buffer))
        jout_flush(o);
    if (n > sizeof(o->buffer)) { /* not for the short strings written here */
        if (!o->error)
            o->error = write_all(o->fd, s, n);
        return;
    }
    memcpy(o->buffer + o->length, s, n);
    o->length += n;
}

static inline void jout_str(weft__jout *o, const char *s) {
    jout_bytes(o, s, strlen(s));
}

static void jout_u64(weft__jout *o, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jout_bytes(o, digits + sizeof(digits) - n, n);
}

/* ns as microseconds with three decimals: exact, so equal ns read back equal. */
static void jout_us(weft__jout *o, uint64_t ns) {
    jout_u64(o, ns / 1000);
    char frac[4] = {'.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10),
                    (char)('0' + ns % 10)};
    jout_bytes(o, frac, sizeof(frac));
}

/* A JSON string of the path, for the metadata: escapes what JSON requires. */
static void jout_json_string(weft__jout *o, const char *s) {
    jout_str(o, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            jout_bytes(o, e, 2);
        } else if (c < 0x20) {
            char e[7];
            snprintf(e, sizeof(e), "\\u%04x", c);
            jout_bytes(o, e, 6);
        } else {
            jout_bytes(o, (const char *)&c, 1);
        }
    }
    jout_str(o, "\"");
}

/* ---- Rings ------------------------------------------------------------------------------ */

/* WEFT_TRACE_RING_EVENTS, rounded up to a power of two and clamped; or the default. */
static size_t ring_events_setting(void) {
    const char *s = getenv("WEFT_TRACE_RING_EVENTS");
    if (!s || !*s)
        return WEFT__TRACE_RING_EVENTS;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v == 0) {
        fprintf(stderr, "weft: WEFT_TRACE_RING_EVENTS=%s: not a number of events; using %d\n", s,
                WEFT__TRACE_RING_EVENTS);
        return WEFT__TRACE_RING_EVENTS;
    }
    size_t n = WEFT__TRACE_RING_EVENTS_MIN;
    while (n < v && n < WEFT__TRACE_RING_EVENTS_MAX)
        n <<= 1;
    return n;
}

static void free_state(struct weft__trace_state *st) {
    for (unsigned i = 0; i < st->ring_count; i++)
        weft__free(st->rings[i].ring.events, st->ring_events * sizeof(weft__trace_event));
    unsigned n = st->rt->worker_count; /* the arrays' length; ring_count: rings made */
    weft__free(st->rings, n * sizeof(weft__trace_ring_line));
    weft__free(st->dropped_base, n * sizeof(uint64_t));
    weft__free(st->running_at_start, n * sizeof(uint64_t));
    weft__free(st->parked_at_start, n * sizeof(bool));
    pthread_cond_destroy(&st->drain_cond);
    pthread_mutex_destroy(&st->drain_lock);
    weft__free(st, sizeof(*st));
}

/* The state and its rings, at a runtime's first start. NULL: out of memory. */
static struct weft__trace_state *create_state(weft_runtime *rt) {
    struct weft__trace_state *st = weft__alloc(sizeof(*st), _Alignof(struct weft__trace_state));
    if (!st)
        return NULL;
    st->rt = rt;
    st->out_fd = st->scratch_fd = -1;
    pthread_mutex_init(&st->drain_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&st->drain_cond, &attr);
    pthread_condattr_destroy(&attr);
    st->ring_events = ring_events_setting();
    st->rings = weft__alloc(rt->worker_count * sizeof(weft__trace_ring_line), 64);
    st->dropped_base = weft__alloc(rt->worker_count * sizeof(uint64_t), sizeof(uint64_t));
    st->running_at_start = weft__alloc(rt->worker_count * sizeof(uint64_t), sizeof(uint64_t));
    st->parked_at_start = weft__alloc(rt->worker_count * sizeof(bool), sizeof(void *));
    if (!st->rings || !st->dropped_base || !st->running_at_start || !st->parked_at_start) {
        free_state(st); /* ring_count 0: frees no ring */
        return NULL;
    }
    for (; st->ring_count < rt->worker_count; st->ring_count++) {
        weft__trace_ring *r = &st->rings[st->ring_count].ring;
        r->events = weft__alloc(st->ring_events * sizeof(weft__trace_event), 64);
        if (!r->events) {
            free_state(st); /* the rings so far (weft__free ignores NULL) */
            return NULL;
        }
        r->mask = st->ring_events - 1;
    }
    return st;
}

/* ---- The drain ----------------------------------------------------------------------------- */

/* write_all for an iovec array (modified as it goes). */
static int writev_all(int fd, struct iovec *iov, int count) {
    while (count > 0) {
        ssize_t n = writev(fd, iov, count);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        while (count > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* (TRACE-D1) Moves what ring i holds to the scratch file, straight from the ring's
 * slots (one writev: no copy of ours; the kernel's read of the slots is done when it
 * returns). The consumer: the drainer, or the stopper once it has joined the drainer. */
static void drain_ring(struct weft__trace_state *st, unsigned i) {
    weft__trace_ring *r = &st->rings[i].ring;
    /* Acquire: pairs with the producer's release of head (TRACE-P3): the slots before
     * it are filled. */
    AO_t head = weft__atomic_load_acquire(&r->head);
    AO_t tail = weft__atomic_load_relaxed(&r->tail); /* ours */
    size_t n = head - tail;
    if (n == 0)
        return;
    if (!st->scratch_error) {
        size_t first = tail & r->mask, capacity = r->mask + 1;
        size_t before_wrap = n < capacity - first ? n : capacity - first;
        weft__trace_chunk chunk = {.worker = i, .count = (uint32_t)n};
        struct iovec iov[3] = {
            {&chunk, sizeof(chunk)},
            {&r->events[first], before_wrap * sizeof(weft__trace_event)},
            {&r->events[0], (n - before_wrap) * sizeof(weft__trace_event)},
        };
        st->scratch_error = writev_all(st->scratch_fd, iov, n > before_wrap ? 3 : 2);
    }
    if (st->scratch_error)
        st->lost += n;
    else
        st->events += n;
    /* Release: pairs with the producer's acquire of tail (TRACE-P2): the reads of these
     * slots come before it overwrites them. */
    weft__atomic_store_release(&r->tail, head);
}

static void drain_all(struct weft__trace_state *st) {
    for (unsigned i = 0; i < st->ring_count; i++)
        drain_ring(st, i);
}

static void *drainer_main(void *arg) {
    struct weft__trace_state *st = arg;
    pthread_mutex_lock(&st->drain_lock);
    while (!st->drain_stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += WEFT__TRACE_DRAIN_NS;
        if (until.tv_nsec >= 1000000000) {
            until.tv_nsec -= 1000000000;
            until.tv_sec++;
        }
        pthread_cond_timedwait(&st->drain_cond, &st->drain_lock, &until);
        if (st->drain_stop)
            break;
        pthread_mutex_unlock(&st->drain_lock);
        drain_all(st);
        pthread_mutex_lock(&st->drain_lock);
    }
    pthread_mutex_unlock(&st->drain_lock);
    return NULL;
}

/* ---- The scratch file ------------------------------------------------------------------- */

/* An unnamed read-write file: beside `path`, else in $TMPDIR (or /tmp). -errno. */
static int open_scratch(const char *path) {
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    fd = open(tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* No O_TMPFILE there (an older kernel, a file system without it). */
    char name[PATH_MAX];
    snprintf(name, sizeof(name), "%s/weft-trace-XXXXXX", tmp);
    fd = mkostemp(name, O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unlink(name);
    return fd;
}

/* Reads the scratch file back from its start: pread in large blocks. */
typedef struct weft__scratch_reader {
    int fd;
    int error;
    off_t offset; /* of the next block */
    size_t length, position;
    unsigned char buffer[65536];
} weft__scratch_reader;

/* n bytes (n <= sizeof(buffer)) into out. False at the end or on an error. */
static bool reader_take(weft__scratch_reader *rd, void *out, size_t n) {
    if (rd->length - rd->position < n) {
        size_t have = rd->length - rd->position;
        memmove(rd->buffer, rd->buffer + rd->position, have);
        rd->length = have;
        rd->position = 0;
        while (rd->length < n) {
            ssize_t got =
                pread(rd->fd, rd->buffer + rd->length, sizeof(rd->buffer) - rd->length, rd->offset);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                if (got < 0)
                    rd->error = -errno;
                return false;
            }
            rd->offset += got;
            rd->length += (size_t)got;
        }
    }
    memcpy(out, rd->buffer + rd->position, n);
    rd->position += n;
    return true;
}

static void reader_rewind(weft__scratch_reader *rd) {
    rd->offset = 0;
    rd->length = rd->position = 0;
}

/* Calls fn for every event of the scratch file, in file order, with its worker index. */
typedef void (*weft__event_fn)(void *context, unsigned worker, const weft__trace_event *e);

static void for_each_event(weft__scratch_reader *rd, unsigned workers, weft__event_fn fn,
                           void *context) {
    reader_rewind(rd);
    weft__trace_chunk chunk;
    while (reader_take(rd, &chunk, sizeof(chunk))) {
        for (uint32_t k = 0; k < chunk.count; k++) {
            weft__trace_event e;
            if (!reader_take(rd, &e, sizeof(e)))
                return;
            if (chunk.worker < workers)
                fn(context, chunk.worker, &e);
        }
    }
}

/* ---- Flow ids --------------------------------------------------------------------------- */

/* A flow id as the JSON names it: the waking worker's index + 1 in bits 32..47 and the
 * low 32 bits of its counter (trace.h: (index + 1) << 48 | counter; JSON readers keep
 * integers exact only below 2^53). */
static inline uint64_t flow_json_id(uint64_t flow) {
    return (flow >> 48) << 32 | (flow & 0xffffffffu);
}

/* A growable array of ids, sorted once filled. */
typedef struct weft__ids {
    uint64_t *items;
    size_t count, capacity;
    bool out_of_memory;
} weft__ids;

static void ids_add(weft__ids *ids, uint64_t id) {
    if (ids->count == ids->capacity) {
        size_t capacity = ids->capacity ? ids->capacity * 2 : 1024;
        uint64_t *items = realloc(ids->items, capacity * sizeof(uint64_t));
        if (!items) {
            ids->out_of_memory = true;
            return;
        }
        ids->items = items;
        ids->capacity = capacity;
    }
    ids->items[ids->count++] = id;
}

static int compare_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void ids_sort(weft__ids *ids) {
    if (ids->count)
        qsort(ids->items, ids->count, sizeof(uint64_t), compare_u64);
}

static bool ids_has(const weft__ids *ids, uint64_t id) {
    return ids->count && bsearch(&id, ids->items, ids->count, sizeof(uint64_t), compare_u64);
}

/* Pass 1: the arrows. A wake-up or spawn records its flow id; the run slice it caused
 * does not (the task object has no room for it: trace.h), so the arrows are paired
 * here, by task id and time: each run slice of a task (RUN_BEGIN, RUN_SWITCH) takes the
 * last flow recorded for that task since its previous slice (several wake-ups before
 * one slice: the last draws the arrow). The counter is one clock for every worker (an
 * invariant TSC, the virtual counter), so times compare across rings. */
typedef struct weft__flow_mark {
    uint64_t task, ticks, id; /* id: the JSON flow id (starts), or 0 (slice begins) */
} weft__flow_mark;

typedef struct weft__marks {
    weft__flow_mark *items;
    size_t count, capacity;
    bool out_of_memory;
} weft__marks;

static void marks_add(weft__marks *m, uint64_t task, uint64_t ticks, uint64_t id) {
    if (m->count == m->capacity) {
        size_t capacity = m->capacity ? m->capacity * 2 : 1024;
        weft__flow_mark *items = realloc(m->items, capacity * sizeof(*items));
        if (!items) {
            m->out_of_memory = true;
            return;
        }
        m->items = items;
        m->capacity = capacity;
    }
    m->items[m->count++] = (weft__flow_mark){task, ticks, id};
}

/* By task, then time; at one time a start before a begin. */
static int compare_marks(const void *a, const void *b) {
    const weft__flow_mark *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    if (x->ticks != y->ticks)
        return x->ticks < y->ticks ? -1 : 1;
    return (x->id == 0) - (y->id == 0);
}

/* By task, then time (a begin's key). */
static int compare_begin(const void *a, const void *b) {
    const weft__flow_mark *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    return x->ticks < y->ticks ? -1 : x->ticks > y->ticks;
}

typedef struct weft__flow_scan {
    weft__marks marks; /* pass 1's collection, then the begins that end an arrow */
    weft__ids starts;  /* the flow ids that start an arrow, sorted */
} weft__flow_scan;

static void scan_flows(void *context, unsigned worker, const weft__trace_event *e) {
    (void)worker;
    weft__flow_scan *scan = context;
    switch (e->kind) {
    case WEFT__TRACE_WAKE:
    case WEFT__TRACE_SPAWN:
        if (e->arg)
            marks_add(&scan->marks, e->task, e->ticks, flow_json_id(e->arg));
        break;
    case WEFT__TRACE_RUN_BEGIN:
    case WEFT__TRACE_RUN_SWITCH:
        marks_add(&scan->marks, e->task, e->ticks, 0);
        break;
    default:
        break;
    }
}

/* After pass 1: pairs each begin with the task's pending flow. Keeps in `marks` only the
 * begins that end an arrow (with its id), sorted for lookup; `starts` the ids paired. */
static void pair_flows(weft__flow_scan *scan) {
    weft__marks *m = &scan->marks;
    if (m->count)
        qsort(m->items, m->count, sizeof(*m->items), compare_marks);
    size_t kept = 0;
    uint64_t pending = 0, pending_task = 0;
    for (size_t i = 0; i < m->count; i++) {
        weft__flow_mark *k = &m->items[i];
        if (k->task != pending_task) {
            pending = 0;
            pending_task = k->task;
        }
        if (k->id) {
            pending = k->id;
        } else if (pending) {
            ids_add(&scan->starts, pending);
            m->items[kept++] = (weft__flow_mark){k->task, k->ticks, pending};
            pending = 0;
        }
    }
    m->count = kept; /* still sorted by task and time */
    ids_sort(&scan->starts);
}

/* The flow a run slice beginning with `e` ends, or 0. */
static uint64_t flow_ending(const weft__flow_scan *scan, const weft__trace_event *e) {
    weft__flow_mark key = {e->task, e->ticks, 0};
    const weft__flow_mark *k =
        scan->marks.count
            ? bsearch(&key, scan->marks.items, scan->marks.count, sizeof(key), compare_begin)
            : NULL;
    return k ? k->id : 0;
}

/* ---- Pass 2: the JSON -------------------------------------------------------------------- */

enum { OPEN_NONE, OPEN_RUN, OPEN_PARK };

typedef struct weft__track {
    uint64_t last_ns;   /* its last event's time (strictly increasing) */
    bool any;           /* it had an event */
    bool slice_seen;    /* it had a slice event: RUN_BEGIN/END/SWITCH, PARK, UNPARK */
    int open;           /* OPEN_* */
    uint64_t open_ns;   /* when the open slice began */
    uint64_t open_task; /* OPEN_RUN: its task */
} weft__track;

typedef struct weft__json {
    weft__jout *out;
    uint64_t pid;
    uint64_t start_ticks, factor;
    weft__track *tracks;
    const weft__flow_scan *scan;
    const uint64_t *running_at_start; /* per worker (weft__trace_state) */
    uint64_t slices, flows, instants, skipped;
} weft__json;

/* `,\n{"ph":"P","pid":N,"tid":T,"ts":U` : every event's head (the comma after the
 * metadata, which comes first). */
static void event_head(weft__json *j, const char *ph, unsigned worker, uint64_t ns) {
    weft__jout *o = j->out;
    jout_str(o, ",\n{\"ph\":\"");
    jout_str(o, ph);
    jout_str(o, "\",\"pid\":");
    jout_u64(o, j->pid);
    jout_str(o, ",\"tid\":");
    jout_u64(o, (uint64_t)worker + 1);
    jout_str(o, ",\"ts\":");
    jout_us(o, ns);
}

static const char *end_reason(uint64_t reason) {
    switch (reason) {
    case WEFT__SWITCH_PARK:
        return "park";
    case WEFT__SWITCH_YIELD:
        return "yield";
    case WEFT__SWITCH_EXIT:
        return "exit";
    case WEFT__TRACE_END_JOIN_INLINE:
        return "join inline";
    default:
        return "?";
    }
}

/* A complete slice on worker's track. task 0: a "parked" slice. */
static void slice(weft__json *j, unsigned worker, uint64_t task, uint64_t begin, uint64_t end,
                  const char *how_begun, const char *how_ended) {
    weft__jout *o = j->out;
    event_head(j, "X", worker, begin);
    jout_str(o, ",\"dur\":");
    jout_us(o, end - begin);
    if (task) {
        jout_str(o, ",\"cat\":\"task\",\"name\":\"task ");
        jout_u64(o, task);
        jout_str(o, "\",\"args\":{\"task\":");
        jout_u64(o, task);
    } else {
        jout_str(o, ",\"cat\":\"idle\",\"name\":\"parked\",\"args\":{");
    }
    if (how_begun) {
        jout_str(o, task ? ",\"begin\":\"" : "\"begin\":\"");
        jout_str(o, how_begun);
        jout_str(o, "\"");
    }
    if (how_ended) {
        jout_str(o, task || how_begun ? ",\"end\":\"" : "\"end\":\"");
        jout_str(o, how_ended);
        jout_str(o, "\"");
    }
    jout_str(o, "}}");
    j->slices++;
}

static void close_open(weft__json *j, unsigned worker, uint64_t ns, const char *how_ended) {
    weft__track *t = &j->tracks[worker];
    if (t->open == OPEN_RUN)
        slice(j, worker, t->open_task, t->open_ns, ns, NULL, how_ended);
    else if (t->open == OPEN_PARK)
        slice(j, worker, 0, t->open_ns, ns, NULL, how_ended);
    t->open = OPEN_NONE;
}

/* An instant event: `"name":"<what> <task>"` (task 0: just what), with its args. */
static void instant(weft__json *j, unsigned worker, uint64_t ns, const char *cat, const char *what,
                    uint64_t task) {
    weft__jout *o = j->out;
    event_head(j, "i", worker, ns);
    jout_str(o, ",\"s\":\"t\",\"cat\":\"");
    jout_str(o, cat);
    jout_str(o, "\",\"name\":\"");
    jout_str(o, what);
    if (task) {
        jout_str(o, " task ");
        jout_u64(o, task);
    }
    jout_str(o, "\",\"args\":{");
    j->instants++;
}

static void flow(weft__json *j, unsigned worker, uint64_t ns, bool start, uint64_t id) {
    weft__jout *o = j->out;
    event_head(j, start ? "s" : "f", worker, ns);
    jout_str(o, start ? ",\"cat\":\"wake\",\"name\":\"wake\",\"id\":"
                      : ",\"cat\":\"wake\",\"name\":\"wake\",\"bp\":\"e\",\"id\":");
    jout_u64(o, id);
    jout_str(o, "}");
    if (start)
        j->flows++;
}

/* An arrow both ends of which were recorded (pair_flows). */
static bool flow_whole(const weft__json *j, uint64_t id) {
    return ids_has(&j->scan->starts, id);
}

/* A run slice of e's task begins on `worker` at ns (RUN_BEGIN, RUN_SWITCH). The flow end
 * now (before the slice's instants), the slice when it closes: at one timestamp Perfetto
 * takes the slice first (the longest), then file order. */
static void open_run(weft__json *j, unsigned worker, uint64_t ns, const weft__trace_event *e) {
    weft__track *t = &j->tracks[worker];
    t->slice_seen = true;
    t->open = OPEN_RUN;
    t->open_ns = ns;
    t->open_task = e->task;
    uint64_t id = flow_ending(j->scan, e);
    if (id)
        flow(j, worker, ns, false, id);
}

static void write_event(void *context, unsigned worker, const weft__trace_event *e) {
    weft__json *j = context;
    weft__jout *o = j->out;
    weft__track *t = &j->tracks[worker];
    if (e->ticks < j->start_ticks) { /* left by a push of an earlier trace (TRACE-T3) */
        j->skipped++;
        return;
    }
    uint64_t ns = weft__ticks_to_ns(e->ticks - j->start_ticks, j->factor);
    if (t->any && ns <= t->last_ns)
        ns = t->last_ns + 1;
    t->any = true;
    t->last_ns = ns;
    uint64_t id;
    switch (e->kind) {
    case WEFT__TRACE_RUN_BEGIN:
        if (t->open != OPEN_NONE) { /* its end was dropped */
            close_open(j, worker, ns, "unknown (its end was dropped)");
            t->last_ns = ++ns; /* slices on a track never touch */
        }
        open_run(j, worker, ns, e);
        break;
    case WEFT__TRACE_RUN_SWITCH:
        if (t->open == OPEN_RUN)
            close_open(j, worker, ns, end_reason(e->extra));
        else if (!t->slice_seen && j->running_at_start[worker]) /* it ran at the start */
            slice(j, worker, j->running_at_start[worker], 0, ns, "before the trace",
                  end_reason(e->extra));
        else
            close_open(j, worker, ns, "unknown (events dropped)");
        /* The next one begins a nanosecond later: slices on a track never touch. */
        t->last_ns = ++ns;
        open_run(j, worker, ns, e);
        break;
    case WEFT__TRACE_RUN_END:
        if (t->open == OPEN_RUN)
            close_open(j, worker, ns, end_reason(e->arg));
        else if (!t->slice_seen) /* it ran when the trace started */
            slice(j, worker, e->task, 0, ns, "before the trace", end_reason(e->arg));
        else /* its begin was dropped: the worker's time since is unknown */
            close_open(j, worker, ns, "unknown (events dropped)");
        t->slice_seen = true;
        break;
    case WEFT__TRACE_PARK:
        if (t->open != OPEN_NONE) {
            close_open(j, worker, ns, "unknown (its end was dropped)");
            t->last_ns = ++ns;
        }
        t->slice_seen = true;
        t->open = OPEN_PARK;
        t->open_ns = ns;
        break;
    case WEFT__TRACE_UNPARK:
        if (t->open == OPEN_PARK)
            close_open(j, worker, ns, NULL);
        else if (!t->slice_seen)
            slice(j, worker, 0, 0, ns, "before the trace", NULL);
        else
            close_open(j, worker, ns, "unknown (events dropped)");
        t->slice_seen = true;
        break;
    case WEFT__TRACE_SPAWN:
    case WEFT__TRACE_WAKE:
        instant(j, worker, ns, e->kind == WEFT__TRACE_SPAWN ? "spawn" : "wake",
                e->kind == WEFT__TRACE_SPAWN ? "spawn" : "wake", e->task);
        jout_str(o, "\"task\":");
        jout_u64(o, e->task);
        jout_str(o, "}}");
        if (e->arg && flow_whole(j, id = flow_json_id(e->arg)))
            flow(j, worker, ns, true, id);
        break;
    case WEFT__TRACE_STEAL:
        instant(j, worker, ns, "steal", "steal", e->task);
        jout_str(o, "\"task\":");
        jout_u64(o, e->task);
        jout_str(o, ",\"victim\":");
        jout_u64(o, e->extra);
        jout_str(o, "}}");
        break;
    case WEFT__TRACE_TIMERS:
        instant(j, worker, ns, "timers", "timers fired", 0);
        jout_str(o, "\"fired\":");
        jout_u64(o, e->arg);
        jout_str(o, "}}");
        break;
    case WEFT__TRACE_IO:
        instant(j, worker, ns, "io", "io ready", 0);
        jout_str(o, "\"events\":");
        jout_u64(o, e->arg);
        jout_str(o, "}}");
        break;
    default:
        j->skipped++;
        break;
    }
}

/* Writes the JSON from the scratch file to st->out_fd. 0 or a negative errno. */
static int write_json(struct weft__trace_state *st, uint64_t dropped, const uint64_t *per_ring) {
    weft_runtime *rt = st->rt;
    weft__jout *o = malloc(sizeof(*o));
    weft__scratch_reader *rd = malloc(sizeof(*rd));
    weft__track *tracks = calloc(st->ring_count, sizeof(*tracks));
    weft__flow_scan scan = {0};
    int err = 0;
    if (!o || !rd || !tracks) {
        err = -ENOMEM;
        goto out;
    }
    o->fd = st->out_fd;
    o->error = 0;
    o->length = 0;
    rd->fd = st->scratch_fd;
    rd->error = 0;

    /* Pass 1. */
    for_each_event(rd, st->ring_count, scan_flows, &scan);
    if (!scan.marks.out_of_memory)
        pair_flows(&scan);
    if (scan.marks.out_of_memory || scan.starts.out_of_memory) /* no arrows, still a trace */
        scan.marks.count = scan.starts.count = 0;

    /* The metadata: the process and one named track per worker. */
    jout_str(o, "{\"traceEvents\":[\n{\"ph\":\"M\",\"pid\":");
    jout_u64(o, rt->number);
    jout_str(o, ",\"tid\":1,\"name\":\"process_name\",\"args\":{\"name\":\"weft runtime ");
    jout_u64(o, rt->number);
    jout_str(o, "\"}}");
    for (unsigned i = 0; i < st->ring_count; i++) {
        jout_str(o, ",\n{\"ph\":\"M\",\"pid\":");
        jout_u64(o, rt->number);
        jout_str(o, ",\"tid\":");
        jout_u64(o, (uint64_t)i + 1);
        jout_str(o, ",\"name\":\"thread_name\",\"args\":{\"name\":\"worker ");
        jout_u64(o, i);
        jout_str(o, "\"}},\n{\"ph\":\"M\",\"pid\":");
        jout_u64(o, rt->number);
        jout_str(o, ",\"tid\":");
        jout_u64(o, (uint64_t)i + 1);
        jout_str(o, ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":");
        jout_u64(o, i);
        jout_str(o, "}}");
    }

    /* Pass 2. */
    weft__json j = {.out = o,
                    .pid = rt->number,
                    .start_ticks = st->start_ticks,
                    .factor = rt->tick_factor,
                    .tracks = tracks,
                    .scan = &scan,
                    .running_at_start = st->running_at_start};
    for_each_event(rd, st->ring_count, write_event, &j);
    /* Slices still open end at the stop (or just after the worker's last event). */
    uint64_t end_ns = st->stop_ticks > st->start_ticks
                          ? weft__ticks_to_ns(st->stop_ticks - st->start_ticks, rt->tick_factor)
                          : 0;
    for (unsigned i = 0; i < st->ring_count; i++)
        if (tracks[i].any && tracks[i].last_ns >= end_ns)
            end_ns = tracks[i].last_ns + 1;
    for (unsigned i = 0; i < st->ring_count; i++) {
        if (tracks[i].slice_seen) {
            close_open(&j, i, end_ns,
                       tracks[i].open == OPEN_RUN ? "running at the stop" : "parked at the stop");
        } else if (st->running_at_start[i]) { /* one slice all along, as far as we know */
            slice(&j, i, st->running_at_start[i], 0, end_ns, "before the trace",
                  "running at the stop");
        } else if (st->parked_at_start[i]) {
            slice(&j, i, 0, 0, end_ns, "before the trace", "parked at the stop");
        }
    }

    /* What a reader needs to trust the picture. */
    jout_str(o, "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"producer\":\"weft ");
    jout_u64(o, WEFT_VERSION_MAJOR);
    jout_str(o, ".");
    jout_u64(o, WEFT_VERSION_MINOR);
    jout_str(o, ".");
    jout_u64(o, WEFT_VERSION_PATCH);
    jout_str(o, "\",\"runtime\":");
    jout_u64(o, rt->number);
    jout_str(o, ",\"workers\":");
    jout_u64(o, st->ring_count);
    jout_str(o, ",\"duration_us\":");
    jout_us(o, end_ns);
    jout_str(o, ",\"events\":");
    jout_u64(o, st->events);
    jout_str(o, ",\"dropped_events\":");
    jout_u64(o, dropped);
    jout_str(o, ",\"dropped_per_worker\":[");
    for (unsigned i = 0; i < st->ring_count; i++) {
        if (i)
            jout_str(o, ",");
        jout_u64(o, per_ring[i]);
    }
    jout_str(o, "],\"ring_events\":");
    jout_u64(o, st->ring_events);
    jout_str(o, ",\"slices\":");
    jout_u64(o, j.slices);
    jout_str(o, ",\"flows\":");
    jout_u64(o, j.flows);
    jout_str(o, ",\"instants\":");
    jout_u64(o, j.instants);
    if (st->scratch_error || rd->error) {
        jout_str(o, ",\"error\":");
        jout_json_string(o, strerror(-(st->scratch_error ? st->scratch_error : rd->error)));
    }
    jout_str(o, ",\"path\":");
    jout_json_string(o, st->path);
    jout_str(o, "}}\n");
    jout_flush(o);
    err = o->error ? o->error : st->scratch_error ? st->scratch_error : rd->error;
out:
    free(scan.starts.items);
    free(scan.marks.items);
    free(tracks);
    free(rd);
    free(o);
    return err;
}

/* ---- Start and stop ----------------------------------------------------------------------- */

/* The one trace of st, under trace_lock: the drainer is told to stop and joined, the
 * rings drained a last time, the JSON written, the files closed. The number of events
 * dropped, or a negative errno (then the JSON may be cut short). */
static int stop_locked(struct weft__trace_state *st, uint64_t *dropped_out) {
    weft_runtime *rt = st->rt;
    /* (TRACE-T1) Relaxed: a NULL publishes nothing; a push that loaded the ring before
     * this finishes into it (its memory lives until destroy), after the final drain's
     * head or not. */
    for (unsigned i = 0; i < st->ring_count; i++)
        weft__atomic_store_relaxed(&rt->workers[i]->trace, 0);
    st->stop_ticks = weft__ticks();
    /* (TRACE-T2) */
    pthread_mutex_lock(&st->drain_lock);
    st->drain_stop = true;
    pthread_cond_signal(&st->drain_cond);
    pthread_mutex_unlock(&st->drain_lock);
    pthread_join(st->drainer, NULL);
    drain_all(st);

    uint64_t per_ring[st->ring_count ? st->ring_count : 1];
    uint64_t dropped = st->lost;
    for (unsigned i = 0; i < st->ring_count; i++) {
        /* Relaxed: a count; the workers' last pushes may still be landing (TRACE-T3). */
        per_ring[i] = weft__atomic_load_relaxed(&st->rings[i].ring.dropped) - st->dropped_base[i];
        dropped += per_ring[i];
    }
    int err = write_json(st, dropped, per_ring);

    close(st->scratch_fd);
    if (close(st->out_fd) != 0 && !err && errno != EINTR)
        err = -errno;
    st->scratch_fd = st->out_fd = -1;
    free(st->path);
    st->path = NULL;
    st->running = false;
    *dropped_out = dropped;
    return err;
}

/* Blocks every signal on the drainer: the program's handlers never run on it. */
static int start_drainer(struct weft__trace_state *st) {
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    int err = pthread_create(&st->drainer, NULL, drainer_main, st);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    return -err;
}

/* Under trace_lock. */
static int start_locked(weft_runtime *rt, const char *path) {
    struct weft__trace_state *st = rt->trace;
    if (st && st->running)
        return -EBUSY;
    /* Acquire: pairs with destroy's release (RT-D3): its workers are gone or going, and
     * weft__trace_runtime_stopped has run or will find this trace. */
    if (weft__atomic_load_acquire(&rt->stopping))
        return -ESHUTDOWN;
    int out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (out_fd < 0)
        return -errno;
    int err = 0;
    int scratch_fd = open_scratch(path);
    if (scratch_fd < 0) {
        err = scratch_fd;
        goto fail_out;
    }
    if (!st && !(st = rt->trace = create_state(rt))) {
        err = -ENOMEM;
        goto fail_scratch;
    }
    st->path = strdup(path);
    if (!st->path) {
        err = -ENOMEM;
        goto fail_buffers;
    }
    st->out_fd = out_fd;
    st->scratch_fd = scratch_fd;
    st->events = st->lost = 0;
    st->scratch_error = 0;
    st->drain_stop = false;
    /* (TRACE-S1) We are the consumer now (an earlier drainer was joined). */
    for (unsigned i = 0; i < st->ring_count; i++) {
        weft__trace_ring *r = &st->rings[i].ring;
        /* Acquire: the head a late push of an earlier trace published, with its slot.
         * Release: those slots are consumed; the earlier drainer's reads come first. */
        weft__atomic_store_release(&r->tail, weft__atomic_load_acquire(&r->head));
        st->dropped_base[i] = weft__atomic_load_relaxed(&r->dropped); /* a count */
        /* Relaxed: a dump's view of the worker, approximate by nature. */
        st->running_at_start[i] = weft__atomic_load_relaxed(&rt->workers[i]->running_id);
        st->parked_at_start[i] = weft__atomic_load_relaxed(&rt->workers[i]->parked) != 0;
    }
    st->start_ticks = weft__ticks();
    /* (TRACE-S2) */
    err = start_drainer(st);
    if (err)
        goto fail_buffers;
    /* (TRACE-S3) Release: pairs with the worker's acquire in weft__worker_trace. */
    for (unsigned i = 0; i < st->ring_count; i++)
        weft__atomic_store_release(&rt->workers[i]->trace, (AO_t)&st->rings[i].ring);
    st->running = true;
    return 0;

fail_buffers:
    free(st->path);
    st->path = NULL;
    st->out_fd = st->scratch_fd = -1;
fail_scratch:
    close(scratch_fd);
fail_out:
    close(out_fd); /* left empty */
    return err;
}

WEFT_API int weft_trace_start(weft_runtime *rt, const char *path) {
    if (!rt || !path)
        return -EINVAL;
    /* A foreign call (RT-D4): destroy frees nothing while we are inside. */
    bool foreign = weft__runtime_enter_if_foreign(rt);
    pthread_mutex_lock(&rt->trace_lock);
    int rc = start_locked(rt, path);
    pthread_mutex_unlock(&rt->trace_lock);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return rc;
}

WEFT_API int weft_trace_stop(weft_runtime *rt) {
    if (!rt)
        return -EINVAL;
    bool foreign = weft__runtime_enter_if_foreign(rt);
    pthread_mutex_lock(&rt->trace_lock);
    int rc = -EINVAL;
    uint64_t dropped = 0;
    if (rt->trace && rt->trace->running) {
        rc = stop_locked(rt->trace, &dropped);
        if (rc == 0)
            rc = dropped > INT_MAX ? INT_MAX : (int)dropped;
    }
    pthread_mutex_unlock(&rt->trace_lock);
    if (foreign)
        weft__runtime_foreign_leave(rt);
    return rc;
}

/* ---- WEFT_TRACE and destroy -------------------------------------------------------------- */

static weft__atomic_word env_traces; /* runtimes WEFT_TRACE has traced */

void weft__trace_env_start(weft_runtime *rt) {
    const char *path = getenv("WEFT_TRACE");
    if (!path || !*path)
        return;
    /* The first runtime traced writes `path`, every later one `path.<its number>`.
     * Relaxed: only the count matters. */
    char numbered[PATH_MAX];
    if (weft__atomic_fetch_add_relaxed(&env_traces, 1) != 0) {
        snprintf(numbered, sizeof(numbered), "%s.%llu", path, (unsigned long long)rt->number);
        path = numbered;
    }
    int rc = weft_trace_start(rt, path);
    if (rc < 0)
        fprintf(stderr, "weft: WEFT_TRACE: %s: %s; not tracing runtime %llu\n", path, strerror(-rc),
                (unsigned long long)rt->number);
}

void weft__trace_runtime_stopped(weft_runtime *rt) {
    pthread_mutex_lock(&rt->trace_lock);
    struct weft__trace_state *st = rt->trace;
    if (st && st->running) {
        char *path = strdup(st->path);
        uint64_t dropped = 0;
        int rc = stop_locked(st, &dropped);
        if (rc < 0)
            fprintf(stderr, "weft: trace %s: %s\n", path ? path : "", strerror(-rc));
        else if (dropped)
            fprintf(stderr, "weft: trace %s: %llu events dropped (rings full)\n", path ? path : "",
                    (unsigned long long)dropped);
        free(path);
    }
    if (st)
        free_state(st);
    rt->trace = NULL;
    pthread_mutex_unlock(&rt->trace_lock);
}
