//! Client-side caching (CLIENT TRACKING, CLIENT CACHING, CLIENT GETREDIR,
//! CLIENT TRACKINGINFO, RESP3 `invalidate` pushes, `__redis__:invalidate`
//! messages for a RESP2 redirect target) against a real redis-server
//! 7.0.15: the same steps on both, Tessera at 2 shards with the keys on
//! both shards, replies and what every connection received compared byte for
//! byte, RESP2 and RESP3. A concurrency check at 4 shards (Tessera only)
//! closes the file.
//!
//! How a step is observed: after every step, each connection sends PING and
//! reads until its PONG, so everything the server pushed to it before is
//! captured, in order. Redis writes an invalidation before it reads the next
//! command, so its capture is exact; when Tessera's capture is short of
//! Redis's it is given [`LATE`] more to deliver the rest (its broadcast
//! pushes leave when the shard's run of work ends), and what then arrived
//! must be what Redis sent. That an invalidation comes before the reply to
//! the reader's next command is checked on its own
//! (`an_acknowledged_writes_invalidation_precedes_the_readers_next_reply_like_redis`).
//!
//! Relaxations, each named where a step uses it ([`Cmp`]):
//! * `Unordered`: one command invalidating keys on both shards (MSET,
//!   RENAME, FLUSHALL seen by clients on both shards, active expiry): each
//!   shard sends its own pushes, so the pushes are compared as a multiset.
//! * `Keys`: BCAST pushes for keys written on both shards at once: Tessera
//!   sends one push per prefix per shard where Redis sends one per prefix
//!   (declared in `runtime/track.rs`), so the invalidated keys are compared as
//!   a multiset. BCAST writes of keys on one shard are compared exactly.
//! * `Count`: keys a table limit evicts are chosen at random by both
//!   servers: only how many is compared.
//! * Client ids differ between the servers: in a `tracking-redir-broken`
//!   push, CLIENT GETREDIR, CLIENT TRACKINGINFO and CLIENT LIST `redir=` an id
//!   is replaced by the name of the connection it belongs to; HELLO's `id`
//!   is blanked.

mod common;

use common::diff::split_words;
use common::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const SHARDS: usize = 2;
/// How long Tessera may take to deliver what Redis had delivered by the PONG.
const LATE: Duration = Duration::from_secs(1);
/// Bounded wait for what comes with time (expiry, a table limit).
const EVENTUAL: Duration = Duration::from_secs(3);

/// Keys `a` and `d` live on one shard, `b` and `c` on the other; the
/// broadcast keys `p:1`, `q:2` on one, `p:2`, `p:3`, `q:1` on the other.
fn check_key_layout() {
    let s = |k: &str| local_shard_of(k.as_bytes(), SHARDS);
    assert_eq!((s("a"), s("d")), (1, 1));
    assert_eq!((s("b"), s("c")), (0, 0));
    assert_eq!((s("p:1"), s("q:2")), (0, 0));
    assert_eq!((s("p:2"), s("p:3"), s("q:1")), (1, 1, 1));
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// What a server sends on its own (not a reply): an invalidation, a
/// broken-redirect notice, a Pub/Sub message.
fn is_async(f: &[u8]) -> bool {
    f.starts_with(b">2\r\n$10\r\ninvalidate\r\n")
        || f.starts_with(b">2\r\n$21\r\ntracking-redir-broken\r\n")
        || f.starts_with(b"*3\r\n$7\r\nmessage\r\n")
        || f.starts_with(b">3\r\n$7\r\nmessage\r\n")
}

/// The keys an invalidation names: `Some(keys)`, or `None` for a null
/// (every key) or a frame that is no invalidation.
fn inval_keys(f: &[u8]) -> Option<Vec<Vec<u8>>> {
    let v = Value::parse(f);
    let items = v.as_array()?;
    let last = items.last()?;
    let head = items.first()?.as_bytes()?;
    if head != b"invalidate" && head != b"message" {
        return None;
    }
    last.as_array().map(|a| a.iter().map(|k| k.as_bytes().expect("key").to_vec()).collect())
}

fn show(frames: &[Vec<u8>]) -> String {
    if frames.is_empty() {
        return "(nothing)".into();
    }
    frames.iter().map(|f| escape(f)).collect::<Vec<_>>().join(" | ")
}

/// How the frames a connection received in a step are compared.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cmp {
    /// Byte for byte, in order.
    Exact,
    /// The same frames, in any order (one command, pushes from both shards).
    Unordered,
    /// Broadcast pushes: the same invalidated keys (each key with the kind of
    /// frame that carried it), other frames as a multiset.
    Keys,
    /// As `Keys`, but only how many keys (which ones a table limit evicts is
    /// random on both servers).
    Count,
}

/// The comparable form of a step's frames under `cmp`, and how many units
/// (frames, or keys for `Keys`) it holds.
fn canon(frames: &[Vec<u8>], cmp: Cmp) -> (Vec<Vec<u8>>, usize) {
    match cmp {
        Cmp::Exact => (frames.to_vec(), frames.len()),
        Cmp::Unordered => {
            let mut v = frames.to_vec();
            v.sort();
            (v, frames.len())
        }
        Cmp::Keys | Cmp::Count => {
            let mut v = Vec::new();
            for f in frames {
                match inval_keys(f) {
                    Some(keys) => {
                        for k in keys {
                            let mut e = f[..1].to_vec();
                            e.extend_from_slice(b" key ");
                            e.extend_from_slice(if cmp == Cmp::Keys { &k } else { b"?" });
                            v.push(e);
                        }
                    }
                    None => v.push(f.clone()),
                }
            }
            v.sort();
            let n = v.len();
            (v, n)
        }
    }
}

/// Everything pushed to `c` before the reply to a PING it sends now.
fn until_pong(c: &mut Client, resp2_subscribed: bool) -> Vec<Vec<u8>> {
    c.send_strs(&["PING"]);
    let pong: &[u8] = if resp2_subscribed { b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" } else { b"+PONG\r\n" };
    let mut got = Vec::new();
    loop {
        let f = c.read_reply_raw();
        if f == pong {
            return got;
        }
        assert!(is_async(&f), "port {}: {} while waiting for the PONG", c.port, escape(&f));
        got.push(f);
    }
}

/// Async frames arriving on `c` within `d` (nothing else may arrive).
fn more_within(c: &mut Client, d: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + d;
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        c.set_timeout(left.min(Duration::from_millis(50)));
        match c.try_read_reply_raw() {
            Ok(f) => {
                assert!(is_async(&f), "port {}: unexpected frame {}", c.port, escape(&f));
                got.push(f);
                // Whatever else belongs to the same moment comes right after.
                continue;
            }
            Err(ReadError::Timeout(_)) => {}
            Err(e) => panic!("port {}: {e:?}", c.port),
        }
        if !got.is_empty() {
            break;
        }
    }
    c.set_timeout(IO_TIMEOUT);
    got
}

// ---------------------------------------------------------------------------
// The differential driver
// ---------------------------------------------------------------------------

struct Conn {
    name: String,
    t: Client,
    r: Client,
    /// CLIENT ID on (Tessera, Redis).
    ids: (i64, i64),
    proto: u8,
    /// In RESP2 Pub/Sub mode (PING answers `pong` as a message).
    subscribed: bool,
    /// Inside MULTI: a PING would be queued, so it is not observed.
    multi: bool,
    /// Not observed until its next command (CLIENT CACHING applies to the
    /// next command only; a PING would be that command).
    hold: bool,
    /// A command (a blocking one) was sent and its reply is still to come.
    waiting: Option<String>,
}

struct Duo {
    name: &'static str,
    conns: Vec<Option<Conn>>,
    history: Vec<String>,
    /// Frames Tessera delivered after its PONG (allowed, counted).
    late: usize,
    /// Closed connections' ids (a broken redirect still names one).
    gone: Vec<(i64, i64, String)>,
    ctl_t: Client,
    ctl_r: Client,
    // Servers last: dropped after the clients.
    tsrv: TesseraServer,
    rsrv: RedisServer,
}

impl Duo {
    fn new(name: &'static str) -> Duo {
        Self::with_args(name, &[])
    }

    fn with_args(name: &'static str, args: &[&str]) -> Duo {
        check_key_layout();
        let tsrv = TesseraServer::start(SHARDS, args);
        let rsrv = RedisServer::start(args);
        let ctl_t = tsrv.client();
        let ctl_r = rsrv.client();
        Duo {
            name,
            conns: Vec::new(),
            history: Vec::new(),
            late: 0,
            gone: Vec::new(),
            ctl_t,
            ctl_r,
            tsrv,
            rsrv,
        }
    }

    #[track_caller]
    fn fail(&self, msg: &str) -> ! {
        let from = self.history.len().saturating_sub(12);
        panic!(
            "{}: {msg}\n  steps so far (last {}):\n    {}",
            self.name,
            self.history.len() - from,
            self.history[from..].join("\n    ")
        );
    }

