/*
 * Boost.Fiber peer. Multi-thread workloads run under
 * boost::fibers::algo::work_stealing on T threads: the main thread and T-1 helper
 * threads each install the algorithm (its constructor waits for all T), the helpers
 * then park their main fiber on a fiber condition variable so their dispatchers run
 * (and steal) fibers until the main thread says it is done - the pattern of Boost's
 * own examples/work_stealing.cpp. The workload runs in the main thread's main fiber.
 *
 * Every fiber gets a boost::fibers::fixedsize_stack of 64 KiB (weft's default task
 * stack; Boost's default is 128 KiB). Fibers are launched with launch::dispatch
 * (see kPolicy).
 *
 *   fib, skynet  fiber + fiber::join; the child writes its result into the parent's frame.
 *   spawn_many   fibers::async (a detached fiber running a packaged_task) returns a
 *                future per task; the futures are joined in order with get().
 *                (A joinable fiber keeps its stack until it is joined, so a million
 *                unjoined fibers would hold a million stacks; async's detached fiber
 *                frees its stack when it finishes.)
 *   yield        the default round_robin scheduler on one thread; two fibers call
 *                this_fiber::yield Y times each.
 *   sleepers     fibers::async + this_fiber::sleep_for, futures joined in order.
 *   timeouts     Boost.Fiber has no stand-alone timer: its timers are the timeouts of
 *                blocking waits. The idiomatic "arm a timeout and cancel it" is a
 *                condition_variable::wait_for(10 s) that is notified before it
 *                expires: the waiter enters the scheduler's sleep queue (armed) and
 *                notify_one takes it out again (cancelled). One waiter fiber per
 *                thread does K/T such waits; a partner fiber does the notifying.
 *                So each operation here also includes a mutex hand-off and two fiber
 *                switches, which a stand-alone timer API would not need.
 *   chan_pingpong  two fibers pass a counter over two unbuffered_channel<uint64_t>.
 *   chan_mpmc    P producer and C consumer fibers share one buffered_channel of capacity
 *                1024 (Boost wants a power of two, and its ring keeps one slot free: it
 *                holds at most 1023); the main fiber closes it once the producers are
 *                joined, and the consumers pop until channel_op_status::closed.
 *   mutex_contended, mutex_yield  8 fibers increment a counter under a
 *                boost::fibers::mutex; mutex_yield calls this_fiber::yield holding it
 *                every 100 increments.
 */
#include <boost/fiber/all.hpp>
#include <boost/version.hpp>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "../common/peer_common.h"

#define RUNTIME "boost-fiber"

namespace bf = boost::fibers;

static const std::size_t kStackSize = 64 << 10;

static bf::fixedsize_stack stack() { return bf::fixedsize_stack(kStackSize); }

/* launch::dispatch enters the new fiber at once and leaves its parent in the ready
 * queue, where another thread may steal it (child-first, as in Cilk). With the
 * default launch::post, work_stealing's FIFO queues run the spawn trees breadth
 * first: at the full sizes here that took fib to 10.5 s and 5.3 GB and spawn_many
 * to 14 s and 9.4 GB (2 threads), against 4.4 s / 4.1 GB and 0.8 s / 0.14 GB. */
static const bf::launch kPolicy = bf::launch::dispatch;

template <class Fn> static bf::fiber spawn(Fn &&fn)
{
    return bf::fiber(kPolicy, std::allocator_arg, stack(), std::forward<Fn>(fn));
}

template <class Fn> static auto spawn_future(Fn &&fn)
{
    return bf::async(kPolicy, std::allocator_arg, stack(), std::forward<Fn>(fn));
}

static uint64_t fib(uint64_t n)
{
    if (n < 2)
        return n;
    uint64_t x;
    bf::fiber child = spawn([&x, n] { x = fib(n - 1); });
    uint64_t y = fib(n - 2);
    child.join();
    return x + y;
}

static uint64_t skynet(uint64_t num, uint64_t size)
{
    if (size == 1)
        return num;
    uint64_t r[10], sub = size / 10, sum = 0;
    bf::fiber kids[10];
    for (int i = 0; i < 10; i++)
        kids[i] = spawn([&r, i, num, sub] { r[i] = skynet(num + (uint64_t)i * sub, sub); });
    for (int i = 0; i < 10; i++) {
        kids[i].join();
        sum += r[i];
    }
    return sum;
}

