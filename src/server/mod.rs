//! Process start-up, per-shard listeners and graceful shutdown.

pub mod busy;
pub mod client;
pub mod conn;
pub mod dispatch;
pub mod log;
pub mod metrics;
pub mod migrate;
pub mod monitor;
pub mod net;
pub mod obuf;
pub mod pause;
pub mod pubsub;
pub mod replay;
pub mod tracking;

use crate::config::Config;
use crate::runtime::{self, inbox::Inbox, Runtime, Shard};
use crate::{log_notice, log_warning};
use glommio::{LocalExecutorBuilder, Placement};
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// CPUs this process may run on (taskset and cpusets respected).
pub fn allowed_cpus() -> Vec<usize> {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity fills the set we own.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    let mut cpus = Vec::new();
    if ok {
        for i in 0..libc::CPU_SETSIZE as usize {
            // SAFETY: i is below CPU_SETSIZE.
            if unsafe { libc::CPU_ISSET(i, &set) } {
                cpus.push(i);
            }
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    cpus
}

thread_local! {
    /// Bumped when CONFIG SET port/bind replaces this shard's listeners.
    static LISTEN_GEN: Cell<u64> = const { Cell::new(0) };
    static STOPPING: Cell<bool> = const { Cell::new(false) };
    static STOP_WAKERS: RefCell<Vec<std::task::Waker>> = const { RefCell::new(Vec::new()) };
}

fn stop_this_shard() {
    STOPPING.with(|s| s.set(true));
    STOP_WAKERS.with(|w| w.borrow_mut().drain(..).for_each(|w| w.wake()));
}

/// Resolves when the shard stops or the listeners of generation `gen` are retired.
async fn retired(gen: u64) {
    futures_lite::future::poll_fn(|cx| {
        if STOPPING.with(|s| s.get()) || LISTEN_GEN.with(|g| g.get()) != gen {
            std::task::Poll::Ready(())
        } else {
            STOP_WAKERS.with(|w| w.borrow_mut().push(cx.waker().clone()));
            std::task::Poll::Pending
        }
    })
    .await
}

/// Gives this shard's ring its listening sockets (and the busy responder
/// its copies of them); none on shutdown.
fn install_listeners(fds: Vec<std::os::fd::RawFd>) {
    busy::set_listeners(runtime::shard_id(), &fds);
    net::uring::set_listeners(fds);
}

/// Replaces this shard's listeners (CONFIG SET port / bind).
fn replace_listeners(new: Vec<std::net::TcpListener>) {
    if net::uring::active() {
        install_listeners(new.into_iter().map(|l| l.into_raw_fd()).collect());
        return;
    }
    let gen = LISTEN_GEN.with(|g| {
        g.set(g.get() + 1);
        g.get()
    });
    STOP_WAKERS.with(|w| w.borrow_mut().drain(..).for_each(|w| w.wake()));
    spawn_accept_loops(new, gen);
}

fn spawn_accept_loops(listeners: Vec<std::net::TcpListener>, gen: u64) -> Vec<glommio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for l in listeners {
        // SAFETY: the fd is a bound, listening socket we own.
        let gl = unsafe { glommio::net::TcpListener::from_raw_fd(l.into_raw_fd()) };
        tasks.push(glommio::spawn_local(accept_loop(gl, gen)).detach());
    }
    tasks
}

/// CONFIG SET changed port or bind: bind the new sockets for every shard first
/// (so a failure changes nothing), then hand them over. Err is Redis's reply text.
pub fn rebind(port: u16, bind: &[(String, bool)], backlog: u32, which: &str) -> Result<(), String> {
    let n = runtime::nshards();
    let mut per_shard = Vec::with_capacity(n);
    for _ in 0..n {
        let mut mine = Vec::new();
        if port != 0 {
            for (addr, optional) in bind {
                match listen_socket(addr, port, backlog) {
                    Ok(l) => mine.push(l),
                    Err(_) if *optional => {}
                    Err(e) => {
                        log_warning!("Could not create server TCP listening socket {}:{}: {}", addr, port, e);
                        return Err(if which == "port" {
                            "ERR CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port. Check server logs.".to_string()
                        } else {
                            "ERR CONFIG SET failed (possibly related to argument 'bind') - Failed to bind to specified addresses.".to_string()
                        });
                    }
                }
            }
        }
        per_shard.push(mine);
    }
    for (shard, mine) in per_shard.into_iter().enumerate() {
        runtime::send(shard, Box::new(move || replace_listeners(mine)));
    }
    Ok(())
}

async fn stopped() {
    futures_lite::future::poll_fn(|cx| {
        if STOPPING.with(|s| s.get()) {
            std::task::Poll::Ready(())
        } else {
            STOP_WAKERS.with(|w| w.borrow_mut().push(cx.waker().clone()));
            std::task::Poll::Pending
        }
    })
    .await
}

/// Starts a graceful shutdown of every shard (SIGTERM, SIGINT, SHUTDOWN).
pub fn initiate_shutdown() {
    let rt = runtime::rt_ref();
    if rt.shutting_down.swap(true, Ordering::SeqCst) {
        return;
    }
    for s in 0..rt.nshards {
        runtime::send(s, Box::new(stop_this_shard));
    }
}

/// Creates one listening socket with SO_REUSEPORT (every shard binds the same port).
fn listen_socket(addr: &str, port: u16, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let host = match addr {
        "*" => "0.0.0.0",
        "::*" => "::",
        a => a,
    };
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("Invalid bind address '{addr}'")))?;
    let sa = std::net::SocketAddr::new(ip, port);
    let sk = Socket::new(if ip.is_ipv6() { Domain::IPV6 } else { Domain::IPV4 }, Type::STREAM, Some(Protocol::TCP))?;
    if ip.is_ipv6() {
        sk.set_only_v6(true)?;
    }
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&sa.into())?;
    sk.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(sk.into())
}

