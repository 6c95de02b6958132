use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

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
