//! The guest platform: policy components loaded, pinned, compiled once, and run in a sandbox.
//!
//! A guest is never trusted. It runs with no WASI capability granted (no preopened directory,
//! environment, argument or socket), under an epoch deadline and a memory cap, and whatever it
//! answers is validated by the caller before anything is created or allocated.

mod bindings;
mod loader;
mod pins;
mod workers;

pub use loader::{BUILTIN, Builtin, builtin, sha256_hex};
pub use pins::{Module, Pin, Pins};

/// Who named a guest, which decides what it may name: the node's config is the admin's, a
/// NetworkAttachmentDefinition may be a tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The node's wasmcni config: built-in, pinned, or a node path pinned by sha256.
    Node,
    /// A NetworkAttachmentDefinition: built-in or pinned by the admin only.
    Network,
}

/// What a component is, as `wasmcni guest inspect` shows it.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// `ipam-policy` or `delegation-policy` when it exports the matching interface.
    pub world: Option<&'static str>,
    /// Its imports (interfaces and functions).
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
}

/// Compile `bytes` (no cache, no instantiation) and describe them.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, wasmtime::Error> {
    let engine = Engine::default();
    let component = Component::new(&engine, bytes)?;
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    let world = world_of(&exports);
    Ok(Inspection {
        world,
        imports,
        exports,
    })
}

/// The version of `wit/policy.wit` this host binds: a guest built against another one (a
/// `wasmcni:policy@0.1.0` policy) does not load, and `guest inspect` says which it has.
pub const WIT_VERSION: &str = "0.2.0";

fn world_of(exports: &[String]) -> Option<&'static str> {
    let has = |iface: &str| {
        exports
            .iter()
            .any(|e| *e == format!("wasmcni:policy/{iface}@{WIT_VERSION}"))
    };
    if has("ipam") {
        Some("ipam-policy")
    } else if has("delegation") {
        Some("delegation-policy")
    } else {
        None
    }
}

/// Whether `r` can be resolved without the admin's pins.
pub fn needs_pins(r: &GuestRef) -> bool {
    !r.guest.starts_with('/') && !BUILTIN.iter().any(|b| b.name == r.guest)
}

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::GuestRef;
use crate::ipam::{self, PoolView, Proposal};

pub use bindings::delegation::{Attachment, Denial, NetworkRef, Pod, Request as DelegationRequest};
pub use bindings::ipam::{IpamRequest, Refusal};

/// Memory a guest may grow to. Policies need a few hundred KiB; a bomb stops here.
pub const MEMORY_CAP: usize = 16 << 20;
/// The most of a guest's own text (a denial, a refusal) the host repeats in an error.
const TEXT_CAP: usize = 512;
/// Epoch tick period: the deadline's resolution.
const TICK: Duration = Duration::from_millis(1);

/// Why a guest could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named guest is not built in, not pinned, or its bytes do not match the pin. Not
    /// retryable: an admin must pin it (or the config must name another).
    #[error("guest {name:?} is not available: {why}")]
    NotFound {
        /// The name the config used.
        name: String,
        /// What is missing.
        why: String,
    },
    /// The module could not be compiled, cached or instantiated.
    #[error("guest {name:?} (sha256 {digest}) failed to load")]
    Load {
        /// The guest's name.
        name: String,
        /// Its sha256.
        digest: String,
        /// Why.
        #[source]
        source: wasmtime::Error,
    },
    /// The guest trapped, ran past its deadline or hit the memory cap. Fails closed.
    #[error("guest {name:?} (sha256 {digest}) failed while running: {reason}")]
    Trapped {
        /// The guest's name.
        name: String,
        /// Its sha256.
        digest: String,
        /// The trap, or the deadline it ran past (the wasm backtrace is logged).
        reason: String,
    },
    /// The guest answered something the host does not accept.
    #[error("guest {name:?} gave an invalid answer: {why}")]
    Invalid {
        /// The guest's name.
        name: String,
        /// What is wrong with the answer.
        why: String,
    },
    /// The Wasm engine (or the threads guests run on) could not be started. A bug or a node
    /// out of resources.
    #[error("cannot start the Wasm engine: {why}")]
    Engine {
        /// Why.
        why: String,
    },
    /// The guest refused the request (bad annotation, forbidden network, no acceptable address).
    #[error("guest {name:?} refused: {why}")]
    Denied {
        /// The guest's name.
        name: String,
        /// Its reason.
        why: String,
    },
}