static uint64_t spawn_many(uint64_t n)
{
    std::vector<bf::future<uint64_t>> fs;
    fs.reserve(n);
    for (uint64_t i = 0; i < n; i++)
        fs.push_back(spawn_future([i] { return i; }));
    uint64_t sum = 0;
    for (auto &f : fs)
        sum += f.get();
    return sum;
}

static uint64_t sleepers(uint64_t s)
{
    std::vector<bf::future<uint64_t>> fs;
    fs.reserve(s);
    for (uint64_t i = 0; i < s; i++)
        fs.push_back(spawn_future([i] {
            boost::this_fiber::sleep_for(std::chrono::milliseconds(peer_sleep_ms(i)));
            return i;
        }));
    uint64_t sum = 0;
    for (auto &f : fs)
        sum += f.get();
    return sum;
}

/* One waiter (does the timed waits) and its notifier. */
struct timeout_pair {
    bf::mutex m;
    bf::condition_variable to_waiter, to_notifier;
    int turn = 0; /* 0: the waiter's, 1: the notifier's */
    bool stop = false;
    uint64_t cancelled = 0;
};

static void timeout_waiter(timeout_pair &p, uint64_t k)
{
    std::unique_lock<bf::mutex> lk(p.m);
    for (uint64_t i = 0; i < k; i++) {
        p.turn = 1;
        p.to_notifier.notify_one();
        /* Arms a 10 s timeout; the notifier's notify_one cancels it. */
        if (p.to_waiter.wait_for(lk, std::chrono::seconds(10), [&p] { return p.turn == 0; }))
            p.cancelled++;
    }
    p.stop = true;
    p.to_notifier.notify_one();
}

static void timeout_notifier(timeout_pair &p)
{
    std::unique_lock<bf::mutex> lk(p.m);
    for (;;) {
        p.to_notifier.wait(lk, [&p] { return p.turn == 1 || p.stop; });
        if (p.turn != 1)
            return;
        p.turn = 0;
        p.to_waiter.notify_one();
    }
}

static uint64_t timeouts(uint64_t k, int threads, std::vector<std::unique_ptr<timeout_pair>> &pairs)
{
    std::vector<bf::fiber> fibers;
    for (int t = 0; t < threads; t++) {
        timeout_pair &p = *pairs[t];
        uint64_t share = k / threads + ((uint64_t)t < k % threads ? 1 : 0);
        fibers.push_back(spawn([&p, share] { timeout_waiter(p, share); }));
        fibers.push_back(spawn([&p] { timeout_notifier(p); }));
    }
    for (auto &f : fibers)
        f.join();
    uint64_t sum = 0;
    for (auto &p : pairs)
        sum += p->cancelled;
    return sum;
}

static uint64_t chan_pingpong(uint64_t rounds)
{
    bf::unbuffered_channel<uint64_t> there, back;
    bf::fiber pong = spawn([&] {
        for (uint64_t i = 0; i < rounds; i++)
            if (back.push(there.value_pop() + 1) != bf::channel_op_status::success)
                abort();
    });
    uint64_t counter = 0;
    for (uint64_t i = 0; i < rounds; i++) {
        if (there.push(counter) != bf::channel_op_status::success)
            abort();
        counter = back.value_pop();
    }
    pong.join();
    return counter;
}

static uint64_t chan_mpmc(uint64_t n)
{
    bf::buffered_channel<uint64_t> ch(PEER_MPMC_CAPACITY);
    uint64_t sums[PEER_MPMC_CONSUMERS] = {0};
    std::vector<bf::fiber> producers, consumers;
    for (int c = 0; c < PEER_MPMC_CONSUMERS; c++)
        consumers.push_back(spawn([&ch, &sums, c] {
            uint64_t v, sum = 0;
            while (ch.pop(v) == bf::channel_op_status::success)
                sum += v;
            sums[c] = sum;
        }));
    for (int p = 0; p < PEER_MPMC_PRODUCERS; p++)
        producers.push_back(spawn([&ch, n] {
            for (uint64_t i = 0; i < n / PEER_MPMC_PRODUCERS; i++)
                if (ch.push(i) != bf::channel_op_status::success)
                    abort();
        }));
    for (auto &f : producers)
        f.join();
    ch.close();
    uint64_t sum = 0;
    for (int c = 0; c < PEER_MPMC_CONSUMERS; c++) {
        consumers[c].join();
        sum += sums[c];
    }
    return sum;
}

