//! Tokio peer.
//!
//! Multi-thread workloads run on a `multi_thread` runtime with `worker_threads = T`
//! (and only the timer driver enabled). The workload's root is itself a spawned task,
//! so that it runs on a worker (a future passed to `block_on` runs on the calling
//! thread, outside the workers, and every spawn from there would go through the
//! runtime's global injection queue).
//!
//! * fib, skynet: `tokio::spawn` per child, the `JoinHandle`s are awaited. The
//!   recursion is through boxed futures (an `async fn` cannot recurse directly).
//! * spawn_many: one task spawns N tasks returning their index, keeps the N
//!   `JoinHandle`s, awaits them in order and sums.
//! * yield: a `current_thread` runtime; two tasks call `tokio::task::yield_now` Y
//!   times each.
//! * sleepers: S tasks each `tokio::time::sleep` then return i; handles awaited in order.
//! * timeouts: T tasks each do K/T arm-and-cancel operations (see `arm_and_cancel`).
//! * chan_pingpong: Tokio has no unbuffered (rendezvous) channel; the two tasks pass
//!   the counter over two `tokio::sync::mpsc` channels of capacity 1, the smallest it
//!   allows (a send completes once the value is queued, not once it is received).
//! * chan_mpmc: `tokio::sync::mpsc` has one receiver, so the C consumer tasks share it
//!   behind an `Arc<tokio::sync::Mutex<Receiver>>` (Tokio's docs point to the
//!   async-channel crate for MPMC; this peer stays within Tokio). The channel closes
//!   when the last producer drops its `Sender`.
//! * mutex_contended, mutex_yield: 8 tasks increment a counter under a
//!   `tokio::sync::Mutex` (FIFO); mutex_yield awaits `yield_now` holding the guard
//!   every 100 increments.
//! * group_fanout: a `tokio::task::JoinSet` bounded the way JoinSet code bounds it:
//!   before each spawn, while L members are in the set, `join_next` one (and add its
//!   result); after the last spawn, `join_next` until the set is empty. `join_next`
//!   returns members as they finish, so the sum is taken in completion order. A member
//!   counts against L until it is joined, not only while it runs, so no more than L
//!   run at once.
//!
//! The command line, the result check and the output line follow
//! bench/peers/common/peer_common.h.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

const RT: &str = "tokio";
const NAMES: [&str; 12] = [
    "fib", "skynet", "spawn_many", "yield", "sleepers", "timeouts", "switch",
    "chan_pingpong", "chan_mpmc", "mutex_contended", "mutex_yield", "group_fanout",
];
/// chan_mpmc's producers, consumers and capacity; the mutex workloads' tasks and how
/// often mutex_yield yields; group_fanout's limit L (WORKLOADS.md).
const MPMC_PRODUCERS: u64 = 4;
const MPMC_CONSUMERS: u64 = 4;
const MPMC_CAPACITY: usize = 1024;
const MUTEX_TASKS: u64 = 8;
const YIELD_EVERY: u64 = 100;
const GROUP_LIMIT: usize = 1000;

type BoxFut = Pin<Box<dyn Future<Output = u64> + Send>>;

fn fib(n: u64) -> BoxFut {
    Box::pin(async move {
        if n < 2 {
            return n;
        }
        let child = tokio::spawn(fib(n - 1));
        let y = fib(n - 2).await;
        child.await.unwrap() + y
    })
}

fn skynet(num: u64, size: u64) -> BoxFut {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let kids: [tokio::task::JoinHandle<u64>; 10] =
            std::array::from_fn(|i| tokio::spawn(skynet(num + i as u64 * sub, sub)));
        let mut sum = 0;
        for k in kids {
            sum += k.await.unwrap();
        }
        sum
    })
}

async fn spawn_many(n: u64) -> u64 {
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        handles.push(tokio::spawn(async move { i }));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    sum
}

async fn yielder(y: u64) -> u64 {
    let mut count = 0;
    for _ in 0..y {
        tokio::task::yield_now().await;
        count += 1;
    }
    count
}

async fn sleepers(s: u64) -> u64 {
    let mut handles = Vec::with_capacity(s as usize);
    for i in 0..s {
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((i * 7919) % 1000)).await;
            i
        }));
    }
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    sum
}