/// Per-store state: an empty WASI context (std guests import wasi:cli and wasi:io, so they
/// must be linked, but grant nothing), the resource table and the memory limits.
struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

/// A clock that never moves: the WIT hands a guest everything it may know, the time is not part
/// of it (a policy that depends on the clock is not reproducible).
struct Frozen;

impl wasmtime_wasi::HostWallClock for Frozen {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for Frozen {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context every guest gets: nothing. No preopened directory, no environment, no
/// arguments, no sockets, stdio discarded, frozen clocks and a fixed-seed random source (a
/// policy wanting spread derives it from the request, so its answers are reproducible).
fn empty_wasi() -> WasiCtx {
    use rand::SeedableRng;
    let mut b = WasiCtx::builder();
    b.wall_clock(Frozen)
        .monotonic_clock(Frozen)
        .secure_random(rand::rngs::StdRng::seed_from_u64(0))
        .insecure_random(rand::rngs::StdRng::seed_from_u64(0))
        .insecure_random_seed(0)
        .allow_blocking_current_thread(false);
    b.build()
}

/// At most [`TEXT_CAP`] bytes of a guest's text, cut at a character boundary.
pub fn clamp(text: &str) -> String {
    if text.len() <= TEXT_CAP {
        return text.to_string();
    }
    let mut end = TEXT_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end)
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The engine, the compile cache and the limits every guest call gets. It lives as long as the
/// process (exec mode: one CNI call; the daemon: its whole life), so what it holds is made once:
/// linkers per world, loaded guests by name and sha256, the worker threads guests run on.
pub struct Guests {
    engine: Engine,
    cache_dir: PathBuf,
    deadline_ticks: u64,
    // Linkers are built once per process and only for the worlds actually called.
    delegation_linker: OnceLock<Linker<GuestState>>,
    ipam_linker: OnceLock<Linker<GuestState>>,
    /// Guests already loaded, by (name, sha256): a second load costs a lookup.
    loaded: Mutex<HashMap<(String, String), Arc<Loaded>>>,
    /// The bounded pool guest calls run on, started by the first call from async code.
    workers: OnceLock<workers::Workers>,
    /// Serving one call (exec mode): each guest call gets a thread of its own, no pool.
    one_call: bool,
}

/// A loaded guest ready to be called. Its imports are resolved against the host once (an
/// `InstancePre`), so each call only creates a store, instantiates and calls.
pub struct Loaded {
    name: String,
    digest: String,
    component: Component,
    delegation: OnceLock<bindings::delegation::DelegationPolicyPre<GuestState>>,
    ipam: OnceLock<bindings::ipam::IpamPolicyPre<GuestState>>,
}

impl Guests {
    /// An engine with epoch interruption, a ticker thread, and `cache_dir` for compiled guests.
    pub fn new(cache_dir: PathBuf, timeout: Duration) -> Result<Arc<Self>, wasmtime::Error> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasmcni-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    std::thread::sleep(TICK);
                }
            })?;
        let deadline_ticks = (timeout.as_millis() as u64).max(1);
        Ok(Arc::new(Guests {
            engine,
            cache_dir,
            deadline_ticks,
            delegation_linker: OnceLock::new(),
            ipam_linker: OnceLock::new(),
            loaded: Mutex::new(HashMap::new()),
            workers: OnceLock::new(),
            one_call: false,
        }))
    }

    /// The same engine for a process that serves one call: guest calls run on a thread of their
    /// own rather than on a pool (measured: the pool's start-up made an exec-mode ADD slower).
    pub fn one_call(self: Arc<Self>) -> Arc<Self> {
        match Arc::try_unwrap(self) {
            Ok(mut g) => {
                g.one_call = true;
                Arc::new(g)
            }
            Err(shared) => shared,
        }
    }

    /// Run `f` (a guest call) off the async runtime: on the pool, or — serving one call — on a
    /// scoped thread the caller waits for (nothing else runs on a one-call runtime meanwhile).
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        if self.one_call {
            return std::thread::scope(|s| match s.spawn(f).join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            });
        }
        self.workers()?
            .run(f)
            .await
            .unwrap_or_else(|why| Err(Error::Engine { why }))
    }

    /// The worker pool, started on first use.
    fn workers(&self) -> Result<&workers::Workers, Error> {
        if let Some(w) = self.workers.get() {
            return Ok(w);
        }
        let w = workers::Workers::start().map_err(|e| Error::Engine {
            why: format!("starting guest worker threads: {e}"),
        })?;
        Ok(self.workers.get_or_init(|| w))
    }

    /// The world a loaded guest implements, from its exports (no compile).
    pub fn world(&self, guest: &Loaded) -> Option<&'static str> {
        let ty = guest.component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        world_of(&exports)
    }

    /// Resolve `r` (built in, pinned in `pins`, or — from the node's config — a node path),
    /// verify its sha256, and compile it or load it from the cache.
    ///
    /// A guest loaded before under the same name and sha256 is returned as it is (its imports
    /// already resolved); the bytes are still resolved and hashed, so a changed pin is seen.
    pub fn load(&self, r: &GuestRef, origin: Origin, pins: &Pins) -> Result<Arc<Loaded>, Error> {
        loader::load(&self.engine, &self.cache_dir, r, origin, pins, &self.loaded)
    }

    /// The error for a guest that trapped; a deadline is named as such, with the budget.
    fn trapped(&self, guest: &Loaded, e: wasmtime::Error) -> Error {
        tracing::warn!(
            "guest {:?} (sha256 {}) trapped: {e:?}",
            guest.name,
            guest.digest
        );
        let reason = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => format!(
                "ran past its deadline of {} ms (guestTimeoutMs)",
                self.deadline_ticks
            ),
            _ => e.root_cause().to_string(),
        };
        Error::Trapped {
            name: guest.name.clone(),
            digest: guest.digest.clone(),
            reason,
        }
    }

    fn store(&self) -> Store<GuestState> {
        let state = GuestState {
            wasi: empty_wasi(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(MEMORY_CAP)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        store
    }

    fn linker(&self, ipam: bool) -> Result<&Linker<GuestState>, wasmtime::Error> {
        let slot = if ipam {
            &self.ipam_linker
        } else {
            &self.delegation_linker
        };
        if let Some(l) = slot.get() {
            return Ok(l);
        }
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        if ipam {
            bindings::ipam::IpamPolicy::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        }
        Ok(slot.get_or_init(|| linker))
    }

    fn delegation_pre<'a>(
        &self,
        guest: &'a Loaded,
    ) -> Result<&'a bindings::delegation::DelegationPolicyPre<GuestState>, Error> {
        if let Some(p) = guest.delegation.get() {
            return Ok(p);
        }
        let pre = self
            .linker(false)
            .and_then(|l| l.instantiate_pre(&guest.component))
            .and_then(bindings::delegation::DelegationPolicyPre::new)
            .map_err(|e| guest.load_error(e))?;
        Ok(guest.delegation.get_or_init(|| pre))
    }

    fn ipam_pre<'a>(
        &self,
        guest: &'a Loaded,
    ) -> Result<&'a bindings::ipam::IpamPolicyPre<GuestState>, Error> {
        if let Some(p) = guest.ipam.get() {
            return Ok(p);
        }
        let pre = self
            .linker(true)
            .and_then(|l| l.instantiate_pre(&guest.component))
            .and_then(bindings::ipam::IpamPolicyPre::new)
            .map_err(|e| guest.load_error(e))?;
        Ok(guest.ipam.get_or_init(|| pre))
    }

    /// Ask a delegation guest which networks `req.pod` gets, off the async runtime: on the
    /// guest worker pool (at most one call per worker at once, the rest queue), or serving one
    /// call, on a thread of its own.
    pub async fn decide_pooled(
        self: &Arc<Self>,
        guest: &Arc<Loaded>,
        req: DelegationRequest,
    ) -> Result<Vec<Attachment>, Error> {
        let (me, g) = (self.clone(), guest.clone());
        self.off_runtime(move || me.decide_here(&g, &req)).await
    }

    /// Ask an IPAM guest for an offset in `view`'s range, on the guest worker pool; the view is
    /// handed back for the caller to validate the answer against.
    pub async fn propose_pooled(
        self: &Arc<Self>,
        guest: &Arc<Loaded>,
        req: IpamRequest,
        view: PoolView,
    ) -> Result<(Result<u64, Refusal>, PoolView), Error> {
        let (me, g) = (self.clone(), guest.clone());
        self.off_runtime(move || me.propose_here(&g, &req, view))
            .await
    }

    /// Ask a delegation guest which networks `req.pod` gets, on this thread (CLI, tests,
    /// benchmarks: no async runtime).
    pub fn decide(
        &self,
        guest: &Loaded,
        req: &DelegationRequest,
    ) -> Result<Vec<Attachment>, Error> {
        self.decide_here(guest, req)
    }

    /// Ask an IPAM guest for an offset in `view`'s range, on this thread; the view is handed
    /// back for the caller to validate the answer against.
    pub fn propose(
        &self,
        guest: &Loaded,
        req: &IpamRequest,
        view: PoolView,
    ) -> Result<(Result<u64, Refusal>, PoolView), Error> {
        self.propose_here(guest, req, view)
    }

    fn decide_here(
        &self,
        guest: &Loaded,
        req: &DelegationRequest,
    ) -> Result<Vec<Attachment>, Error> {
        let trapped = |source| self.trapped(guest, source);
        let pre = self.delegation_pre(guest)?;
        let mut store = self.store();
        // Instantiation runs guest code (initialisers): a trap there is the guest's, deadline
        // included.
        let inst = pre
            .instantiate(&mut store)
            .map_err(|e| self.trapped(guest, e))?;
        let answer = inst
            .wasmcni_policy_delegation()
            .call_decide(&mut store, req)
            .map_err(trapped)?;
        answer.map_err(|d| Error::Denied {
            name: guest.name.clone(),
            why: match d {
                Denial::BadAnnotation(s) => format!("bad network annotation: {}", clamp(&s)),
                Denial::Forbidden(s) => format!("forbidden: {}", clamp(&s)),
            },
        })
    }

    fn propose_here(
        &self,
        guest: &Loaded,
        req: &IpamRequest,
        view: PoolView,
    ) -> Result<(Result<u64, Refusal>, PoolView), Error> {
        let pre = self.ipam_pre(guest)?;
        let mut store = self.store();
        // Instantiation runs guest code (initialisers): a trap there is the guest's, deadline
        // included.
        let inst = pre
            .instantiate(&mut store)
            .map_err(|e| self.trapped(guest, e))?;
        let handle = store
            .data_mut()
            .table
            .push(view)
            .map_err(|e| guest.load_error(e.into()))?;
        let borrowed = wasmtime::component::Resource::<PoolView>::new_borrow(handle.rep());
        let answer = inst
            .wasmcni_policy_ipam()
            .call_propose(&mut store, req, borrowed)
            .map_err(|e| self.trapped(guest, e))?;
        let view = store
            .data_mut()
            .table
            .delete(handle)
            .map_err(|e| guest.load_error(e.into()))?;
        Ok((answer, view))
    }
}

