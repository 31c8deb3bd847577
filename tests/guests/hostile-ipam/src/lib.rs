//! A hostile IPAM policy for the sandbox tests. The pod's name picks the misbehaviour; the host
//! must turn each into a clean error (or a refusal) and allocate nothing.

use wasmcni_guest::ipam::{IpamPolicy, Pool, Refusal, Request};

/// The hostile policy.
pub struct Hostile;

impl IpamPolicy for Hostile {
    fn propose(req: &Request, pool: &dyn Pool) -> Result<u64, Refusal> {
        match req.pod.name.as_str() {
            // Never returns: the epoch deadline must interrupt it.
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            // Grows memory until the cap stops it.
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("this policy traps on purpose"),
            // Answers the host must reject.
            "outside" => Ok(pool.last_offset().saturating_add(10)),
            "network-address" => Ok(0),
            "taken" => (0..=pool.last_offset().min(1 << 16))
                .find(|o| pool.owner_of(*o).is_some())
                .ok_or(Refusal::Other("nothing taken to steal".into())),
            // A huge refusal text: the host must clamp what it repeats.
            "huge" => Err(Refusal::Other("x".repeat(4 << 20))),
            // Reaching for the host: files, environment, clock. Each must find nothing.
            "fs" => Err(Refusal::Other(
                match std::fs::read_to_string("/etc/hostname") {
                    Ok(text) => format!("LEAK: read {} bytes: {text}", text.len()),
                    Err(e) => format!("no file access: {e}"),
                },
            )),
            "env" => Err(Refusal::Other(format!(
                "env vars visible: {}, args: {}",
                std::env::vars().count(),
                std::env::args().count()
            ))),
            "clock" => Err(Refusal::Other(format!(
                "clock: {}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            ))),
            _ => pool.next_free_from(0).ok_or(Refusal::Exhausted),
        }
    }
}

#[cfg(target_arch = "wasm32")]
wasmcni_guest::ipam_policy!(Hostile);