/// Arms a 10 s timer and cancels it, `k` times; returns how many were cancelled.
///
/// The per-request timeout of a Tokio server is `tokio::time::timeout(10 s, request)`.
/// When the request is not ready at once, `Timeout::poll` polls its `Sleep`, which
/// registers the deadline in the timer wheel (armed); when the request then finishes
/// first, the `Timeout` and its `Sleep` are dropped, which removes the entry from the
/// wheel (cancelled). That is what is done here, directly: create a `Sleep`, poll it
/// once (it is pending: armed), drop it (cancelled).
///
/// Not `timeout(10 s, ready_future)`: `Timeout::poll` polls the inner future first and
/// returns as soon as it is ready, so the `Sleep` is never polled and never reaches
/// the wheel; that would time a deadline computation, not a timer. And not
/// `timeout(10 s, yield_now())`, which does arm and cancel, but also adds a trip
/// through the scheduler to every operation.
async fn arm_and_cancel(k: u64) -> u64 {
    let mut cancelled = 0;
    for _ in 0..k {
        let sleep = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(sleep);
        // Pending polls do not use up the task's coop budget, so every poll registers.
        let armed = PollOnce(sleep.as_mut()).await;
        if armed {
            cancelled += 1;
        }
        // `sleep` is dropped here: its entry leaves the timer wheel.
    }
    cancelled
}

/// Polls a future once and tells whether it was pending (std::future::poll_fn would
/// do, but it needs Rust 1.64 and Debian 12's rustc is 1.63).
struct PollOnce<'a, F: Future>(Pin<&'a mut F>);

impl<F: Future> Future for PollOnce<'_, F> {
    type Output = bool;
    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<bool> {
        Poll::Ready(self.0.as_mut().poll(cx).is_pending())
    }
}

async fn timeouts(k: u64, threads: u64) -> u64 {
    let handles: Vec<_> = (0..threads)
        .map(|t| tokio::spawn(arm_and_cancel(k / threads + u64::from(t < k % threads))))
        .collect();
    let mut sum = 0;
    for h in handles {
        sum += h.await.unwrap();
    }
    sum
}

async fn chan_pingpong(r: u64) -> u64 {
    let (there_tx, mut there_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (back_tx, mut back_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let pong = tokio::spawn(async move {
        for _ in 0..r {
            let v = there_rx.recv().await.unwrap();
            back_tx.send(v + 1).await.unwrap();
        }
    });
    let mut counter = 0;
    for _ in 0..r {
        there_tx.send(counter).await.unwrap();
        counter = back_rx.recv().await.unwrap();
    }
    pong.await.unwrap();
    counter
}

async fn chan_mpmc(n: u64) -> u64 {
    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(MPMC_CAPACITY);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let consumers: Vec<_> = (0..MPMC_CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut sum = 0;
                // The guard is a temporary of the statement: released before the sum.
                while let Some(v) = rx.lock().await.recv().await {
                    sum += v;
                }
                sum
            })
        })
        .collect();
    let producers: Vec<_> = (0..MPMC_PRODUCERS)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..n / MPMC_PRODUCERS {
                    tx.send(i).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx); // the producers hold the only senders: the channel closes after them
    for p in producers {
        p.await.unwrap();
    }
    let mut sum = 0;
    for c in consumers {
        sum += c.await.unwrap();
    }
    sum
}

