//! The frontend process: BuildKit starts it with the gateway on stdin/stdout.

fn main() {
    // BuildKit starts the frontend without arguments; a person may ask what it is.
    if let Some(arg) = std::env::args().nth(1) {
        match arg.as_str() {
            // What runs inside nixfront's build steps (see nixfront::step).
            "step" => std::process::exit(nixfront::step::main(&std::env::args().skip(2).collect::<Vec<_>>())),
            "--version" | "-V" => println!("nixfront {}", env!("CARGO_PKG_VERSION")),
            "--help" | "-h" => println!(
                "nixfront {}: a BuildKit frontend that builds a Nix flake into a layered OCI image.\n\
                 BuildKit runs it for a file whose first line is `# syntax=<this image>`; it speaks the\n\
                 gateway protocol on stdin and stdout. See the README for how to use it.",
                env!("CARGO_PKG_VERSION")
            ),
            other => {
                eprintln!("nixfront: unknown argument {other:?} (only --version and --help)");
                std::process::exit(2);
            }
        }
        return;
    }
    nixfront_log::init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(nixfront::frontend::run());
    // stdin is read on a blocking thread that never returns: dropping the runtime would wait
    // for it forever, and BuildKit waits for this process. Exit without dropping it.
    std::process::exit(code);
}

mod nixfront_log {
    /// Logs go to stderr: stdout is the gRPC channel.
    pub fn init() {
        let filter = tracing_subscriber::EnvFilter::try_from_env("NIXFRONT_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_env_filter(filter)
            .init();
    }
}
