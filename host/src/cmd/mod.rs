//! One file per CNI verb; this dispatcher turns env + stdin into a verb call and its outcome
//! into what the runtime reads on stdout.

mod add;
mod check;
pub(crate) mod codes;
mod del;
mod gc;
mod ipam;
mod status;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cni::types::CniResult;
use crate::cni::{self, Code, Command, Error, Request};
use crate::config::PluginConf;
use crate::delegate::Call;
use crate::delegate::networks::{Lookup, Resolved};
use crate::guest::Pod;
use crate::k8s::ObjectRef;
use crate::node::Node;

/// Run one CNI invocation in a process of its own (exec mode): a [`Node`] and a runtime made
/// for this one call — only when the verb needs them (VERSION and anything refused up front are
/// answered without). Returns what to print on stdout and whether it succeeded.
pub fn run(env: &[(String, String)], stdin: &[u8]) -> (String, bool) {
    let prepared = match prepare(env, stdin) {
        Ok(Prepared::Answered(v)) => return answer(stdin, Ok(v)),
        Ok(p) => p,
        Err(e) => return answer(stdin, Err(e)),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let e = Error::new(Code::Internal, "cannot start the runtime", e.to_string());
            return answer(stdin, Err(e));
        }
    };
    let out = rt.block_on(dispatch(&Node::for_one_call(), prepared, stdin));
    answer(stdin, out)
}

/// Serve one CNI invocation on `node`, which may serve many (the daemon) or just this one.
/// Returns what to print on stdout and whether it succeeded — byte for byte what [`run`] gives.
pub async fn serve(node: &Arc<Node>, env: &[(String, String)], stdin: &[u8]) -> (String, bool) {
    let out = match prepare(env, stdin) {
        Ok(p) => dispatch(node, p, stdin).await,
        Err(e) => Err(e),
    };
    answer(stdin, out)
}

/// Run what [`prepare`] left to do on `node`.
async fn dispatch(
    node: &Arc<Node>,
    prepared: Prepared,
    stdin: &[u8],
) -> Result<Option<Value>, Error> {
    match prepared {
        Prepared::Answered(v) => Ok(v),
        Prepared::Verb(v) => {
            let (req, conf) = *v;
            verb(node, &req, conf, stdin).await
        }
        Prepared::Ipam(v) => {
            let (req, call) = *v;
            ipam::run(node, &req, call).await
        }
    }
}

/// The outcome as the runtime reads it; errors in the caller's version when it can be read.
fn answer(stdin: &[u8], out: Result<Option<Value>, Error>) -> (String, bool) {
    match out {
        Ok(Some(v)) => (v.to_string(), true),
        Ok(None) => (String::new(), true),
        Err(e) => {
            tracing::error!("{e}");
            (e.to_json(&requested_version(stdin)), false)
        }
    }
}

/// A call that failed before it reached a verb (the shim's "the daemon did not answer"), as
/// the runtime reads it: the error in the caller's version.
pub fn failed(stdin: &[u8], e: Error) -> (String, bool) {
    answer(stdin, Err(e))
}

/// A bug: answer with code 999 rather than a bare panic.
pub fn internal_error(what: &str) -> (String, bool) {
    (
        Error::new(
            Code::Internal,
            what,
            "please report it with the stderr output",
        )
        .to_json("1.1.0"),
        false,
    )
}

/// stdin could not be read at all.
pub fn io_error(e: &std::io::Error) -> (String, bool) {
    (
        Error::new(Code::Io, "cannot read stdin", e.to_string()).to_json("1.1.0"),
        false,
    )
}

/// What is known before any verb runs.
enum Prepared {
    /// Answered already (VERSION).
    Answered(Option<Value>),
    /// A verb to run, with its request and wasmcni's config (boxed: far larger than an answer).
    Verb(Box<(Request, PluginConf)>),
    /// A verb of wasmcni run as an IPAM plugin ([`ipam`]).
    Ipam(Box<(Request, ipam::IpamCall)>),
}