async fn mutex_counter(m: u64, yield_inside: bool) -> u64 {
    let counter = Arc::new(tokio::sync::Mutex::new(0u64));
    let tasks: Vec<_> = (0..MUTEX_TASKS)
        .map(|t| {
            let counter = counter.clone();
            let share = m / MUTEX_TASKS + u64::from(t < m % MUTEX_TASKS);
            tokio::spawn(async move {
                for i in 1..=share {
                    let mut guard = counter.lock().await;
                    *guard += 1;
                    if yield_inside && i % YIELD_EVERY == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let value = *counter.lock().await;
    value
}

async fn group_fanout(n: u64) -> u64 {
    let mut set = tokio::task::JoinSet::new();
    let mut sum = 0;
    for i in 0..n {
        if set.len() >= GROUP_LIMIT {
            sum += set.join_next().await.unwrap().unwrap();
        }
        set.spawn(async move { i });
    }
    while let Some(r) = set.join_next().await {
        sum += r.unwrap();
    }
    sum
}

fn expected(w: &str, n: u64) -> u64 {
    match w {
        "fib" => {
            let (mut a, mut b) = (0u64, 1u64);
            for _ in 0..n {
                let t = a + b;
                a = b;
                b = t;
            }
            a
        }
        "skynet" | "spawn_many" | "sleepers" | "group_fanout" => n * (n - 1) / 2,
        "yield" => 2 * n,
        "chan_mpmc" => {
            let k = n / MPMC_PRODUCERS;
            MPMC_PRODUCERS * (k * (k - 1) / 2)
        }
        _ => n,
    }
}

/// A "Vm..." field of /proc/self/status in bytes (0 if unreadable).
fn proc_status(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(key).and_then(|r| r.strip_prefix(':')) {
            return rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1024;
        }
    }
    0
}

fn usage() -> ! {
    eprintln!("usage: peer-{RT} --workload NAME --threads T [--size N]\n       peer-{RT} --workload list");
    std::process::exit(2);
}

fn fail(msg: String) -> ! {
    eprintln!("peer-{RT}: {msg}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut wl, mut th, mut sz) = (None, None, None);
    let mut i = 0;
    while i < args.len() {
        let (key, val) = match args[i].split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                i += 1;
                if i >= args.len() {
                    usage();
                }
                (args[i - 1].clone(), args[i].clone())
            }
        };
        match key.as_str() {
            "--workload" => wl = Some(val),
            "--threads" => th = Some(val),
            "--size" => sz = Some(val),
            _ => usage(),
        }
        i += 1;
    }
    let wl = wl.unwrap_or_else(|| usage());
    if wl == "list" {
        for n in NAMES.iter().filter(|n| **n != "switch") {
            println!("{n}");
        }
        return;
    }
    let default_size: u64 = match wl.as_str() {
        "fib" => 30,
        "skynet" | "spawn_many" | "timeouts" | "group_fanout" => 1_000_000,
        "yield" => 5_000_000,
        "sleepers" => 100_000,
        "chan_pingpong" => 1_000_000,
        "chan_mpmc" | "mutex_contended" | "mutex_yield" => 4_000_000,
        "switch" => 10_000_000,
        _ => fail(format!("unknown workload '{wl}'")),
    };
    let mut threads: u64 = match &th {
        Some(t) => match t.parse::<u64>() {
            Ok(v) if (1..=4096).contains(&v) => v,
            _ => fail(format!("bad --threads '{t}'")),
        },
        None => std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1),
    };
    let size: u64 = match &sz {
        Some(s) => match s.parse::<u64>() {
            Ok(v) if v >= 1 => v,
            _ => fail(format!("bad --size '{s}'")),
        },
        None => default_size,
    };
    if wl == "fib" && size > 92 {
        fail("fib n must be at most 92".into());
    }
    if wl == "chan_mpmc" && size < 2 * MPMC_PRODUCERS {
        fail(format!("chan_mpmc N must be at least {}", 2 * MPMC_PRODUCERS));
    }
    if wl == "skynet" {
        let mut p = size;
        while p % 10 == 0 {
            p /= 10;
        }
        if p != 1 {
            fail("skynet size must be a power of 10".into());
        }
    }
    if wl == "yield" || wl == "switch" {
        threads = 1;
    }
    if wl == "switch" {
        println!("workload={wl} runtime={RT} skipped=raw_switch_floor_is_measured_by_peer-boost-context");
        std::process::exit(3);
    }

    let rt = if wl == "yield" {
        tokio::runtime::Builder::new_current_thread().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads as usize)
            .enable_time()
            .build()
    }
    .expect("tokio runtime");

    let w = wl.clone();
    let (result, elapsed, rss0) = rt.block_on(async move {
        let rss0 = proc_status("VmRSS");
        let t0 = Instant::now();
        let result = match w.as_str() {
            "fib" => tokio::spawn(fib(size)).await.unwrap(),
            "skynet" => tokio::spawn(skynet(0, size)).await.unwrap(),
            "spawn_many" => tokio::spawn(spawn_many(size)).await.unwrap(),
            "yield" => {
                let a = tokio::spawn(yielder(size));
                let b = tokio::spawn(yielder(size));
                a.await.unwrap() + b.await.unwrap()
            }
            "sleepers" => tokio::spawn(sleepers(size)).await.unwrap(),
            "timeouts" => tokio::spawn(timeouts(size, threads)).await.unwrap(),
            "chan_pingpong" => tokio::spawn(chan_pingpong(size)).await.unwrap(),
            "chan_mpmc" => tokio::spawn(chan_mpmc(size)).await.unwrap(),
            "mutex_contended" => tokio::spawn(mutex_counter(size, false)).await.unwrap(),
            "mutex_yield" => tokio::spawn(mutex_counter(size, true)).await.unwrap(),
            "group_fanout" => tokio::spawn(group_fanout(size)).await.unwrap(),
            _ => unreachable!(),
        };
        (result, t0.elapsed(), rss0)
    });
    let ns = elapsed.as_nanos() as f64;
    let extra = match wl.as_str() {
        "yield" => format!(" extra=ns_per_switch={:.2}", ns / result.max(1) as f64),
        "chan_pingpong" => format!(" extra=ns_per_round_trip={:.1}", ns / size as f64),
        "sleepers" => format!(" extra=rss_bytes_per_task={}", proc_status("VmHWM").saturating_sub(rss0) / size),
        _ => String::new(),
    };
    let ok = result == expected(&wl, size);
    println!(
        "workload={wl} runtime={RT} threads={threads} wall_ms={:.3} result={}{result}{extra}",
        ns / 1e6,
        if ok { "" } else { "WRONG:" }
    );
    // Exit without waiting for the runtime's threads to wind down.
    std::process::exit(if ok { 0 } else { 1 });
}