    /// A new connection on both servers, named `name` (for `$id:name`).
    fn open(&mut self, name: &str) -> usize {
        let mut t = self.tsrv.client();
        let mut r = self.rsrv.client();
        let tid = t.cmd_value(&["CLIENT", "ID"]).as_int().expect("tessera CLIENT ID");
        let rid = r.cmd_value(&["CLIENT", "ID"]).as_int().expect("redis CLIENT ID");
        self.conns.push(Some(Conn {
            name: name.to_string(),
            t,
            r,
            ids: (tid, rid),
            proto: 2,
            subscribed: false,
            multi: false,
            hold: false,
            waiting: None,
        }));
        self.history.push(format!("[{name}] connects"));
        self.conns.len() - 1
    }

    fn conn(&mut self, i: usize) -> &mut Conn {
        self.conns[i].as_mut().expect("connection is closed")
    }

    /// Closes connection `i` on both servers and waits until both forgot it.
    fn close(&mut self, i: usize) {
        let c = self.conns[i].take().expect("connection is closed");
        self.history.push(format!("[{}] disconnects", c.name));
        let ids = c.ids;
        self.gone.push((ids.0, ids.1, c.name.clone()));
        drop(c);
        for (ctl, id) in [(&mut self.ctl_t, ids.0), (&mut self.ctl_r, ids.1)] {
            let deadline = Instant::now() + EVENTUAL;
            loop {
                let v = ctl.cmd_value(&["CLIENT", "LIST", "ID", &id.to_string()]);
                if v.as_bytes().is_some_and(|b| b.is_empty()) {
                    break;
                }
                assert!(Instant::now() < deadline, "client {id} still listed after it disconnected");
                sleep_ms(10);
            }
        }
    }

    fn ids(&self, tessera: bool) -> Vec<(i64, String)> {
        self.conns
            .iter()
            .flatten()
            .map(|c| (if tessera { c.ids.0 } else { c.ids.1 }, c.name.clone()))
            .chain(self.gone.iter().map(|g| (if tessera { g.0 } else { g.1 }, g.2.clone())))
            .collect()
    }

    fn subst(&self, words: &[String], tessera: bool) -> Vec<Vec<u8>> {
        words
            .iter()
            .map(|w| match w.strip_prefix("$id:") {
                Some(name) => {
                    let c = self
                        .conns
                        .iter()
                        .flatten()
                        .find(|c| c.name == name)
                        .unwrap_or_else(|| panic!("no connection {name}"));
                    (if tessera { c.ids.0 } else { c.ids.1 }).to_string().into_bytes()
                }
                None => w.as_bytes().to_vec(),
            })
            .collect()
    }

    /// Replaces a client id in an integer of `f` by the connection's name.
    fn name_ids(f: &[u8], names: &[(i64, String)]) -> Vec<u8> {
        let s = String::from_utf8_lossy(f).into_owned();
        let mut out = String::new();
        for line in s.split_inclusive("\r\n") {
            if let Some(n) = line.strip_prefix(':').and_then(|l| l.trim_end().parse::<i64>().ok()) {
                if let Some((_, name)) = names.iter().find(|(id, _)| *id == n) {
                    out.push_str(&format!(":<id of {name}>\r\n"));
                    continue;
                }
            }
            out.push_str(line);
        }
        out.into_bytes()
    }

    /// The comparable form of a reply to `words`.
    fn norm_reply(&self, words: &[String], f: &[u8], tessera: bool) -> Vec<u8> {
        let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let sub = |a: &str, b: &str| up.first().map(|s| s.as_str()) == Some(a) && up.get(1).map(|s| s.as_str()) == Some(b);
        if up.first().map(|s| s.as_str()) == Some("HELLO") && !f.starts_with(b"-") {
            return normalize_hello_id(&Value::parse(f)).encode();
        }
        if sub("CLIENT", "GETREDIR") || sub("CLIENT", "TRACKINGINFO") {
            return Self::name_ids(f, &self.ids(tessera));
        }
        f.to_vec()
    }

    fn norm_async(&self, f: &[u8], names: &[(i64, String)]) -> Vec<u8> {
        if f.starts_with(b">2\r\n$21\r\ntracking-redir-broken\r\n") {
            Self::name_ids(f, names)
        } else {
            f.to_vec()
        }
    }

    /// Sends `line` on connection `i` of both servers.
    fn send(&mut self, i: usize, line: &str) -> Vec<String> {
        let words = split_words(line);
        let ta = self.subst(&words, true);
        let ra = self.subst(&words, false);
        let name = self.conn(i).name.clone();
        self.history.push(format!("[{name}] {line}"));
        let c = self.conn(i);
        c.hold = false;
        let tr: Vec<&[u8]> = ta.iter().map(|a| a.as_slice()).collect();
        let rr: Vec<&[u8]> = ra.iter().map(|a| a.as_slice()).collect();
        c.t.send(&tr);
        c.r.send(&rr);
        words
    }

    /// Reads the reply to `words` on connection `i` of both servers (async
    /// frames before it are compared too) and compares them.
    fn reply(&mut self, i: usize, words: &[String]) -> (Vec<u8>, Vec<u8>) {
        let names_t = self.ids(true);
        let names_r = self.ids(false);
        let read = |c: &mut Client| {
            let mut early = Vec::new();
            loop {
                let f = c.read_reply_raw();
                if is_async(&f) {
                    early.push(f);
                } else {
                    return (f, early);
                }
            }
        };
        let c = self.conn(i);
        let (rb, r_early) = read(&mut c.r);
        let (tb, t_early) = read(&mut c.t);
        let r_early: Vec<Vec<u8>> = r_early.iter().map(|f| self.norm_async(f, &names_r)).collect();
        let t_early: Vec<Vec<u8>> = t_early.iter().map(|f| self.norm_async(f, &names_t)).collect();
        if t_early != r_early {
            self.fail(&format!("before the reply:\n  redis:   {}\n  tessera: {}", show(&r_early), show(&t_early)));
        }
        let (tn, rn) = (self.norm_reply(words, &tb, true), self.norm_reply(words, &rb, false));
        if tn != rn {
            self.fail(&format!("reply differs:\n  redis:   {}\n  tessera: {}", escape(&rn), escape(&tn)));
        }
        // Connection state that decides how it is observed.
        let up: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let ok = !rb.starts_with(b"-");
        let c = self.conn(i);
        match up[0].as_str() {
            "MULTI" if ok => c.multi = true,
            "EXEC" | "DISCARD" => c.multi = false,
            "HELLO" if ok && up.len() > 1 => c.proto = if up[1] == "3" { 3 } else { 2 },
            "RESET" => {
                c.proto = 2;
                c.multi = false;
                c.subscribed = false;
            }
            "SUBSCRIBE" | "PSUBSCRIBE" if ok => c.subscribed = true,
            _ => {}
        }
        (tb, rb)
    }

    /// One step: `line` on connection `i`, its reply, then what every
    /// connection received, compared exactly.
    #[track_caller]
    fn cmd(&mut self, i: usize, line: &str) -> Vec<u8> {
        self.cmd_cmp(i, line, Cmp::Exact)
    }

    /// A step whose pushes are compared under `cmp`.
    fn cmd_cmp(&mut self, i: usize, line: &str, cmp: Cmp) -> Vec<u8> {
        let words = self.send(i, line);
        let (t, _) = self.reply(i, &words);
        self.observe(cmp);
        t
    }

    /// A step after which connection `i` is not observed (its next command
    /// must be the one CLIENT CACHING applies to).
    fn hold(&mut self, i: usize, line: &str) {
        let words = self.send(i, line);
        self.reply(i, &words);
        self.conn(i).hold = true;
        self.observe(Cmp::Exact);
    }

    /// Sends a (blocking) command whose reply comes later ([`Duo::finish`]).
    fn start(&mut self, i: usize, line: &str) {
        let words = self.send(i, line);
        self.conn(i).waiting = Some(words.join(" "));
        self.observe(Cmp::Exact);
    }

    /// The reply of the command [`Duo::start`] sent, then a step's observation.
    fn finish(&mut self, i: usize) {
        let line = self.conn(i).waiting.take().expect("nothing started");
        let words = split_words(&line);
        self.reply(i, &words);
        self.observe(Cmp::Exact);
    }

