use std::io::Write;

use mbx::cli::Command;
use mbx::commands;

fn main() {
    // Run as `docker-credential-mbx-PID` by the docker CLI: mbx's own
    // credential helper for `--username/--password-stdin` (src/docker/login.rs).
    if std::env::args_os()
        .next()
        .is_some_and(|a| mbx::docker::login::is_helper(&a))
    {
        let (code, out) = mbx::docker::login::helper_main();
        let _ = writeln!(std::io::stdout(), "{out}");
        std::process::exit(code);
    }
    // `mbx ci --inputs-from-env` also takes the action's inputs (src/inputs.rs).
    let cli = mbx::inputs::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "mbx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // TLS through rustls with ring only, so the static binary needs no C toolchain.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let outcome = runtime.block_on(async {
        mbx::interrupt::install();
        match cli.command {
            Command::Ci(a) => commands::ci(a).await,
            Command::Setup(a) => commands::setup(a).await,
            Command::Build(a) => commands::build(a).await,
            Command::Merge(a) => commands::merge(a).await,
            Command::Verify(a) => commands::verify(a).await,
            Command::Report(a) => commands::report(a).await,
            Command::Cache(c) => commands::cache(c).await,
        }
    });
    let code = match outcome {
        Ok(status) => status.code(),
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {e}");
            if let Some(help) = e.help() {
                let _ = writeln!(err, "help: {help}");
            }
            e.exit_code()
        }
    };
    std::process::exit(code);
}
