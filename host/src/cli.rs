//! Admin commands (when wasmcni is run by a person rather than a runtime).
//!
//! - `wasmcni guest list` — the built-in guests and their sha256;
//! - `wasmcni guest inspect FILE` — a module's world, imports, exports and sha256;
//! - `wasmcni guest pin FILE --name N [--apply --kubeconfig K]` — the ConfigMap entry that lets
//!   NetworkAttachmentDefinitions name the guest (printed, or applied);
//! - `wasmcni guest test FILE …` — run a policy offline against a sample pod and pool;
//! - `wasmcni reconcile --kubeconfig K` — the IPAM reconciler (one leader per cluster, by Lease);
//! - `wasmcni daemon` — the node daemon (thick mode): serves the node's CNI calls on a socket;
//! - `wasmcni install` / `uninstall` — put wasmcni on a node and take it off (the DaemonSet).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::config::GuestRef;

/// `println!` for the admin commands: a reader that has gone (`wasmcni guest inspect m | grep
/// -q world`) ends the command quietly, as SIGPIPE ends a C tool, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        say(&format!($($arg)*))
    };
}

fn say(line: &str) {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => panic!("writing to stdout: {e}"),
    }
}
use crate::guest::{self, DelegationRequest, Guests, IpamRequest, Origin, Pins, Pod};
use crate::ipam::{PoolView, Range};
use crate::k8s::IpAllocation;

/// wasmcni: a CNI meta-plugin whose decisions run as sandboxed Wasm components.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Work with policy guests.
    #[command(subcommand)]
    Guest(GuestCmd),
    /// The built-in guests (same as `guest list`).
    Guests,
    /// The IPAM reconciler: frees allocations and reservations no pod holds (run as a
    /// Deployment; replicas elect one leader with a Lease).
    Reconcile(ReconcileArgs),
    /// The node daemon (thick mode): serves this node's CNI calls on a root-only unix socket,
    /// which `wasmcni` exec'd by the runtime forwards to (run in the DaemonSet).
    Daemon(DaemonArgs),
    /// Install wasmcni on this node: the binary into the CNI bin dir, the identity (the pod's
    /// ServiceAccount token) and the node conflist naming the cluster network, each atomically
    /// (run by the DaemonSet).
    Install(InstallArgs),
    /// Remove what `install` wrote; the node's own CNI config is left as it was.
    Uninstall(LayoutArgs),
}

/// Where the runtime's CNI dirs are: as the host names them, and where they are mounted here.
#[derive(clap::Args)]
struct LayoutArgs {
    /// The runtime's CNI bin dir on the host (containerd's `bin_dir`).
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_bin_dir: PathBuf,
    /// Where the bin dir is mounted here (default: --cni-bin-dir, i.e. run on the host).
    #[arg(long)]
    cni_bin_mount: Option<PathBuf>,
    /// The runtime's CNI conf dir on the host (containerd's `conf_dir`): the paths written into
    /// the conflist are under it.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// Where the conf dir is mounted here (default: --cni-conf-dir).
    #[arg(long)]
    cni_conf_mount: Option<PathBuf>,
    /// The conflist's name; it must sort first in the conf dir.
    #[arg(long, default_value = crate::install::CONF_NAME)]
    conf_name: String,
}

/// `wasmcni install` arguments.
#[derive(clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    layout: LayoutArgs,
    /// The cluster network's conf (a host path); default: the first conf in the conf dir that
    /// is not wasmcni's, as Multus' `auto` picks it (waited for, see --wait).
    #[arg(long)]
    cluster_network: Option<PathBuf>,
    /// The conflist's cniVersion; default: the cluster network's, which the runtime reads.
    #[arg(long)]
    cni_version: Option<String>,
    /// This node's name (default: $NODE_NAME, which the DaemonSet sets from spec.nodeName).
    #[arg(long)]
    node_name: Option<String>,
    /// The node config: a JSON object of wasmcni keys for the conflist (the ConfigMap).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The API server as the host reaches it (default: $WASMCNI_API_SERVER if set, else
    /// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the in-cluster address).
    #[arg(long)]
    server: Option<String>,
    /// The ServiceAccount token (projected, refreshed by the kubelet).
    #[arg(
        long,
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    token_file: PathBuf,
    /// The cluster CA.
    #[arg(
        long,
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    )]
    ca_file: PathBuf,
    /// Seconds to wait for a cluster network conf to appear (the cluster's network plugin may
    /// install after us); any other failure ends the install at once.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// After installing, keep running and copy the token to the node whenever the kubelet
    /// rotates it, until SIGTERM: the DaemonSet's container.
    #[arg(long)]
    keep_fresh: bool,
    /// Seconds between checks of the token with --keep-fresh (the kubelet rotates a token at
    /// 80 % of its life, so any check well inside the remaining 20 % keeps the node's copy valid).
    #[arg(long, default_value_t = 10)]
    refresh_every: u64,
}