/// An IPAM policy guest as IPAM's [`ipam::Proposer`]: IPAM asks, the guest answers on the
/// worker pool, a refusal becomes [`Error::Denied`].
pub struct Policy {
    guests: Arc<Guests>,
    guest: Arc<Loaded>,
    req: IpamRequest,
}

impl Policy {
    /// `guest`, run by `guests`, told `req` about the pod.
    pub fn new(guests: Arc<Guests>, guest: Arc<Loaded>, req: IpamRequest) -> Self {
        Policy { guests, guest, req }
    }
}

impl ipam::Proposer for Policy {
    type Error = Error;

    fn describe(&self) -> String {
        format!(
            "ipam guest {} (sha256 {})",
            self.guest.name, self.guest.digest
        )
    }

    async fn propose(&self, view: PoolView) -> Result<(Proposal, PoolView), Error> {
        let (answer, view) = self
            .guests
            .propose_pooled(&self.guest, self.req.clone(), view)
            .await?;
        match answer {
            Ok(o) => Ok((Proposal::Offset(o), view)),
            Err(Refusal::Exhausted) => Ok((Proposal::Exhausted, view)),
            Err(Refusal::Other(why)) => Err(self.guest.denied(&why)),
        }
    }
}

impl Loaded {
    /// The guest's name as configured.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    fn load_error(&self, source: wasmtime::Error) -> Error {
        Error::Load {
            name: self.name.clone(),
            digest: self.digest.clone(),
            source,
        }
    }
    /// An error for a refusal (the guest's text is clamped).
    pub fn denied(&self, why: &str) -> Error {
        Error::Denied {
            name: self.name.clone(),
            why: clamp(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_version_is_the_packages() {
        let wit = include_str!("../../../wit/policy.wit");
        assert!(
            wit.contains(&format!("package wasmcni:policy@{WIT_VERSION};")),
            "wit/policy.wit and guest::WIT_VERSION disagree"
        );
    }
}