    /// What every observable connection received since the last step.
    fn observe(&mut self, cmp: Cmp) {
        let names_t = self.ids(true);
        let names_r = self.ids(false);
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else { continue };
            if c.multi || c.hold || c.waiting.is_some() {
                continue;
            }
            let sub2 = c.subscribed && c.proto == 2;
            let r = until_pong(&mut c.r, sub2);
            let mut t = until_pong(&mut c.t, sub2);
            let name = c.name.clone();
            let r: Vec<Vec<u8>> = r.iter().map(|f| self.norm_async(f, &names_r)).collect();
            let mut tn: Vec<Vec<u8>> = t.iter().map(|f| self.norm_async(f, &names_t)).collect();
            let (rc, rn) = canon(&r, cmp);
            let mut late = 0;
            while canon(&tn, cmp).0 != rc && canon(&tn, cmp).1 < rn {
                let c = self.conns[i].as_mut().unwrap();
                let more = more_within(&mut c.t, LATE);
                if more.is_empty() {
                    break;
                }
                late += more.len();
                t.extend(more);
                tn = t.iter().map(|f| self.norm_async(f, &names_t)).collect();
            }
            self.late += late;
            if canon(&tn, cmp).0 != rc {
                self.fail(&format!(
                    "[{name}] received (compared {cmp:?}{}):\n  redis:   {}\n  tessera: {}",
                    if late > 0 {
                        format!(", {late} of Tessera's after its PONG")
                    } else {
                        String::new()
                    },
                    show(&r),
                    show(&tn)
                ));
            }
        }
    }

    /// Waits until connection `i` received `units` (frames, or keys under
    /// `Keys`) on both servers, then compares them under `cmp` (expiry,
    /// evictions: things that come with time).
    fn expect_eventually(&mut self, i: usize, units: usize, cmp: Cmp) {
        let names_t = self.ids(true);
        let names_r = self.ids(false);
        let name = self.conn(i).name.clone();
        self.history.push(format!("[{name}] waits for {units} pushes"));
        let c = self.conns[i].as_mut().unwrap();
        let sub2 = c.subscribed && c.proto == 2;
        let mut got = Vec::new();
        for cl in [&mut c.r, &mut c.t] {
            let deadline = Instant::now() + EVENTUAL;
            let mut frames: Vec<Vec<u8>> = Vec::new();
            while canon(&frames, cmp).1 < units && Instant::now() < deadline {
                frames.extend(until_pong(cl, sub2));
                sleep_ms(20);
            }
            got.push(frames);
        }
        let r: Vec<Vec<u8>> = got[0].iter().map(|f| self.norm_async(f, &names_r)).collect();
        let t: Vec<Vec<u8>> = got[1].iter().map(|f| self.norm_async(f, &names_t)).collect();
        if canon(&r, cmp).1 != units {
            self.fail(&format!("[{name}] redis did not deliver {units} within {EVENTUAL:?}: {}", show(&r)));
        }
        if canon(&t, cmp).0 != canon(&r, cmp).0 {
            self.fail(&format!(
                "[{name}] received within {EVENTUAL:?} (compared {cmp:?}):\n  redis:   {}\n  tessera: {}",
                show(&r),
                show(&t)
            ));
        }
        self.observe(Cmp::Exact);
    }

    /// A command on the control connections (not a step; nothing tracks there).
    fn ctl(&mut self, line: &str) {
        let words = split_words(line);
        let w: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
        let t = self.ctl_t.cmd(&w);
        let r = self.ctl_r.cmd(&w);
        self.history.push(format!("[control] {line}"));
        if t != r {
            self.fail(&format!("control {line}: redis {} vs tessera {}", escape(&r), escape(&t)));
        }
    }

    /// INFO's tracking figures, equal on both servers (and Tessera's INFO is
    /// the child we started).
    fn info_figures(&mut self) -> Vec<(String, String)> {
        let t = self.ctl_t.cmd_value(&["INFO"]);
        let r = self.ctl_r.cmd_value(&["INFO"]);
        let t = String::from_utf8_lossy(t.as_bytes().expect("INFO")).into_owned();
        let r = String::from_utf8_lossy(r.as_bytes().expect("INFO")).into_owned();
        assert_eq!(
            info_field(&t, "process_id"),
            Some(self.tsrv.pid.to_string()),
            "Tessera's INFO is not our child's"
        );
        assert_eq!(info_field(&r, "process_id"), Some(self.rsrv.pid.to_string()), "Redis's INFO is not our child's");
        let mut out = Vec::new();
        for f in ["tracking_clients", "tracking_total_keys", "tracking_total_items", "tracking_total_prefixes"] {
            let (tv, rv) = (info_field(&t, f), info_field(&r, f));
            if tv != rv || tv.is_none() {
                self.fail(&format!("INFO {f}: redis {rv:?} vs tessera {tv:?}"));
            }
            out.push((f.to_string(), tv.unwrap()));
        }
        self.history.push(format!("[control] INFO: {out:?}"));
        out
    }

    /// CLIENT LIST's `flags=` and `redir=` of connection `i` (asked on the
    /// control connections, so `i` sends nothing), equal on both servers.
    fn list_fields(&mut self, i: usize) -> String {
        let (tid, rid) = self.conn(i).ids;
        let name = self.conn(i).name.clone();
        let names = [self.ids(true), self.ids(false)];
        let mut got = Vec::new();
        for (names, ctl, id) in [(&names[0], &mut self.ctl_t, tid), (&names[1], &mut self.ctl_r, rid)] {
            let v = ctl.cmd_value(&["CLIENT", "LIST", "ID", &id.to_string()]);
            let line = String::from_utf8_lossy(v.as_bytes().expect("CLIENT LIST")).trim_end().to_string();
            let field = |n: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(n).and_then(|f| f.strip_prefix('=')))
                    .unwrap_or_else(|| panic!("no {n}= in {line}"))
                    .to_string()
            };
            let redir = field("redir");
            let redir = redir
                .parse::<i64>()
                .ok()
                .and_then(|n| names.iter().find(|(id, _)| *id == n).map(|(_, name)| format!("<id of {name}>")))
                .unwrap_or(redir);
            got.push(format!("flags={} redir={redir}", field("flags")));
        }
        self.history.push(format!("[control] CLIENT LIST of {name}: {}", got[1]));
        if got[0] != got[1] {
            self.fail(&format!("CLIENT LIST of {name}: redis {} vs tessera {}", got[1], got[0]));
        }
        got.remove(1)
    }

    /// End of a scenario: nothing more arrives anywhere (Tessera is given a
    /// moment for anything it would still send).
    fn done(mut self) {
        self.observe(Cmp::Exact);
        for c in self.conns.iter_mut().flatten() {
            if c.multi || c.hold || c.waiting.is_some() {
                continue;
            }
            let extra = more_within(&mut c.t, Duration::from_millis(200));
            if !extra.is_empty() {
                let name = c.name.clone();
                self.fail(&format!("[{name}] Tessera sent more than Redis: {}", show(&extra)));
            }
        }
        eprintln!("{}: {} steps, {} Tessera frames after their PONG", self.name, self.history.len(), self.late);
    }
}

// ---------------------------------------------------------------------------
// Default mode
// ---------------------------------------------------------------------------

#[test]
fn default_mode_sends_one_invalidation_per_read_key_and_forgets_it_like_redis() {
    let mut d = Duo::new("default mode");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd_cmp(b, "MSET a 1 b 2 c 3 d 4", Cmp::Unordered);
    d.cmd(a, "GET a");
    d.cmd(a, "MGET b c d");
    // Each write of a read key: one push, then the key is forgotten.
    d.cmd(b, "SET a 2");
    d.cmd(b, "SET a 3");
    d.cmd(b, "APPEND a x");
    d.cmd(a, "GET a");
    d.cmd(b, "DEL b");
    d.cmd(b, "DEL b");
    d.cmd(b, "EXPIRE c 100");
    d.cmd(b, "INCR d");
    d.cmd(b, "INCR d");
    d.cmd(a, "MGET a b c d");
    d.cmd_cmp(b, "MSET a 9 b 9 c 9 d 9", Cmp::Unordered);
    d.cmd_cmp(b, "MSET a 8 b 8 c 8 d 8", Cmp::Unordered);
    // Other types, other commands.
    d.cmd(a, "HGET h f");
    d.cmd(b, "HSET h f v");
    d.cmd(b, "HSET h f w");
    d.cmd(a, "LRANGE l 0 -1");
    d.cmd(b, "LPUSH l x");
    d.cmd(a, "SMEMBERS s");
    d.cmd(a, "ZRANGE z 0 -1");
    d.cmd(b, "SADD s m");
    d.cmd(b, "ZADD z 1 m");
    d.cmd(a, "HGETALL h");
    d.cmd(a, "EXISTS l s");
    d.cmd(b, "HDEL h f");
    d.cmd_cmp(b, "DEL l s", Cmp::Unordered);
    d.cmd(a, "MGET a b");
    d.cmd_cmp(b, "RENAME a b", Cmp::Unordered);
    d.cmd(a, "STRLEN c");
    d.cmd(a, "TYPE c");
    d.cmd(a, "TTL c");
    d.cmd(b, "PERSIST c");
    d.cmd(a, "GET c");
    d.cmd(b, "GETDEL c");
    // A read that fails (WRONGTYPE) tracks its key too; a rejected one does not.
    d.cmd(b, "HSET hh f v");
    d.cmd(a, "GET hh");
    d.cmd(a, "GET d x");
    d.cmd(b, "DEL hh");
    d.cmd(b, "SET d 0");
    // Read twice, told once; an unread key never; an empty key name.
    d.cmd(a, "GET c");
    d.cmd(a, "GET c");
    d.cmd(b, "SET c 1");
    d.cmd(b, "SET never-read 1");
    d.cmd(a, "GET ''");
    d.cmd(b, "SET '' v");
    // The table is one for every database.
    d.cmd(a, "GET d");
    d.cmd(b, "SELECT 1");
    d.cmd(b, "SET d other-db");
    d.cmd(b, "SELECT 0");
    // Tracking off: no pushes, and a key written meanwhile is forgotten; keys
    // read before and not written are still tracked when it comes back on
    // (Redis drops table entries lazily).
    d.cmd(a, "MGET a b");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(b, "SET a off");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(b, "SET a on");
    d.cmd(b, "SET b on");
    // RESP2 meanwhile: the invalidation is dropped (and the key forgotten).
    d.cmd(a, "GET b");
    d.cmd(a, "HELLO 2");
    d.cmd(b, "SET b resp2");
    d.cmd(a, "HELLO 3");
    d.cmd(b, "SET b resp3");
    d.cmd(a, "GET b");
    d.cmd(a, "HELLO 2");
    d.cmd(a, "HELLO 3");
    d.cmd(b, "SET b back");
    // RESET turns tracking off.
    d.cmd(a, "GET a");
    d.cmd(a, "RESET");
    d.cmd(a, "HELLO 3");
    d.cmd(b, "SET a reset");
    d.info_figures();
    d.done();
}

