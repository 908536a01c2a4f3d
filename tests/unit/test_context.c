/*
 * test_context.c: the raw stack switch (runtime/arch/context.h and its .S) on stacks this
 * file maps itself, without the scheduler: values cross a switch in both directions; the
 * first switch enters the entry function with its argument on a stack aligned as the
 * ABI requires; make writes only where it says; the floating-point control state (x86-64:
 * MXCSR and the x87 control word; AArch64: FPCR) is per-context and a fresh context
 * inherits its creator's; the callee-saved registers
 * survive a switch (checked register by register from assembly, and through compiled
 * code with many live values); a deep recursion on a task stack, suspended at its
 * deepest, comes back intact; and an entry function that returns aborts the process.
 *
 * Every context follows worker.c's pattern: an entry in a frame the sanitizers do not see
 * (WEFT__NO_SANITIZER_FRAME), the context's work in an ordinary frame that returns, and a
 * last switch away for good; every switch is wrapped in the weft__fiber annotations so
 * ASan builds see exact stack bounds. Each test ends back on the main stack with every
 * stack unmapped. Checks run on the main stack: code on a context's stack only records.
 */
#include "arch/context.h"
#include "base/sanitizer.h"

#include "weft_criterion.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#define STACK_SIZE ((size_t)256 << 10)

/* ---- stacks, contexts and annotated switches ------------------------------------------ */

typedef struct tctx tctx;
struct tctx {
    weft__context sp; /* while suspended */
    weft__fiber fiber;
    void *tsan_slot; /* the stack's TSan fiber (weft__fiber_init_task) */
    unsigned char *map;
    size_t map_size;
    unsigned char *low, *top; /* the usable stack, above a PROT_NONE guard page */
    void (*body)(tctx *);     /* what generic_entry runs */
    void *arg;                /* for the body */
};

static weft__context main_sp;
static weft__fiber main_fiber;

/* The main stack as a fiber, as worker.c's init_scheduler_fiber does for a worker. */
static void main_fiber_init(void) {
    void *bottom = NULL;
    size_t size = 0;
#if defined(WEFT__ASAN)
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &bottom, &size);
        pthread_attr_destroy(&attr);
    }
#endif
    weft__fiber_init_thread(&main_fiber, bottom, size);
}

static void stack_alloc(tctx *c) {
    memset(c, 0, sizeof *c);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    c->map_size = STACK_SIZE + page;
    void *m = mmap(NULL, c->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED, "mmap of a stack failed");
    c->map = m;
    cr_assert_eq(mprotect(c->map, page, PROT_NONE), 0, "mprotect of the guard page");
    c->low = c->map + page;
    c->top = c->map + c->map_size;
}

static void stack_free(tctx *c) {
    weft__fiber_destroy_stack(c->tsan_slot);
    cr_assert_eq(munmap(c->map, c->map_size), 0);
    c->map = NULL;
}

static bool on_stack(const tctx *c, uintptr_t a) {
    return a >= (uintptr_t)c->low && a < (uintptr_t)c->top;
}

/* Switches from one context (its sp slot and fiber) to another; returns the value passed
 * by whoever resumes the caller. */
__attribute__((noinline)) static void *switch_to(weft__context *from_sp, weft__fiber *from,
                                                 const weft__context *to_sp, weft__fiber *to,
                                                 void *value) {
    weft__fiber_before_switch(from, to, false);
    void *r = weft__context_switch(from_sp, *to_sp, value);
    weft__fiber_after_switch(from);
    return r;
}

static void *resume(tctx *c, void *value) {
    return switch_to(&main_sp, &main_fiber, &c->sp, &c->fiber, value);
}
static void *suspend(tctx *c, void *value) {
    return switch_to(&c->sp, &c->fiber, &main_sp, &main_fiber, value);
}

/* A context's last switch: to the main stack, for good. */
WEFT__NO_SANITIZER_FRAME __attribute__((noinline, noreturn)) static void ctx_exit(tctx *c,
                                                                                 void *value) {
    weft__fiber_before_switch(&c->fiber, &main_fiber, true);
    weft__context_switch(&c->sp, main_sp, value);
    __builtin_unreachable();
}

/* The entry of contexts made by ctx_make: the first switch passes the tctx itself. */
WEFT__NO_SANITIZER_FRAME static void generic_entry(void *value) {
    tctx *c = value;
    weft__fiber_after_switch(&c->fiber);
    c->body(c);
    ctx_exit(c, c);
}

static void ctx_prepare(tctx *c, void *stack_top, void (*entry)(void *)) {
    weft__fiber_init_task(&c->fiber, c->low, (size_t)((unsigned char *)stack_top - c->low),
                          &c->tsan_slot);
    c->sp = weft__context_make(stack_top, entry);
}

static void ctx_make(tctx *c, void (*body)(tctx *), void *arg) {
    stack_alloc(c);
    c->body = body;
    c->arg = arg;
    ctx_prepare(c, c->top, generic_entry);
}