/// `wasmcni daemon` arguments.
#[derive(clap::Args)]
struct DaemonArgs {
    /// The socket (the shim's default, or what its WASMCNI_DAEMON_SOCKET names).
    #[arg(long, default_value = crate::daemon::shim::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Calls served at once.
    #[arg(long, default_value_t = 32)]
    max_calls: usize,
    /// Calls that may wait for a slot; one more is declined and runs in its shim's process.
    #[arg(long, default_value_t = 512)]
    max_waiting: usize,
    /// Worker threads (default: the CPUs).
    #[arg(long)]
    threads: Option<usize>,
    /// Serve Prometheus metrics at /metrics, and /healthz and /readyz, on this address
    /// (e.g. 127.0.0.1:9745; none by default).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
}

/// `wasmcni reconcile` arguments.
#[derive(clap::Args)]
struct ReconcileArgs {
    /// The reconciler's identity (deploy/reconciler.yaml's ServiceAccount); default: the
    /// pod's own (in-cluster), as the Deployment runs it.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Where the IPPools and reservations live (the node config's ipamNamespace).
    #[arg(long, default_value = "kube-system")]
    namespace: String,
    /// Seconds between passes.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Seconds a suspect must stay one before it is freed (an ADD in flight finishes well
    /// within it; the kubelet's CNI timeout is minutes at most).
    #[arg(long, default_value_t = 300)]
    grace: u64,
    /// Seconds a Lease is held without renewal.
    #[arg(long, default_value_t = 30)]
    lease_seconds: i32,
    /// This replica's name in the Lease, unique among the replicas (the Deployment passes the
    /// pod name; default: the hostname, which is not unique on the host network).
    #[arg(long)]
    identity: Option<String>,
    /// Take the Lease, pass until nothing waits on the grace period, print the totals as JSON
    /// and exit (tests, or a CronJob).
    #[arg(long)]
    once: bool,
}