#[test]
fn a_clients_own_write_is_invalidated_after_its_reply_and_noloop_silences_it_like_redis() {
    let mut d = Duo::new("own writes");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on");
    // Keys on both shards, one at a time.
    d.cmd(a, "SET a 1");
    d.cmd(a, "GET a");
    d.cmd(a, "SET a 2");
    d.cmd(a, "SET a 3");
    d.cmd(a, "GET b");
    d.cmd(a, "SET b 2");
    d.cmd(a, "MGET a b c");
    d.cmd_cmp(a, "MSET a 3 b 3 c 3", Cmp::Unordered);
    d.cmd(a, "HSET h f 1");
    d.cmd(a, "HGET h f");
    d.cmd(a, "HDEL h f");
    d.cmd(a, "LRANGE l 0 -1");
    d.cmd(a, "RPUSH l x");
    // A transaction's reply is not interleaved with its invalidations.
    d.cmd(a, "GET a");
    d.cmd(a, "MULTI");
    d.cmd(a, "INCR a");
    d.cmd(a, "GET b");
    d.cmd(a, "EXEC");
    d.cmd(a, "GET d");
    d.cmd(a, "MULTI");
    d.cmd(a, "SET d 1");
    d.cmd(a, "SET b 1");
    d.cmd_cmp(a, "EXEC", Cmp::Unordered);
    // NOLOOP: the client's own writes say nothing (and still forget the key),
    // other clients' writes still do.
    d.cmd(a, "CLIENT TRACKING on NOLOOP");
    d.cmd(a, "MGET a b");
    d.cmd(a, "SET a 4");
    d.cmd(b, "SET a 5");
    d.cmd(b, "SET b 5");
    d.cmd(a, "GET a");
    d.cmd(a, "MULTI");
    d.cmd(a, "INCR a");
    d.cmd(a, "EXEC");
    d.cmd(a, "GET c");
    d.cmd(a, "EVAL 'return redis.call(\"set\", KEYS[1], \"e\")' 1 c");
    d.cmd(a, "GET c");
    d.cmd(b, "SET c 6");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(a, "MGET a b");
    d.cmd(a, "DEL a");
    d.cmd(a, "DEL b");
    d.done();
}

/// Redis serves a blocked BLMOVE as a command of the blocked client, and its
/// invalidations follow its reply right away.
#[test]
fn a_served_blocking_move_invalidates_its_keys_right_after_its_reply_like_redis() {
    let mut d = Duo::new("served blocking move");
    // Active expiry would wake Tessera's shards every 100 ms and hide a delay.
    d.ctl("DEBUG SET-ACTIVE-EXPIRE 0");
    let a = d.open("A");
    let b = d.open("B");
    let c = d.open("C");
    for x in [a, c] {
        d.cmd(x, "HELLO 3");
        d.cmd(x, "CLIENT TRACKING on");
    }
    d.cmd(c, "MGET {l}src {l}dst");
    d.cmd(a, "LRANGE {l}dst 0 -1");
    d.start(a, "BLMOVE {l}src {l}dst LEFT LEFT 0");
    d.cmd(b, "RPUSH {l}src foo");
    d.finish(a);
    // The same with NOLOOP: the move is the blocked client's own write.
    d.cmd(a, "CLIENT TRACKING on NOLOOP");
    d.cmd(a, "LRANGE {l}dst 0 -1");
    d.cmd(c, "MGET {l}src {l}dst");
    d.start(a, "BLMOVE {l}src {l}dst LEFT LEFT 0");
    d.cmd(b, "RPUSH {l}src bar");
    d.finish(a);
    d.ctl("DEBUG SET-ACTIVE-EXPIRE 1");
    d.done();
}

/// Once a write is acknowledged to its writer, Redis has already queued the
/// invalidation on the reader's connection: the reply to any command the
/// reader sends afterwards comes after it (what the step comparison above
/// relies on for Redis, and tolerates for Tessera; checked here on its own).
#[test]
fn an_acknowledged_writes_invalidation_precedes_the_readers_next_reply_like_redis() {
    check_key_layout();
    let rsrv = RedisServer::start(&[]);
    let tsrv = TesseraServer::start(SHARDS, &[]);
    let mut late = Vec::new();
    for (name, port) in [("redis", rsrv.port), ("tessera", tsrv.port)] {
        let mut a = Client::connect(port);
        let mut b = Client::connect(port);
        assert!(a.cmd(&["HELLO", "3"]).starts_with(b"%"));
        assert_eq!(a.cmd(&["CLIENT", "TRACKING", "on"]), b"+OK\r\n");
        let mut n = 0;
        for i in 0..1000 {
            // Keys on both shards.
            let k = ["a", "b", "c", "d"][i % 4];
            a.cmd(&["GET", k]);
            assert_eq!(b.cmd(&["SET", k, &i.to_string()]), b"+OK\r\n");
            let push = format!(">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\n{k}\r\n").into_bytes();
            a.send_strs(&["PING"]);
            let first = a.read_reply_raw();
            if first == b"+PONG\r\n" {
                n += 1;
                assert_eq!(a.read_reply_raw(), push, "{name}: the invalidation of {k} never came");
            } else {
                assert_eq!(first, push, "{name}");
                assert_eq!(a.read_reply_raw(), b"+PONG\r\n", "{name}");
            }
        }
        late.push((name, n));
    }
    assert_eq!(
        late,
        [("redis", 0), ("tessera", 0)],
        "PONGs that came before the invalidation of an acknowledged write (of 1000)"
    );
}

// ---------------------------------------------------------------------------
// Expiry, flushes
// ---------------------------------------------------------------------------

#[test]
fn expired_keys_are_invalidated_actively_and_lazily_like_redis() {
    let mut d = Duo::new("expiry");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on");
    // Active expiry, keys on both shards.
    d.cmd(b, "SET a 1 PX 300");
    d.cmd(b, "SET b 1 PX 300");
    d.cmd(a, "MGET a b");
    d.expect_eventually(a, 2, Cmp::Unordered);
    // Lazy expiry (active expiry off): another client's access, then the
    // client's own access (which tracks the key again).
    d.ctl("DEBUG SET-ACTIVE-EXPIRE 0");
    d.cmd(b, "SET c 1 PX 300");
    d.cmd(b, "SET d 1 PX 300");
    d.cmd(a, "MGET c d");
    sleep_ms(500);
    d.cmd(b, "GET c");
    d.cmd(b, "EXISTS c");
    d.cmd(a, "GET d");
    d.cmd(b, "SET d 2");
    // NOLOOP: an expiry the client's own access causes is its own (as Redis's
    // current_client); one another client causes is not.
    d.cmd(a, "CLIENT TRACKING on NOLOOP");
    d.cmd(b, "SET c 1 PX 300");
    d.cmd(b, "SET d 1 PX 300");
    d.cmd(a, "MGET c d");
    sleep_ms(500);
    d.cmd(a, "GET c");
    d.cmd(b, "GET d");
    d.ctl("DEBUG SET-ACTIVE-EXPIRE 1");
    d.done();
}

