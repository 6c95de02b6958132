//! Command line and config file loading (server.c `main` option handling and
//! config.c `loadServerConfig` / `loadServerConfigFromString`).

use super::directives::{self, DEFS, DEPRECATED, MULTI_ARG};
use super::parse::{self, split_args, trim_set};
use super::{CliOutcome, Config, REDIS_VERSION};

pub(crate) fn version_line() -> String {
    format!(
        "Tessera server v={} redis_version={} sha=00000000:0 malloc=mimalloc bits={}",
        env!("CARGO_PKG_VERSION"),
        REDIS_VERSION,
        usize::BITS
    )
}

pub(crate) fn usage() -> String {
    let p = "tessera";
    format!(
        "Usage: ./{p} [/path/to/redis.conf] [options] [-]\n\
         \x20      ./{p} - (read config from stdin)\n\
         \x20      ./{p} -v or --version\n\
         \x20      ./{p} -h or --help\n\
         \n\
         Examples:\n\
         \x20      ./{p} (run the server with default conf)\n\
         \x20      echo 'maxmemory 128mb' | ./{p} -\n\
         \x20      ./{p} /etc/redis/6379.conf\n\
         \x20      ./{p} --port 7777\n\
         \x20      ./{p} --port 7777 --threads 4\n\
         \x20      ./{p} /etc/myredis.conf --loglevel verbose -\n\
         \x20      ./{p} /etc/myredis.conf --loglevel verbose\n\
         \n\
         Tessera-specific directives:\n\
         \x20      threads <n>   number of shard threads (0 = one per CPU in the affinity mask)"
    )
}

fn fatal_at(linenum: usize, line: &[u8], err: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (Redis {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
        REDIS_VERSION,
        linenum,
        String::from_utf8_lossy(line),
        err
    )
}

fn fatal(err: &str) -> String {
    format!("\n*** FATAL CONFIG FILE ERROR (Redis {}) ***\n{}", REDIS_VERSION, err)
}

const MAX_INCLUDE_DEPTH: usize = 64;

pub(crate) struct Loader<'a> {
    pub cfg: &'a mut Config,
    pub include_depth: usize,
    pub save_loaded: bool,
    pub loadmodule_seen: bool,
}

impl<'a> Loader<'a> {
    fn cwd(&self) -> Vec<u8> {
        self.cfg.dir_bytes()
    }

    /// loadServerConfig: read `filename` (glob patterns allowed), then
    /// `stdin`, then "\n" + `options`, and parse the whole as one string.
    pub fn load_server_config(&mut self, filename: Option<&[u8]>, stdin: Option<&[u8]>, options: Option<&[u8]>) -> Result<(), String> {
        let mut config: Vec<u8> = Vec::new();
        if let Some(filename) = filename {
            if filename.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
                for path in glob_paths(&self.cwd(), filename) {
                    config.extend(read_config_file(&self.cwd(), &path)?);
                }
            } else {
                config.extend(read_config_file(&self.cwd(), filename)?);
            }
        }
        if let Some(s) = stdin {
            config.extend(fgets_concat(s));
        }
        if let Some(o) = options {
            config.push(b'\n');
            config.extend_from_slice(o);
        }
        self.load_from_string(&config)
    }

    /// loadServerConfigFromString
    pub fn load_from_string(&mut self, config: &[u8]) -> Result<(), String> {
        for (i, raw) in config.split(|&c| c == b'\n').enumerate() {
            let linenum = i + 1;
            let line = trim_set(raw, b" \t\r\n");
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let argv = match split_args(line) {
                Some(a) => a,
                None => return Err(fatal_at(linenum, line, "Unbalanced quotes in configuration line")),
            };
            if argv.is_empty() {
                continue;
            }
            let name = argv[0].to_ascii_lowercase();
            let argc = argv.len();
            if let Some(e) = directives::lookup(&name) {
                let def = &DEFS[e.idx];
                if def.flags & MULTI_ARG == 0 && argc != 2 {
                    return Err(fatal_at(linenum, line, "wrong number of arguments"));
                }
                let args: Vec<Vec<u8>> = if def.flags & MULTI_ARG != 0 && argc == 2 && !argv[1].is_empty() {
                    // `save "3600 1 300 100"`: a single argument is split again.
                    split_args(&argv[1]).unwrap_or_default()
                } else {
                    argv[1..].to_vec()
                };
                let mut save_loaded = self.save_loaded;
                let r = self.cfg.set_directive(e.idx, &args, Some(&mut save_loaded));
                self.save_loaded = save_loaded;
                if let Err(err) = r {
                    return Err(fatal_at(linenum, line, &err));
                }
                if def.name == "io-threads" {
                    self.cfg.io_threads_given = true;
                }
                continue;
            }
            if DEPRECATED.iter().any(|(n, lo, hi)| n.as_bytes() == &name[..] && *lo <= argc && argc <= *hi) {
                continue;
            }
            if name == b"include" && argc == 2 {
                // Redis recurses until it crashes on an include loop; stop cleanly.
                if self.include_depth >= MAX_INCLUDE_DEPTH {
                    return Err(fatal_at(linenum, line, "Too many nested includes (does a file include itself?)"));
                }
                self.include_depth += 1;
                let r = self.load_server_config(Some(&argv[1]), None, None);
                self.include_depth -= 1;
                r?;
            } else if name == b"rename-command" && argc == 3 {
                self.cfg.rename_commands.push((argv[1].clone(), argv[2].clone()));
            } else if name == b"user" && argc >= 2 {
                self.cfg.users.push(argv[1..].to_vec());
            } else if name == b"loadmodule" && argc >= 2 {
                self.loadmodule_seen = true;
                return Err(format!(
                    "Module {} failed to load: Tessera does not support Redis modules\nCan't load module from {}: server aborting",
                    String::from_utf8_lossy(&argv[1]),
                    String::from_utf8_lossy(&argv[1])
                ));
            } else if name.contains(&b'.') {
                if argc == 1 {
                    return Err(fatal_at(linenum, line, "Module config specified without value"));
                }
                let key = argv[0].clone();
                self.cfg.module_configs.retain(|(k, _)| k != &key);
                self.cfg.module_configs.push((key, argv[1].clone()));
            } else if name == b"sentinel" {
                if argc != 1 {
                    return Err(fatal_at(linenum, line, "sentinel directive while not in sentinel mode"));
                }
            } else {
                return Err(fatal_at(linenum, line, "Bad directive or wrong number of arguments"));
            }
        }

        // Checks done at the end of every loaded string (as Redis does).
        if let Some(logfile) = self.cfg.str_value("logfile") {
            if !logfile.is_empty() {
                let path = parse::join_path(&self.cwd(), &logfile);
                if let Err(e) = std::fs::OpenOptions::new().append(true).create(true).open(parse::bytes_to_path(&path)) {
                    return Err(fatal(&format!("Can't open the log file: {}", parse::strerror(&e))));
                }
            }
        }
        if self.cfg.bool_value("cluster-enabled") && !matches!(self.cfg.value("replicaof"), directives::Value::ReplicaOf(None)) {
            return Err(fatal("replicaof directive not allowed in cluster mode"));
        }
        self.cfg.clamp_hz();
        Ok(())
    }
}