/// Binds every configured address; optional ('-' prefixed) ones may fail.
fn bind_all(cfg: &Config) -> Result<Vec<std::net::TcpListener>, String> {
    let port = cfg.port();
    let mut out = Vec::new();
    if port == 0 {
        return Ok(out);
    }
    for (addr, optional) in cfg.bind() {
        match listen_socket(&addr, port, cfg.tcp_backlog()) {
            Ok(l) => out.push(l),
            Err(e) => {
                let unsupported = matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPROTONOSUPPORT)
                );
                if optional && unsupported {
                    continue;
                }
                return Err(format!("Warning: Could not create server TCP listening socket {addr}:{port}: {e}"));
            }
        }
    }
    if out.is_empty() {
        return Err(format!("Failed listening on port {port} (tcp), aborting."));
    }
    Ok(out)
}

pub(super) const PROTECTED_MODE_ERR: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis's protected mode: with the default bind and no password, only
/// loopback clients are served.
pub(super) fn protected_mode_denies(ip: std::net::IpAddr) -> bool {
    let rt = runtime::rt_ref();
    if ip.is_loopback() || ip.to_canonical().is_loopback() {
        return false;
    }
    if rt.requirepass.read().map(|p| p.is_some()).unwrap_or(true) {
        return false;
    }
    match rt.config.read() {
        Ok(c) => c.protected_mode() && c.bind() == [("*".to_string(), false), ("::*".to_string(), true)],
        Err(_) => false,
    }
}

/// What to do with a socket just accepted.
enum Admit {
    Serve(Rc<client::ClientShared>),
    /// Answer this and close (maxclients, protected mode).
    Refuse(&'static [u8]),
}

/// The checks and bookkeeping of Redis's acceptCommonHandler, common to both engines.
fn admit(fd: std::os::fd::RawFd) -> Admit {
    let rt = runtime::rt_ref();
    runtime::with_shard(|s| s.stats.connections_received += 1);
    // SAFETY: borrowing the fd without taking ownership (into_raw_fd below).
    let sk = unsafe { socket2::Socket::from_raw_fd(fd) };
    let _ = sk.set_nodelay(true);
    let ka = rt.config.read().map(|c| c.tcp_keepalive()).unwrap_or(300);
    if ka > 0 {
        let _ = sk.set_keepalive(true);
        let _ = sk.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(ka)));
    }
    let peer = sk.peer_addr().ok().and_then(|a| a.as_socket());
    let local = sk.local_addr().ok().and_then(|a| a.as_socket());
    let _ = sk.into_raw_fd();
    let maxclients = rt.maxclients.load(Ordering::Relaxed) as usize;
    if rt.connected_clients.load(Ordering::Relaxed) >= maxclients {
        runtime::with_shard(|s| s.stats.rejected_connections += 1);
        return Admit::Refuse(b"-ERR max number of clients reached\r\n");
    }
    if let Some(p) = peer {
        if protected_mode_denies(p.ip()) {
            return Admit::Refuse(PROTECTED_MODE_ERR.as_bytes());
        }
    }
    rt.connected_clients.fetch_add(1, Ordering::Relaxed);
    let now = runtime::now_ms();
    let shared = Rc::new(client::ClientShared::new(
        runtime::next_client_id(),
        fd,
        peer.map(|a| a.to_string()).unwrap_or_default(),
        local.map(|a| a.to_string()).unwrap_or_default(),
        now,
        now,
    ));
    client::register(shared.clone());
    Admit::Serve(shared)
}