/* Resumes c for the last time (its body returns) and checks that it exited. */
static void finish(tctx *c, void *value) {
    void *r = resume(c, value);
    cr_assert_eq(r, c, "the context's last switch passed %p, expected %p", r, (void *)c);
}

static void *token(uintptr_t x) {
    return (void *)x;
}

/* ---- (a) values cross switches, main <-> A <-> B ---------------------------------------- */

/* main sends 3i+1 to A, A sends 3i+2 to B, B sends 3i+3 back to main; each side checks
 * what it receives. STOP ends A, then B. */
#define PING_ROUNDS 1000000u
#define STOP        token(1)

typedef struct pingpong {
    tctx a, b;
    uint64_t a_count, b_count, a_errors, b_errors;
    uintptr_t a_first_bad, b_first_bad;
    uintptr_t a_frame, b_frame;
} pingpong;

static void ping_a(tctx *c) {
    pingpong *pp = c->arg;
    pp->a_frame = (uintptr_t)__builtin_frame_address(0);
    /* Hand main our own tctx, as a value returned out of its resume. */
    uintptr_t v = (uintptr_t)suspend(c, c);
    while (v != (uintptr_t)STOP) {
        if (v != 3 * pp->a_count + 4) { /* token for round a_count, offset past STOP */
            if (!pp->a_errors++)
                pp->a_first_bad = v;
        }
        pp->a_count++;
        v = (uintptr_t)switch_to(&c->sp, &c->fiber, &pp->b.sp, &pp->b.fiber, token(v + 1));
    }
}

static void ping_b(tctx *c) {
    pingpong *pp = c->arg;
    pp->b_frame = (uintptr_t)__builtin_frame_address(0);
    uintptr_t v = (uintptr_t)suspend(c, c);
    while (v != (uintptr_t)STOP) {
        if (v != 3 * pp->b_count + 5) {
            if (!pp->b_errors++)
                pp->b_first_bad = v;
        }
        pp->b_count++;
        v = (uintptr_t)suspend(c, token(v + 1));
    }
}

Test(context, values_cross_switches_both_ways) {
    main_fiber_init();
    static pingpong pp; /* static: on none of the stacks being switched */
    memset(&pp, 0, sizeof pp);
    ctx_make(&pp.a, ping_a, &pp);
    ctx_make(&pp.b, ping_b, &pp);
    /* First switches: each context hands back its own tctx, a pointer passed out. */
    cr_assert_eq(resume(&pp.a, &pp.a), &pp.a);
    cr_assert_eq(resume(&pp.b, &pp.b), &pp.b);
    cr_assert(on_stack(&pp.a, pp.a_frame), "A did not run on its own stack");
    cr_assert(on_stack(&pp.b, pp.b_frame), "B did not run on its own stack");

    uint64_t errors = 0, first_bad_round = 0;
    for (uint64_t i = 0; i < PING_ROUNDS; i++) {
        uintptr_t sent = 3 * i + 4; /* > STOP */
        uintptr_t got = (uintptr_t)resume(&pp.a, token(sent));
        if (got != sent + 2 || pp.a_count != i + 1 || pp.b_count != i + 1) {
            if (!errors++)
                first_bad_round = i;
        }
    }
    cr_assert_eq(errors, 0, "%llu bad rounds, the first %llu", (unsigned long long)errors,
                 (unsigned long long)first_bad_round);
    cr_assert_eq(pp.a_errors, 0, "A received %zu first", (size_t)pp.a_first_bad);
    cr_assert_eq(pp.b_errors, 0, "B received %zu first", (size_t)pp.b_first_bad);
    cr_assert_eq(pp.a_count, PING_ROUNDS);
    cr_assert_eq(pp.b_count, PING_ROUNDS);

    finish(&pp.a, STOP);
    finish(&pp.b, STOP);
    stack_free(&pp.a);
    stack_free(&pp.b);
}

/* ---- (b) entry, argument and alignment ---------------------------------------------------- */

/* The entry is an assembly stub that records the stack pointer at its first instruction
 * and jumps (not calls) to the C part, which therefore starts with the same stack. The
 * x86-64 psABI requires (%rsp + 8) % 16 == 0 at a function's entry (ENTRY_SP_BIAS 8);
 * AAPCS64 requires sp % 16 == 0 at every public interface (ENTRY_SP_BIAS 0). */
void test_align_probe_entry(void *value);
void test_align_probe_c(void *value);
uintptr_t test_align_probe_rsp;

#if defined(__x86_64__)
#define ENTRY_SP_BIAS 8
__asm__(".text\n"
        ".globl test_align_probe_entry\n"
        ".hidden test_align_probe_entry\n"
        ".type test_align_probe_entry, @function\n"
        ".p2align 4\n"
        "test_align_probe_entry:\n"
        "    endbr64\n" /* reached by the trampoline's indirect call */
        "    movq %rsp, test_align_probe_rsp(%rip)\n"
        "    jmp test_align_probe_c\n"
        ".size test_align_probe_entry, .-test_align_probe_entry\n");