/// Read a config file the way Redis does: a directory reads as empty, a
/// file that cannot be opened is fatal.
fn read_config_file(cwd: &[u8], filename: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let path = parse::join_path(cwd, filename);
    match std::fs::File::open(parse::bytes_to_path(&path)) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf); // EISDIR etc: fgets reads nothing
            Ok(fgets_concat(&buf))
        }
        Err(e) => Err(format!(
            "Fatal error, can't open config file '{}': {}",
            String::from_utf8_lossy(filename),
            parse::strerror(&e)
        )),
    }
}

/// What Redis's `while (fgets(buf, 1024+1, fp)) config = sdscat(config, buf)`
/// loop produces: each chunk (a line, or 1024 bytes of a longer one) is cut
/// at its first NUL byte.
pub(crate) fn fgets_concat(data: &[u8]) -> Vec<u8> {
    const CHUNK: usize = 1024;
    let mut out = Vec::with_capacity(data.len());
    let mut p = 0;
    while p < data.len() {
        let mut end = p;
        while end < data.len() && end - p < CHUNK {
            end += 1;
            if data[end - 1] == b'\n' {
                break;
            }
        }
        let chunk = &data[p..end];
        let cut = chunk.iter().position(|&c| c == 0).unwrap_or(chunk.len());
        out.extend_from_slice(&chunk[..cut]);
        p = end;
    }
    out
}

