//! Unit tests. Expected texts come from redis-server 7.0.15 (see
//! redis_fixtures.rs, generated from the real server's output).

use super::directives::{self, DEFS};
use super::load::{build_options, from_args_in};
use super::parse::*;
use super::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

#[allow(clippy::type_complexity)]
mod fixtures {
    include!("redis_fixtures.rs");
}
use fixtures::*;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!("tessera-config-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        // Canonical, so paths reported back compare equal.
        TempDir(std::fs::canonicalize(&p).unwrap())
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, content).unwrap();
        p
    }
    fn s(&self) -> String {
        self.0.to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn outcome(args: &[&str], cwd: &Path, stdin: Option<&[u8]>) -> Result<CliOutcome, String> {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let data = stdin.map(|s| s.to_vec());
    from_args_in(args, &path_to_bytes(cwd), &mut || data.clone().expect("stdin was not expected to be read"))
}

fn run(args: &[&str], cwd: &Path, stdin: Option<&[u8]>) -> Result<Config, String> {
    match outcome(args, cwd, stdin)? {
        CliOutcome::Run(mut c) => {
            c.live_chdir = false;
            Ok(c)
        }
        CliOutcome::PrintAndExit(s) => panic!("unexpected PrintAndExit: {s}"),
    }
}

fn cfg(args: &[&str]) -> Config {
    let d = TempDir::new();
    run(args, d.path(), None).unwrap()
}

fn get1(c: &Config, name: &str) -> String {
    let r = c.get(&[name.as_bytes()]);
    assert_eq!(r.len(), 1, "CONFIG GET {name} -> {r:?}");
    r[0].1.clone()
}

fn set(c: &mut Config, pairs: &[(&str, &str)]) -> Result<(), String> {
    let p: Vec<(&[u8], &[u8])> = pairs.iter().map(|(a, b)| (a.as_bytes(), b.as_bytes())).collect();
    c.set(&p)
}

fn fatal_at(line: usize, text: &str, err: &str) -> String {
    format!("\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line {line}\n>>> '{text}'\n{err}")
}

// ---------------------------------------------------------------------------
// sdssplitargs / sdscatrepr / number parsing
// ---------------------------------------------------------------------------
fn sa(s: &str) -> Option<Vec<String>> {
    split_args(s.as_bytes()).map(|v| v.into_iter().map(|x| String::from_utf8_lossy(&x).into_owned()).collect())
}

#[test]
fn split_args_basic() {
    assert_eq!(sa("port 6379"), Some(vec!["port".into(), "6379".into()]));
    assert_eq!(sa("  a\t b  c "), Some(vec!["a".into(), "b".into(), "c".into()]));
    assert_eq!(sa(""), Some(vec![]));
    assert_eq!(sa("   "), Some(vec![]));
    assert_eq!(sa("a\x0bb"), Some(vec!["a\x0bb".into()])); // \v only skips between tokens
}

#[test]
fn split_args_double_quotes() {
    assert_eq!(sa(r#"save """#), Some(vec!["save".into(), "".into()]));
    assert_eq!(sa(r#"x "a b" c"#), Some(vec!["x".into(), "a b".into(), "c".into()]));
    assert_eq!(sa(r#""\n\r\t\b\a\\\"\q""#), Some(vec!["\n\r\t\x08\x07\\\"q".into()]));
    assert_eq!(sa(r#""\x41\x4a\x4""#), Some(vec!["AJ\\x4".replace("\\\\", "\\").replace("\\x4", "x4")]));
    assert_eq!(split_args(br#""\xff\x00""#), Some(vec![vec![0xff, 0x00]]));
    assert_eq!(sa(r#"a"b c"d"#), None); // closing quote followed by a letter
    assert_eq!(sa(r#"ab"c d" e"#), Some(vec!["abc d".into(), "e".into()]));
    assert_eq!(sa(r#""abc"#), None);
    assert_eq!(sa(r#""abc\"#), None);
    assert_eq!(sa(r#""a"x"#), None);
    assert_eq!(sa("\"a\"\tb"), Some(vec!["a".into(), "b".into()]));
}

#[test]
fn split_args_single_quotes() {
    assert_eq!(sa(r"'a b'"), Some(vec!["a b".into()]));
    assert_eq!(sa(r"'it\'s'"), Some(vec!["it's".into()]));
    assert_eq!(sa(r"'a\nb'"), Some(vec!["a\\nb".into()])); // no escapes but \'
    assert_eq!(sa(r"''"), Some(vec!["".into()]));
    assert_eq!(sa(r"'abc"), None);
    assert_eq!(sa(r"'a'b"), None);
}

#[test]
fn split_args_nul_ends_input() {
    assert_eq!(split_args(b"a b\0c d"), Some(vec![b"a".to_vec(), b"b".to_vec()]));
    assert_eq!(split_args(b"\"a\0\""), None);
}

#[test]
fn repr_matches_sdscatrepr() {
    assert_eq!(repr(b"abc"), b"\"abc\"".to_vec());
    assert_eq!(repr(b"a \"b\" \\c"), b"\"a \\\"b\\\" \\\\c\"".to_vec());
    assert_eq!(repr(b"\n\r\t\x07\x08\x01\xff~"), b"\"\\n\\r\\t\\a\\b\\x01\\xff~\"".to_vec());
    assert_eq!(repr(b""), b"\"\"".to_vec());
    // Round trip through split_args.
    let v: Vec<u8> = (0u8..=255).collect();
    assert_eq!(split_args(&repr(&v[1..])).unwrap(), vec![v[1..].to_vec()]);
}

#[test]
fn memtoull_units() {
    assert_eq!(memtoull(b"0"), Some(0));
    assert_eq!(memtoull(b"100"), Some(100));
    assert_eq!(memtoull(b"1b"), Some(1));
    assert_eq!(memtoull(b"1k"), Some(1000));
    assert_eq!(memtoull(b"1kb"), Some(1024));
    assert_eq!(memtoull(b"1KB"), Some(1024));
    assert_eq!(memtoull(b"2m"), Some(2_000_000));
    assert_eq!(memtoull(b"2mb"), Some(2 * 1024 * 1024));
    assert_eq!(memtoull(b"3g"), Some(3_000_000_000));
    assert_eq!(memtoull(b"3Gb"), Some(3 * 1024 * 1024 * 1024));
    assert_eq!(memtoull(b""), Some(0)); // strtoull("") in C
    assert_eq!(memtoull(b"mb"), Some(0));
    assert_eq!(memtoull(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(memtoull(b"99999999999999999999"), Some(u64::MAX)); // strtoull saturates
    assert_eq!(memtoull(b"18446744073709551615k"), None); // overflow check
    assert_eq!(memtoull(b"-1"), None);
    assert_eq!(memtoull(b"+1"), None);
    assert_eq!(memtoull(b" 1"), None);
    assert_eq!(memtoull(b"1 kb"), None);
    assert_eq!(memtoull(b"1tb"), None);
    assert_eq!(memtoull(b"1.5mb"), None);
}

#[test]
fn string2ll_strict() {
    assert_eq!(string2ll(b"0"), Some(0));
    assert_eq!(string2ll(b"-1"), Some(-1));
    assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(string2ll(b"9223372036854775808"), None);
    for bad in [&b""[..], b"-", b"007", b"-0", b"+1", b" 1", b"1 ", b"1k", b"0x10"] {
        assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn strtoll_and_doubles() {
    assert_eq!(strtoll_full(b" 12", 10), Some(12));
    assert_eq!(strtoll_full(b"+12", 10), Some(12));
    assert_eq!(strtoll_full(b"", 10), Some(0));
    assert_eq!(strtoll_full(b"12 ", 10), None);
    assert_eq!(strtoll_full(b"777", 8), Some(0o777));
    assert_eq!(strtoll_full(b"8", 8), None);
    assert_eq!(string2d(b"99.9"), Some(99.9));
    assert_eq!(string2d(b"1e1"), Some(10.0));
    assert_eq!(string2d(b"0x1p3"), Some(8.0));
    assert_eq!(string2d(b" 1"), None);
    assert_eq!(string2d(b"nan"), None);
    assert_eq!(string2d(b""), None);
    assert_eq!(fmt_double_trimmed(99.9), "99.9");
    assert_eq!(fmt_double_trimmed(50.0), "50");
    assert_eq!(fmt_double_trimmed(0.0000001), "0");
}

#[test]
fn absolute_path_like_redis() {
    assert_eq!(absolute_path(b"/a/b", b"c.conf"), b"/a/b/c.conf".to_vec());
    assert_eq!(absolute_path(b"/a/b", b"../c.conf"), b"/a/c.conf".to_vec());
    assert_eq!(absolute_path(b"/a/b", b"../../../c.conf"), b"/c.conf".to_vec());
    assert_eq!(absolute_path(b"/", b"c.conf"), b"/c.conf".to_vec());
    assert_eq!(absolute_path(b"/a", b" /x/y.conf "), b"/x/y.conf".to_vec());
}

// ---------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------
#[test]
fn version_and_help() {
    let d = TempDir::new();
    for a in ["-v", "--version"] {
        match outcome(&[a], d.path(), None).unwrap() {
            CliOutcome::PrintAndExit(s) => {
                assert!(s.starts_with("Tessera server v="), "{s}");
                assert!(s.contains(" redis_version=7.0.15 sha=00000000:0 malloc=mimalloc bits=64"), "{s}");
            }
            _ => panic!(),
        }
    }
    for a in ["-h", "--help"] {
        match outcome(&[a], d.path(), None).unwrap() {
            CliOutcome::PrintAndExit(s) => assert!(s.starts_with("Usage: "), "{s}"),
            _ => panic!(),
        }
    }
    // Only the first argument is special, like redis-server.
    let e = run(&["--port", "1", "--version"], d.path(), None).unwrap_err();
    assert_eq!(e, fatal_at(3, "version", "Bad directive or wrong number of arguments"));
}

#[test]
fn options_string_like_redis() {
    let b = |v: &[&str]| {
        let a: Vec<Vec<u8>> = v.iter().map(|x| x.as_bytes().to_vec()).collect();
        let (f, s, o) = build_options(&a);
        (f.map(|x| String::from_utf8(x).unwrap()), s, String::from_utf8(o).unwrap())
    };
    assert_eq!(b(&["--port", "6380"]), (None, false, "port \"6380\" ".into()));
    assert_eq!(
        b(&["r.conf", "--bind", "127.0.0.1", "-::1"]),
        (Some("r.conf".into()), false, "bind \"127.0.0.1\" \"-::1\" ".into())
    );
    assert_eq!(b(&["--save", "--port", "1"]), (None, false, "save \"\"\nport \"1\" ".into()));
    assert_eq!(b(&["--port", "1", "--save"]), (None, false, "port \"1\" \nsave \"\"".into()));
    assert_eq!(b(&["--port", "--bind"]), (None, false, "port \"--bind\" ".into()));
    assert_eq!(b(&["--port 1", "--bind", "x"]), (None, false, "port 1 \nbind \"x\" ".into()));
    assert_eq!(b(&["-", "--port", "1"]), (None, true, "port \"1\" ".into()));
    assert_eq!(b(&["--port", "1", "-"]), (None, true, "port \"1\" ".into()));
    assert_eq!(b(&["--port", "1", "-", "--x", "y"]), (None, false, "port \"1\" \"-\" \nx \"y\" ".into()));
    assert_eq!(b(&["--requirepass", "a\"b\n"]), (None, false, "requirepass \"a\\\"b\\n\" ".into()));
}

#[test]
fn no_arguments_gives_defaults_and_warning() {
    let d = TempDir::new();
    let c = run(&[], d.path(), None).unwrap();
    assert_eq!(c.port(), 6379);
    assert!(c.config_file().is_none());
    assert_eq!(c.warnings().len(), 1);
    assert!(c.warnings()[0].starts_with("Warning: no config file specified, using the default config."));
}

#[test]
fn typed_accessor_defaults() {
    let c = cfg(&["--loglevel", "notice"]);
    assert_eq!(c.port(), 6379);
    assert_eq!(c.bind(), vec![("*".to_string(), false), ("::*".to_string(), true)]);
    assert!(c.protected_mode());
    assert_eq!(c.timeout_secs(), 0);
    assert_eq!(c.tcp_keepalive(), 300);
    assert_eq!(c.maxclients(), 10000);
    assert_eq!(c.databases(), 16);
    assert_eq!(c.requirepass(), None);
    assert_eq!(c.enable_debug_command(), DebugCmdMode::No);
    assert_eq!(c.loglevel(), LogLevel::Notice);
    assert_eq!(c.logfile(), "");
    assert_eq!(c.threads(), 0);
    assert_eq!(c.proto_max_bulk_len(), 512 * 1024 * 1024);
    assert_eq!(c.client_query_buffer_limit(), 1024 * 1024 * 1024);
    assert_eq!(c.hz(), 10);
    assert_eq!(c.maxmemory(), 0);
    assert_eq!(c.maxmemory_policy(), MaxmemoryPolicy::NoEviction);
    assert_eq!(c.save_params(), vec![(3600, 1), (300, 100), (60, 10000)]);
    assert_eq!(c.tcp_backlog(), 511);
    assert_eq!(c.unixsocket(), None);
    assert_eq!(c.pidfile(), None);
    assert!(!c.daemonize());
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn typed_accessors_after_options() {
    let d = TempDir::new();
    let c = run(
        &[
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--protected-mode",
            "NO",
            "--timeout",
            "30",
            "--tcp-keepalive",
            "60",
            "--maxclients",
            "5",
            "--databases",
            "4",
            "--requirepass",
            "sekret",
            "--enable-debug-command",
            "local",
            "--loglevel",
            "WARNING",
            "--threads",
            "3",
            "--proto-max-bulk-len",
            "1mb",
            "--client-query-buffer-limit",
            "2gb",
            "--dir",
            &d.s(),
            "--maxmemory",
            "100m",
            "--maxmemory-policy",
            "allkeys-lru",
            "--hz",
            "1000",
        ],
        d.path(),
        None,
    )
    .unwrap();
    assert_eq!(c.port(), 0);
    assert_eq!(c.bind(), vec![("127.0.0.1".to_string(), false), ("::1".to_string(), true)]);
    assert!(!c.protected_mode());
    assert_eq!(c.timeout_secs(), 30);
    assert_eq!(c.tcp_keepalive(), 60);
    assert_eq!(c.maxclients(), 5);
    assert_eq!(c.databases(), 4);
    assert_eq!(c.requirepass(), Some(b"sekret".to_vec()));
    assert_eq!(c.enable_debug_command(), DebugCmdMode::Local);
    assert_eq!(c.loglevel(), LogLevel::Warning);
    assert_eq!(c.threads(), 3);
    assert_eq!(c.proto_max_bulk_len(), 1024 * 1024);
    assert_eq!(c.client_query_buffer_limit(), 2 * 1024 * 1024 * 1024);
    assert_eq!(c.dir(), d.s());
    assert_eq!(c.maxmemory(), 100_000_000);
    assert_eq!(c.maxmemory_policy(), MaxmemoryPolicy::AllkeysLru);
    assert_eq!(c.hz(), 500); // clamped like Redis
    assert_eq!(get1(&c, "hz"), "500");
}

#[test]
fn command_line_overrides_file_and_stdin() {
    let d = TempDir::new();
    d.write("r.conf", b"port 1111\ntimeout 5\nloglevel debug\n");
    let c = run(&["r.conf", "--port", "2222"], d.path(), None).unwrap();
    assert_eq!(c.port(), 2222);
    assert_eq!(c.timeout_secs(), 5);
    assert_eq!(c.loglevel(), LogLevel::Debug);
    assert_eq!(c.config_file(), Some(d.path().join("r.conf")));
    // file, then stdin, then options
    let c = run(&["r.conf", "--timeout", "7", "-"], d.path(), Some(b"port 3333\ntimeout 6\n")).unwrap();
    assert_eq!((c.port(), c.timeout_secs()), (3333, 7));
    // stdin only: no config file for CONFIG REWRITE
    let c = run(&["-"], d.path(), Some(b"port 4444\n")).unwrap();
    assert_eq!(c.port(), 4444);
    assert!(c.config_file().is_none());
    assert_eq!(c.rewrite().unwrap_err(), "ERR The server is running without a config file");
}

#[test]
fn multi_arg_directives_from_command_line() {
    let c = cfg(&["--bind", "127.0.0.1", "-::1", "10.0.0.1"]);
    assert_eq!(get1(&c, "bind"), "127.0.0.1 -::1 10.0.0.1");
    let c = cfg(&["--bind", "127.0.0.1 -::1"]); // one argument split again
    assert_eq!(get1(&c, "bind"), "127.0.0.1 -::1");
    let c = cfg(&["--save", ""]);
    assert_eq!(get1(&c, "save"), "");
    assert!(c.save_params().is_empty());
    let c = cfg(&["--save"]);
    assert_eq!(get1(&c, "save"), "");
    let c = cfg(&["--save", "--port", "1"]);
    assert_eq!((get1(&c, "save").as_str(), c.port()), ("", 1));
    let c = cfg(&["--save", "900", "1", "--save", "300 10"]);
    assert_eq!(get1(&c, "save"), "900 1 300 10");
    let c = cfg(&["--save", "1 1", "--save", "", "--save", "2 2"]);
    assert_eq!(get1(&c, "save"), "2 2");
    let c = cfg(&["--shutdown-on-sigint", "nosave", "now"]);
    assert_eq!(get1(&c, "shutdown-on-sigint"), "nosave now");
    let c = cfg(&["--bind"]);
    assert!(c.bind().is_empty());
}

#[test]
fn config_file_syntax() {
    let d = TempDir::new();
    d.write(
        "r.conf",
        b"# comment\n\n   \t\n  PORT 7000  \r\nLogLevel \"warning\"\nrequirepass 'it\\'s'\nmasterauth \"a\\x41\\n\"\nbind 127.0.0.1 '-::1'\nsave 10 1\nsave 20 2\n",
    );
    let c = run(&["r.conf"], d.path(), None).unwrap();
    assert_eq!(c.port(), 7000);
    assert_eq!(c.loglevel(), LogLevel::Warning);
    assert_eq!(c.requirepass(), Some(b"it's".to_vec()));
    assert_eq!(get1(&c, "masterauth"), "aA\n");
    assert_eq!(c.bind(), vec![("127.0.0.1".to_string(), false), ("::1".to_string(), true)]);
    assert_eq!(c.save_params(), vec![(10, 1), (20, 2)]);
}

#[test]
fn include_relative_recursive_and_glob() {
    let d = TempDir::new();
    d.write("main.conf", b"port 1\ninclude conf.d/a.conf\ntimeout 9\n");
    d.write("conf.d/a.conf", b"timeout 3\ninclude conf.d/b.conf\n"); // relative to the cwd, not the file
    d.write("conf.d/b.conf", b"tcp-keepalive 11\nport 2\n");
    let c = run(&["main.conf"], d.path(), None).unwrap();
    assert_eq!((c.port(), c.timeout_secs(), c.tcp_keepalive()), (2, 9, 11));

    d.write("g.conf", b"include conf.d/*.conf\ninclude nothing-matches-*.conf\n");
    let c = run(&["g.conf"], d.path(), None).unwrap();
    assert_eq!((c.port(), c.timeout_secs(), c.tcp_keepalive()), (2, 3, 11)); // a.conf then b.conf

    // Missing include: fatal, with the path as written.
    d.write("m.conf", b"port 1\ninclude missing.conf\n");
    let e = run(&["m.conf"], d.path(), None).unwrap_err();
    assert_eq!(e, "Fatal error, can't open config file 'missing.conf': No such file or directory");

    // Errors inside an included file report the included file's line.
    d.write("bad.conf", b"\n\nport abc\n");
    d.write("i.conf", b"timeout 1\ninclude bad.conf\n");
    let e = run(&["i.conf"], d.path(), None).unwrap_err();
    assert_eq!(e, fatal_at(3, "port abc", "argument couldn't be parsed into an integer"));

    // An include loop is reported instead of overflowing the stack.
    d.write("loop.conf", b"include loop.conf\n");
    let e = run(&["loop.conf"], d.path(), None).unwrap_err();
    assert_eq!(e, fatal_at(1, "include loop.conf", "Too many nested includes (does a file include itself?)"));

    // `dir` changes where later relative includes are looked up.
    d.write("sub/x.conf", b"timeout 42\n");
    d.write("dir.conf", b"dir sub\ninclude x.conf\n");
    let c = run(&["dir.conf"], d.path(), None).unwrap();
    assert_eq!(c.timeout_secs(), 42);
    assert_eq!(c.dir(), format!("{}/sub", d.s()));
}

#[test]
fn missing_config_file_path_is_absolute() {
    let d = TempDir::new();
    let e = run(&["nope.conf"], d.path(), None).unwrap_err();
    assert_eq!(
        e,
        format!("Fatal error, can't open config file '{}/nope.conf': No such file or directory", d.s())
    );
}

#[test]
fn dir_validation() {
    let d = TempDir::new();
    d.write("file", b"");
    let e = run(&["--dir", "file"], d.path(), None).unwrap_err();
    assert_eq!(e, fatal_at(2, "dir \"file\"", "Not a directory"));
    let e = run(&["--dir", "nope"], d.path(), None).unwrap_err();
    assert_eq!(e, fatal_at(2, "dir \"nope\"", "No such file or directory"));
    let c = run(&["--dir", "."], d.path(), None).unwrap();
    assert_eq!(c.dir(), d.s());
}

#[test]
fn logfile_is_checked() {
    let d = TempDir::new();
    let c = run(&["--logfile", "x.log"], d.path(), None).unwrap();
    assert_eq!(c.logfile(), "x.log");
    assert!(d.path().join("x.log").exists());
    let e = run(&["--logfile", "nodir/x.log"], d.path(), None).unwrap_err();
    assert_eq!(
        e,
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nCan't open the log file: No such file or directory"
    );
}

#[test]
fn special_directives() {
    let d = TempDir::new();
    d.write(
        "r.conf",
        b"rename-command FLUSHALL \"\"\nuser alice on >pw ~* +@all\nlist-max-ziplist-entries 5\nsentinel\n",
    );
    let c = run(&["r.conf"], d.path(), None).unwrap();
    assert_eq!(c.rename_commands(), &[(b"FLUSHALL".to_vec(), Vec::new())]);
    assert_eq!(c.users().len(), 1);
    assert_eq!(c.users()[0][0], b"alice".to_vec());
    assert!(c.warnings().iter().any(|w| w.contains("rename-command") && w.contains("user")));
    // Tessera-specific refusals.
    assert_eq!(run(&["--sentinel"], d.path(), None).unwrap_err(), "Sentinel mode is not supported by Tessera");
    let e = run(&["--loadmodule", "/x.so"], d.path(), None).unwrap_err();
    assert!(e.contains("Can't load module from /x.so: server aborting"), "{e}");
    let e = run(&["--foo.bar", "1"], d.path(), None).unwrap_err();
    assert_eq!(e, "Module Configuration detected without loadmodule directive or no ApplyConfig call: aborting");
}

/// Every startup case recorded from redis-server 7.0.15.
#[test]
fn startup_cases_match_redis() {
    let mut failures = Vec::new();
    for (args, files, stdin, expected) in STARTUP_CASES {
        let d = TempDir::new();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        for (name, content) in files.iter() {
            d.write(name, content);
        }
        // main() prints errors with eprintln!, adding the final newline.
        let got = match run(args, d.path(), *stdin) {
            Ok(_) => "LOADED".to_string(),
            Err(e) => format!("{e}\n"),
        };
        // Messages are Rust strings: raw non-UTF-8 bytes show up lossily.
        let expected = String::from_utf8_lossy(expected).replace("@CWD@", &d.s());
        if got != expected {
            failures.push(format!("args {args:?} files {files:?}\n  redis: {expected:?}\n  ours:  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn fatal_errors_exact_text() {
    let d = TempDir::new();
    let e = |args: &[&str]| run(args, d.path(), None).unwrap_err();
    assert_eq!(
        e(&["--port", "abc"]),
        fatal_at(2, "port \"abc\"", "argument couldn't be parsed into an integer")
    );
    assert_eq!(
        e(&["--port", "99999"]),
        fatal_at(2, "port \"99999\"", "argument must be between 0 and 65535 inclusive")
    );
    assert_eq!(
        e(&["--maxclients", "0"]),
        fatal_at(2, "maxclients \"0\"", "argument must be between 1 and 4294967295 inclusive")
    );
    assert_eq!(
        e(&["--databases", "0"]),
        fatal_at(2, "databases \"0\"", "argument must be between 1 and 2147483647 inclusive")
    );
    assert_eq!(e(&["--nosuch", "1"]), fatal_at(2, "nosuch \"1\"", "Bad directive or wrong number of arguments"));
    assert_eq!(e(&["--port"]), fatal_at(2, "port", "wrong number of arguments"));
    assert_eq!(
        e(&["--protected-mode", "maybe"]),
        fatal_at(2, "protected-mode \"maybe\"", "argument must be 'yes' or 'no'")
    );
    assert_eq!(
        e(&["--loglevel", "loud"]),
        fatal_at(
            2,
            "loglevel \"loud\"",
            "argument(s) must be one of the following: debug, verbose, notice, warning"
        )
    );
    assert_eq!(e(&["--maxmemory", "1x"]), fatal_at(2, "maxmemory \"1x\"", "argument must be a memory value"));
    assert_eq!(e(&["--save", "10"]), fatal_at(2, "save \"10\"", "Invalid save parameters"));
    assert_eq!(
        e(&["--enable-debug-command", "sometimes"]),
        fatal_at(
            2,
            "enable-debug-command \"sometimes\"",
            "argument(s) must be one of the following: no, yes, local"
        )
    );
    assert_eq!(
        e(&["--threads", "-1"]),
        fatal_at(2, "threads \"-1\"", "argument must be between 0 and 1024 inclusive")
    );
    d.write("q.conf", b"port 1\nbind \"127.0.0.1\n");
    assert_eq!(e(&["q.conf"]), fatal_at(2, "bind \"127.0.0.1", "Unbalanced quotes in configuration line"));
    d.write("q2.conf", b"port 1");
    assert_eq!(
        e(&["q2.conf", "--port", "x"]),
        fatal_at(2, "port \"x\"", "argument couldn't be parsed into an integer")
    );
}

// ---------------------------------------------------------------------------
// CONFIG GET
// ---------------------------------------------------------------------------
#[test]
fn config_get_all_defaults_match_redis() {
    let c = Config::with_cwd(b"/some/dir");
    let mut ours: Vec<String> = c
        .get(&[b"*"])
        .into_iter()
        .filter(|(k, _)| k != "threads" && k != "pipeline-ordering" && k != "net-engine")
        .map(|(k, v)| format!("{k}\t{v}"))
        .collect();
    ours.sort();
    let mut theirs: Vec<String> = DEFAULTS.lines().map(|l| l.replace("@DIR@", "/some/dir")).collect();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn config_get_patterns() {
    let c = Config::with_cwd(b"/d");
    // Exact names keep the caller's spelling; duplicates are case-insensitive.
    assert_eq!(c.get(&[b"PORT", b"port"]), vec![("PORT".to_string(), "6379".to_string())]);
    assert_eq!(c.get(&[b"port", b"PORT"]), vec![("port".to_string(), "6379".to_string())]);
    assert_eq!(c.get(&[b"P*T"]), vec![("port".to_string(), "6379".to_string())]);
    assert_eq!(c.get(&[b"nosuch"]), vec![]);
    assert_eq!(c.get(&[]), vec![]);
    // Aliases are names of their own.
    let mut r = c.get(&[b"slave-read*", b"replica-read*"]);
    r.sort();
    assert_eq!(r, vec![("replica-read-only".into(), "yes".into()), ("slave-read-only".into(), "yes".into())]);
    // Hidden configs need an exact name.
    assert_eq!(c.get(&[b"key-load-delay"]), vec![("key-load-delay".to_string(), "0".to_string())]);
    assert!(c.get(&[b"key-load*"]).is_empty());
    // Several patterns, de-duplicated.
    let r = c.get(&[b"maxmemory", b"maxmemory*", b"MAXMEMORY"]);
    let names: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("maxmemory")).count(), 1);
    assert_eq!(r.len(), 5); // maxmemory, -clients, -eviction-tenacity, -policy, -samples
    assert_eq!(c.get_value(b"SAVE"), Some(b"3600 1 300 100 60 10000".to_vec()));
    assert_eq!(get1(&c, "bind"), "* -::*");
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
}

// ---------------------------------------------------------------------------
// CONFIG SET
// ---------------------------------------------------------------------------
fn set_test_config() -> Config {
    // Same starting point as the server the SET_CASES were recorded on.
    let mut c = cfg(&["--bind", "127.0.0.1", "--save", ""]);
    c.live_chdir = false;
    c
}

/// Every CONFIG SET probe recorded from redis-server 7.0.15.
#[test]
fn set_cases_match_redis() {
    let mut failures = Vec::new();
    let mut c = set_test_config();
    let mut last = "";
    for (name, value, reply, after) in SET_CASES {
        if *name != last {
            c = set_test_config();
            last = name;
        }
        let expected = match reply.strip_prefix("F:") {
            Some(msg) => format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {msg}"),
            None => reply.to_string(),
        };
        let got = match c.set(&[(name.as_bytes(), value)]) {
            Ok(()) => "OK".to_string(),
            Err(e) => e,
        };
        let got_after = String::from_utf8_lossy(&c.get_value(name.as_bytes()).unwrap()).into_owned();
        if got != expected || got_after != *after {
            failures.push(format!(
                "CONFIG SET {name} {:?}\n  redis: {expected:?} -> {after:?}\n  ours:  {got:?} -> {got_after:?}",
                String::from_utf8_lossy(value)
            ));
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn set_errors_exact_text() {
    let mut c = set_test_config();
    assert_eq!(
        set(&mut c, &[("foo", "1")]).unwrap_err(),
        "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
    );
    assert_eq!(
        set(&mut c, &[("port", "abc")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'port') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        set(&mut c, &[("Daemonize", "no")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'Daemonize') - can't set immutable config"
    );
    assert_eq!(
        set(&mut c, &[("enable-debug-command", "yes")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'enable-debug-command') - can't set immutable config"
    );
    assert_eq!(
        set(&mut c, &[("dir", "/tmp")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config"
    );
    assert_eq!(
        set(&mut c, &[("PORT", "1"), ("port", "2")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'port') - duplicate parameter"
    );
    // An alias is a different entry: not a duplicate (as in Redis).
    set(&mut c, &[("slave-read-only", "no"), ("replica-read-only", "yes")]).unwrap();
    assert_eq!(get1(&c, "replica-read-only"), "yes");
    // First problem in argument order wins; unknown names beat value errors.
    assert_eq!(
        set(&mut c, &[("port", "abc"), ("nosuch", "1")]).unwrap_err(),
        "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"
    );
    assert_eq!(
        set(&mut c, &[("daemonize", "no"), ("nosuch", "1")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'daemonize') - can't set immutable config"
    );
    assert_eq!(
        set(&mut c, &[("slave-priority", "x")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'slave-priority') - argument couldn't be parsed into an integer"
    );
    assert_eq!(
        set(&mut c, &[("threads", "2")]).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'threads') - can't set immutable config"
    );
}

#[test]
fn set_is_all_or_nothing() {
    let mut c = set_test_config();
    let e = set(&mut c, &[("timeout", "5"), ("maxmemory", "1gb"), ("hz", "abc")]).unwrap_err();
    assert_eq!(
        e,
        "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer"
    );
    assert_eq!(c.timeout_secs(), 0);
    assert_eq!(c.maxmemory(), 0);
    set(&mut c, &[("timeout", "5"), ("maxmemory", "1gb"), ("hz", "0")]).unwrap();
    assert_eq!((c.timeout_secs(), c.maxmemory(), c.hz()), (5, 1 << 30, 1));
}

#[test]
fn set_runtime_values() {
    let mut c = set_test_config();
    let p: Vec<(&[u8], &[u8])> = vec![(b"requirepass", b"p\x00w"), (b"loglevel", b"DEBUG"), (b"maxclients", b"7")];
    let changed = c.set_from_client(&p, false).unwrap();
    assert_eq!(changed, vec!["requirepass", "loglevel", "maxclients"]);
    assert_eq!(c.requirepass(), Some(b"p\x00w".to_vec())); // binary safe like an sds config
    assert_eq!(c.loglevel(), LogLevel::Debug);
    assert_eq!(c.maxclients(), 7);
    set(&mut c, &[("requirepass", "")]).unwrap();
    assert_eq!(c.requirepass(), None);
    set(&mut c, &[("save", "100 1 200 2"), ("appendonly", "yes"), ("maxmemory-policy", "volatile-ttl")]).unwrap();
    assert_eq!(c.save_params(), vec![(100, 1), (200, 2)]);
    assert!(c.appendonly());
    assert_eq!(c.maxmemory_policy(), MaxmemoryPolicy::VolatileTtl);
    set(&mut c, &[("repl-backlog-size", "1")]).unwrap();
    assert_eq!(get1(&c, "repl-backlog-size"), "16384");
    // Unchanged values are not reported.
    assert!(c.set_from_client(&[(b"timeout", b"0")], false).unwrap().is_empty());
}

#[test]
fn protected_configs() {
    let mut c = cfg(&["--enable-protected-configs", "local"]);
    c.live_chdir = false;
    let other = TempDir::new();
    let p: Vec<(&[u8], &[u8])> = vec![(b"dbfilename", b"x.rdb")];
    assert_eq!(
        c.set_from_client(&p, false).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config"
    );
    c.set_from_client(&p, true).unwrap();
    assert_eq!(c.dbfilename(), "x.rdb");
    let ds = other.s();
    let p2: Vec<(&[u8], &[u8])> = vec![(b"dir", ds.as_bytes())];
    c.set_from_client(&p2, true).unwrap();
    assert_eq!(c.dir(), ds);
    let p3: Vec<(&[u8], &[u8])> = vec![(b"dir", b"/nonexistent-dir-xyz")];
    assert_eq!(
        c.set_from_client(&p3, true).unwrap_err(),
        "ERR CONFIG SET failed (possibly related to argument 'dir') - No such file or directory"
    );
}

// ---------------------------------------------------------------------------
// warnings
// ---------------------------------------------------------------------------
#[test]
fn warnings_for_ignored_directives() {
    let c = cfg(&[
        "--io-threads",
        "4",
        "--daemonize",
        "yes",
        "--aof-timestamp-enabled",
        "yes",
        "--save",
        "",
        "--maxmemory",
        "0",
        "--replica-lazy-flush",
        "yes",
    ]);
    let w = c.warnings();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[0].starts_with("io-threads 4 is ignored: Tessera is thread-per-core"), "{w:?}");
    assert!(w[1].starts_with("daemonize yes is not supported"), "{w:?}");
    // One line naming every non-default unsupported directive; defaults (maxmemory 0) are not listed.
    assert_eq!(w[2], "Directives not supported yet, accepted and ignored: replica-lazy-flush");
    let c = cfg(&["--io-threads", "1"]);
    assert_eq!(c.warnings().len(), 1);
}

// ---------------------------------------------------------------------------
// CONFIG REWRITE
// ---------------------------------------------------------------------------
#[test]
fn rewrite_like_redis() {
    let d = TempDir::new();
    let original = "# top comment\nport 7777\nbind 127.0.0.1\nrename-command FLUSHALL \"\"\nlist-max-ziplist-entries 512\nhash-max-ziplist-entries 100\nslave-read-only no\nSAVE 900 1\nsave 300 10\n\n\n# blank lines above\nmaxmemory 1000000\nappendonly no\nlogfile \"\"\nloglevel Notice\nclient-output-buffer-limit pubsub 32mb 8mb 60\ntcp-keepalive 300\nhz 10\nhz 11\ninclude other.conf\n";
    d.write("r.conf", original.as_bytes());
    d.write("other.conf", b"timeout 3\n");
    let mut c = run(&["r.conf", "--bind", "127.0.0.1", "::1"], d.path(), None).unwrap();
    set(
        &mut c,
        &[
            ("maxmemory", "2gb"),
            ("maxmemory-clients", "5%"),
            ("shutdown-on-sigint", "save now"),
            ("requirepass", "a b\"c"),
            ("save", ""),
        ],
    )
    .unwrap();
    c.rewrite().unwrap();
    let got = std::fs::read_to_string(d.path().join("r.conf")).unwrap();
    let expected = format!(
        "# top comment\nport 7777\nbind 127.0.0.1 ::1\nrename-command FLUSHALL \"\"\n# ??? list-max-ziplist-entries 512\nhash-max-listpack-entries 100\nreplica-read-only no\nsave \"\"\n\n# blank lines above\nmaxmemory 2gb\nappendonly no\nlogfile \"\"\nloglevel notice\nclient-output-buffer-limit normal 0 0 0\ntcp-keepalive 300\nhz 11\n\ninclude other.conf\n\n# Generated by CONFIG REWRITE\nrequirepass \"a b\\\"c\"\nshutdown-on-sigint save now\ntimeout 3\nmaxmemory-clients 5%\ndir \"{}\"\nlatency-tracking-info-percentiles 50 99 99.9\n",
        d.s()
    );
    assert_eq!(got, expected);
    // The rewritten file loads back to the same values.
    let c2 = run(&["r.conf"], d.path(), None).unwrap();
    for (k, v) in c.get(&[b"*"]) {
        assert_eq!(get1(&c2, &k), v, "{k}");
    }
    // Like Redis, the next rewrite keeps the file's final newline as one
    // trailing blank line; after that the file is stable.
    c2.rewrite().unwrap();
    assert_eq!(std::fs::read_to_string(d.path().join("r.conf")).unwrap(), format!("{expected}\n"));
    c2.rewrite().unwrap();
    assert_eq!(std::fs::read_to_string(d.path().join("r.conf")).unwrap(), format!("{expected}\n"));
}

#[test]
fn rewrite_creates_missing_file_and_reports_errors() {
    let d = TempDir::new();
    d.write("r.conf", b"");
    let c = run(&["r.conf", "--port", "1234"], d.path(), None).unwrap();
    std::fs::remove_file(d.path().join("r.conf")).unwrap();
    c.rewrite().unwrap();
    let got = std::fs::read_to_string(d.path().join("r.conf")).unwrap();
    // Like Redis, save lines and the percentiles are always written.
    assert_eq!(
        got,
        format!(
            "# Generated by CONFIG REWRITE\nport 1234\ndir \"{}\"\nsave 3600 1\nsave 300 100\nsave 60 10000\nlatency-tracking-info-percentiles 50 99 99.9\n",
            d.s()
        )
    );
    let mut c = c;
    c.config_file = Some(format!("{}/nodir/r.conf", d.s()).into_bytes());
    assert_eq!(c.rewrite().unwrap_err(), "ERR Rewriting config file: No such file or directory");
}

#[test]
fn config_is_send_sync_clone() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Config>();
}

#[test]
fn table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for d in DEFS {
        assert!(seen.insert(d.name), "duplicate {}", d.name);
        if let Some(a) = d.alias {
            assert!(seen.insert(a), "duplicate {a}");
        }
    }
    for n in IMPLEMENTED {
        assert!(directives::lookup(n.as_bytes()).is_some(), "IMPLEMENTED names unknown directive {n}");
    }
    // Every name redis-server 7.0.15 reports is known (plus hidden ones).
    for l in DEFAULTS.lines() {
        let n = l.split('\t').next().unwrap();
        assert!(directives::lookup(n.as_bytes()).is_some(), "{n}");
    }
}