#elif defined(__aarch64__)
#define ENTRY_SP_BIAS 0
__asm__(".text\n"
        ".globl test_align_probe_entry\n"
        ".hidden test_align_probe_entry\n"
        ".type test_align_probe_entry, %function\n"
        ".p2align 4\n"
        "test_align_probe_entry:\n"
        "    bti c\n" /* reached by the trampoline's blr */
        "    mov x9, sp\n"
        "    adrp x10, test_align_probe_rsp\n"
        "    str x9, [x10, #:lo12:test_align_probe_rsp]\n"
        "    b test_align_probe_c\n"
        ".size test_align_probe_entry, .-test_align_probe_entry\n");
#endif

typedef struct align_probe {
    tctx c;
    void *value_seen;
    uintptr_t entry_rsp, frame, local;
    unsigned entries;
} align_probe;

/* A 16-aligned local: the compiler places it relative to %rsp, trusting the ABI. Its
 * address leaves through a volatile global: inside this function the compiler would fold
 * any alignment test of it to "aligned". */
static volatile uintptr_t aligned_local_seen;

__attribute__((noinline)) static uintptr_t aligned_local_address(void) {
    _Alignas(16) volatile unsigned char buf[16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)i;
    aligned_local_seen = (uintptr_t)buf;
    return aligned_local_seen;
}

__attribute__((noinline)) static void align_probe_body(align_probe *p, void *value) {
    p->entries++;
    p->value_seen = value;
    p->entry_rsp = test_align_probe_rsp;
    p->frame = (uintptr_t)__builtin_frame_address(0);
    p->local = aligned_local_address();
}

WEFT__NO_SANITIZER_FRAME void test_align_probe_c(void *value) {
    align_probe *p = value; /* the test passes the probe itself */
    weft__fiber_after_switch(&p->c.fiber);
    align_probe_body(p, value);
    ctx_exit(&p->c, p);
}

Test(context, entry_gets_value_on_an_aligned_stack) {
    main_fiber_init();
    /* stack_top need not be aligned: make aligns it down. */
    static const size_t offsets[] = {0, 1, 7, 8, 9, 15, 16, 24, 40, 4095};
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        static align_probe p;
        memset(&p, 0, sizeof p);
        stack_alloc(&p.c);
        unsigned char *top = p.c.top - offsets[k];
        /* Make uses WEFT__CONTEXT_INITIAL_FRAME bytes below top, after aligning top down
         * (up to 15 bytes), and writes nothing else. */
        uintptr_t frame_low = (uintptr_t)top - WEFT__CONTEXT_INITIAL_FRAME - 15;
        memset(p.c.low, 0xa5, STACK_SIZE);
        ctx_prepare(&p.c, top, test_align_probe_entry);
        cr_assert((uintptr_t)p.c.sp >= frame_low && (uintptr_t)p.c.sp < (uintptr_t)top,
                  "offset %zu: make returned %p for top %p", offsets[k], p.c.sp, (void *)top);
        for (unsigned char *b = p.c.low; b < p.c.top; b++) {
            bool in_frame = (uintptr_t)b >= frame_low && b < top;
            if (!in_frame)
                cr_assert_eq(*b, 0xa5, "offset %zu: make wrote %zd bytes from top", offsets[k],
                             (ssize_t)(b - top));
        }

        void *r = resume(&p.c, &p);
        cr_assert_eq(r, &p, "offset %zu: the exit value", offsets[k]);
        cr_assert_eq(p.entries, 1);
        cr_assert_eq(p.value_seen, &p, "offset %zu: entry got %p, expected %p", offsets[k],
                     p.value_seen, (void *)&p);
        cr_assert_eq((p.entry_rsp + ENTRY_SP_BIAS) % 16, 0, "offset %zu: sp = %#zx at the entry",
                     offsets[k],
                     (size_t)p.entry_rsp);
        /* The entry starts within make's frame, below top: on the stack it was given
         * (x86-64: a return address below the aligned top; AArch64: sp at the aligned
         * top itself, as nothing is pushed by a call there). */
        cr_assert(p.entry_rsp >= frame_low && p.entry_rsp + ENTRY_SP_BIAS <= (uintptr_t)top,
                  "offset %zu: sp = %#zx at the entry, top %p", offsets[k], (size_t)p.entry_rsp,
                  (void *)top);
        cr_assert(on_stack(&p.c, p.frame) && p.frame < (uintptr_t)top, "offset %zu: frame %#zx",
                  offsets[k], (size_t)p.frame);
        cr_assert_eq(p.local % 16, 0, "offset %zu: an _Alignas(16) local at %#zx", offsets[k],
                     (size_t)p.local);
        stack_free(&p.c);
    }
}

/* ---- (c) floating-point control state ---------------------------------------------------- */