/// Redis's expiry has no client: a broadcast client in NOLOOP mode hears
/// about a key it wrote itself when that key expires, whether active expiry
/// or its own access finds it expired.
#[test]
fn a_bcast_noloop_client_hears_about_its_own_keys_expiring_like_redis() {
    let mut d = Duo::new("bcast noloop expiry");
    let a = d.open("A");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on BCAST NOLOOP");
    d.cmd(a, "SET a 1 PX 300");
    d.cmd(a, "SET other 1");
    d.expect_eventually(a, 1, Cmp::Exact);
    d.ctl("DEBUG SET-ACTIVE-EXPIRE 0");
    d.cmd(a, "SET b 1 PX 300");
    sleep_ms(500);
    d.cmd(a, "GET b");
    d.ctl("DEBUG SET-ACTIVE-EXPIRE 1");
    d.done();
}

#[test]
fn flushall_and_flushdb_tell_every_tracking_client_with_a_null_like_redis() {
    let mut d = Duo::new("flush");
    let r = d.open("R");
    d.cmd(r, "SUBSCRIBE __redis__:invalidate");
    let a = d.open("A");
    let c = d.open("C");
    let e = d.open("E");
    let f = d.open("F");
    let g = d.open("G");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(c, "HELLO 3");
    d.cmd(c, "CLIENT TRACKING on BCAST PREFIX p:");
    d.cmd(e, "CLIENT TRACKING on REDIRECT $id:R");
    d.cmd(f, "HELLO 3");
    d.cmd(f, "CLIENT TRACKING on REDIRECT $id:R");
    // RESP2 without a redirect: never told.
    d.cmd(g, "CLIENT TRACKING on");
    d.cmd(b, "MSET a 1 b 2 c 3");
    d.cmd(a, "GET a");
    d.cmd(e, "GET b");
    d.cmd(f, "GET c");
    d.cmd(g, "GET a");
    // The null is in the tracking client's protocol: `$-1` for E, `_` for F,
    // both in R's RESP2 messages (E and F may sit on different shards).
    d.cmd_cmp(b, "FLUSHALL", Cmp::Unordered);
    d.info_figures();
    d.cmd_cmp(b, "FLUSHALL", Cmp::Unordered);
    d.cmd(b, "SET a 1");
    // The flushing client itself, after its reply; inside a transaction.
    d.cmd(a, "GET a");
    d.cmd_cmp(a, "FLUSHDB", Cmp::Unordered);
    d.cmd(a, "MULTI");
    d.cmd(a, "FLUSHDB");
    d.cmd_cmp(a, "EXEC", Cmp::Unordered);
    // Another database's flush tells everyone too.
    d.cmd(b, "SELECT 1");
    d.cmd_cmp(b, "FLUSHDB", Cmp::Unordered);
    d.cmd_cmp(b, "FLUSHALL ASYNC", Cmp::Unordered);
    // Once off, never told.
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(e, "CLIENT TRACKING off");
    d.cmd_cmp(b, "FLUSHALL", Cmp::Unordered);
    d.done();
}

// ---------------------------------------------------------------------------
// Broadcast mode
// ---------------------------------------------------------------------------

#[test]
fn bcast_with_prefixes_and_noloop_like_redis() {
    let mut d = Duo::new("bcast prefixes");
    let a = d.open("A");
    let b = d.open("B");
    let c = d.open("C");
    let r = d.open("R");
    d.cmd(r, "SUBSCRIBE __redis__:invalidate");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX p: PREFIX q:");
    d.info_figures();
    // Keys on one shard at a time: one push per prefix, keys in byte order.
    d.cmd(b, "SET p:1 x");
    d.cmd(b, "SET p:2 x");
    d.cmd(b, "MSET p:3 y p:2 z");
    d.cmd(b, "SET z x");
    d.cmd(b, "MSET q:2 x p:1 y");
    d.cmd(b, "MSET q:1 x p:3 y p:2 x");
    d.cmd(b, "DEL p:1 q:2");
    d.cmd(b, "MULTI");
    d.cmd(b, "INCR p:2");
    d.cmd(b, "INCR p:3");
    d.cmd(b, "INCR q:1");
    d.cmd(b, "INCR zz");
    d.cmd(b, "EXEC");
    // Both shards at once: per-shard pushes, the same keys.
    d.cmd_cmp(b, "MSET p:1 1 p:2 2 q:1 3 q:2 4", Cmp::Keys);
    // Nothing is read, nothing is remembered: no key table entries.
    d.cmd(a, "GET p:1");
    d.info_figures();
    // The client's own writes are reported (no NOLOOP yet).
    d.cmd(a, "SET p:1 own");
    // Adding a prefix; NOLOOP now applies to every prefix.
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX r: NOLOOP");
    d.cmd(a, "SET r:1 x");
    d.cmd(b, "SET r:1 y");
    d.cmd(a, "SET p:2 own");
    d.cmd(a, "CLIENT TRACKINGINFO");
    // A second client on an overlapping set of prefixes, redirected to a
    // RESP2 subscriber.
    d.cmd(c, "CLIENT TRACKING on BCAST REDIRECT $id:R PREFIX p: PREFIX s");
    d.cmd(b, "SET p:3 both");
    d.cmd(b, "SET s1 c-only");
    d.cmd(b, "MSET p:2 a p:3 b");
    d.info_figures();
    // Off: prefixes go (table-wide once no one has them).
    d.cmd(a, "CLIENT TRACKING off");
    d.info_figures();
    d.cmd(b, "SET p:3 c-only");
    d.cmd(b, "SET q:1 no-one");
    d.cmd(c, "CLIENT TRACKING off");
    d.info_figures();
    d.cmd(b, "SET p:3 no-one");
    d.done();
}

#[test]
fn bcast_without_a_prefix_reports_every_key_like_redis() {
    let mut d = Duo::new("bcast everything");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    // Keys read before the switch are not reported as such.
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(a, "MGET a b");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on BCAST");
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.cmd(b, "SET a 1");
    d.cmd(b, "SET b 1");
    d.cmd(b, "SET anything 1");
    d.cmd(b, "MSET a 2 d 2");
    d.cmd(b, "MSET b 2 c 2");
    d.cmd_cmp(b, "MSET a 3 b 3 c 3 d 3", Cmp::Keys);
    d.cmd(b, "HSET h f v");
    d.cmd(b, "SET e 1 PX 200");
    d.expect_eventually(a, 1, Cmp::Exact);
    d.cmd(a, "SET a own");
    // The empty prefix overlaps every other one.
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX x");
    d.cmd(a, "CLIENT TRACKING on BCAST");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX x");
    d.cmd(a, "CLIENT TRACKING on BCAST");
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX ''");
    d.cmd(b, "SET xy 1");
    d.info_figures();
    d.done();
}

// ---------------------------------------------------------------------------
// Errors, OPTIN / OPTOUT
// ---------------------------------------------------------------------------

#[test]
fn tracking_option_errors_match_redis() {
    let mut d = Duo::new("errors");
    let r = d.open("R");
    let r2 = d.open("R2");
    let a = d.open("A");
    let _ = (r, r2);
    for line in [
        "CLIENT TRACKING",
        "CLIENT TRACKING maybe",
        "CLIENT TRACKING on FOO",
        "CLIENT TRACKING on REDIRECT",
        "CLIENT TRACKING on PREFIX",
        "CLIENT TRACKING on REDIRECT abc",
        "CLIENT TRACKING on REDIRECT 99999999",
        "CLIENT TRACKING on REDIRECT 0",
        "CLIENT TRACKING on REDIRECT -1",
        "CLIENT TRACKING on REDIRECT $id:R REDIRECT $id:R2",
        "CLIENT TRACKING on REDIRECT $id:R REDIRECT 99999999",
        "CLIENT TRACKING on PREFIX x",
        "CLIENT TRACKING on PREFIX x OPTIN OPTOUT",
        "CLIENT TRACKING on OPTIN OPTOUT",
        "CLIENT TRACKING on BCAST OPTIN",
        "CLIENT TRACKING on BCAST OPTOUT",
        "CLIENT TRACKING on BCAST PREFIX foobar PREFIX foo",
        "CLIENT TRACKING on BCAST PREFIX foo PREFIX foobar",
        "CLIENT TRACKING on BCAST PREFIX zz PREFIX zz",
        "CLIENT TRACKING on BCAST PREFIX a PREFIX b PREFIX ab",
        "CLIENT TRACKING off REDIRECT 99999999",
        "CLIENT TRACKING off FOO",
        "CLIENT TRACKING off BCAST PREFIX x",
        "CLIENT CACHING",
        "CLIENT CACHING yes",
        "CLIENT CACHING no",
        "CLIENT GETREDIR x",
        "CLIENT TRACKINGINFO x",
    ] {
        d.cmd(a, line);
    }
    d.cmd(a, "CLIENT TRACKINGINFO");
    // Prefix collisions with prefixes the client already has.
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX foo PREFIX bar");
    for line in [
        "CLIENT TRACKING on BCAST PREFIX fo",
        "CLIENT TRACKING on BCAST PREFIX barb",
        "CLIENT TRACKING on BCAST PREFIX foo",
        "CLIENT TRACKING on BCAST PREFIX baz PREFIX foo2",
        "CLIENT TRACKING on",
        "CLIENT TRACKING on OPTIN",
        "CLIENT TRACKING on BCAST OPTIN",
        "CLIENT TRACKING on REDIRECT 99999999 BCAST",
        "CLIENT CACHING yes",
        "CLIENT CACHING no",
        "CLIENT CACHING maybe",
    ] {
        d.cmd(a, line);
    }
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.cmd(a, "CLIENT TRACKING on BCAST PREFIX baz");
    d.cmd(a, "CLIENT TRACKINGINFO");
    // Switching modes needs tracking off first.
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on OPTIN");
    for line in [
        "CLIENT TRACKING on OPTOUT",
        "CLIENT TRACKING on BCAST",
        "CLIENT CACHING no",
        "CLIENT CACHING maybe",
        "CLIENT CACHING",
    ] {
        d.cmd(a, line);
    }
    d.cmd(a, "CLIENT TRACKING on OPTIN NOLOOP");
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on OPTOUT");
    d.cmd(a, "CLIENT TRACKING on OPTIN");
    d.cmd(a, "CLIENT CACHING yes");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(a, "CLIENT CACHING yes");
    d.cmd(a, "CLIENT CACHING no");
    d.cmd(a, "CLIENT TRACKING on REDIRECT $id:R");
    d.cmd(a, "CLIENT TRACKING on REDIRECT 99999999");
    d.cmd(a, "CLIENT GETREDIR");
    d.done();
}