/// Everything checked before a verb runs, synchronously: the environment, the size of stdin,
/// VERSION, the config, the verb's version gate and `prevResult`.
fn prepare(env: &[(String, String)], stdin: &[u8]) -> Result<Prepared, Error> {
    let req = Request::from_env(env)?;
    if stdin.len() > cni::MAX_STDIN {
        return Err(Error::new(
            Code::Decode,
            "network config too large",
            format!(
                "stdin is over {} bytes; a network config is a few KiB",
                cni::MAX_STDIN
            ),
        ));
    }
    if req.command == Command::Version {
        return Ok(Prepared::Answered(Some(version(stdin))));
    }
    if let Ok(v) = serde_json::from_slice::<Value>(stdin)
        && ipam::is_ipam_call(&v)
    {
        let call = ipam::prepare(&req, &v)?;
        return Ok(Prepared::Ipam(Box::new((req, call))));
    }
    let conf = PluginConf::parse(stdin)?;
    crate::logging::configure(
        conf.log.map(|l| l.0),
        conf.log_file.as_deref(),
        conf.log_to_stderr,
    );
    if conf.retry_delete_on_error == Some(false) {
        tracing::warn!(
            "retryDeleteOnError false is overridden: wasmcni keeps a failed DEL's record for the runtime's retry (dropping it would leak the addresses that DEL had yet to free)"
        );
    }
    if !conf.unread.is_empty() {
        tracing::warn!(
            "the network config {:?} sets keys wasmcni does not read: {}",
            conf.name,
            conf.unread.join(", ")
        );
    }
    allowed_at(req.command, &conf.cni_version)?;
    prev_result(conf.prev_result.as_ref(), &conf.cni_version)?;
    Ok(Prepared::Verb(Box::new((req, conf))))
}

/// Run the verb of a prepared request on `node`.
async fn verb(
    node: &Arc<Node>,
    req: &Request,
    conf: PluginConf,
    stdin: &[u8],
) -> Result<Option<Value>, Error> {
    // One line per call the runtime made, whatever it did: which verbs a runtime sends
    // (containerd 1.6 sends ADD and DEL only) is read off it.
    tracing::info!(
        "CNI {} container {} ifname {} config {} at {}",
        req.command.as_str(),
        req.container_id,
        req.ifname,
        conf.name,
        conf.cni_version
    );
    match req.command {
        Command::Add | Command::Del => {
            let kubeconfig = conf.kubeconfig.clone();
            let out = if req.command == Command::Add {
                add::add(node, req, conf).await.map(Some)
            } else {
                del::del(node, req, conf).await.map(|()| None)
            };
            if let Err(e) = &out {
                event_on_failure(node, &kubeconfig, req, e).await;
            }
            out
        }
        Command::Check => check::check(node, req, conf).await.map(|()| None),
        Command::Status => status::status(node, req, &conf).await.map(|()| None),
        Command::Gc => gc::gc(node, req, conf, stdin).await.map(|()| None),
        Command::Version => unreachable!("answered by prepare"),
    }
}

/// A failed ADD or DEL, said on the pod as a Warning Event (as Multus says `NoNetworkFound`),
/// where `kubectl describe pod` shows it beside the kubelet's own. Best effort and bounded: the
/// answer to the runtime never waits on it more than 2 s, and nothing is sent when the API
/// server is what failed (code 11) or the pod is unknown.
async fn event_on_failure(
    node: &Arc<Node>,
    kubeconfig: &std::path::Path,
    req: &Request,
    e: &Error,
) {
    if matches!(
        e.code,
        Code::TryAgainLater | Code::UnknownContainer | Code::InvalidEnv
    ) {
        return;
    }
    let Ok(pod) = pod_ref(req) else {
        return;
    };
    let reason = match (req.command, e.code) {
        (_, Code::NetworkNotFound) => "NoNetworkFound",
        (Command::Add, _) => "NetworkAttachFailed",
        _ => "NetworkDetachFailed",
    };
    let mut message = format!(
        "{} {} (code {}): {}{}{}",
        req.command.as_str(),
        req.ifname,
        e.code as u32,
        e.msg,
        if e.details.is_empty() { "" } else { ": " },
        e.details
    );
    if message.len() > 1024 {
        let mut cut = 1024;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    let object = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(pod.namespace().into()),
        name: Some(pod.name().into()),
        uid: req.args.pod_uid.clone(),
        ..Default::default()
    };
    let send = async {
        let kube = node.kube(kubeconfig).await.ok()?;
        kube.event(object, true, reason, &message, "wasmcni")
            .await
            .err()
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), send).await {
        Ok(Some(err)) => tracing::warn!("Event {reason} on {pod}: {err}"),
        Err(_) => tracing::warn!("Event {reason} on {pod}: no answer within 2 s"),
        Ok(None) => {}
    }
}

