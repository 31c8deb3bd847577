//! Admin commands (when wasmcni is run by a person rather than a runtime).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wasmcni: a CNI meta-plugin whose decisions run as sandboxed Wasm components.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the built-in guests with their sha256.
    Guests,
}

/// Run the CLI.
pub fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Guests => {
            for (name, bytes) in crate::guest::BUILTIN {
                println!(
                    "{name}\t{}\t{} bytes",
                    crate::guest::sha256_hex(bytes),
                    bytes.len()
                );
            }
            ExitCode::SUCCESS
        }
    }
}
