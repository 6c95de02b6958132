//! Real client libraries against Tessera (at 2 shards) and, to show the
//! scenarios themselves are right, against redis-server: the same script
//! must pass on both. `make deps` installs Debian's python3-redis.

mod common;

use common::*;
use std::time::Duration;

/// Debian's interpreter, where `apt-get install python3-redis` puts the module.
const PYTHON: &str = "/usr/bin/python3";

fn run_py(script: &str, port: u16) -> ExitOutput {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients").join(script);
    run_to_exit(
        PYTHON,
        &[path.display().to_string(), port.to_string()],
        &temp_dir("redis-py"),
        Duration::from_secs(120),
    )
}

fn ok(o: &ExitOutput) -> bool {
    o.status.is_some_and(|s| s.success())
}

#[test]
fn redis_py_pipeline_watch_loop_register_script_and_pubsub_listener_work() {
    let check = run_to_exit(
        PYTHON,
        &["-c".into(), "import redis".into()],
        &temp_dir("redis-py-check"),
        Duration::from_secs(30),
    );
    assert!(
        ok(&check),
        "redis-py is missing: run `make deps` (apt-get install python3-redis)\n{}",
        check.stderr
    );
    let redis = RedisServer::start(&[]);
    let on_redis = run_py("redis_py_scenarios.py", redis.port);
    assert!(
        ok(&on_redis),
        "the scenarios fail on redis-server itself:\n{}\n{}",
        on_redis.stdout,
        on_redis.stderr
    );
    let srv = TesseraServer::start(2, &[]);
    let on_tessera = run_py("redis_py_scenarios.py", srv.port);
    assert!(ok(&on_tessera), "redis-py scenarios on Tessera:\n{}\n{}", on_tessera.stdout, on_tessera.stderr);
    assert_eq!(on_tessera.stdout, on_redis.stdout);
}