/// Verbs newer than the config's cniVersion are refused the way libcni's skel refuses them
/// (code 1, "config version does not allow CHECK"): CHECK came with 0.4.0, STATUS and GC with
/// 1.1.0.
fn allowed_at(command: Command, version: &str) -> Result<(), Error> {
    let (since, verb) = match command {
        Command::Check => ("0.4.0", "CHECK"),
        Command::Status => ("1.1.0", "STATUS"),
        Command::Gc => ("1.1.0", "GC"),
        _ => return Ok(()),
    };
    if !cni::at_least(version, since) {
        return Err(Error::new(
            Code::IncompatibleVersion,
            format!("config version does not allow {verb}"),
            format!("{verb} needs cniVersion {since} or later; the config is {version}"),
        ));
    }
    Ok(())
}

/// `prevResult`, read as every reference plugin reads it (libcni's `version.ParsePrevResult`):
/// the config's version picks the shape, and the result's own `cniVersion` (the config's when
/// absent) must be of that shape — 0.3.0/0.3.1/0.4.0 or 1.0.0/1.1.0 — so a 0.4.0 prevResult is
/// read in a 0.3.1 config and refused in a 1.0.0 one (code 1).
pub(crate) fn prev_result(
    prev: Option<&Value>,
    cni_version: &str,
) -> Result<Option<CniResult>, Error> {
    let Some(v) = prev else {
        return Ok(None);
    };
    CniResult::prev_result_version(v, cni_version).map_err(|why| {
        Error::new(
            Code::IncompatibleVersion,
            "prevResult is of another version",
            why,
        )
    })?;
    CniResult::from_prev_result(v, cni_version)
        .map(Some)
        .map_err(|why| Error::new(Code::InvalidConfig, "invalid prevResult", why))
}

/// VERSION: the supported versions, in the version the caller asked in.
fn version(stdin: &[u8]) -> Value {
    json!({"cniVersion": requested_version(stdin), "supportedVersions": cni::SUPPORTED_VERSIONS})
}

/// The supported cniVersion stdin names, else the newest.
fn requested_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| !v.is_empty() && cni::supports(v))
        .unwrap_or_else(|| "1.1.0".to_string())
}

/// The pod a call is for, from CNI_ARGS (a Kubernetes runtime always sends them), validated as
/// Kubernetes names before it reaches any API path.
fn pod_ref(req: &Request) -> Result<ObjectRef, Error> {
    match (&req.args.pod_namespace, &req.args.pod_name) {
        (Some(ns), Some(name)) => ObjectRef::new(ns, name)
            .map_err(|e| Error::new(Code::InvalidEnv, "invalid pod in CNI_ARGS", e.to_string())),
        _ => Err(Error::new(
            Code::InvalidEnv,
            "CNI_ARGS lacks the pod",
            "K8S_POD_NAMESPACE and K8S_POD_NAME must be in CNI_ARGS (containerd and CRI-O send them)",
        )),
    }
}

/// The shared context of a verb.
fn call(
    node: &Arc<Node>,
    req: &Request,
    conf: PluginConf,
    pod: Pod,
    kube: Option<crate::k8s::Client>,
) -> Call {
    // Multus' binDir is searched before CNI_PATH (and handed on in it).
    let path = conf
        .bin_dir
        .iter()
        .cloned()
        .chain(req.path.iter().cloned())
        .collect();
    Call::new(
        node.clone(),
        req.container_id.to_string(),
        req.netns.clone(),
        req.args.clone(),
        path,
        pod,
        kube,
        conf,
    )
}

