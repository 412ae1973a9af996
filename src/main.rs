//! `iys-gate`: the binary. Everything lives in the library; this parses the
//! command line and reports errors.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = iys_gate::cli::Cli::parse();
    match iys_gate::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A closed pipe (`iys-gate snapshot inspect FILE | head`) is not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iys-gate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
