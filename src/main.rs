use mimalloc::MiMalloc;
use tessera::util::alloc::Counting;

/// mimalloc, counted per thread for INFO memory (see `util::alloc`).
#[global_allocator]
static GLOBAL: Counting<MiMalloc> = Counting(MiMalloc);

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match tessera::config::from_args(args) {
        Ok(tessera::config::CliOutcome::PrintAndExit(text)) => {
            println!("{text}");
        }
        Ok(tessera::config::CliOutcome::Run(cfg)) => {
            std::process::exit(tessera::server::run(cfg));
        }
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(1);
        }
    }
}
