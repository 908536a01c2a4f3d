/*
 * fuzz_deque.c: a libFuzzer target for the work-stealing deque of runtime/deque.h, its
 * sequential behaviour: the owner's push, pop and steal_batch_owner, and steal_any, all
 * called from one thread, against a reference model (a plain array, oldest first).
 *
 * The input chooses the capacity (2 to 256), where the indices start (0, or just below
 * the points where the index words wrap round as signed or unsigned numbers: the deque
 * computes with modular differences and must not care), then a sequence of operations.
 * Checked at every step:
 * - push fails, changing nothing, exactly when the deque holds `capacity` elements;
 * - pop gives the newest element, NULL when empty;
 * - steal_any gives the oldest, or WEFT__STEAL_EMPTY; never RETRY with no other thread;
 * - steal_batch_owner(n) gives min(n, size) of the oldest, oldest first;
 * - size_any is the model's size; capacity is what init was given.
 * init refuses capacities that are not powers of two >= 2 with -EINVAL.
 *
 * The concurrent behaviour is tested by tests/unit/test_deque_race.c.
 */
#define FUZZ_NAME "fuzz_deque"
#include "fuzz_input.h"
#include "sched/deque.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CAPACITY 256

#define CHECK FUZZ_CHECK

/* The model: elements oldest first, in a buffer with room to slide. */
typedef struct model {
    uintptr_t items[MAX_CAPACITY];
    size_t size;
    size_t capacity;
    uintptr_t next_value;
} model;

/* Elements are opaque, non-NULL and never dereferenced: distinct odd numbers, so that a
 * value that was never pushed, or one pushed long ago, is recognised. */
static void *new_item(model *m) {
    m->next_value += 2;
    return (void *)(m->next_value | 1);
}

static void model_take_oldest(model *m, size_t n) {
    memmove(m->items, m->items + n, (m->size - n) * sizeof(m->items[0]));
    m->size -= n;
}

static const AO_t start_indices[] = {
    0,
    1,
    (AO_t)INTPTR_MAX - 3, /* the signed difference (intptr_t)(b - t) around its sign change */
    (AO_t)INTPTR_MAX + 1,
    UINTPTR_MAX - 5, /* bottom wraps to 0 while top has not */
    UINTPTR_MAX,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    input in = {data, size};
    static model m;
    weft__deque d;

    memset(&m, 0, sizeof m);
    uint8_t first = in_u8(&in);
    /* Invalid capacities first: refused without allocating. */
    static const size_t bad[] = {0, 1, 3, 6, 100, 257};
    CHECK(weft__deque_init(&d, bad[first % 6]) == -EINVAL, "init(%zu) accepted", bad[first % 6]);

    m.capacity = (size_t)2 << ((first >> 3) % 8); /* 2 .. 256 */
    CHECK(weft__deque_init(&d, m.capacity) == 0, "init(%zu) failed", m.capacity);
    CHECK(weft__deque_capacity(&d) == m.capacity, "capacity %zu, not %zu", weft__deque_capacity(&d),
          m.capacity);
    /* An empty deque whose indices start elsewhere: the state after that many pushes and
     * pops, as far as the algorithm can tell. */
    AO_t start = start_indices[in_u8(&in) % (sizeof start_indices / sizeof start_indices[0])];
    weft__atomic_store_relaxed(&d.top, start);
    weft__atomic_store_relaxed(&d.bottom, start);

    while (in.left > 0) {
        uint8_t op = in_u8(&in);
        switch (op % 8) {
        case 0:
        case 1:
        case 2: {
            /* Pushes, up to 16 at once, so that full deques are reached quickly. */
            unsigned count = 1 + (op >> 3) % 16;
            for (unsigned k = 0; k < count; k++) {
                void *item = new_item(&m);
                bool ok = weft__deque_push_owner(&d, item);
                CHECK(ok == (m.size < m.capacity), "push with %zu of %zu gave %d", m.size,
                      m.capacity, ok);
                if (ok)
                    m.items[m.size++] = (uintptr_t)item;
            }
            break;
        }
        case 3:
        case 4: {
            void *got = weft__deque_pop_owner(&d);
            if (m.size == 0) {
                CHECK(got == NULL, "pop from an empty deque gave %p", got);
            } else {
                CHECK((uintptr_t)got == m.items[m.size - 1], "pop gave %p, expected %p (newest)",
                      got, (void *)m.items[m.size - 1]);
                m.size--;
            }
            break;
        }
        case 5: {
            void *got = (void *)1;
            weft__steal_result r = weft__deque_steal_any(&d, &got);
            CHECK(r != WEFT__STEAL_RETRY, "steal_any returned RETRY with no other thread");
            if (m.size == 0) {
                CHECK(r == WEFT__STEAL_EMPTY, "steal from an empty deque gave %d", (int)r);
                CHECK(got == (void *)1, "a failed steal wrote *item");
            } else {
                CHECK(r == WEFT__STEAL_SUCCESS, "steal with %zu elements gave %d", m.size, (int)r);
                CHECK((uintptr_t)got == m.items[0], "steal gave %p, expected %p (oldest)", got,
                      (void *)m.items[0]);
                model_take_oldest(&m, 1);
            }
            break;
        }
        case 6: {
            static void *out[MAX_CAPACITY + 8];
            size_t n = in_u8(&in) % (m.capacity + 3);
            for (size_t k = 0; k < n; k++)
                out[k] = NULL;
            out[n] = (void *)3; /* must stay untouched */
            size_t want = n < m.size ? n : m.size;
            size_t got = weft__deque_steal_batch_owner(&d, out, n);
            CHECK(got == want, "steal_batch_owner(%zu) with %zu elements took %zu", n, m.size, got);
            for (size_t k = 0; k < got; k++)
                CHECK((uintptr_t)out[k] == m.items[k],
                      "steal_batch_owner: element %zu is %p, expected %p", k, out[k],
                      (void *)m.items[k]);
            CHECK(out[n] == (void *)3, "steal_batch_owner wrote past n");
            model_take_oldest(&m, got);
            break;
        }
        default: {
            /* Drain from both ends alternately. */
            while (m.size > 0) {
                void *got = weft__deque_pop_owner(&d);
                CHECK((uintptr_t)got == m.items[m.size - 1], "drain: pop gave %p", got);
                m.size--;
                if (m.size == 0)
                    break;
                weft__steal_result r = weft__deque_steal_any(&d, &got);
                CHECK(r == WEFT__STEAL_SUCCESS && (uintptr_t)got == m.items[0],
                      "drain: steal gave %d, %p", (int)r, got);
                model_take_oldest(&m, 1);
            }
            CHECK(weft__deque_pop_owner(&d) == NULL, "drained deque not empty");
            break;
        }
        }
        CHECK(weft__deque_size_any(&d) == m.size, "size_any %zu, model %zu",
              weft__deque_size_any(&d), m.size);
    }
    weft__deque_destroy(&d);
    CHECK(d.slots == NULL, "destroy left the ring pointer");
    return 0;
}