#[test]
fn optin_with_caching_yes_and_optout_with_caching_no_apply_to_the_next_command_like_redis() {
    let mut d = Duo::new("optin optout");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    d.cmd(b, "MSET a 1 b 2 c 3 d 4");
    d.cmd(a, "CLIENT TRACKING on OPTIN");
    // Not cached without CLIENT CACHING yes.
    d.cmd(a, "GET a");
    d.cmd(b, "SET a 2");
    // Yes: the next command only (CLIENT commands in between keep it).
    d.hold(a, "CLIENT CACHING yes");
    d.hold(a, "CLIENT TRACKINGINFO");
    d.cmd(a, "GET a");
    d.cmd(a, "GET b");
    d.cmd(b, "SET a 3");
    d.cmd(b, "SET b 3");
    d.hold(a, "CLIENT CACHING yes");
    d.cmd(a, "MGET a b");
    d.cmd_cmp(b, "MSET a 4 b 4", Cmp::Unordered);
    // Any command consumes it.
    d.hold(a, "CLIENT CACHING yes");
    d.cmd(a, "PING");
    d.cmd(a, "GET c");
    d.cmd(b, "SET c 4");
    // A transaction is one command for it.
    d.hold(a, "CLIENT CACHING yes");
    d.hold(a, "MULTI");
    d.hold(a, "GET a");
    d.hold(a, "CLIENT TRACKINGINFO");
    d.hold(a, "GET d");
    d.cmd(a, "EXEC");
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.cmd_cmp(b, "MSET a 5 d 5", Cmp::Unordered);
    d.cmd(a, "MULTI");
    d.cmd(a, "GET a");
    d.cmd(a, "EXEC");
    d.cmd(b, "SET a 6");
    // A script's declared keys.
    d.hold(a, "CLIENT CACHING yes");
    d.cmd(a, "EVAL 'return redis.call(\"get\", KEYS[1])' 2 b c");
    d.cmd(b, "MSET b 6 c 6");
    // OPTOUT: cached unless CLIENT CACHING no.
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on OPTOUT");
    d.cmd(a, "GET a");
    d.cmd(b, "SET a 7");
    d.hold(a, "CLIENT CACHING no");
    d.hold(a, "CLIENT TRACKINGINFO");
    d.cmd(a, "GET a");
    d.cmd(a, "GET b");
    d.cmd(b, "SET a 8");
    d.cmd(b, "SET b 8");
    d.hold(a, "CLIENT CACHING no");
    d.hold(a, "MULTI");
    d.hold(a, "GET a");
    d.hold(a, "GET b");
    d.cmd(a, "EXEC");
    d.cmd_cmp(b, "MSET a 9 b 9", Cmp::Unordered);
    d.cmd(a, "MGET c d");
    d.cmd_cmp(b, "MSET c 9 d 9", Cmp::Unordered);
    d.done();
}

// ---------------------------------------------------------------------------
// Redirection
// ---------------------------------------------------------------------------

#[test]
fn redirected_invalidations_reach_a_resp2_subscriber_and_a_lost_target_is_reported_like_redis() {
    let mut d = Duo::new("redirect");
    let r = d.open("R");
    d.cmd(r, "SUBSCRIBE __redis__:invalidate");
    let a = d.open("A");
    let a3 = d.open("A3");
    let b = d.open("B");
    d.cmd(a, "CLIENT TRACKING on REDIRECT $id:R");
    d.cmd(b, "MSET a 1 b 2 c 3 d 4");
    d.cmd(a, "MGET a b");
    d.cmd(b, "SET a 2");
    d.cmd(b, "SET b 2");
    d.cmd_cmp(b, "MSET a 3 b 3", Cmp::Exact);
    // Two clients, two protocols, one target.
    d.cmd(a3, "HELLO 3");
    d.cmd(a3, "CLIENT TRACKING on REDIRECT $id:R");
    d.cmd(a, "GET c");
    d.cmd(a3, "GET d");
    d.cmd(b, "SET c 4");
    d.cmd(b, "SET d 4");
    d.cmd(a, "GET c");
    d.cmd(a3, "GET c");
    d.cmd_cmp(b, "SET c 5", Cmp::Unordered);
    // Flush: a null in each tracking client's own protocol.
    d.cmd_cmp(b, "FLUSHDB", Cmp::Unordered);
    d.cmd(a, "CLIENT GETREDIR");
    d.cmd(a3, "CLIENT TRACKINGINFO");
    d.list_fields(a);
    d.list_fields(a3);
    d.list_fields(r);
    // A RESP3 target that is not subscribed gets pushes; a RESP2 one that is
    // not subscribed gets nothing.
    let t3 = d.open("T3");
    let _t2 = d.open("T2");
    let e = d.open("E");
    let g = d.open("G");
    d.cmd(t3, "HELLO 3");
    d.cmd(e, "CLIENT TRACKING on REDIRECT $id:T3");
    d.cmd(g, "HELLO 3");
    d.cmd(g, "CLIENT TRACKING on REDIRECT $id:T2");
    d.cmd(e, "GET a");
    d.cmd(g, "GET b");
    d.cmd(b, "SET a 6");
    d.cmd(b, "SET b 6");
    // Redirecting to itself.
    d.cmd(t3, "CLIENT TRACKING on REDIRECT $id:T3");
    d.cmd(t3, "GET c");
    d.cmd(b, "SET c 6");
    // The target goes away: a RESP3 client is told at each invalidation, a
    // RESP2 one only shows the flag.
    d.cmd(a, "MGET a b");
    d.cmd(a3, "MGET c d");
    d.close(r);
    d.cmd(b, "SET a 7");
    d.cmd(b, "SET c 7");
    d.cmd(b, "SET d 7");
    d.cmd(a3, "CLIENT TRACKINGINFO");
    d.cmd(a3, "CLIENT GETREDIR");
    d.cmd(a, "CLIENT TRACKINGINFO");
    d.list_fields(a);
    d.list_fields(a3);
    d.cmd(a3, "GET c");
    d.cmd_cmp(b, "FLUSHALL", Cmp::Unordered);
    // Re-enabling clears the flag.
    d.cmd(a3, "CLIENT TRACKING on REDIRECT $id:T3");
    d.cmd(a3, "CLIENT TRACKINGINFO");
    d.list_fields(a3);
    d.cmd(a3, "GET c");
    d.cmd(b, "SET c 8");
    d.info_figures();
    d.done();
}