#[derive(Subcommand)]
enum GuestCmd {
    /// List the built-in guests with their sha256.
    List,
    /// Show a module's world, imports, exports and sha256.
    Inspect {
        /// The .wasm component.
        file: PathBuf,
    },
    /// Print (or apply) the ConfigMap entry pinning FILE under NAME.
    Pin {
        /// The .wasm component.
        file: PathBuf,
        /// The name NADs will use (`"policy": {"guest": NAME}`).
        #[arg(long)]
        name: String,
        /// The pins ConfigMap, `namespace/name`.
        #[arg(long, default_value = "kube-system/wasmcni-guests")]
        configmap: String,
        /// Apply it (server-side apply, one field manager per guest) instead of printing it.
        #[arg(long, requires = "kubeconfig")]
        apply: bool,
        /// The admin kubeconfig for --apply.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Run a policy (a .wasm file or a built-in guest's name) offline: an IPAM policy against a
    /// sample pool, a delegation policy against a sample pod.
    Test(TestArgs),
}

/// `wasmcni guest test` arguments.
#[derive(clap::Args)]
struct TestArgs {
    /// The .wasm component.
    file: PathBuf,
    /// The pod, `namespace/name`.
    #[arg(long, default_value = "default/sample-0")]
    pod: String,
    /// The node.
    #[arg(long, default_value = "node-1")]
    node: String,
    /// IPAM: the range.
    #[arg(long, default_value = "10.10.0.0/24")]
    range: String,
    /// IPAM: offsets already taken, e.g. `1,2,5-9`.
    #[arg(long, default_value = "")]
    taken: String,
    /// Delegation: the pod's k8s.v1.cni.cncf.io/networks annotation.
    #[arg(long)]
    networks: Option<String>,
    /// Delegation: pod labels, `key=value` (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Keep compiled guests in this directory (default: a temporary one, removed after).
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Run the CLI.
pub fn main() -> ExitCode {
    let run = match Cli::parse().command {
        Cmd::Guests | Cmd::Guest(GuestCmd::List) => {
            for guest::Builtin { name, bytes, .. } in guest::BUILTIN {
                out!(
                    "{name}\t{}\t{} bytes",
                    guest::sha256_hex(bytes),
                    bytes.len()
                );
            }
            Ok(())
        }
        Cmd::Guest(GuestCmd::Inspect { file }) => inspect(&file),
        Cmd::Guest(GuestCmd::Pin {
            file,
            name,
            configmap,
            apply,
            kubeconfig,
        }) => pin(
            &file,
            &name,
            &configmap,
            apply.then_some(kubeconfig).flatten(),
        ),
        Cmd::Guest(GuestCmd::Test(args)) => test(args),
        Cmd::Reconcile(args) => reconcile(args),
        Cmd::Daemon(args) => daemon(args),
        Cmd::Install(args) => install(args),
        Cmd::Uninstall(args) => uninstall(args),
    };
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmcni: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn reconcile(a: ReconcileArgs) -> anyhow::Result<()> {
    use crate::reconcile::{COMPONENT, Pass, Reconciler};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kube = match &a.kubeconfig {
            Some(k) => crate::k8s::Client::from_kubeconfig(k).await?,
            None => crate::k8s::Client::in_cluster()?,
        };
        let me = match a.identity {
            Some(i) => i,
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
                .trim()
                .to_string(),
        };
        let mut r = Reconciler::new(
            kube.clone(),
            a.namespace.clone(),
            Duration::from_secs(a.grace),
        );
        let mut total = Pass::default();
        loop {
            let leader = kube
                .acquire_lease(&a.namespace, COMPONENT, &me, a.lease_seconds)
                .await;
            let pass = match leader {
                Ok(true) => r.pass().await,
                Ok(false) => {
                    if a.once {
                        bail!("another reconciler holds Lease {}/{COMPONENT}", a.namespace);
                    }
                    r.forget();
                    tokio::time::sleep(Duration::from_secs(a.interval)).await;
                    continue;
                }
                Err(e) => Err(e),
            };
            match pass {
                Ok(p) => {
                    tracing::info!(
                        "pass: freed {} allocations, {} reservations; {} waiting, {} cleared",
                        p.freed_entries,
                        p.freed_reservations,
                        p.waiting,
                        p.cleared
                    );
                    total.freed_entries += p.freed_entries;
                    total.freed_reservations += p.freed_reservations;
                    total.cleared += p.cleared;
                    total.waiting = p.waiting;
                    if a.once && p.waiting == 0 {
                        out!("{}", serde_json::to_string(&total)?);
                        return Ok(());
                    }
                }
                // A pass that cannot read its snapshot is retried; the memory stays.
                Err(e) if !a.once => tracing::warn!("pass failed: {e}"),
                Err(e) => return Err(e.into()),
            }
            let pause = if a.once { a.grace.max(1) } else { a.interval };
            tokio::time::sleep(Duration::from_secs(pause)).await;
        }
    })
}

fn daemon(a: DaemonArgs) -> anyhow::Result<()> {
    use crate::daemon::server::{self, Limits};
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = a.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    let limits = Limits {
        calls: a.max_calls,
        waiting: a.max_waiting,
    };
    rt.block_on(server::run(
        &a.socket,
        limits,
        crate::node::Node::new(),
        a.metrics,
    ))
}

impl LayoutArgs {
    fn layout(self) -> crate::install::Layout {
        crate::install::Layout {
            bin_mount: self
                .cni_bin_mount
                .unwrap_or_else(|| self.cni_bin_dir.clone()),
            bin_dir: self.cni_bin_dir,
            conf_mount: self
                .cni_conf_mount
                .unwrap_or_else(|| self.cni_conf_dir.clone()),
            conf_dir: self.cni_conf_dir,
            conf_name: self.conf_name,
        }
    }
}

fn install(a: InstallArgs) -> anyhow::Result<()> {
    use crate::install::{self, Conf, Identity};
    let layout = a.layout.layout();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let server = match a.server.or_else(|| env("WASMCNI_API_SERVER")) {
        Some(s) => s,
        None => match (
            env("KUBERNETES_SERVICE_HOST"),
            env("KUBERNETES_SERVICE_PORT"),
        ) {
            (Some(h), Some(p)) if h.contains(':') => format!("https://[{h}]:{p}"),
            (Some(h), Some(p)) => format!("https://{h}:{p}"),
            _ => bail!(
                "no --server, no WASMCNI_API_SERVER, and KUBERNETES_SERVICE_HOST/PORT are not set"
            ),
        },
    };
    let node_name = a
        .node_name
        .or_else(|| env("NODE_NAME"))
        .context("no --node-name, and NODE_NAME is not set")?;
    let extra = match &a.config {
        None => serde_json::Map::new(),
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            match serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", p.display()))?
            {
                serde_json::Value::Object(m) => m,
                _ => bail!("{} is not a JSON object", p.display()),
            }
        }
    };
    let identity = Identity {
        server,
        token_file: a.token_file,
        ca_file: a.ca_file,
    };
    let conf = Conf {
        cluster_network: a.cluster_network,
        cni_version: a.cni_version,
        node_name,
        extra,
    };
    let binary = std::env::current_exe().context("finding this executable")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(a.wait);
    let done = loop {
        match install::install(&layout, &binary, &identity, &conf) {
            Ok(done) => break done,
            Err(e)
                if e.downcast_ref::<install::NoClusterNetwork>().is_some()
                    && std::time::Instant::now() < deadline =>
            {
                eprintln!("wasmcni install: {e:#}; retrying");
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    };
    out!(
        "wasmcni install: {} at cniVersion {}, cluster network {}, binary {}",
        layout.conflist().display(),
        done.cni_version,
        done.cluster_network.display(),
        if done.binary_written {
            "written"
        } else {
            "unchanged"
        }
    );
    if !a.keep_fresh {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(Duration::from_secs(a.refresh_every.max(1)));
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(()),
                _ = tick.tick() => match install::refresh_identity(&layout, &identity) {
                    Ok(true) => out!("wasmcni install: the token changed; the node's copy is refreshed"),
                    Ok(false) => {}
                    // Kept running: the old token stays valid a while, the next tick retries.
                    Err(e) => eprintln!("wasmcni install: refreshing the identity: {e:#}"),
                },
            }
        }
    })
}

