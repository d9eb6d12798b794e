// SPDX-License-Identifier: MIT
//! corio's perf workloads written on Tokio (Debian's librust-tokio-dev 1.24),
//! never linked with corio. Each workload prints the harness's line
//!   WORKLOAD=<name> PARAMS=<k=v,...> OPS=<n> SECONDS=<s> NS_PER_OP=<x> PEER=tokio
//! after checking it lost no work (exit 1 otherwise, no figure).
//!
//!   corio-peer-tokio threadsafe_post P=1 M=1000000 [via=spawn|mpsc]
//!   corio-peer-tokio local_callbacks N=5000000
//!   corio-peer-tokio task_switch T=1000 K=2000
//!   corio-peer-tokio spawn_await N=1000000
//!   corio-peer-tokio http --port 0 --loops N   (driven by perf/bench peer_http)
//!   corio-peer-tokio echo --port 0 --loops N   (driven by perf/bench peer_echo)
//!
//! The definitions are shared/perf-workloads.md; "a loop" is a current_thread
//! runtime (one thread, as one corio loop); the servers run the
//! multi-thread runtime with one worker per CPU, the way Tokio is used.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fail(msg: &str) -> ! {
    eprintln!("corio-peer-tokio: FAILED: {}", msg);
    std::process::exit(1);
}

struct Params {
    order: Vec<(String, String)>,
    given: HashMap<String, String>,
}

impl Params {
    fn new(args: &[String]) -> Params {
        let mut given = HashMap::new();
        for a in args {
            match a.split_once('=') {
                Some((k, v)) => {
                    given.insert(k.to_string(), v.to_string());
                }
                None => {
                    eprintln!("corio-peer-tokio: '{}' is not k=v", a);
                    std::process::exit(2);
                }
            }
        }
        Params { order: Vec::new(), given }
    }
    fn long(&mut self, k: &str, d: u64) -> u64 {
        let v = match self.given.get(k) {
            Some(s) => s.parse().unwrap_or_else(|_| {
                eprintln!("corio-peer-tokio: {}={} is not a number", k, s);
                std::process::exit(2)
            }),
            None => d,
        };
        self.order.push((k.to_string(), v.to_string()));
        v
    }
    fn string(&mut self, k: &str, d: &str) -> String {
        let v = self.given.get(k).cloned().unwrap_or_else(|| d.to_string());
        self.order.push((k.to_string(), v.clone()));
        v
    }
    fn report(&self, name: &str, ops: u64, secs: f64, extra: &str) {
        let p: Vec<String> = self.order.iter().map(|(k, v)| format!("{}={}", k, v)).collect();
        println!(
            "WORKLOAD={} PARAMS={} OPS={} SECONDS={:.6} NS_PER_OP={:.2} PEER=tokio{}",
            name,
            p.join(","),
            ops,
            secs,
            secs * 1e9 / ops as f64,
            extra
        );
    }
}

fn local_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {}", e)))
}

// ------------------------------------------------------------ threadsafe_post

// Owned by the loop thread (only its tasks touch them; Relaxed is a plain
// load/store on x86).
static TP_COUNT: AtomicU64 = AtomicU64::new(0);
static TP_TOTAL: AtomicU64 = AtomicU64::new(0);
static TP_BAD: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static TP_LAST: [AtomicU64; 64] = [ZERO; 64];
static TP_DONE: Mutex<Option<tokio::sync::oneshot::Sender<Instant>>> = Mutex::new(None);

#[inline]
fn tp_run(producer: usize, seq: u64) {
    if TP_LAST[producer].load(Relaxed) + 1 != seq {
        TP_BAD.fetch_add(1, Relaxed);
    }
    TP_LAST[producer].store(seq, Relaxed);
    let c = TP_COUNT.load(Relaxed) + 1;
    TP_COUNT.store(c, Relaxed);
    if c == TP_TOTAL.load(Relaxed) {
        let now = Instant::now();
        if let Some(tx) = TP_DONE.lock().unwrap().take() {
            let _ = tx.send(now);
        }
    }
}

