/*
 * Boost.Context peer: the raw context-switch floor only. Two contexts (the main
 * stack and one made with make_fcontext on a 64 KiB stack) ping-pong with
 * boost::context::detail::jump_fcontext; every jump_fcontext is one switch.
 * result = switches done, extra=ns_per_switch = wall / switches.
 *
 * Boost.Context has no scheduler, so every task workload is skipped.
 */
#include <boost/context/detail/fcontext.hpp>
#include <boost/version.hpp>

#include <cstdlib>

#include "../common/peer_common.h"

#define RUNTIME "boost-context"

namespace ctx = boost::context::detail;

/* Switches made by the partner context (main counts its own). */
static uint64_t g_partner_switches;

/* The other side: answer every jump by jumping back, forever (main stops first). */
static void partner(ctx::transfer_t t)
{
    for (;;) {
        t = ctx::jump_fcontext(t.fctx, nullptr);
        g_partner_switches++; /* counts the jump back that follows */
    }
}

int main(int argc, char **argv)
{
    static const int supported[W_COUNT] = {0, 0, 0, 0, 0, 0, 1};
    static const char *reason = "Boost.Context_is_only_a_context_switch_(no_scheduler)";
    static const char *const why[W_COUNT] = {reason, reason, reason, reason, reason, reason,
                                             nullptr, reason, reason, reason, reason};
    struct peer_args a = peer_parse(argc, argv, RUNTIME, supported, why);
    if (a.size % 2) {
        fprintf(stderr, "peer-" RUNTIME ": switch count must be even (round trips)\n");
        return 2;
    }
    const std::size_t stack_size = 64 << 10;
    void *stack = std::malloc(stack_size);
    if (!stack) {
        perror("malloc");
        return 2;
    }
    ctx::fcontext_t other =
        ctx::make_fcontext(static_cast<char *>(stack) + stack_size, stack_size, partner);
    /* Enter the partner once before timing so its stack is touched. */
    other = ctx::jump_fcontext(other, nullptr).fctx;

    /* Each round trip is two switches: main -> partner and partner -> main. */
    uint64_t rounds = a.size / 2, main_switches = 0;
    g_partner_switches = 0;
    uint64_t t0 = peer_now_ns();
    for (uint64_t i = 0; i < rounds; i++) {
        other = ctx::jump_fcontext(other, nullptr).fctx;
        main_switches++;
    }
    uint64_t t1 = peer_now_ns();
    uint64_t result = main_switches + g_partner_switches;
    char extra[64];
    return peer_report(&a, RUNTIME, t0, t1, result,
                       peer_extra_ns_per_switch(extra, sizeof extra, t0, t1, result));
}