static uint64_t mutex_counter(uint64_t m, bool yield_inside)
{
    bf::mutex lock;
    uint64_t counter = 0;
    std::vector<bf::fiber> fibers;
    for (int t = 0; t < PEER_MUTEX_TASKS; t++) {
        uint64_t share = m / PEER_MUTEX_TASKS + ((uint64_t)t < m % PEER_MUTEX_TASKS ? 1 : 0);
        fibers.push_back(spawn([&lock, &counter, share, yield_inside] {
            for (uint64_t i = 1; i <= share; i++) {
                std::lock_guard<bf::mutex> guard(lock);
                counter++;
                if (yield_inside && i % PEER_MUTEX_YIELD_EVERY == 0)
                    boost::this_fiber::yield();
            }
        }));
    }
    for (auto &f : fibers)
        f.join();
    return counter;
}

/* Runs body() in the main fiber with work_stealing on `threads` threads. */
template <class Body> static void with_work_stealing(int threads, Body body)
{
    bf::mutex m;
    bf::condition_variable_any cv;
    bool done = false;
    std::vector<std::thread> helpers;
    for (int i = 1; i < threads; i++)
        helpers.emplace_back([&] {
            bf::use_scheduling_algorithm<bf::algo::work_stealing>(threads);
            std::unique_lock<bf::mutex> lk(m);
            cv.wait(lk, [&] { return done; });
        });
    bf::use_scheduling_algorithm<bf::algo::work_stealing>(threads);
    body();
    {
        std::unique_lock<bf::mutex> lk(m);
        done = true;
    }
    cv.notify_all();
    for (auto &h : helpers)
        h.join();
}

int main(int argc, char **argv)
{
    static const int supported[W_COUNT] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1};
    static const char *const why[W_COUNT] = {
        nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
        "raw_switch_floor_is_measured_by_peer-boost-context",
        nullptr, nullptr, nullptr, nullptr,
    };
    struct peer_args a = peer_parse(argc, argv, RUNTIME, supported, why);
    uint64_t t0 = 0, t1 = 0, result = 0;
    char extra[64];
    const char *ex = nullptr;

    if (a.workload == W_YIELD) {
        /* One thread, the default round_robin scheduler. */
        uint64_t y = a.size, c0 = 0, c1 = 0;
        auto yielder = [y](uint64_t &count) {
            for (uint64_t i = 0; i < y; i++) {
                boost::this_fiber::yield();
                count++;
            }
        };
        t0 = peer_now_ns();
        bf::fiber f0 = spawn([&] { yielder(c0); });
        bf::fiber f1 = spawn([&] { yielder(c1); });
        f0.join();
        f1.join();
        t1 = peer_now_ns();
        result = c0 + c1;
        ex = peer_extra_ns_per_switch(extra, sizeof extra, t0, t1, result);
        return peer_report(&a, RUNTIME, t0, t1, result, ex);
    }

    std::vector<std::unique_ptr<timeout_pair>> pairs;
    for (int t = 0; t < a.threads; t++)
        pairs.emplace_back(new timeout_pair);
    with_work_stealing(a.threads, [&] {
        uint64_t rss0 = peer_rss_now();
        t0 = peer_now_ns();
        switch (a.workload) {
        case W_FIB: result = fib(a.size); break;
        case W_SKYNET: result = skynet(0, a.size); break;
        case W_SPAWN_MANY: result = spawn_many(a.size); break;
        case W_SLEEPERS: result = sleepers(a.size); break;
        case W_TIMEOUTS: result = timeouts(a.size, a.threads, pairs); break;
        case W_CHAN_PINGPONG: result = chan_pingpong(a.size); break;
        case W_CHAN_MPMC: result = chan_mpmc(a.size); break;
        case W_MUTEX_CONTENDED: result = mutex_counter(a.size, false); break;
        case W_MUTEX_YIELD: result = mutex_counter(a.size, true); break;
        }
        t1 = peer_now_ns();
        if (a.workload == W_CHAN_PINGPONG)
            ex = peer_extra_ns_per_round_trip(extra, sizeof extra, t0, t1, a.size);
        if (a.workload == W_SLEEPERS)
            ex = peer_extra_rss(extra, sizeof extra, rss0, a.size);
    });
    return peer_report(&a, RUNTIME, t0, t1, result, ex);
}