fn uninstall(a: LayoutArgs) -> anyhow::Result<()> {
    for p in crate::install::uninstall(&a.layout())? {
        out!("wasmcni uninstall: removed {}", p.display());
    }
    Ok(())
}

fn inspect(file: &PathBuf) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let i = guest::inspect(&bytes)?;
    out!("sha256   {}", guest::sha256_hex(&bytes));
    out!("size     {} bytes", bytes.len());
    out!(
        "world    {}",
        i.world.unwrap_or(
            "(not a wasmcni policy of this host: exports neither wasmcni:policy/ipam nor /delegation at the version this host binds, see the exports below)"
        )
    );
    for e in &i.exports {
        out!("export   {e}");
    }
    for m in &i.imports {
        out!("import   {m}");
    }
    Ok(())
}

fn pin(
    file: &PathBuf,
    name: &str,
    configmap: &str,
    kubeconfig: Option<PathBuf>,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if guest::inspect(&bytes)?.world.is_none() {
        bail!(
            "{} is not a wasmcni policy component (see `wasmcni guest inspect`)",
            file.display()
        );
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || guest::builtin(name).is_some()
    {
        bail!("--name {name:?}: use letters, digits, '-' and '_', and not a built-in guest's name");
    }
    let at = crate::k8s::ObjectRef::parse(configmap, "kube-system")
        .context("--configmap is [namespace/]name")?;
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(at.name().into());
    cm.metadata.namespace = Some(at.namespace().into());
    cm.data = Some(BTreeMap::from([(
        format!("{name}.sha256"),
        guest::sha256_hex(&bytes),
    )]));
    cm.binary_data = Some(BTreeMap::from([(
        format!("{name}.wasm"),
        ByteString(bytes),
    )]));
    let Some(kubeconfig) = kubeconfig else {
        let mut v = serde_json::to_value(&cm)?;
        v["apiVersion"] = "v1".into();
        v["kind"] = "ConfigMap".into();
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = crate::k8s::Client::from_kubeconfig(&kubeconfig).await?;
        client
            .apply_config_map(&cm, &format!("wasmcni-pin-{name}"))
            .await?;
        anyhow::Ok(())
    })?;
    out!(
        "pinned {name} ({}) in {configmap}",
        cm.data
            .as_ref()
            .and_then(|d| d.values().next())
            .cloned()
            .unwrap_or_default()
    );
    Ok(())
}

