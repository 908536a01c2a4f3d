//! The http_hello server of bench/WORKLOADS.md in Rust: hyper 0.14 on Tokio, as hyper's
//! own "hello" example writes it. The same behaviour and command line as
//! examples/http_server.c: GET / answers "Hello, World!", GET /sleep?ms=N sleeps N ms
//! first, anything else is 404; keep-alive (hyper's default); "listening on HOST:PORT"
//! on stdout once ready; SIGINT or SIGTERM shuts down gracefully and exits 0.
//!
//!     server-hyper [--host H] [--port N] [--workers N]
//!
//! --workers sets the multi-thread runtime's worker_threads (0: one per CPU).

use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, Server, StatusCode};
use std::convert::Infallible;
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

async fn handle(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let sleep_ms = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => Some(0),
        (&Method::GET, "/sleep") => req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|ms| *ms <= 60000),
        _ => None,
    };
    let response = match sleep_ms {
        Some(ms) => {
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Response::builder()
                .header("Content-Type", "text/plain")
                .body(Body::from("Hello, World!"))
        }
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("Content-Type", "text/plain")
            .body(Body::from("not found\n")),
    };
    Ok(response.unwrap())
}

fn usage() -> ! {
    eprintln!("usage: server-hyper [--host H] [--port N] [--workers N]");
    std::process::exit(2);
}

fn main() {
    let (mut host, mut port, mut workers) = (String::from("127.0.0.1"), 8080u16, 0usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--host" => host = value,
            "--port" => port = value.parse().unwrap_or_else(|_| usage()),
            "--workers" => workers = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build().expect("tokio runtime");
    runtime.block_on(async move {
        let addr: SocketAddr = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| usage());
        let make = make_service_fn(|_| async { Ok::<_, Infallible>(service_fn(handle)) });
        let server = Server::try_bind(&addr).unwrap_or_else(|e| {
            eprintln!("server-hyper: {}", e);
            std::process::exit(1)
        });
        let server = server.serve(make);
        println!("listening on {}", server.local_addr());
        std::io::stdout().flush().ok();
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let graceful = server.with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        });
        if let Err(e) = graceful.await {
            eprintln!("server-hyper: {}", e);
            std::process::exit(1);
        }
    });
}
