//! The frontend process: BuildKit starts it with the gateway on stdin/stdout.

fn main() {
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