fn parse_taken(spec: &str) -> anyhow::Result<BTreeMap<u64, IpAllocation>> {
    let mut out = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (u64, u64) = (
            lo.parse().context("--taken")?,
            hi.parse().context("--taken")?,
        );
        for o in lo..=hi {
            out.insert(
                o,
                IpAllocation {
                    id: format!("sample-{o}"),
                    podref: format!("default/holder-{o}"),
                    ifname: "net1".into(),
                },
            );
        }
    }
    Ok(out)
}

fn test(a: TestArgs) -> anyhow::Result<()> {
    let TestArgs {
        file,
        pod,
        node,
        range,
        taken,
        networks,
        labels,
        cache,
    } = a;
    let (file, pod, node, range, taken, labels) = (
        &file,
        pod.as_str(),
        node.as_str(),
        range.as_str(),
        taken.as_str(),
        &labels,
    );
    let keep = cache.is_some();
    let dir = cache.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("wasmcni-guest-test-{}", std::process::id()))
    });
    let guests = Guests::new(dir.clone(), Duration::from_millis(1000))
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    // A built-in guest by name, or a file (pinned by its own hash: the admin runs this).
    let r = match guest::builtin(&file.display().to_string()) {
        Some(_) if !file.exists() => GuestRef::builtin(&file.display().to_string()),
        _ => {
            let bytes =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            GuestRef {
                guest: std::fs::canonicalize(file)?.display().to_string(),
                sha256: Some(guest::sha256_hex(&bytes)),
            }
        }
    };
    let compile = std::time::Instant::now();
    let loaded = guests.load(&r, Origin::Node, &Pins::default())?;
    let compile = compile.elapsed();
    let world = guests
        .world(&loaded)
        .context("not a wasmcni policy component")?;
    let pod = crate::k8s::ObjectRef::parse(pod, "default").context("--pod is [namespace/]name")?;
    let (namespace, name) = (pod.namespace(), pod.name());
    let labels = labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .context("--label is key=value")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let the_pod = Pod {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels,
        annotations: networks
            .map(|n| vec![("k8s.v1.cni.cncf.io/networks".to_string(), n)])
            .unwrap_or_default(),
    };
    let started = std::time::Instant::now();
    let outcome = if world == "ipam-policy" {
        let range = Range::parse(range, None, None, &[]).map_err(anyhow::Error::msg)?;
        let view = PoolView::new(range.clone(), parse_taken(taken)?);
        let req = IpamRequest {
            pod: the_pod,
            interface: "net1".into(),
            node: node.into(),
            container_id: "sample-container".into(),
        };
        let (answer, view) = guests.propose(&loaded, &req, view)?;
        match answer {
            Ok(o) if view.is_free(o) => format!(
                "proposes offset {o}: {} (free: the host would commit it)",
                range.address(o)
            ),
            Ok(o) => format!(
                "proposes offset {o}, which the host would REJECT: it is not free in {}",
                range.cidr()
            ),
            Err(refusal) => format!("refuses: {refusal:?}"),
        }
    } else {
        let req = DelegationRequest {
            pod: the_pod,
            node: node.into(),
            default_networks: Vec::new(),
        };
        let atts = guests.decide(&loaded, &req)?;
        let list: Vec<String> = atts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!(
                    "{}/{} as {}",
                    a.network.namespace,
                    a.network.name,
                    a.interface
                        .clone()
                        .unwrap_or_else(|| format!("net{}", i + 1))
                )
            })
            .collect();
        format!("attaches {} network(s): {}", list.len(), list.join(", "))
    };
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    out!(
        "{world} {} (sha256 {}) {outcome}  [compile {compile:.1?}, call {:.1?}]",
        file.display(),
        loaded.digest(),
        started.elapsed()
    );
    Ok(())
}