/* The state under test, as two words: ctl (x86-64: MXCSR's control bits; AArch64:
 * FPCR) and ctl2 (x86-64: the x87 control word; AArch64: none, always 0). */
#if defined(__x86_64__)
/* MXCSR: exceptions masked (0x1f80) plus rounding (bits 13-14) and flush-to-zero (15).
 * x87 control word: exceptions masked (0x7f) plus precision (bits 8-9), rounding (10-11).
 * Only MXCSR's control bits count: its low six bits are sticky exception flags, which any
 * inexact division sets (the psABI makes them caller-saved; the switch carries them along
 * with the rest of the register, but they are not this test's business). */
#define CTL_NAME      "MXCSR"
#define CTL2_NAME     "x87 CW"
#define MXCSR_CONTROL 0xffc0u
static unsigned get_ctl(void) {
    return _mm_getcsr() & MXCSR_CONTROL;
}
static void set_ctl(unsigned v) {
    _mm_setcsr(v);
}
static unsigned get_ctl2(void) {
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}
static void set_ctl2(unsigned v) {
    unsigned short cw = (unsigned short)v;
    __asm__ volatile("fldcw %0" : : "m"(cw));
}
#define CTL_DEFAULT  0x1f80u
#define CTL2_DEFAULT 0x037fu
#define CTL_A        (CTL_DEFAULT | 0x4000u)                /* round up */
#define CTL2_A       ((CTL2_DEFAULT & ~0x0f00u) | 0x0800u)  /* round up, single precision */
#define CTL_B        (CTL_DEFAULT | 0x2000u | 0x8000u)      /* round down, FTZ */
#define CTL2_B       ((CTL2_DEFAULT & ~0x0f00u) | 0x0600u)  /* round down, double precision */
#define CTL_C        (CTL_DEFAULT | 0x6000u)                /* toward zero */
#define CTL2_C       ((CTL2_DEFAULT & ~0x0f00u) | 0x0c00u)  /* toward zero, single */
#elif defined(__aarch64__)
/* FPCR: RMode in bits 22-23 (0 nearest, 1 toward +inf, 2 toward -inf, 3 toward zero),
 * FZ in bit 24; Linux starts threads with FPCR = 0. The sticky flags live in FPSR, which
 * AAPCS64 does not preserve and this test does not look at. */
#define CTL_NAME "FPCR"
#define CTL2_NAME "(none)"
static unsigned get_ctl(void) {
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return (unsigned)v;
}
static void set_ctl(unsigned v) {
    __asm__ volatile("msr fpcr, %0" : : "r"((uint64_t)v));
}
static unsigned get_ctl2(void) {
    return 0;
}
static void set_ctl2(unsigned v) {
    (void)v;
}
#define CTL_DEFAULT  0u
#define CTL2_DEFAULT 0u
#define CTL_A        (1u << 22)               /* round up */
#define CTL2_A       0u
#define CTL_B        ((2u << 22) | (1u << 24)) /* round down, flush to zero */
#define CTL2_B       0u
#define CTL_C        (3u << 22)               /* toward zero */
#define CTL2_C       0u
#endif
#define FP_ROUNDS     10000u

typedef struct fpstate {
    unsigned ctl, ctl2;
} fpstate;

typedef struct fp_test {
    tctx a, b, child;
    unsigned a_bad, b_bad;
    fpstate a_bad_seen, b_bad_seen;
    fpstate child_initial, grandchild_initial;
    double a_third, b_third;
    tctx grandchild;
} fp_test;

static fpstate fp_now(void) {
    return (fpstate){get_ctl(), get_ctl2()};
}