#[test]
fn trackinginfo_getredir_and_client_list_describe_every_state_like_redis() {
    for proto in ["2", "3"] {
        let mut d = Duo::new(if proto == "2" { "trackinginfo resp2" } else { "trackinginfo resp3" });
        let r = d.open("R");
        let a = d.open("A");
        let b = d.open("B");
        d.cmd(a, &format!("HELLO {proto}"));
        let state = |d: &mut Duo| {
            d.cmd(a, "CLIENT TRACKINGINFO");
            d.cmd(a, "CLIENT GETREDIR");
            d.list_fields(a);
        };
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING on");
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING on REDIRECT $id:R NOLOOP");
        state(&mut d);
        d.list_fields(r);
        d.cmd(a, "CLIENT TRACKING off");
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING on OPTIN");
        state(&mut d);
        d.hold(a, "CLIENT CACHING yes");
        d.hold(a, "CLIENT TRACKINGINFO");
        d.hold(a, "CLIENT GETREDIR");
        d.list_fields(a);
        d.cmd(a, "CLIENT TRACKINGINFO");
        d.cmd(a, "CLIENT TRACKING off");
        d.cmd(a, "CLIENT TRACKING on OPTOUT REDIRECT $id:R");
        state(&mut d);
        d.hold(a, "CLIENT CACHING no");
        d.hold(a, "CLIENT TRACKINGINFO");
        d.list_fields(a);
        d.cmd(a, "CLIENT TRACKING off");
        d.cmd(a, "CLIENT TRACKING on BCAST PREFIX foo PREFIX bar");
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING on BCAST PREFIX baz NOLOOP");
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING off");
        d.cmd(a, "CLIENT TRACKING on BCAST");
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING off");
        // A broken redirect.
        d.cmd(a, "CLIENT TRACKING on REDIRECT $id:R");
        d.cmd(a, "GET k");
        d.close(r);
        state(&mut d);
        d.cmd(b, "SET k 1");
        state(&mut d);
        d.cmd(a, "CLIENT TRACKING off");
        state(&mut d);
        d.done();
    }
}

#[test]
fn info_tracking_figures_match_redis_after_the_same_steps() {
    let mut d = Duo::new("info");
    let r = d.open("R");
    d.cmd(r, "SUBSCRIBE __redis__:invalidate");
    let a = d.open("A");
    let b = d.open("B");
    let c = d.open("C");
    d.info_figures();
    d.cmd(a, "CLIENT TRACKING on REDIRECT $id:R");
    d.cmd(a, "MGET a b c d");
    d.cmd(c, "CLIENT TRACKING on");
    d.cmd(c, "MGET a b x");
    d.info_figures();
    d.cmd(b, "CLIENT TRACKING on BCAST PREFIX p: PREFIX q:");
    d.cmd(b, "CLIENT TRACKING on BCAST PREFIX r:");
    d.cmd(c, "CLIENT TRACKING off");
    d.cmd(c, "CLIENT TRACKING on BCAST PREFIX p: PREFIX s");
    d.info_figures();
    d.cmd(c, "CLIENT TRACKING off");
    d.cmd(b, "CLIENT TRACKING off");
    d.info_figures();
    d.cmd(b, "SET a 1");
    d.info_figures();
    d.close(r);
    d.info_figures();
    d.cmd(b, "SET b 1");
    d.info_figures();
    // Keys of a client that went away stay until written (Redis is lazy).
    d.close(c);
    d.info_figures();
    d.cmd(b, "SET x 1");
    d.info_figures();
    d.cmd(a, "FLUSHALL");
    d.info_figures();
    d.cmd(a, "MGET a b");
    d.cmd(a, "CLIENT TRACKING off");
    d.info_figures();
    d.done();
}

// ---------------------------------------------------------------------------
// Scripts and transactions
// ---------------------------------------------------------------------------

#[test]
fn scripts_and_transactions_track_the_keys_they_read_like_redis() {
    let mut d = Duo::new("scripts and transactions");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "HELLO 3");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd_cmp(b, "MSET a 1 b 1 c 1 d 1", Cmp::Unordered);
    // A script that only writes tracks nothing.
    d.cmd(a, "EVAL 'redis.call(\"set\", KEYS[1], \"x\")' 2 a b");
    d.cmd_cmp(b, "MSET a 2 b 2", Cmp::Unordered);
    // A script that reads tracks its declared keys (both shards), whatever it reads.
    d.cmd(a, "EVAL 'return redis.call(\"get\", KEYS[1])' 2 a b");
    d.cmd(b, "SET a 3");
    d.cmd(b, "SET b 3");
    d.cmd(a, "EVAL 'return redis.call(\"exists\", KEYS[1])' 2 a d");
    d.cmd_cmp(b, "MSET a 4 d 4", Cmp::Unordered);
    d.cmd(a, "EVAL 'return 1' 1 c");
    d.cmd(b, "SET c 4");
    // EVAL_RO: tracked only if the script runs a read.
    d.cmd(a, "EVAL_RO 'return redis.call(\"ping\")' 2 b c");
    d.cmd(b, "MSET b 5 c 5");
    d.cmd(a, "EVAL_RO 'return redis.call(\"get\", KEYS[2])' 2 b c");
    d.cmd(b, "SET b 6");
    d.cmd(b, "SET c 6");
    // EVALSHA the same.
    let sha = d.cmd(a, "SCRIPT LOAD 'return redis.call(\"get\", KEYS[1])'");
    let sha = Value::parse(&sha).as_str().expect("sha");
    d.cmd(a, &format!("EVALSHA {sha} 1 d"));
    d.cmd(b, "SET d 6");
    // Transactions: every read inside is tracked, on both shards.
    d.cmd(a, "MULTI");
    d.cmd(a, "GET a");
    d.cmd(a, "STRLEN b");
    d.cmd(a, "SET zz 1");
    d.cmd(a, "EXEC");
    d.cmd(b, "SET a 7");
    d.cmd(b, "SET b 7");
    d.cmd(b, "SET zz 7");
    d.cmd(a, "MULTI");
    d.cmd(a, "MGET a b c d");
    d.cmd(a, "EXEC");
    d.cmd_cmp(b, "MSET a 8 b 8 c 8 d 8", Cmp::Unordered);
    // A discarded transaction reads nothing.
    d.cmd(a, "MULTI");
    d.cmd(a, "GET a");
    d.cmd(a, "DISCARD");
    d.cmd(b, "SET a 9");
    // A transaction that reads and writes the same key: reply, then the push;
    // the key is tracked again by a read after the write.
    d.cmd(a, "GET a");
    d.cmd(a, "MULTI");
    d.cmd(a, "INCR a");
    d.cmd(a, "GET a");
    d.cmd(a, "EXEC");
    d.cmd(b, "SET a 10");
    d.info_figures();
    d.done();
}

// ---------------------------------------------------------------------------
// RESP2 without a redirect
// ---------------------------------------------------------------------------

#[test]
fn a_resp2_tracking_client_without_redirect_never_receives_invalidation_bytes() {
    let mut d = Duo::new("resp2 silent");
    let a = d.open("A");
    let b = d.open("B");
    d.cmd(a, "CLIENT TRACKING on");
    d.cmd(b, "MSET a 1 b 2 c 3 d 4");
    d.cmd(a, "MGET a b c d");
    d.cmd(b, "MSET a 2 b 2 c 2 d 2");
    d.cmd(a, "GET a");
    d.cmd(a, "SET a 3");
    d.cmd(a, "GET b");
    d.cmd(b, "FLUSHALL");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on BCAST");
    d.cmd(b, "MSET a 1 b 1");
    d.cmd(a, "SET c 1");
    d.cmd(a, "CLIENT TRACKING off");
    d.cmd(a, "CLIENT TRACKING on OPTOUT NOLOOP");
    d.cmd(a, "MGET a b");
    d.cmd(b, "DEL a b");
    d.cmd(b, "SET e 1 PX 300");
    d.cmd(a, "GET e");
    sleep_ms(500);
    d.cmd(b, "GET e");
    d.info_figures();
    // Beyond the step-by-step comparison: the connection stays silent.
    let c = d.conn(a);
    let (extra, closed) = c.t.read_until_close(Duration::from_millis(400));
    assert!(!closed && extra.is_empty(), "RESP2 client received {}", escape(&extra));
    assert_eq!(c.t.cmd(&["PING"]), b"+PONG\r\n");
    assert_eq!(c.t.cmd(&["GET", "a"]), b"$-1\r\n");
    d.done();
}

// ---------------------------------------------------------------------------
// tracking-table-max-keys
// ---------------------------------------------------------------------------

/// Lowering `tracking-table-max-keys` makes Redis evict tracked keys (their
/// readers told, as if the keys had changed) before the next command or
/// within a cron tick, without waiting for another read.
#[test]
fn lowering_tracking_table_max_keys_evicts_tracked_keys_like_redis() {
    let mut d = Duo::new("table limit");
    let r = d.open("R");
    d.cmd(r, "SUBSCRIBE __redis__:invalidate");
    let a = d.open("A");
    d.cmd(a, "CLIENT TRACKING on REDIRECT $id:R");
    // Two keys on each shard: Tessera splits the limit between its shards.
    d.cmd(a, "MGET a b c d");
    d.info_figures();
    d.ctl("CONFIG SET tracking-table-max-keys 2");
    d.expect_eventually(r, 2, Cmp::Count);
    let figures = d.info_figures();
    assert_eq!(figures[1].1, "2", "tracking_total_keys after the eviction");
    d.ctl("CONFIG SET tracking-table-max-keys 0");
    d.done();
}