/// Runs a connection's loop as its own task; a bug in a handler ends this
/// connection, not the shard.
fn spawn_conn<T: net::Transport + 'static>(t: T, shared: Rc<client::ClientShared>, resume: Option<migrate::Resume>) {
    glommio::spawn_local(async move {
        use futures_lite::FutureExt;
        let id = shared.id;
        if std::panic::AssertUnwindSafe(conn::serve(t, shared, resume)).catch_unwind().await.is_err() {
            log_warning!("BUG: connection {} panicked and was closed", id);
            if let Some(c) = client::get(id) {
                pubsub::forget(&c);
                if c.tracking.try_borrow_mut().is_ok() {
                    tracking::disable(&c);
                }
                if let Ok(mut w) = c.watch.try_borrow_mut() {
                    w.unwatch_all();
                }
            }
            client::unregister(id);
            runtime::rt_ref().connected_clients.fetch_sub(1, Ordering::Relaxed);
        }
    })
    .detach();
}

/// A connection accepted by the socket ring.
fn accept_uring(fd: std::os::fd::RawFd) {
    match admit(fd) {
        Admit::Serve(shared) => {
            let t = net::uring::UringConn::open(fd, shared.clone());
            spawn_conn(t, shared, None);
        }
        Admit::Refuse(msg) => {
            // A fresh socket's send buffer takes the one line; then it is closed.
            // SAFETY: we own the accepted fd.
            unsafe {
                libc::send(fd, msg.as_ptr() as *const libc::c_void, msg.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
                libc::close(fd);
            }
        }
    }
}

async fn accept_loop(listener: glommio::net::TcpListener, gen: u64) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            retired(gen).await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning (Redis logs and retries
                // on the next event loop turn), so the shard keeps serving its clients.
                log_warning!("Accepting client connection: {}", e);
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match admit(stream.as_raw_fd()) {
            Admit::Serve(shared) => spawn_conn(net::GlommioStream::new(stream), shared, None),
            Admit::Refuse(msg) => {
                glommio::spawn_local(async move {
                    use futures_lite::AsyncWriteExt;
                    let mut stream = stream;
                    let _ = stream.write_all(msg).await;
                    let _ = stream.close().await;
                })
                .detach();
            }
        }
    }
}