fn threadsafe_post(mut p: Params) {
    let np = p.long("P", 1) as usize;
    let m = p.long("M", 1_000_000);
    let via = p.string("via", "spawn");
    if np == 0 || np > 64 || m == 0 {
        fail("P must be 1..64 and M > 0");
    }
    TP_TOTAL.store(np as u64 * m, Relaxed);
    let rt = local_rt();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    *TP_DONE.lock().unwrap() = Some(done_tx);
    let barrier = Arc::new(Barrier::new(np + 1));
    let mut threads = Vec::new();
    let mut consumer = None;
    if via == "spawn" {
        // A posted callback is a task spawned from another thread.
        for i in 0..np {
            let h = rt.handle().clone();
            let b = barrier.clone();
            threads.push(std::thread::spawn(move || {
                b.wait();
                for s in 1..=m {
                    drop(h.spawn(async move { tp_run(i, s) }));
                }
            }));
        }
    } else if via == "mpsc" {
        // A posted callback is a message on an unbounded channel that one
        // task of the loop drains.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, u64)>();
        for i in 0..np {
            let tx = tx.clone();
            let b = barrier.clone();
            threads.push(std::thread::spawn(move || {
                b.wait();
                for s in 1..=m {
                    if tx.send((i, s)).is_err() {
                        fail("channel closed");
                    }
                }
            }));
        }
        drop(tx);
        consumer = Some(rt.spawn(async move {
            while let Some((i, s)) = rx.recv().await {
                tp_run(i, s);
            }
        }));
    } else {
        eprintln!("corio-peer-tokio: via must be spawn or mpsc");
        std::process::exit(2);
    }
    let t0 = Instant::now();
    barrier.wait();
    let t1 = rt.block_on(async {
        match tokio::time::timeout(std::time::Duration::from_secs(120), done_rx).await {
            Ok(Ok(t)) => t,
            _ => fail(&format!("stuck at {} of {}", TP_COUNT.load(Relaxed), TP_TOTAL.load(Relaxed))),
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    if let Some(c) = consumer {
        rt.block_on(c).unwrap();
    }
    let n = TP_COUNT.load(Relaxed);
    if n != np as u64 * m || TP_BAD.load(Relaxed) != 0 {
        fail(&format!("{} of {} ran, {} out of order", n, np as u64 * m, TP_BAD.load(Relaxed)));
    }
    let secs = (t1 - t0).as_secs_f64();
    p.report("threadsafe_post", n, secs, "");
}

// ------------------------------------------------------------ local_callbacks

static LC_SCHED: AtomicU64 = AtomicU64::new(0);
static LC_RAN: AtomicU64 = AtomicU64::new(0);
static LC_N: AtomicU64 = AtomicU64::new(0);
static LC_DONE: Mutex<Option<tokio::sync::oneshot::Sender<()>>> = Mutex::new(None);

fn lc_step() {
    let r = LC_RAN.load(Relaxed) + 1;
    LC_RAN.store(r, Relaxed);
    if r == LC_N.load(Relaxed) {
        if let Some(tx) = LC_DONE.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
    let s = LC_SCHED.load(Relaxed);
    if s < LC_N.load(Relaxed) {
        LC_SCHED.store(s + 1, Relaxed);
        drop(tokio::spawn(async { lc_step() }));
    }
}

fn local_callbacks(mut p: Params) {
    let n = p.long("N", 5_000_000);
    LC_N.store(n, Relaxed);
    let rt = local_rt();
    let (tx, rx) = tokio::sync::oneshot::channel();
    *LC_DONE.lock().unwrap() = Some(tx);
    let t0 = Instant::now();
    rt.block_on(async {
        // 64 chains, each callback a spawned task that schedules the next of
        // its chain until N were scheduled in total.
        tokio::spawn(async move {
            for _ in 0..64.min(n) {
                LC_SCHED.store(LC_SCHED.load(Relaxed) + 1, Relaxed);
                drop(tokio::spawn(async { lc_step() }));
            }
        });
        let _ = rx.await;
    });
    let secs = t0.elapsed().as_secs_f64();
    if LC_RAN.load(Relaxed) != n {
        fail("lost callbacks");
    }
    p.report("local_callbacks", n, secs, "");
}

// ------------------------------------------------------------ tasks

fn task_switch(mut p: Params) {
    let t = p.long("T", 1000);
    let k = p.long("K", 2000);
    let rt = local_rt();
    static DONE: AtomicU64 = AtomicU64::new(0);
    let t0 = Instant::now();
    rt.block_on(async {
        let mut hs = Vec::new();
        for _ in 0..t {
            hs.push(tokio::spawn(async move {
                for _ in 0..k {
                    tokio::task::yield_now().await;
                    DONE.fetch_add(1, Relaxed);
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
    });
    let secs = t0.elapsed().as_secs_f64();
    if DONE.load(Relaxed) != t * k {
        fail("lost yields");
    }
    p.report("task_switch", t * k, secs, "");
}

fn spawn_await(mut p: Params) {
    let n = p.long("N", 1_000_000);
    let rt = local_rt();
    let t0 = Instant::now();
    // The parent is a task (block_on's own future is polled outside the
    // scheduler's run queue).
    let sum = rt.block_on(async {
        tokio::spawn(async move {
            let mut ok = 0u64;
            for i in 0..n {
                let v = tokio::spawn(async move { i + 1 }).await.unwrap();
                ok += (v == i + 1) as u64;
            }
            ok
        })
        .await
        .unwrap()
    });
    let secs = t0.elapsed().as_secs_f64();
    if sum != n {
        fail("a child returned the wrong value");
    }
    p.report("spawn_await", n, secs, "");
}

// ------------------------------------------------------------ servers

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n";

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

// Keep-alive GET: one fixed answer per request head (pipelining kept:
// every complete head in the buffer is answered, in one write).
async fn http_conn(mut s: tokio::net::TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 8192];
    let mut have = 0usize;
    let mut out = Vec::with_capacity(4096);
    loop {
        let n = match s.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        have += n;
        let mut start = 0;
        while let Some(e) = find(&buf[start..have], b"\r\n\r\n") {
            if !buf[start..].starts_with(b"GET ") {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
                return;
            }
            out.extend_from_slice(OK);
            start += e + 4;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            return; // head too large
        }
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

async fn echo_conn(mut s: tokio::net::TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn server(args: &[String], http: bool) {
    let mut port = 0u16;
    let mut loops = 0usize;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--port" if i + 1 < args.len() => {
                port = args[i + 1].parse().unwrap_or(0);
                i += 1;
            }
            "--loops" if i + 1 < args.len() => {
                loops = args[i + 1].parse().unwrap_or(0);
                i += 1;
            }
            a => fail(&format!("unknown argument {}", a)),
        }
        i += 1;
    }
    if loops == 0 {
        loops = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(loops)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {}", e)));
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| fail(&format!("bind: {}", e)));
        let port = l.local_addr().unwrap().port();
        println!("listening on 127.0.0.1:{} ({} workers)", port, loops);
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        loop {
            tokio::select! {
                _ = term.recv() => break,
                r = l.accept() => match r {
                    Ok((s, _)) => {
                        if http {
                            tokio::spawn(http_conn(s));
                        } else {
                            tokio::spawn(echo_conn(s));
                        }
                    }
                    Err(_) => continue,
                },
            }
        }
    });
    // SIGTERM: the harness reads CPU time from wait4 and wants exit 0.
    std::process::exit(0);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprintln!("usage: corio-peer-tokio WORKLOAD [k=v ...] | http|echo --port N --loops N");
        std::process::exit(2);
    }
    let rest = &args[1..];
    match args[0].as_str() {
        "threadsafe_post" => threadsafe_post(Params::new(rest)),
        "local_callbacks" => local_callbacks(Params::new(rest)),
        "task_switch" => task_switch(Params::new(rest)),
        "spawn_await" => spawn_await(Params::new(rest)),
        "http" => server(rest, true),
        "echo" => server(rest, false),
        w => {
            eprintln!("corio-peer-tokio: unknown workload '{}'", w);
            std::process::exit(2);
        }
    }
}
