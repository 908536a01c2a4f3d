/*
 * sanitizer.h: tells ThreadSanitizer, AddressSanitizer and valgrind about task stacks,
 * so that their reports on weft are exact rather than noisy. Compiled to nothing when
 * the library is built without them.
 *
 * Each execution context (a worker's own thread stack, or a task's stack) owns one
 * weft__fiber. The protocol around every weft__context_switch is:
 *
 *   weft__fiber_before_switch(from, to, from_is_exiting);
 *   weft__context_switch(...);
 *   weft__fiber_after_switch(self);        (runs in the context that was resumed)
 *
 * - TSan: a fiber is created with each stack, the first time a task runs on it, and
 *   destroyed with the stack (see weft__fiber_init_task for why not per task).
 * __tsan_switch_to_fiber is called with flags 0, so it records the happens-before edge that the
 * switch really creates (the two sides run on one thread, one after the other). Without these calls
 * TSan's shadow stack overflows after about 66,000 task starts and races show bogus stacks.
 * - ASan: __sanitizer_start_switch_fiber before, __sanitizer_finish_switch_fiber after,
 *   with the destination stack's bounds; an exiting task passes NULL so its fake stack
 *   is freed.
 * - valgrind: each mapped stack is registered (VALGRIND_STACK_REGISTER) in stack.c;
 *   without it memcheck takes every switch for a huge stack change and reports
 *   thousands of false errors.
 */
#ifndef WEFT__BASE_SANITIZER_H
#define WEFT__BASE_SANITIZER_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define WEFT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT__ASAN 1
#endif
#endif

#if defined(WEFT__TSAN)
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
void __tsan_set_fiber_name(void *fiber, const char *name);
#endif
#if defined(WEFT__ASAN)
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
#endif

/* For the two frames of a task that are entered and never left: the entry function
 * reached from the trampoline, and the final switch away. TSan keeps a shadow call stack
 * per fiber, and since fibers are reused with their stacks, an instrumented frame that
 * never returns would stay on it for good; after ~32,000 tasks the shadow stack
 * overflows (a CHECK in sanitizer_stackdepot). The task's own function runs in an
 * ordinary instrumented frame between them, which does return. */
#if defined(__clang__)
#define WEFT__NO_SANITIZER_FRAME __attribute__((disable_sanitizer_instrumentation))
#else
#define WEFT__NO_SANITIZER_FRAME __attribute__((no_sanitize("thread", "address", "undefined")))
#endif

/* The annotations must be inlined into their caller even at -O0: an instrumented
 * helper that called __tsan_switch_to_fiber would run its own __tsan_func_exit on the
 * other fiber's shadow stack and corrupt it. */
#define WEFT__FIBER_INLINE static inline __attribute__((always_inline))

/* One execution context as the sanitizers see it. Owned by the context's owner: the
 * worker for its thread stack, the task for its own stack. */
typedef struct weft__fiber {
#if defined(WEFT__TSAN)
    void *tsan_fiber;
#endif
#if defined(WEFT__ASAN)
    const void *stack_bottom; /* lowest usable address */
    size_t stack_size;
    void *fake_stack; /* saved by start_switch when this context suspends */
#endif
    char unused; /* keeps the struct non-empty in plain builds */
} weft__fiber;

/* A worker thread's own context, called on that thread before its first switch. */
WEFT__FIBER_INLINE void weft__fiber_init_thread(weft__fiber *f, const void *stack_bottom,
                                                size_t stack_size) {
    (void)f;
    (void)stack_bottom;
    (void)stack_size;
#if defined(WEFT__TSAN)
    f->tsan_fiber = __tsan_get_current_fiber();
#endif
#if defined(WEFT__ASAN)
    f->stack_bottom = stack_bottom;
    f->stack_size = stack_size;
    f->fake_stack = NULL;
#endif
}

/* A task's context, when it gets its stack. `stack_fiber` is the TSan fiber kept with
 * that stack (NULL the first time): creating a TSan fiber costs a memset of a ~300 KB
 * ThreadState (gcc 12's libtsan) and its page faults: milliseconds (4 to 9 ms each in a
 * loop of 2,000 __tsan_create_fiber calls on the 2-core VM under a load average of 12,
 * 2026-12-02; earlier single readings said 2 and 20 ms), so a fiber lives as
 * long as its stack and serves every task that runs on it. That adds no false
 * happens-before edge: the stack pool already orders each task's exit before the next
 * task's start on the same stack. */
WEFT__FIBER_INLINE void weft__fiber_init_task(weft__fiber *f, const void *stack_bottom,
                                              size_t stack_size, void **stack_fiber) {
    (void)f;
    (void)stack_bottom;
    (void)stack_size;
    (void)stack_fiber;
#if defined(WEFT__TSAN)
    if (!*stack_fiber)
        *stack_fiber = __tsan_create_fiber(0);
    f->tsan_fiber = *stack_fiber;
#endif
#if defined(WEFT__ASAN)
    f->stack_bottom = stack_bottom;
    f->stack_size = stack_size;
    f->fake_stack = NULL;
#endif
}

/* When a stack is unmapped, from a context that is not its fiber. */
WEFT__FIBER_INLINE void weft__fiber_destroy_stack(void *stack_fiber) {
    (void)stack_fiber;
#if defined(WEFT__TSAN)
    if (stack_fiber)
        __tsan_destroy_fiber(stack_fiber);
#endif
}

WEFT__FIBER_INLINE void weft__fiber_before_switch(weft__fiber *from, weft__fiber *to,
                                                  bool from_is_exiting) {
    (void)from;
    (void)to;
    (void)from_is_exiting;
#if defined(WEFT__ASAN)
    __sanitizer_start_switch_fiber(from_is_exiting ? NULL : &from->fake_stack, to->stack_bottom,
                                   to->stack_size);
#endif
#if defined(WEFT__TSAN)
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
}

WEFT__FIBER_INLINE void weft__fiber_after_switch(weft__fiber *self) {
    (void)self;
#if defined(WEFT__ASAN)
    __sanitizer_finish_switch_fiber(self->fake_stack, NULL, NULL);
#endif
}

#endif /* WEFT__BASE_SANITIZER_H */