/// glob(3) for `include` patterns: wildcards may appear in any path
/// component; results are sorted; hidden files only match a pattern that
/// starts with '.'.
fn glob_paths(cwd: &[u8], pattern: &[u8]) -> Vec<Vec<u8>> {
    let absolute = pattern.first() == Some(&b'/');
    let comps: Vec<&[u8]> = pattern.split(|&c| c == b'/').filter(|c| !c.is_empty()).collect();
    // Each candidate: (path as the user would see it, real path to stat).
    let mut cands: Vec<(Vec<u8>, Vec<u8>)> = vec![(
        if absolute { b"/".to_vec() } else { Vec::new() },
        if absolute { b"/".to_vec() } else { cwd.to_vec() },
    )];
    for (k, comp) in comps.iter().enumerate() {
        let last = k + 1 == comps.len();
        let wild = comp.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        let mut next = Vec::new();
        for (shown, real) in &cands {
            let join = |base: &[u8], name: &[u8]| -> Vec<u8> {
                let mut p = base.to_vec();
                if !p.is_empty() && *p.last().unwrap() != b'/' {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                p
            };
            if !wild {
                let r = join(real, comp);
                let ok = std::fs::metadata(parse::bytes_to_path(&r)).map(|m| last || m.is_dir()).unwrap_or(false);
                if ok {
                    next.push((join(shown, comp), r));
                }
                continue;
            }
            let rd = match std::fs::read_dir(parse::bytes_to_path(real)) {
                Ok(rd) => rd,
                Err(_) => continue,
            };
            let mut names: Vec<Vec<u8>> = rd.filter_map(|e| e.ok()).map(|e| parse::os_to_bytes(&e.file_name())).collect();
            names.sort();
            for n in names {
                if n.first() == Some(&b'.') && comp.first() != Some(&b'.') {
                    continue;
                }
                if !crate::util::glob::glob_match(comp, &n, false) {
                    continue;
                }
                let r = join(real, &n);
                if !last && !std::fs::metadata(parse::bytes_to_path(&r)).map(|m| m.is_dir()).unwrap_or(false) {
                    continue;
                }
                next.push((join(shown, &n), r));
            }
        }
        cands = next;
    }
    let mut out: Vec<Vec<u8>> = cands.into_iter().map(|(s, _)| s).collect();
    out.sort();
    out
}

/// server.c main(): build the options string from `--name value ...`.
/// Returns (config file given?, read stdin?, options).
pub(crate) fn build_options(args: &[Vec<u8>]) -> (Option<Vec<u8>>, bool, Vec<u8>) {
    let argc = args.len();
    let mut j = 0;
    let mut options: Vec<u8> = Vec::new();
    let mut configfile = None;
    let mut from_stdin = false;
    if argc > 0 && args[0].first() != Some(&b'-') {
        configfile = Some(args[0].clone());
        j = 1;
    }
    let mut handled_last_config_arg = true;
    while j < argc {
        let a = &args[j];
        let is_dashdash = |x: &[u8]| x.len() >= 2 && x[0] == b'-' && x[1] == b'-';
        if a.as_slice() == b"-" && (j == 0 || j == argc - 1) {
            from_stdin = true;
        } else if handled_last_config_arg && is_dashdash(a) {
            if !options.is_empty() {
                options.push(b'\n');
            }
            options.extend_from_slice(&a[2..]);
            options.push(b' ');
            let argc_tmp = split_args(a).map(|v| v.len()).unwrap_or(0);
            if argc_tmp == 1 {
                handled_last_config_arg = false;
                let is_save = a.eq_ignore_ascii_case(b"--save");
                if j != argc - 1 && is_dashdash(&args[j + 1]) && is_save {
                    options.extend_from_slice(b"\"\"");
                    handled_last_config_arg = true;
                } else if j == argc - 1 && is_save {
                    options.extend_from_slice(b"\"\"");
                } else if j != argc - 1 && is_dashdash(&args[j + 1]) && a.eq_ignore_ascii_case(b"--sentinel") {
                    handled_last_config_arg = true;
                }
            } else {
                handled_last_config_arg = true;
            }
        } else {
            options.extend_from_slice(&parse::repr(a));
            options.push(b' ');
            handled_last_config_arg = true;
        }
        j += 1;
    }
    (configfile, from_stdin, options)
}

pub(crate) fn from_args_impl(args: Vec<Vec<u8>>, read_stdin: &mut dyn FnMut() -> Vec<u8>) -> Result<CliOutcome, String> {
    let cwd = std::env::current_dir()
        .map(|p| parse::path_to_bytes(&p))
        .map_err(|e| format!("Can't get the current directory: {}", parse::strerror(&e)))?;
    from_args_in(args, &cwd, read_stdin)
}

/// `from_args` with an explicit starting directory (what `getcwd` returns).
pub(crate) fn from_args_in(args: Vec<Vec<u8>>, cwd: &[u8], read_stdin: &mut dyn FnMut() -> Vec<u8>) -> Result<CliOutcome, String> {
    let mut cfg = Config::with_cwd(cwd);
    if args.is_empty() {
        cfg.no_args = true;
        return Ok(CliOutcome::Run(cfg));
    }
    let first = args[0].as_slice();
    if first == b"-v" || first == b"--version" {
        return Ok(CliOutcome::PrintAndExit(version_line()));
    }
    if first == b"--help" || first == b"-h" {
        return Ok(CliOutcome::PrintAndExit(usage()));
    }
    if args.iter().any(|a| a.as_slice() == b"--sentinel") {
        return Err("Sentinel mode is not supported by Tessera".to_string());
    }
    let (configfile, from_stdin, options) = build_options(&args);
    let configfile = configfile.map(|f| parse::absolute_path(cwd, &f));
    cfg.config_file = configfile.clone();
    let stdin_data = if from_stdin { Some(read_stdin()) } else { None };
    let mut loader = Loader {
        cfg: &mut cfg,
        include_depth: 0,
        save_loaded: false,
        loadmodule_seen: false,
    };
    loader.load_server_config(configfile.as_deref(), stdin_data.as_deref(), Some(&options))?;
    let loadmodule_seen = loader.loadmodule_seen;
    if !cfg.module_configs.is_empty() && !loadmodule_seen {
        return Err("Module Configuration detected without loadmodule directive or no ApplyConfig call: aborting".to_string());
    }
    Ok(CliOutcome::Run(cfg))
}