// ---------------------------------------------------------------------------
// Concurrency (Tessera only, 4 shards)
// ---------------------------------------------------------------------------

/// A reader's client-side cache: GET replies fill it, invalidations empty it.
struct Reader {
    c: Client,
    cache: HashMap<String, u64>,
    /// Keys whose cached value a write made stale: the invalidation must come
    /// by the deadline.
    due: HashMap<String, (u64, Instant)>,
    invalidations: usize,
}

impl Reader {
    /// Handles one frame from the server: true if it was a push.
    fn on_push(&mut self, f: &[u8]) -> bool {
        if !f.starts_with(b">") {
            return false;
        }
        assert!(f.starts_with(b">2\r\n$10\r\ninvalidate\r\n"), "unexpected push {}", escape(f));
        match inval_keys(f) {
            Some(keys) => {
                for k in keys {
                    let k = String::from_utf8(k).unwrap();
                    self.cache.remove(&k);
                    self.due.remove(&k);
                    self.invalidations += 1;
                }
            }
            None => panic!("unexpected null invalidation {}", escape(f)),
        }
        true
    }

    /// The reply to a command just sent, handling pushes before it.
    fn reply(&mut self) -> Vec<u8> {
        loop {
            let f = self.c.read_reply_raw();
            if !self.on_push(&f) {
                return f;
            }
        }
    }

    fn get(&mut self, k: &str) {
        self.c.send_strs(&["GET", k]);
        let r = self.reply();
        match Value::parse(&r) {
            Value::Bulk(v) => {
                let v: u64 = String::from_utf8(v).unwrap().parse().unwrap();
                self.cache.insert(k.to_string(), v);
            }
            Value::Null => {}
            other => panic!("GET {k}: {other:?}"),
        }
    }

    fn ping(&mut self) {
        self.c.send_strs(&["PING"]);
        assert_eq!(self.reply(), b"+PONG\r\n");
    }

    /// A writer set `k` to `v` (acknowledged): a cached older value must be
    /// invalidated within 2 s.
    fn notice(&mut self, k: &str, v: u64) {
        if let Some(&cached) = self.cache.get(k) {
            if cached < v {
                self.due.entry(k.to_string()).or_insert((v, Instant::now() + Duration::from_secs(2)));
            }
        }
    }

    fn check_due(&self, who: usize) {
        for (k, (v, deadline)) in &self.due {
            assert!(
                Instant::now() < *deadline,
                "reader {who}: no invalidation for {k} within 2 s of the write of {v} (cached {:?})",
                self.cache.get(k)
            );
        }
    }
}

#[test]
fn concurrent_tracking_readers_never_keep_a_stale_cached_value_at_4_shards() {
    const N: usize = 4;
    const READERS: usize = 4;
    const WRITERS: usize = 2;
    let srv = TesseraServer::start(N, &[]);
    // Four keys on every shard; each key has one writer, so its values rise.
    let mut keys: Vec<String> = Vec::new();
    let mut per_shard = [0usize; N];
    for i in 0.. {
        let k = format!("ck{i}");
        let s = local_shard_of(k.as_bytes(), N);
        if per_shard[s] < 4 {
            per_shard[s] += 1;
            keys.push(k);
        }
        if keys.len() == 4 * N {
            break;
        }
    }
    {
        let mut c = srv.client();
        for k in &keys {
            assert_eq!(c.cmd(&["SET", k, "0"]), b"+OK\r\n");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let run_for = Duration::from_secs(5);
    let mut senders: Vec<mpsc::Sender<(String, u64)>> = Vec::new();
    let mut readers = Vec::new();
    for who in 0..READERS {
        let (tx, rx) = mpsc::channel::<(String, u64)>();
        senders.push(tx);
        let port = srv.port;
        let keys = keys.clone();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut c = Client::connect(port);
            assert!(c.cmd(&["HELLO", "3"]).starts_with(b"%"));
            assert_eq!(c.cmd(&["CLIENT", "TRACKING", "on"]), b"+OK\r\n");
            let mut r = Reader {
                c,
                cache: HashMap::new(),
                due: HashMap::new(),
                invalidations: 0,
            };
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (who as u64 + 1);
            let mut next = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            let mut reads = 0usize;
            while !stop.load(Ordering::Relaxed) {
                while let Ok((k, v)) = rx.try_recv() {
                    r.notice(&k, v);
                }
                r.check_due(who);
                let k = &keys[(next() % keys.len() as u64) as usize];
                if r.cache.contains_key(k) {
                    // Served from the cache; the PING lets pushes in.
                    r.ping();
                } else {
                    r.get(k);
                    reads += 1;
                }
            }
            // The writers stopped: every notice is queued. Drain it, then let
            // the outstanding invalidations arrive.
            while let Ok((k, v)) = rx.try_recv() {
                r.notice(&k, v);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while !r.due.is_empty() && Instant::now() < deadline {
                r.ping();
                sleep_ms(10);
            }
            r.check_due(who);
            assert!(r.due.is_empty(), "reader {who}: invalidations never came for {:?}", r.due);
            r.ping();
            (r.cache, r.invalidations, reads)
        }));
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let port = srv.port;
        let mine: Vec<String> = keys.iter().skip(w).step_by(WRITERS).cloned().collect();
        let senders = senders.clone();
        writers.push(std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut gen = vec![0u64; mine.len()];
            let start = Instant::now();
            let mut n = 0u64;
            let mut i = 0usize;
            while start.elapsed() < run_for {
                i = (i + 3) % mine.len();
                gen[i] += 1;
                let v = gen[i].to_string();
                assert_eq!(c.cmd(&["SET", &mine[i], &v]), b"+OK\r\n");
                for s in &senders {
                    let _ = s.send((mine[i].clone(), gen[i]));
                }
                n += 1;
                if n.is_multiple_of(8) {
                    sleep_ms(1);
                }
            }
            n
        }));
    }
    drop(senders);
    let writes: u64 = writers.into_iter().map(|h| h.join().expect("writer panicked")).sum();
    stop.store(true, Ordering::Relaxed);
    let mut check = srv.client();
    let mut total_inval = 0;
    let mut total_reads = 0;
    let mut seen_cached = HashSet::new();
    for (who, h) in readers.into_iter().enumerate() {
        let (cache, invalidations, reads) = h.join().expect("reader panicked");
        total_inval += invalidations;
        total_reads += reads;
        for (k, v) in cache {
            let now = check.cmd(&["GET", &k]);
            assert_eq!(
                now,
                format!("${}\r\n{v}\r\n", v.to_string().len()).into_bytes(),
                "reader {who} still caches {k}={v}, the server has {}",
                escape(&now)
            );
            seen_cached.insert(k);
        }
    }
    eprintln!(
        "concurrency: {writes} writes, {total_reads} reads, {total_inval} invalidations, {} keys cached at the end",
        seen_cached.len()
    );
    assert!(writes > 200 && total_reads > 200, "too little work: {writes} writes, {total_reads} reads");
    assert!(total_inval > 100, "too few invalidations: {total_inval}");
}

/// Pipelined own writes: a RESP3 client's invalidation of its own write
/// comes right after that write's reply, before the replies of the commands
/// pipelined behind it (Redis's pending invalidations of the current
/// client), for keys on either shard, byte for byte.
#[test]
fn pipelined_own_writes_are_invalidated_right_after_their_replies_like_redis() {
    check_key_layout();
    let redis = RedisServer::start(&[]);
    let tessera = TesseraServer::start(SHARDS, &[]);
    let run = |port: u16| -> Vec<Vec<u8>> {
        let mut c = Client::connect(port);
        c.set_timeout(Duration::from_secs(10));
        c.cmd(&["HELLO", "3"]);
        assert_eq!(c.cmd(&["CLIENT", "TRACKING", "on"]), b"+OK\r\n");
        let mut got = Vec::new();
        for k in ["a", "b", "c", "d"] {
            let mut req = Vec::new();
            for cmd in [
                vec!["SET", k, "1"],
                vec!["GET", k],
                vec!["SET", k, "2"],
                vec!["INCR", k],
                vec!["GET", k],
                vec!["DEL", k],
                vec!["PING"],
            ] {
                req.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
                for a in cmd {
                    req.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
                }
            }
            c.send_raw(&req);
            let mut stream = Vec::new();
            loop {
                let f = c.read_reply_raw();
                let end = f == b"+PONG\r\n";
                stream.push(f);
                if end {
                    break;
                }
            }
            got.push(stream.concat());
        }
        got
    };
    let (want, got) = (run(redis.port), run(tessera.port));
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(escape(g), escape(w), "pipeline {i}");
    }
}