/// Shards whose state is installed (start-up memory is measured after them).
static SHARDS_INSTALLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Shards that finished their start-up (for `used_memory_startup`).
static SHARDS_READY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Periodic per-shard work (Redis's serverCron at hz 10): active expiry, the
/// tracking table's limit and idle timeouts.
async fn cron() {
    let mut ticks: u64 = 0;
    loop {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        if STOPPING.with(|s| s.get()) {
            break;
        }
        ticks += 1;
        // Records made outside any connection's read (expiry, served waiters).
        runtime::propagate::flush_round();
        let now = runtime::now_ms();
        let shard0 = runtime::with_shard(|s| {
            metrics::track([s.stats.commands, s.stats.net_input_bytes, s.stats.net_output_bytes], now);
            s.id == 0
        });
        if shard0 {
            crate::persistence::aof::auto_rewrite_check();
        }
        crate::util::alloc::publish_pending();
        if shard0 {
            // Redis samples the peak in serverCron; one shard is enough (the figure is process-wide).
            crate::util::alloc::sample();
        }
        // Save points and scheduled BGSAVEs (serverCron's rdb part).
        if runtime::with_shard(crate::persistence::save::cron) {
            crate::persistence::save::bgsave_from_cron();
        }
        // maxmemory: idle shards give back their share too (keyspace/evict.rs).
        if crate::keyspace::evict::over_limit() {
            runtime::with_shard(|s| s.evict());
        }
        // A key table resize in progress: 1 ms a tick, as databasesCron.
        if runtime::ACTIVE_REHASHING.load(Ordering::Relaxed) {
            runtime::with_shard(|s| s.active_rehash(1_000));
        }
        // 25% of a 100 ms tick at most, as Redis's slow cycle.
        if runtime::ACTIVE_EXPIRE.load(Ordering::Relaxed) {
            runtime::with_shard(|s| s.active_expire(25_000));
        }
        // Client-side caching: a lowered tracking-table-max-keys applies
        // without waiting for the next read (Redis's serverCron does it too).
        if runtime::track::active() {
            runtime::with_shard(|s| s.track.limit(runtime::nshards(), 100));
        }
        if ticks.is_multiple_of(10) {
            obuf_cron();
            let timeout = runtime::rt_ref().timeout_secs.load(Ordering::Relaxed);
            if timeout > 0 {
                let now = runtime::now_ms();
                client::for_each(|c| {
                    if !c.monitor.get() && now.saturating_sub(c.last_interaction_ms.get()) / 1000 > timeout {
                        c.kill();
                    }
                });
            }
        }
    }
}

/// Redis's clientsCron side of closeClientOnOutputBufferLimitReached: a client
/// stuck writing a pending output above the soft limit is closed once the soft
/// seconds have passed, even though it sends nothing more.
fn obuf_cron() {
    let now = runtime::now_ms();
    let mut limits: [Option<(u64, u64, i64)>; 3] = [None; 3];
    client::for_each(|c| {
        let pending = c.bufs.out_pending.get();
        if obuf::figures(pending).omem == 0 || c.killed.get() {
            return;
        }
        let class = c.bufs.class.get();
        let l = *limits[class as usize].get_or_insert_with(|| obuf::limits(class));
        if obuf::reached(l, &c.bufs.soft_since, pending, now / 1000) {
            log_warning!("Client {} closed for overcoming of output buffer limits.", c.info_line(now));
            c.kill();
        }
    });
}

/// The io_uring socket loop could not be set up: said once per process.
static URING_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn shard_main(id: usize, listeners: Vec<std::net::TcpListener>, databases: usize, load: Option<crate::persistence::load::ShardLoad>) {
    runtime::install_shard(Shard::new(id, databases));
    crate::exec::block::install();
    let rt = runtime::rt_ref();
    let inbox: &'static Inbox = &rt.inboxes[id];
    let want_uring = rt.config.read().map(|c| c.net_engine_uring()).unwrap_or(true);
    let uring = want_uring
        && match net::uring::setup() {
            Ok(()) => true,
            Err(e) => {
                if !URING_WARNED.swap(true, Ordering::Relaxed) {
                    log_warning!(
                        "WARNING: the io_uring socket loop is unavailable ({}); serving sockets through glommio instead. See kernel-tuning.md.",
                        e
                    );
                }
                false
            }
        };
    // Counted once the ring and its provided buffers (8 MiB a shard) exist:
    // used_memory_startup is sampled after every shard got here (measured
    // before them under load, it made maxmemory tests evict nearly everything).
    SHARDS_INSTALLED.fetch_add(1, Ordering::Relaxed);
    // appendonly yes with files to load (aof::LOADED false): the RDB base
    // first, then shard 0 replays the commands; clients wait in the listen
    // backlog meanwhile, as the replay answers no one.
    let mut load = load;
    if !crate::persistence::aof::LOADED.load(Ordering::Acquire) {
        if !uring {
            inbox.set_thread();
            glommio::spawn_local(inbox.serve()).detach();
        } else {
            glommio::spawn_local(net::uring::run(accept_uring)).detach();
        }
        if let Some(l) = load.take() {
            if !l.run().await {
                return;
            }
        }
        if id == 0 {
            if let Some((files, lt)) = replay::PLAN.lock().unwrap_or_else(|e| e.into_inner()).take() {
                glommio::spawn_local(async move {
                    if !replay::replay(files, lt).await {
                        std::process::exit(1);
                    }
                    crate::persistence::aof::start_propagating();
                    crate::persistence::aof::LOADED.store(true, Ordering::Release);
                })
                .detach();
            }
        }
        crate::persistence::aof::wait_loaded().await;
        if uring {
            install_listeners(listeners.into_iter().map(|l| l.into_raw_fd()).collect());
        } else {
            spawn_accept_loops(listeners, 0);
        }
    } else if uring {
        glommio::spawn_local(net::uring::run(accept_uring)).detach();
        install_listeners(listeners.into_iter().map(|l| l.into_raw_fd()).collect());
    } else {
        inbox.set_thread();
        glommio::spawn_local(inbox.serve()).detach();
        spawn_accept_loops(listeners, 0);
    }
    // dump.rdb: this shard's keys come in while it answers -LOADING (the
    // cron, and with it active expiry, starts once the data is in).
    if let Some(l) = load {
        if !l.run().await {
            return;
        }
    }
    glommio::spawn_local(cron()).detach();
    SHARDS_READY.fetch_add(1, Ordering::Relaxed);
    stopped().await;
    // Let the accept loops see the stop and drop their sockets.
    if uring {
        install_listeners(Vec::new());
    }
    glommio::timer::sleep(Duration::from_millis(1)).await;
    // Let in-flight requests finish: stop reading, let each connection write its replies.
    client::for_each(|c| unsafe {
        libc::shutdown(c.fd, libc::SHUT_RD);
    });
    // Wait for every shard's connections (they may still need this shard's inbox).
    let deadline = runtime::now_ms() + 5000;
    while rt.connected_clients.load(Ordering::SeqCst) > 0 && runtime::now_ms() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    // The last records of this shard go to the AOF writer before it stops.
    runtime::propagate::flush_round();
    glommio::timer::sleep(Duration::from_millis(20)).await;
}

/// Redis's adjustOpenFilesLimit: make room for maxclients + 32 descriptors,
/// lowering maxclients (with Redis's warnings) when the hard limit is lower.
fn adjust_open_files_limit(maxclients: u64) -> u64 {
    const RESERVED: u64 = 32;
    let want = maxclients + RESERVED;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        log_warning!(
            "Unable to obtain the current NOFILE limit ({}), assuming 1024 and setting the max clients configuration accordingly.",
            std::io::Error::last_os_error()
        );
        return 1024u64.saturating_sub(RESERVED).min(maxclients);
    }
    let old = lim.rlim_cur;
    if old >= want {
        return maxclients;
    }
    let mut best = want;
    let mut err = None;
    while best > old {
        let l = libc::rlimit {
            rlim_cur: best,
            rlim_max: lim.rlim_max.max(best),
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } == 0 {
            break;
        }
        err = Some(std::io::Error::last_os_error());
        best = best.saturating_sub(16).max(old);
    }
    if best >= want {
        log_notice!("Increased maximum number of open files to {} (it was originally set to {}).", want, old);
        return maxclients;
    }
    let new_max = best.saturating_sub(RESERVED).max(1);
    log_warning!("You requested maxclients of {} requiring at least {} max file descriptors.", maxclients, want);
    if let Some(e) = err {
        log_warning!("Server can't set maximum open files to {} because of OS error: {}.", want, e);
    }
    log_warning!(
        "Current maximum open files is {}. maxclients has been reduced to {} to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
        best,
        new_max
    );
    new_max
}