/* 1/3 in the current rounding mode (SSE's or FPCR's). */
__attribute__((noinline)) static double third(void) {
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

static void fp_body(tctx *c, unsigned ctl, unsigned ctl2, unsigned *bad, fpstate *bad_seen,
                    double *third_out) {
    set_ctl(ctl);
    set_ctl2(ctl2);
    *third_out = third();
    for (unsigned i = 0; i < FP_ROUNDS; i++) {
        (void)suspend(c, c);
        fpstate s = fp_now();
        if (s.ctl != ctl || s.ctl2 != ctl2) {
            if (!(*bad)++)
                *bad_seen = s;
        }
        /* Scramble the registers' state; the switch must put ours back. */
        set_ctl(CTL_DEFAULT);
        set_ctl2(CTL2_DEFAULT);
        set_ctl(ctl);
        set_ctl2(ctl2);
    }
}

static void fp_a(tctx *c) {
    fp_test *t = c->arg;
    fp_body(c, CTL_A, CTL2_A, &t->a_bad, &t->a_bad_seen, &t->a_third);
}
static void fp_b(tctx *c) {
    fp_test *t = c->arg;
    fp_body(c, CTL_B, CTL2_B, &t->b_bad, &t->b_bad_seen, &t->b_third);
}

static void fp_grandchild(tctx *c) {
    fp_test *t = c->arg;
    t->grandchild_initial = fp_now();
}

/* Records the state it starts with, then makes a context of its own under CTL_B. */
static void fp_child(tctx *c) {
    fp_test *t = c->arg;
    t->child_initial = fp_now();
    set_ctl(CTL_B);
    set_ctl2(CTL2_B);
    ctx_make(&t->grandchild, fp_grandchild, t);
    set_ctl(CTL_DEFAULT);
    set_ctl2(CTL2_DEFAULT);
}

Test(context, fp_control_state_is_per_context) {
    main_fiber_init();
    static fp_test t;
    memset(&t, 0, sizeof t);
    set_ctl(CTL_DEFAULT);
    set_ctl2(CTL2_DEFAULT);
    ctx_make(&t.a, fp_a, &t);
    ctx_make(&t.b, fp_b, &t);
    double main_third = third();
    unsigned main_bad = 0;
    fpstate main_bad_seen = {0};
    for (unsigned i = 0; i <= FP_ROUNDS; i++) {
        resume(&t.a, &t.a);
        fpstate s = fp_now();
        if ((s.ctl != CTL_DEFAULT || s.ctl2 != CTL2_DEFAULT) && !main_bad++)
            main_bad_seen = s;
        resume(&t.b, &t.b);
        s = fp_now();
        if ((s.ctl != CTL_DEFAULT || s.ctl2 != CTL2_DEFAULT) && !main_bad++)
            main_bad_seen = s;
    }
    /* Each resume above that was A's or B's last ran its body to the end: they exited. */
    cr_assert_eq(main_bad, 0, "main saw " CTL_NAME " %#x, " CTL2_NAME " %#x", main_bad_seen.ctl,
                 main_bad_seen.ctl2);
    cr_assert_eq(t.a_bad, 0, "A (%#x, %#x) saw %u times, first " CTL_NAME " %#x, " CTL2_NAME " %#x", CTL_A,
                 CTL2_A, t.a_bad, t.a_bad_seen.ctl, t.a_bad_seen.ctl2);
    cr_assert_eq(t.b_bad, 0, "B (%#x, %#x) saw %u times, first " CTL_NAME " %#x, " CTL2_NAME " %#x", CTL_B,
                 CTL2_B, t.b_bad, t.b_bad_seen.ctl, t.b_bad_seen.ctl2);
    /* The modes were really in force, not just stored: 1/3 rounded up is one ulp above
     * 1/3 rounded down, and the nearest is one of the two. */
    cr_assert_gt(t.a_third, t.b_third, "1/3 rounded up %a, down %a", t.a_third, t.b_third);
    cr_assert(main_third == t.a_third || main_third == t.b_third, "1/3 to nearest %a", main_third);
    stack_free(&t.a);
    stack_free(&t.b);

    /* Inheritance: a context starts with its creator's state at make time, whatever the
     * creator does afterwards. */
    set_ctl(CTL_C);
    set_ctl2(CTL2_C);
    ctx_make(&t.child, fp_child, &t);
    set_ctl(CTL_DEFAULT);
    set_ctl2(CTL2_DEFAULT);
    finish(&t.child, &t.child);
    cr_assert_eq(t.child_initial.ctl, CTL_C, "child started with " CTL_NAME " %#x",
                 t.child_initial.ctl);
    cr_assert_eq(t.child_initial.ctl2, CTL2_C, "child started with " CTL2_NAME " %#x",
                 t.child_initial.ctl2);
    /* A context made on a context's stack inherits that context's state. */
    finish(&t.grandchild, &t.grandchild);
    cr_assert_eq(t.grandchild_initial.ctl, CTL_B, "grandchild started with " CTL_NAME " %#x",
                 t.grandchild_initial.ctl);
    cr_assert_eq(t.grandchild_initial.ctl2, CTL2_B, "grandchild started with " CTL2_NAME " %#x",
                 t.grandchild_initial.ctl2);
    cr_assert_eq(get_ctl(), CTL_DEFAULT);
    cr_assert_eq(get_ctl2(), CTL2_DEFAULT);
    stack_free(&t.child);
    stack_free(&t.grandchild);
}

/* ---- (d) callee-saved registers ------------------------------------------------------------ */

/* void *test_regs_switch(weft__context *from, weft__context to, void *value,
 *                        uint64_t out[NREGS], uint64_t seed)
 * Sets every callee-saved register (x86-64: rbx, rbp, r12-r15; AArch64: x19-x29 and
 * d8-d15) to seed+1 .. seed+NREGS, calls weft__context_switch(from, to, value) and, once
 * resumed, stores the registers in out[] as they came back (restoring the caller's own
 * before it returns). No C code runs between setting and reading them. */
#if defined(__x86_64__)
#define NREGS 6
static const char *const reg_names[NREGS] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
#elif defined(__aarch64__)
#define NREGS 19
static const char *const reg_names[NREGS] = {"x19", "x20", "x21", "x22", "x23", "x24", "x25",
                                             "x26", "x27", "x28", "x29", "d8",  "d9",  "d10",
                                             "d11", "d12", "d13", "d14", "d15"};
#endif
void *test_regs_switch(weft__context *from, weft__context to, void *value, uint64_t out[NREGS],
                       uint64_t seed);

#if defined(__x86_64__)

__asm__(".text\n"
        ".globl test_regs_switch\n"
        ".hidden test_regs_switch\n"
        ".type test_regs_switch, @function\n"
        ".p2align 4\n"
        "test_regs_switch:\n"
        "    .cfi_startproc\n"
        "    pushq %rbp\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %rbp, 0\n"
        "    pushq %rbx\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %rbx, 0\n"
        "    pushq %r12\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %r12, 0\n"
        "    pushq %r13\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %r13, 0\n"
        "    pushq %r14\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %r14, 0\n"
        "    pushq %r15\n"
        "    .cfi_adjust_cfa_offset 8\n"
        "    .cfi_rel_offset %r15, 0\n"
        "    pushq %rcx\n" /* out; also makes %rsp 16-aligned for the call */
        "    .cfi_adjust_cfa_offset 8\n"
        "    leaq 1(%r8), %rbx\n"
        "    leaq 2(%r8), %rbp\n"
        "    leaq 3(%r8), %r12\n"
        "    leaq 4(%r8), %r13\n"
        "    leaq 5(%r8), %r14\n"
        "    leaq 6(%r8), %r15\n"
        "    call weft__context_switch\n"
        "    popq %rcx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    movq %rbx, 0(%rcx)\n"
        "    movq %rbp, 8(%rcx)\n"
        "    movq %r12, 16(%rcx)\n"
        "    movq %r13, 24(%rcx)\n"
        "    movq %r14, 32(%rcx)\n"
        "    movq %r15, 40(%rcx)\n"
        "    popq %r15\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %r15\n"
        "    popq %r14\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %r14\n"
        "    popq %r13\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %r13\n"
        "    popq %r12\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %r12\n"
        "    popq %rbx\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %rbx\n"
        "    popq %rbp\n"
        "    .cfi_adjust_cfa_offset -8\n"
        "    .cfi_restore %rbp\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size test_regs_switch, .-test_regs_switch\n");

#elif defined(__aarch64__)
/* x0 from, x1 to, x2 value, x3 out, x4 seed. Frame: x29/x30 at 0, x19-x28 at 16-95,
 * d8-d15 at 96-159, out at 160. */
__asm__(".text\n"
        ".globl test_regs_switch\n"
        ".hidden test_regs_switch\n"
        ".type test_regs_switch, %function\n"
        ".p2align 4\n"
        "test_regs_switch:\n"
        "    .cfi_startproc\n"
        "    bti c\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    .cfi_def_cfa_offset 176\n"
        "    .cfi_offset x29, -176\n"
        "    .cfi_offset x30, -168\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x3, [sp, #160]\n"
        "    add x19, x4, #1\n"
        "    add x20, x4, #2\n"
        "    add x21, x4, #3\n"
        "    add x22, x4, #4\n"
        "    add x23, x4, #5\n"
        "    add x24, x4, #6\n"
        "    add x25, x4, #7\n"
        "    add x26, x4, #8\n"
        "    add x27, x4, #9\n"
        "    add x28, x4, #10\n"
        "    add x29, x4, #11\n"
        "    add x9, x4, #12\n"
        "    fmov d8, x9\n"
        "    add x9, x4, #13\n"
        "    fmov d9, x9\n"
        "    add x9, x4, #14\n"
        "    fmov d10, x9\n"
        "    add x9, x4, #15\n"
        "    fmov d11, x9\n"
        "    add x9, x4, #16\n"
        "    fmov d12, x9\n"
        "    add x9, x4, #17\n"
        "    fmov d13, x9\n"
        "    add x9, x4, #18\n"
        "    fmov d14, x9\n"
        "    add x9, x4, #19\n"
        "    fmov d15, x9\n"
        "    bl weft__context_switch\n"
        "    ldr x3, [sp, #160]\n"
        "    stp x19, x20, [x3, #0]\n"
        "    stp x21, x22, [x3, #16]\n"
        "    stp x23, x24, [x3, #32]\n"
        "    stp x25, x26, [x3, #48]\n"
        "    stp x27, x28, [x3, #64]\n"
        "    str x29, [x3, #80]\n"
        "    stp d8, d9, [x3, #88]\n"
        "    stp d10, d11, [x3, #104]\n"
        "    stp d12, d13, [x3, #120]\n"
        "    stp d14, d15, [x3, #136]\n"
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    .cfi_def_cfa_offset 0\n"
        "    .cfi_restore x29\n"
        "    .cfi_restore x30\n"
        "    ret\n"
        "    .cfi_endproc\n"
        ".size test_regs_switch, .-test_regs_switch\n");
#endif

#define REG_ROUNDS 1000u
#define SEED_MAIN  0x1111000000000000u
#define SEED_CTX   0x2222000000000000u
#define SEED_STRIDE 32u /* > NREGS: no register value repeats from one round to the next */

typedef struct regs_test {
    tctx c;
    unsigned bad;
    unsigned bad_round, bad_reg;
    uint64_t bad_value;
} regs_test;

/* Which register of out[] is not seed+1 .. seed+NREGS; -1 if all are. */
static int first_wrong(const uint64_t out[NREGS], uint64_t seed) {
    for (int k = 0; k < NREGS; k++)
        if (out[k] != seed + (uint64_t)k + 1)
            return k;
    return -1;
}

static void regs_body(tctx *c) {
    regs_test *t = c->arg;
    for (unsigned i = 0; i < REG_ROUNDS; i++) {
        uint64_t out[NREGS];
        uint64_t seed = SEED_CTX + (uint64_t)i * SEED_STRIDE;
        weft__fiber_before_switch(&c->fiber, &main_fiber, false);
        test_regs_switch(&c->sp, main_sp, c, out, seed);
        weft__fiber_after_switch(&c->fiber);
        int k = first_wrong(out, seed);
        if (k >= 0 && !t->bad++) {
            t->bad_round = i;
            t->bad_reg = (unsigned)k;
            t->bad_value = out[k];
        }
    }
}

Test(context, callee_saved_registers_survive_asm) {
    main_fiber_init();
    static regs_test t;
    memset(&t, 0, sizeof t);
    ctx_make(&t.c, regs_body, &t);
    cr_assert_eq(resume(&t.c, &t.c), &t.c); /* runs to its first test_regs_switch */
    for (unsigned i = 0; i < REG_ROUNDS; i++) {
        uint64_t out[NREGS];
        uint64_t seed = SEED_MAIN + (uint64_t)i * SEED_STRIDE;
        weft__fiber_before_switch(&main_fiber, &t.c.fiber, false);
        void *r = test_regs_switch(&main_sp, t.c.sp, &t.c, out, seed);
        weft__fiber_after_switch(&main_fiber);
        cr_assert_eq(r, &t.c);
        int k = first_wrong(out, seed);
        cr_assert_eq(k, -1, "main, round %u: %s = %#llx, expected %#llx", i,
                     reg_names[k < 0 ? 0 : k], (unsigned long long)out[k < 0 ? 0 : k],
                     (unsigned long long)(seed + (uint64_t)k + 1));
    }
    /* The last round resumed the context's last test_regs_switch; it has exited since. */
    cr_assert_eq(t.bad, 0, "context, round %u: %s = %#llx, expected %#llx", t.bad_round,
                 reg_names[t.bad_reg], (unsigned long long)t.bad_value,
                 (unsigned long long)(SEED_CTX + (uint64_t)t.bad_round * SEED_STRIDE + t.bad_reg + 1));
    stack_free(&t.c);
}

/* Twelve interdependent accumulators live across every switch: more than x86-64's six
 * callee-saved registers (and than AArch64's ten x19-x28 once the loop's own values are
 * counted), so the compiler keeps some there and spills the rest. */
#define LIVE_ROUNDS 20000u

typedef struct live_test {
    tctx c;
    uint64_t result;
} live_test;

#define MIX(a, b, c, k) ((a) = ((a) ^ ((b) + (k))) * 0x9e3779b97f4a7c15u + ((c) >> 7))

__attribute__((noinline)) static uint64_t live_compute(uint64_t seed, tctx *c, bool from_ctx) {
    uint64_t a0 = seed, a1 = seed ^ 1, a2 = seed + 2, a3 = seed * 3, a4 = ~seed, a5 = seed << 5;
    uint64_t a6 = seed >> 3, a7 = seed | 7, a8 = seed ^ 0xff, a9 = seed + 99, a10 = seed * 10;
    uint64_t a11 = seed - 11;
    for (uint64_t i = 0; i < LIVE_ROUNDS; i++) {
        MIX(a0, a11, a5, i);
        MIX(a1, a0, a6, i);
        MIX(a2, a1, a7, i);
        MIX(a3, a2, a8, i);
        MIX(a4, a3, a9, i);
        MIX(a5, a4, a10, i);
        if (c) {
            if (from_ctx)
                (void)suspend(c, c);
            else
                (void)resume(c, c);
        }
        MIX(a6, a5, a11, i);
        MIX(a7, a6, a0, i);
        MIX(a8, a7, a1, i);
        MIX(a9, a8, a2, i);
        MIX(a10, a9, a3, i);
        MIX(a11, a10, a4, i);
    }
    return a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7 ^ a8 ^ a9 ^ a10 ^ a11;
}

static void live_body(tctx *c) {
    live_test *t = c->arg;
    t->result = live_compute(SEED_CTX, c, true);
}

Test(context, many_live_values_survive_switches) {
    main_fiber_init();
    static live_test t;
    memset(&t, 0, sizeof t);
    uint64_t want_main = live_compute(SEED_MAIN, NULL, false);
    uint64_t want_ctx = live_compute(SEED_CTX, NULL, false);
    cr_assert_neq(want_main, want_ctx);
    ctx_make(&t.c, live_body, &t);
    /* main resumes the context LIVE_ROUNDS times (the first starts it); the context
     * suspends LIVE_ROUNDS times, so one more resume lets it finish and exit. */
    uint64_t got_main = live_compute(SEED_MAIN, &t.c, false);
    cr_assert_eq(got_main, want_main, "main computed %#llx, expected %#llx",
                 (unsigned long long)got_main, (unsigned long long)want_main);
    cr_assert_eq(resume(&t.c, &t.c), &t.c, "the context did not exit");
    cr_assert_eq(t.result, want_ctx, "the context computed %#llx, expected %#llx",
                 (unsigned long long)t.result, (unsigned long long)want_ctx);
    stack_free(&t.c);
}

/* ---- (e) deep recursion on a task stack ---------------------------------------------------- */

/* Recurses until its frames reach `deep_limit` bytes below the top of the stack, with a
 * 100-byte local per frame, suspends at the deepest point, then checks every frame's local
 * on the way back up and returns the sum of depth + local bytes over all frames. */
#define DEEP_BYTES ((size_t)100 << 10)

typedef struct deep_test {
    tctx c;
    uintptr_t limit;
    unsigned max_depth;
    uintptr_t deepest_frame;
    unsigned corrupt;
    uint64_t result;
} deep_test;

static unsigned char deep_byte(unsigned depth, size_t i) {
    return (unsigned char)(depth * 31u + i * 7u + 1u);
}

__attribute__((noinline)) static uint64_t deep(deep_test *t, unsigned depth) {
    volatile unsigned char local[100];
    for (size_t i = 0; i < sizeof local; i++)
        local[i] = deep_byte(depth, i);
    uint64_t sum;
    uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
    if (frame > t->limit) {
        sum = deep(t, depth + 1);
    } else {
        t->max_depth = depth;
        t->deepest_frame = frame;
        (void)suspend(&t->c, &t->c); /* main looks at us from here */
        sum = 0;
    }
    for (size_t i = 0; i < sizeof local; i++) {
        if (local[i] != deep_byte(depth, i))
            t->corrupt++;
        sum += local[i];
    }
    return sum + depth;
}

static void deep_body(tctx *c) {
    deep_test *t = c->arg;
    t->result = deep(t, 0);
}

Test(context, deep_recursion_on_a_task_stack) {
    main_fiber_init();
    static deep_test t;
    memset(&t, 0, sizeof t);
    ctx_make(&t.c, deep_body, &t);
    t.limit = (uintptr_t)t.c.top - DEEP_BYTES;
    cr_assert_eq(resume(&t.c, &t.c), &t.c); /* suspended at the deepest frame */
    cr_assert(on_stack(&t.c, t.deepest_frame), "the recursion left its stack");
    cr_assert_leq(t.deepest_frame, t.limit);
    /* 100 KiB of frames with 100-byte locals: at most ~1000 of them, and at least 300
     * even with sanitizer redzones. */
    cr_assert_geq(t.max_depth, 300, "only %u frames in %zu bytes", t.max_depth, DEEP_BYTES);
    cr_assert_leq(t.max_depth, 1100, "%u frames in %zu bytes", t.max_depth, DEEP_BYTES);
    /* Scribble on the main stack meanwhile: it must not reach the suspended frames. */
    volatile unsigned char scratch[4096];
    memset((void *)scratch, 0x5a, sizeof scratch);
    cr_assert_eq(resume(&t.c, &t.c), &t.c, "the context did not exit");
    uint64_t want = 0;
    for (unsigned d = 0; d <= t.max_depth; d++) {
        want += d;
        for (size_t i = 0; i < 100; i++)
            want += deep_byte(d, i);
    }
    cr_assert_eq(t.corrupt, 0, "%u bytes of the frames changed while suspended", t.corrupt);
    cr_assert_eq(t.result, want, "the recursion returned %llu, expected %llu",
                 (unsigned long long)t.result, (unsigned long long)want);
    stack_free(&t.c);
}

/* ---- (f) the guard for an entry function that returns ------------------------------------ */

static void returning_entry(void *value) {
    tctx *c = value;
    weft__fiber_after_switch(&c->fiber);
    /* Returns into the trampoline, which must abort the process. */
}

Test(context, entry_that_returns_aborts, .signal = SIGABRT) {
    main_fiber_init();
    static tctx c;
    stack_alloc(&c);
    ctx_prepare(&c, c.top, returning_entry);
    resume(&c, &c);
    cr_assert_fail("the switch came back after the entry function returned");
}