/// The cluster network — `clusterNetwork` or `delegates[0]`, found as Multus finds it (a path
/// reads no API; a name asks for the NAD in `multusNamespace`, then a conf in `confDir`) — with
/// the runtime's capability arguments (`runtimeConfig`: portMappings, bandwidth, ips, mac, …)
/// given to the plugins that declare them, as libcni would if the runtime called that chain
/// itself. `pod_default` is the pod's `v1.multus-cni.io/default-network`, which replaces it.
async fn cluster_network(
    conf: &PluginConf,
    kube: Option<&crate::k8s::Client>,
    pod_default: Option<&crate::config::NetworkSource>,
) -> Result<Resolved, Error> {
    let (what, source) = match pod_default {
        Some(s) => (POD_DEFAULT_NETWORK, s),
        None => ("clusterNetwork", &conf.cluster),
    };
    let mut found =
        lookup(conf, kube)
            .resolve(what, source)
            .await
            .map_err(|e| match pod_default {
                Some(_) => Error::from(e).context(format!("pod annotation {POD_DEFAULT_NETWORK}")),
                None => Error::from(e),
            })?;
    if let Some(args) = conf.runtime_config.as_ref().and_then(Value::as_object) {
        crate::delegate::inject_capabilities(&mut found.chain, args);
    }
    Ok(found)
}

/// The pod annotation that replaces the cluster network for one pod (Multus').
pub const POD_DEFAULT_NETWORK: &str = "v1.multus-cni.io/default-network";

/// Where the config's network names are looked up.
fn lookup<'a>(conf: &'a PluginConf, kube: Option<&'a crate::k8s::Client>) -> Lookup<'a> {
    Lookup {
        kube,
        conf_dir: &conf.conf_dir,
        namespace: &conf.multus_namespace,
    }
}

/// Multus' `readinessindicatorfile`: wait until it exists, polling each second for up to 45 s
/// as Multus does; then code 11, so the runtime tries again.
async fn wait_ready(conf: &PluginConf) -> Result<(), Error> {
    let Some(file) = &conf.readiness_indicator_file else {
        return Ok(());
    };
    for i in 0..=45 {
        if file.exists() {
            return Ok(());
        }
        if i == 0 {
            tracing::info!("waiting for readinessindicatorfile {}", file.display());
        }
        if i < 45 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
    Err(Error::new(
        Code::TryAgainLater,
        "the cluster network is not ready",
        format!(
            "readinessindicatorfile {} did not appear within 45 s; is the cluster network's own \
             agent running on this node?",
            file.display()
        ),
    ))
}

/// A pod known only by reference (DEL and CHECK do not read the pod).
fn pod_stub(pod: &ObjectRef, uid: Option<&str>) -> Pod {
    Pod {
        namespace: pod.namespace().into(),
        name: pod.name().into(),
        uid: uid.unwrap_or_default().into(),
        labels: Vec::new(),
        annotations: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(command: &str) -> Vec<(String, String)> {
        [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/proc/self/ns/net"),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// One node context serving many calls at once answers each byte for byte as a process of
    /// its own would (what a daemon relies on): VERSION, and ADDs that fail before any side
    /// effect (their cluster network is unreadable).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_calls_on_one_node_answer_as_exec_mode_does() {
        let dir = tempfile::tempdir().unwrap();
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "wasmcni", "type": "wasmcni",
            "kubeconfig": dir.path().join("kubeconfig"),
            "clusterNetwork": dir.path().join("missing.conflist"),
            "cniDir": dir.path().join("delegates"), "guestCacheDir": dir.path().join("guests"),
        })
        .to_string();
        let cases = [(env("VERSION"), conf.clone()), (env("ADD"), conf.clone())];
        let want: Vec<(String, bool)> = cases
            .iter()
            .map(|(e, s)| {
                let (e, s) = (e.clone(), s.clone());
                std::thread::spawn(move || run(&e, s.as_bytes()))
                    .join()
                    .unwrap()
            })
            .collect();
        assert!(want[0].1 && !want[1].1, "{want:?}");
        assert!(
            want[1].0.contains("invalid clusterNetwork"),
            "{}",
            want[1].0
        );
        let node = Node::new();
        let calls = (0..64).map(|i| {
            let node = node.clone();
            let (e, s) = cases[i % 2].clone();
            tokio::spawn(async move { (i % 2, serve(&node, &e, s.as_bytes()).await) })
        });
        for c in futures::future::join_all(calls).await {
            let (which, got) = c.unwrap();
            assert_eq!(got, want[which]);
        }
    }
}