/// glommio's io_uring rings need locked memory (it refuses below 512 KiB).
/// Raise the soft limit when allowed; otherwise explain what to change.
fn ensure_memlock() -> Result<(), String> {
    const NEED: u64 = 512 * 1024;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 || lim.rlim_cur >= NEED {
        return Ok(());
    }
    let want = libc::rlimit {
        rlim_cur: NEED.max(lim.rlim_cur).min(lim.rlim_max.max(NEED)),
        rlim_max: lim.rlim_max.max(NEED),
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } == 0 {
        log_notice!("Increased RLIMIT_MEMLOCK to {} bytes for io_uring (it was {}).", want.rlim_cur, lim.rlim_cur);
        return Ok(());
    }
    Err(format!(
        "RLIMIT_MEMLOCK is {} bytes but io_uring needs at least {} per shard. Raise it (ulimit -l, or LimitMEMLOCK=infinity in tessera.service); see kernel-tuning.md.",
        lim.rlim_cur, NEED
    ))
}

/// Kernel settings Redis warns about at start-up, adapted to a forkless
/// thread-per-core server (see kernel-tuning.md for the reasons).
fn kernel_warnings(cfg: &Config) {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let backlog = cfg.tcp_backlog();
    if let Some(n) = read("/proc/sys/net/core/somaxconn").and_then(|v| v.parse::<u32>().ok()) {
        if n > 0 && n < backlog {
            log_warning!(
                "WARNING: The TCP backlog setting of {} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {}.",
                backlog,
                n
            );
        }
    }
    if read("/sys/kernel/mm/transparent_hugepage/enabled").is_some_and(|v| v.contains("[always]")) {
        let disable = cfg.get_value(b"disable-thp").map(|v| v.eq_ignore_ascii_case(b"yes")).unwrap_or(true);
        // SAFETY: prctl with PR_SET_THP_DISABLE only changes this process's THP policy.
        let disabled = disable && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0;
        if !disabled {
            log_warning!("WARNING You have Transparent Huge Pages (THP) support enabled in your kernel. This will create latency and memory usage issues with Tessera. To fix this issue run the command 'echo madvise > /sys/kernel/mm/transparent_hugepage/enabled' as root, and add it to your /etc/rc.local in order to retain the setting after a reboot. Tessera must be restarted after THP is disabled (set to 'madvise' or 'never').");
        }
    }
    if read("/proc/sys/vm/overcommit_memory").as_deref() == Some("2") {
        log_warning!("WARNING vm.overcommit_memory is set to 2 (strict accounting). Tessera reserves memory lazily and aborts if an allocation fails; use 0 or 1: add 'vm.overcommit_memory = 0' to /etc/sysctl.conf and run 'sysctl vm.overcommit_memory=0'.");
    }
}

