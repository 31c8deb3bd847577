//! The `wasmcni` binary: a CNI plugin when the runtime execs it (CNI_COMMAND set), an admin CLI otherwise.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    wasmcni::logging::init();
    if std::env::var_os("CNI_COMMAND").is_none() && std::env::args().len() > 1 {
        return wasmcni::cli::main();
    }
    let mut stdin = Vec::new();
    // Bounded read: a runtime never sends more than a few KiB; a huge stdin is a bug or an attack.
    let read = std::io::stdin()
        .take(wasmcni::cni::MAX_STDIN as u64 + 1)
        .read_to_end(&mut stdin);
    let env: Vec<(String, String)> = std::env::vars().collect();
    // A bug must still answer in CNI terms (code 999 on stdout), never with a bare panic that
    // a runtime cannot parse.
    let (out, ok) = match read {
        Ok(_) => std::panic::catch_unwind(|| call(&env, &stdin)).unwrap_or_else(|_| {
            wasmcni::cmd::internal_error("wasmcni panicked (a bug; see stderr)")
        }),
        Err(e) => wasmcni::cmd::io_error(&e),
    };
    let mut stdout = std::io::stdout().lock();
    if !out.is_empty() {
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The node daemon's answer when one serves this node (thick mode), else the call run here.
fn call(env: &[(String, String)], stdin: &[u8]) -> (String, bool) {
    use wasmcni::daemon::shim::{self, Outcome};
    if let Some(socket) = shim::socket(env) {
        match shim::forward(&socket, env, stdin) {
            Outcome::Answered { out, ok } => return (out, ok),
            Outcome::InProcess { why } => tracing::debug!("in-process: {why}"),
        }
    }
    wasmcni::cmd::run(env, stdin)
}