/// Runs the server until shutdown; returns the process exit code.
pub fn run(cfg: Config) -> i32 {
    let cpus = allowed_cpus();
    runtime::clock::calibrate();
    let nshards = if cfg.threads() > 0 { cfg.threads() } else { cpus.len() };
    let _ = log::set_file(&cfg.logfile());
    log::set_level(log::level_code(cfg.loglevel()));
    crate::commands::server::configure_memory(&cfg);
    crate::commands::server::configure_encodings(&cfg);
    crate::persistence::configure(&cfg);
    runtime::notify::configure(cfg.notify_keyspace_events());
    runtime::track::MAX_KEYS.store(cfg.tracking_table_max_keys(), std::sync::atomic::Ordering::Relaxed);
    let _ = runtime::notify::SINK.set(pubsub::publish_system);
    tracking::install();
    // Redis's main(): collation from the environment (SORT ALPHA uses strcoll).
    // SAFETY: called once, before the shards start.
    unsafe {
        libc::setlocale(libc::LC_COLLATE, c"".as_ptr());
    }
    log_notice!("oO0OoO0OoO0Oo Tessera is starting oO0OoO0OoO0Oo");
    log_notice!(
        "Tessera version={}, redis_version=7.0.15, bits=64, pid={}, shards={}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        nshards
    );
    for w in cfg.warnings() {
        log_warning!("{}", w);
    }
    if !cfg.dir().is_empty() {
        if let Err(e) = std::env::set_current_dir(cfg.dir()) {
            eprintln!("Can't chdir to '{}': {}", cfg.dir(), e);
            return 1;
        }
    }
    kernel_warnings(&cfg);
    if let Err(e) = ensure_memlock() {
        log_warning!("{}", e);
        eprintln!("{e}");
        return 1;
    }
    let listeners = match bind_all(&cfg) {
        Ok(l) => l,
        Err(e) => {
            log_warning!("{}", e);
            eprintln!("{e}");
            return 1;
        }
    };
    let databases = cfg.databases();
    let mut inboxes = Vec::with_capacity(nshards);
    inboxes.resize_with(nshards, Inbox::default);
    runtime::init(Runtime {
        nshards,
        inboxes,
        requirepass: std::sync::RwLock::new(cfg.requirepass()),
        timeout_secs: std::sync::atomic::AtomicU64::new(cfg.timeout_secs()),
        maxclients: std::sync::atomic::AtomicU64::new(adjust_open_files_limit(cfg.maxclients())),
        debug_mode: std::sync::atomic::AtomicUsize::new(match cfg.enable_debug_command() {
            crate::config::DebugCmdMode::No => 0,
            crate::config::DebugCmdMode::Yes => 1,
            crate::config::DebugCmdMode::Local => 2,
        }),
        config: std::sync::RwLock::new(cfg),
        next_client_id: std::sync::atomic::AtomicU64::new(1),
        connected_clients: std::sync::atomic::AtomicUsize::new(0),
        shutting_down: std::sync::atomic::AtomicBool::new(false),
        start_ms: runtime::now_ms(),
        lastsave: std::sync::atomic::AtomicU64::new(runtime::now_ms() / 1000),
        pause_until: std::sync::atomic::AtomicU64::new(0),
        pause_writes_only: std::sync::atomic::AtomicBool::new(false),
        monitors: std::sync::atomic::AtomicUsize::new(0),
    });
    // Signals: a plain thread turns SIGTERM/SIGINT into a graceful shutdown.
    match signal_hook::iterator::Signals::new([signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT]) {
        Ok(mut sigs) => {
            std::thread::spawn(move || {
                for sig in sigs.forever() {
                    let name = if sig == signal_hook::consts::SIGINT { "SIGINT" } else { "SIGTERM" };
                    log_warning!("Received {} scheduling shutdown...", name);
                    // shutdown-on-sigterm / shutdown-on-sigint flags, as Redis's serverCron.
                    let directive = if sig == signal_hook::consts::SIGINT {
                        "shutdown-on-sigint"
                    } else {
                        "shutdown-on-sigterm"
                    };
                    let flags = runtime::rt_ref()
                        .config
                        .read()
                        .ok()
                        .and_then(|c| c.get_value(directive.as_bytes()))
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default();
                    let has = |w: &str| flags.split_whitespace().any(|f| f == w);
                    let (save, nosave, force) = (has("save"), has("nosave"), has("force"));
                    // The final save runs on shard 0 (it takes every shard's lock).
                    runtime::send(
                        0,
                        Box::new(move || {
                            glommio::spawn_local(async move {
                                if crate::commands::server::final_save_allows_exit(save, nosave, force).await {
                                    initiate_shutdown();
                                } else {
                                    log_warning!(
                                        "{} received but errors trying to shut down the server, check the logs for more information",
                                        name
                                    );
                                }
                            })
                            .detach();
                        }),
                    );
                }
            });
        }
        Err(e) => log_warning!("cannot install signal handlers: {}", e),
    }
    // dump.rdb, if there is one: the shards start with their half of the load.
    let mut db_path = std::path::PathBuf::from(runtime::rt_ref().config.read().map(|c| c.dbfilename()).unwrap_or_default());
    // appendonly yes: the AOF instead (an RDB base through the same loader, then the commands).
    let aof_on = runtime::rt_ref().config.read().map(|c| c.bool_value("appendonly")).unwrap_or(false);
    if aof_on {
        let opened = match runtime::rt_ref().config.read() {
            Ok(c) => crate::persistence::aof::open(&c, nshards),
            Err(_) => Err("config lock poisoned".into()),
        };
        match opened {
            Ok(plan) => {
                let mut files = Vec::new();
                db_path = std::path::PathBuf::from("appendonlydir/.no-rdb-base");
                match plan.base {
                    Some((p, true)) => {
                        log_notice!("Reading RDB base file on AOF loading...");
                        db_path = std::path::PathBuf::from(p);
                    }
                    Some((p, false)) => files.push((p, false)),
                    None => {}
                }
                files.extend(plan.incrs.into_iter().map(|p| (p, false)));
                if let Some(l) = files.last_mut() {
                    l.1 = true;
                }
                let lt = runtime::rt_ref().config.read().map(|c| c.bool_value("aof-load-truncated")).unwrap_or(true);
                *replay::PLAN.lock().unwrap_or_else(|e| e.into_inner()) = Some((files, lt));
                crate::persistence::aof::LOADED.store(false, Ordering::Release);
            }
            Err(e) => {
                log_warning!("{}", e);
                return 1;
            }
        }
    } else {
        // aofLoadManifestFromDisk runs whatever appendonly says.
        let read = match runtime::rt_ref().config.read() {
            Ok(c) => crate::persistence::aof::load_manifest_off(&c),
            Err(_) => Err("config lock poisoned".into()),
        };
        if let Err(e) = read {
            log_warning!("{}", e);
            return 1;
        }
    }
    let (loading, mut shard_loads): (Option<crate::persistence::load::Loading>, Vec<Option<crate::persistence::load::ShardLoad>>) =
        match crate::persistence::load::open(&db_path, nshards) {
            Ok(Some((l, s))) => (Some(l), s.into_iter().map(Some).collect()),
            Ok(None) => (None, (0..nshards).map(|_| None).collect()),
            Err(e) => {
                log_warning!("Fatal error loading the DB: {}. Exiting.", e);
                return 1;
            }
        };
    // Hand each shard its own dup of every listening socket (same port, SO_REUSEPORT).
    let mut handles = Vec::with_capacity(nshards);
    for id in 0..nshards {
        let mine: Vec<std::net::TcpListener> = if id == 0 {
            listeners.iter().filter_map(|l| l.try_clone().ok()).collect()
        } else {
            let (port, cfg_bind, backlog) = runtime::rt_ref()
                .config
                .read()
                .map(|c| (c.port(), c.bind(), c.tcp_backlog()))
                .unwrap_or((0, Vec::new(), 511));
            let mut v = Vec::new();
            if port != 0 {
                for (addr, _) in cfg_bind {
                    if let Ok(l) = listen_socket(&addr, port, backlog) {
                        v.push(l);
                    }
                }
            }
            v
        };
        let cpu = cpus[id % cpus.len()];
        let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{id}"))
            // 1 MiB of registered buffer per ring instead of 10: shards do small I/O.
            // The preempt timer stays at glommio's default: a short one arms and cancels
            // an io_uring timeout on every loop iteration (measured: ~5% of CPU at P=1).
            .io_memory(1 << 20);
        let load = shard_loads[id].take();
        match builder.spawn(move || shard_main(id, mine, databases, load)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("cannot start shard {id}: {e}");
                return 1;
            }
        }
    }
    drop(listeners);
    // Redis measures initial_memory_usage once the server is initialised, before it
    // loads data: here, once every shard installed its state (bounded wait: a shard
    // that fails to start is reported below).
    let t0 = std::time::Instant::now();
    while SHARDS_INSTALLED.load(Ordering::Relaxed) < nshards && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    crate::util::alloc::record_startup();
    if let Some(l) = loading {
        let verify = crate::persistence::checksum();
        if !l.run(databases, verify) {
            for h in handles {
                let _ = h.join();
            }
            return 1;
        }
    }
    let t0 = std::time::Instant::now();
    while SHARDS_READY.load(Ordering::Relaxed) < nshards && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    log_notice!("Ready to accept connections tcp");
    // Asleep until a script runs past busy-reply-threshold (server/busy.rs).
    busy::start();
    // Watchdog, a counted safety net: a shard that sleeps with work waiting for it
    // (a lost wake-up) is woken within two 50 ms ticks and counted in INFO
    // `watchdog_rescues`. See ARCHITECTURE.md for why none is expected.
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(|| loop {
            crate::util::alloc::publish_pending();
            std::thread::sleep(Duration::from_millis(50));
            for inbox in runtime::rt_ref().inboxes.iter() {
                inbox.watch();
            }
        })
        .ok();
    // Start-up's allocations on this thread count before it waits.
    crate::util::alloc::publish_pending();
    let mut code = 0;
    for (id, h) in handles.into_iter().enumerate() {
        if let Err(e) = h.join() {
            log_warning!("shard {} stopped abnormally: {:?}", id, e);
            code = 1;
        }
    }
    if code != 0 {
        eprintln!("Tessera: a shard failed to run (see the log); exiting with an error.");
        return code;
    }
    crate::persistence::aof::stop();
    log_notice!("Tessera is now ready to exit, bye bye...");
    0
}
