//! Putting wasmcni on a node and taking it off again: what the DaemonSet's container runs
//! (`wasmcni install`, `wasmcni uninstall`; deploy/daemonset.yaml).
//!
//! Installing writes three things on the host, each atomically (a temp file in the same
//! directory, then rename(2), so a runtime never reads half a file and a running `wasmcni` is
//! never overwritten in place — Multus #1221, "text file busy"):
//! - the binary, into the CNI bin dir (skipped when the bytes there are the same);
//! - an identity dir (`<conf dir>/wasmcni.d`, root-only): the ServiceAccount token copied from
//!   the pod's projected volume, the cluster CA, and a kubeconfig that names both by path
//!   (`tokenFile`), so refreshing the identity is rewriting one file: every exec'd call and a
//!   daemon (kube re-reads a token file each minute) pick up the new token, and a kubeconfig
//!   never holds an expired one (multus #852, whereabouts #459);
//! - the node conflist, first in the conf dir, naming the cluster network: the first conf there
//!   that is not wasmcni's (Multus' `auto`) unless one is named, at that conf's `cniVersion` —
//!   one the runtime demonstrably reads (containerd 1.6 refuses 1.1.0 results: tests/node/002).
//!
//! Paths in the flags and in what is written are the host's. The container sees the two dirs
//! where the DaemonSet mounts them (`bin_mount`, `conf_mount`; on the host itself, the dirs
//! themselves), so an admin whose runtime keeps them elsewhere (k3s, …) changes the hostPaths
//! and the two host paths, never the mounts.
//! Uninstalling removes exactly these files (the conflist only if it is wasmcni's), which leaves
//! the node's own CNI config as it was: the installer never edits the cluster network's file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

/// The conflist's default file name: it must sort before every other conf in the directory,
/// because runtimes load only the first.
pub const CONF_NAME: &str = "00-wasmcni.conflist";
/// The identity dir's name inside the conf dir (Multus: `multus.d`).
pub const IDENTITY_DIR: &str = "wasmcni.d";

/// Where things go: the runtime's two CNI dirs as the host names them, and where this process
/// reaches them.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The runtime's CNI bin dir (containerd's `bin_dir`), a host path.
    pub bin_dir: PathBuf,
    /// Where `bin_dir` is mounted here (`bin_dir` itself when run on the host).
    pub bin_mount: PathBuf,
    /// The runtime's CNI conf dir (containerd's `conf_dir`), a host path.
    pub conf_dir: PathBuf,
    /// Where `conf_dir` is mounted here.
    pub conf_mount: PathBuf,
    /// The conflist's file name in `conf_dir`.
    pub conf_name: String,
}

impl Layout {
    /// `host`, a host path inside one of the two dirs, as reachable from here.
    fn here(&self, host: &Path) -> anyhow::Result<PathBuf> {
        for (dir, mount) in [
            (&self.conf_dir, &self.conf_mount),
            (&self.bin_dir, &self.bin_mount),
        ] {
            if let Ok(rest) = host.strip_prefix(dir) {
                return Ok(mount.join(rest));
            }
        }
        bail!(
            "{} is outside the CNI conf dir {} and bin dir {}: the installer reaches only those",
            host.display(),
            self.conf_dir.display(),
            self.bin_dir.display()
        )
    }
    /// The identity dir, as the host sees it.
    pub fn identity_dir(&self) -> PathBuf {
        self.conf_dir.join(IDENTITY_DIR)
    }
    /// The conflist, as the host sees it.
    pub fn conflist(&self) -> PathBuf {
        self.conf_dir.join(&self.conf_name)
    }
}

/// The identity the node's calls use: the DaemonSet pod's ServiceAccount.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The API server, as the host reaches it.
    pub server: String,
    /// The projected token file (refreshed by the kubelet).
    pub token_file: PathBuf,
    /// The cluster CA bundle.
    pub ca_file: PathBuf,
}

/// What the conflist says beyond what the installer fills in.
#[derive(Debug, Clone, Default)]
pub struct Conf {
    /// The cluster network's conf (a host path); `None`: the first in the conf dir.
    pub cluster_network: Option<PathBuf>,
    /// The conflist's cniVersion; `None`: the cluster network's.
    pub cni_version: Option<String>,
    /// The node's name (the DaemonSet passes `spec.nodeName`).
    pub node_name: String,
    /// The admin's keys for wasmcni's plugin entry (the node config ConfigMap), e.g.
    /// `defaultNetworks`, `delegation`, `ipamNamespace`.
    pub extra: Map<String, Value>,
}

/// What [`install`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Installed {
    /// The binary was written (false: the same bytes were there).
    pub binary_written: bool,
    /// The cluster network the conflist names (a host path).
    pub cluster_network: PathBuf,
    /// The conflist's cniVersion.
    pub cni_version: String,
}

/// Install `binary` (this executable, normally) and the node's config as `layout` says.
pub fn install(
    layout: &Layout,
    binary: &Path,
    identity: &Identity,
    conf: &Conf,
) -> anyhow::Result<Installed> {
    let bin_here = layout.bin_mount.clone();
    let conf_here = layout.conf_mount.clone();
    for (what, dir) in [("CNI bin dir", &bin_here), ("CNI conf dir", &conf_here)] {
        if !dir.is_dir() {
            bail!("the {what} {} does not exist", dir.display());
        }
    }
    let target = bin_here.join("wasmcni");
    let binary_written = !same_bytes(binary, &target)?;
    if binary_written {
        copy_atomic(binary, &target, 0o755)?;
    }

    refresh_identity(layout, identity)?;

    let (cluster_network, cluster_conf) = match &conf.cluster_network {
        Some(p) => {
            let v = read_conf(&layout.here(p)?)?;
            (p.clone(), v)
        }
        None => first_conf(layout)?,
    };
    let cni_version = match &conf.cni_version {
        Some(v) => v.clone(),
        None => cluster_conf
            .get("cniVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "the cluster network's conf {} has no cniVersion; name one with --cni-version",
                    cluster_network.display()
                )
            })?,
    };
    if !crate::cni::supports(&cni_version) {
        bail!("cniVersion {cni_version:?} (the cluster network's) is not one wasmcni speaks");
    }
    let conflist = conflist(layout, conf, &cluster_network, &cluster_conf, &cni_version)?;
    // Parsed as a CNI call will parse it: a wrong key type fails here, not on the first pod.
    let plugin = conflist["plugins"][0].clone();
    let mut as_call = plugin.as_object().cloned().unwrap_or_default();
    as_call.insert("cniVersion".into(), json!(cni_version));
    as_call.insert("name".into(), json!("wasmcni"));
    let parsed = crate::config::PluginConf::parse(Value::Object(as_call).to_string().as_bytes())
        .context("the node config does not make a valid wasmcni config")?;
    if !parsed.unread.is_empty() {
        bail!(
            "the node config sets {}, which wasmcni does not read (misspelt, or another tool's \
             key?); remove it",
            parsed
                .unread
                .iter()
                .map(|k| format!("{k:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    write_atomic(
        &layout.here(&layout.conflist())?,
        format!("{:#}\n", conflist).as_bytes(),
        0o600,
    )?;
    // Runtimes load the first conf in the dir (libcni's ConfFiles, sorted): ours must be it.
    let first = conf_files(&conf_here)?;
    if first.first().map(String::as_str) != Some(layout.conf_name.as_str()) {
        bail!(
            "{} sorts before {} in {}: the runtime would not load wasmcni's conflist; rename \
             it or choose a --conf-name that sorts first",
            first.first().map(String::as_str).unwrap_or("?"),
            layout.conf_name,
            layout.conf_dir.display()
        );
    }
    Ok(Installed {
        binary_written,
        cluster_network,
        cni_version,
    })
}

/// Write the identity dir: the token and CA copied from `identity`, and the kubeconfig naming
/// them. Returns whether the token changed (the refresh loop's signal).
pub fn refresh_identity(layout: &Layout, identity: &Identity) -> anyhow::Result<bool> {
    let dir_host = layout.identity_dir();
    let dir = layout.here(&dir_host)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    let token = crate::files::read_regular(&identity.token_file, 64 * 1024)
        .with_context(|| format!("reading the token {}", identity.token_file.display()))?;
    if token.trim_ascii().is_empty() {
        bail!("the token {} is empty", identity.token_file.display());
    }
    let ca = crate::files::read_regular(&identity.ca_file, 1024 * 1024)
        .with_context(|| format!("reading the CA {}", identity.ca_file.display()))?;
    let changed = std::fs::read(dir.join("token")).ok().as_deref() != Some(&token[..]);
    if changed {
        write_atomic(&dir.join("token"), &token, 0o600)?;
    }
    if std::fs::read(dir.join("ca.crt")).ok().as_deref() != Some(&ca[..]) {
        write_atomic(&dir.join("ca.crt"), &ca, 0o644)?;
    }
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": {
            "server": identity.server,
            "certificate-authority": dir_host.join("ca.crt"),
        }}],
        "users": [{"name": "wasmcni", "user": {"tokenFile": dir_host.join("token")}}],
        "contexts": [{"name": "wasmcni", "context": {"cluster": "cluster", "user": "wasmcni"}}],
        "current-context": "wasmcni",
    });
    let text = format!("{kubeconfig:#}\n");
    let path = dir.join("wasmcni.kubeconfig");
    if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
        write_atomic(&path, text.as_bytes(), 0o600)?;
    }
    Ok(changed)
}

/// Remove what [`install`] wrote. The conflist goes only if it is wasmcni's; the binary and the
/// identity dir always. Returns the host paths removed.
pub fn uninstall(layout: &Layout) -> anyhow::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let conflist = layout.conflist();
    let conflist_here = layout.here(&conflist)?;
    match read_conf(&conflist_here) {
        Ok(v) if is_ours(&v) => {
            std::fs::remove_file(&conflist_here)?;
            removed.push(conflist);
        }
        Ok(_) => bail!(
            "{} is not wasmcni's conflist; not removing it",
            conflist.display()
        ),
        Err(_) if !conflist_here.exists() => {}
        Err(e) => return Err(e),
    }
    let dir = layout.identity_dir();
    let dir_here = layout.here(&dir)?;
    if dir_here.exists() {
        std::fs::remove_dir_all(&dir_here)?;
        removed.push(dir);
    }
    let bin = layout.bin_dir.join("wasmcni");
    let bin_here = layout.here(&bin)?;
    if bin_here.exists() {
        std::fs::remove_file(&bin_here)?;
        removed.push(bin);
    }
    Ok(removed)
}

/// The conflist: wasmcni's plugin entry, the admin's keys in it, and what the installer knows.
fn conflist(
    layout: &Layout,
    conf: &Conf,
    cluster_network: &Path,
    cluster_conf: &Value,
    cni_version: &str,
) -> anyhow::Result<Value> {
    let mut plugin = conf.extra.clone();
    for key in [
        "type",
        "kubeconfig",
        "cniVersion",
        "name",
        "nodeName",
        "clusterNetwork",
    ] {
        if plugin.contains_key(key) {
            bail!(
                "the node config sets {key:?}, which the installer writes itself (the cluster \
                 network: --cluster-network; the node: --node-name)"
            );
        }
    }
    plugin.insert("type".into(), json!("wasmcni"));
    plugin.insert(
        "kubeconfig".into(),
        json!(layout.identity_dir().join("wasmcni.kubeconfig")),
    );
    plugin.insert("nodeName".into(), json!(conf.node_name));
    plugin.insert("clusterNetwork".into(), json!(cluster_network));
    // The capabilities the cluster network's plugins declare, as Multus' auto config carries
    // them (without them the runtime would not fill in portMappings, bandwidth, … for it), and
    // the admin's (e.g. containerd's io.kubernetes.cri.pod-annotations).
    let mut caps = match plugin.remove("capabilities") {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => bail!("the node config's \"capabilities\" is not an object"),
    };
    let plugins = match cluster_conf.get("plugins").and_then(Value::as_array) {
        Some(list) => list.clone(),
        None => vec![cluster_conf.clone()],
    };
    for p in &plugins {
        if let Some(c) = p.get("capabilities").and_then(Value::as_object) {
            for (k, v) in c {
                if v == &Value::Bool(true) {
                    caps.entry(k.clone()).or_insert(json!(true));
                }
            }
        }
    }
    if !caps.is_empty() {
        plugin.insert("capabilities".into(), Value::Object(caps));
    }
    Ok(json!({"cniVersion": cni_version, "name": "wasmcni", "plugins": [plugin]}))
}

/// The conf files of `dir` in the order libcni's `ConfFiles` gives them (sorted names with the
/// extensions it reads).
fn conf_files(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            [".conf", ".conflist", ".json"]
                .iter()
                .any(|x| n.ends_with(x))
        })
        .collect();
    names.sort();
    Ok(names)
}

/// The first conf of the conf dir that is not wasmcni's: the cluster network (Multus' `auto`).
fn first_conf(layout: &Layout) -> anyhow::Result<(PathBuf, Value)> {
    let dir = &layout.conf_mount;
    for name in conf_files(dir)? {
        if name == layout.conf_name {
            continue;
        }
        let v = read_conf(&dir.join(&name))?;
        if !is_ours(&v) {
            return Ok((layout.conf_dir.join(name), v));
        }
    }
    Err(NoClusterNetwork(layout.conf_dir.clone()).into())
}

/// The conf dir holds no cluster network yet: the one failure `install --wait` waits on (the
/// cluster's network plugin may install after wasmcni); every other one is final.
#[derive(Debug, thiserror::Error)]
#[error(
    "no cluster network in {}: it holds no conf but wasmcni's (is the cluster's network plugin \
     installed yet?), and none was named with --cluster-network",
    .0.display()
)]
pub struct NoClusterNetwork(pub PathBuf);

fn read_conf(path: &Path) -> anyhow::Result<Value> {
    let bytes = crate::files::read_regular(path, 1024 * 1024)
        .with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    if !v.is_object() {
        bail!("{} is not a JSON object", path.display());
    }
    Ok(v)
}

/// A conf or conflist whose (first) plugin is wasmcni.
fn is_ours(v: &Value) -> bool {
    let first = v.get("plugins").and_then(|p| p.get(0)).unwrap_or(v);
    first.get("type").and_then(Value::as_str) == Some("wasmcni")
}

/// Whether `b` exists and holds the bytes of `a`, read in chunks: the binary is tens of MB and
/// the DaemonSet's container has a small memory limit.
fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut fa = std::fs::File::open(a).with_context(|| format!("reading {}", a.display()))?;
    let Ok(mut fb) = std::fs::File::open(b) else {
        return Ok(false);
    };
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// Copy `src` to `path` as [`write_atomic`] writes, streaming.
fn copy_atomic(src: &Path, path: &Path, mode: u32) -> anyhow::Result<()> {
    let mut from =
        std::fs::File::open(src).with_context(|| format!("reading {}", src.display()))?;
    replace_atomic(path, mode, |f| std::io::copy(&mut from, f).map(|_| ()))
}

/// Write `bytes` to `path` with `mode` so that a reader sees the old file or the new one, never
/// part of one: a temp file in the same directory, synced, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    replace_atomic(path, mode, |f| f.write_all(bytes))
}

/// Replace `path` by a file `fill` writes: a temp file in the same directory, synced, renamed.
fn replace_atomic(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().context("a path with no directory")?;
    let name = path.file_name().context("a path with no file name")?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host {
        root: tempfile::TempDir,
        layout: Layout,
        identity: Identity,
    }

    /// A host under a temp dir: /opt/cni/bin, /etc/cni/net.d with a cluster network conf, and
    /// a pod's ServiceAccount volume.
    fn host(cluster_conf: Option<&str>) -> Host {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["opt/cni/bin", "etc/cni/net.d", "sa"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        if let Some(c) = cluster_conf {
            std::fs::write(r.join("etc/cni/net.d/10-cbr0.conflist"), c).unwrap();
        }
        std::fs::write(r.join("sa/token"), "token-1").unwrap();
        std::fs::write(r.join("sa/ca.crt"), "CA").unwrap();
        let layout = Layout {
            bin_dir: "/opt/cni/bin".into(),
            bin_mount: r.join("opt/cni/bin"),
            conf_dir: "/etc/cni/net.d".into(),
            conf_mount: r.join("etc/cni/net.d"),
            conf_name: CONF_NAME.into(),
        };
        let identity = Identity {
            server: "https://10.0.0.1:6443".into(),
            token_file: r.join("sa/token"),
            ca_file: r.join("sa/ca.crt"),
        };
        Host {
            root,
            layout,
            identity,
        }
    }

    const CBR0: &str = r#"{"cniVersion":"0.4.0","name":"cbr0","plugins":[{"type":"bridge"},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    fn node_conf() -> Conf {
        Conf {
            node_name: "node-1".into(),
            ..Conf::default()
        }
    }

    fn binary(h: &Host, bytes: &str) -> PathBuf {
        let p = h.root.path().join("wasmcni-image-binary");
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn installs_binary_identity_and_a_conflist_naming_the_first_conf() {
        let h = host(Some(CBR0));
        let done = install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap();
        assert_eq!(
            done,
            Installed {
                binary_written: true,
                cluster_network: "/etc/cni/net.d/10-cbr0.conflist".into(),
                cni_version: "0.4.0".into(),
            }
        );
        let r = h.root.path();
        assert_eq!(
            std::fs::read_to_string(r.join("opt/cni/bin/wasmcni")).unwrap(),
            "v1"
        );
        let conf: Value = serde_json::from_slice(
            &std::fs::read(r.join("etc/cni/net.d/00-wasmcni.conflist")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            conf,
            json!({"cniVersion": "0.4.0", "name": "wasmcni", "plugins": [{
                "type": "wasmcni",
                "kubeconfig": "/etc/cni/net.d/wasmcni.d/wasmcni.kubeconfig",
                "nodeName": "node-1",
                "clusterNetwork": "/etc/cni/net.d/10-cbr0.conflist",
                "capabilities": {"portMappings": true}}]})
        );
        let kc: Value = serde_json::from_slice(
            &std::fs::read(r.join("etc/cni/net.d/wasmcni.d/wasmcni.kubeconfig")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            kc["users"][0]["user"]["tokenFile"],
            "/etc/cni/net.d/wasmcni.d/token"
        );
        assert_eq!(
            kc["clusters"][0]["cluster"]["server"],
            "https://10.0.0.1:6443"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| std::fs::metadata(r.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("etc/cni/net.d/wasmcni.d"), 0o700);
        assert_eq!(mode("etc/cni/net.d/wasmcni.d/token"), 0o600);
        assert_eq!(mode("opt/cni/bin/wasmcni"), 0o755);
        // Nothing but the three results: no temp file left behind.
        let mut names: Vec<_> = std::fs::read_dir(r.join("etc/cni/net.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["00-wasmcni.conflist", "10-cbr0.conflist", "wasmcni.d"]
        );
    }

    #[test]
    fn a_second_install_skips_the_same_binary_and_keeps_the_cluster_network() {
        let h = host(Some(CBR0));
        install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap();
        // Its own conflist now sorts first: the cluster network is still the next one.
        let again = install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap();
        assert!(!again.binary_written);
        assert_eq!(
            again.cluster_network,
            Path::new("/etc/cni/net.d/10-cbr0.conflist")
        );
        let upgraded = install(&h.layout, &binary(&h, "v2"), &h.identity, &node_conf()).unwrap();
        assert!(upgraded.binary_written);
    }

    #[test]
    fn the_admins_capabilities_join_the_cluster_networks() {
        let h = host(Some(CBR0));
        let mut conf = node_conf();
        conf.extra.insert(
            "capabilities".into(),
            json!({"io.kubernetes.cri.pod-annotations": true}),
        );
        install(&h.layout, &binary(&h, "v1"), &h.identity, &conf).unwrap();
        let written: Value = serde_json::from_slice(
            &std::fs::read(h.root.path().join("etc/cni/net.d/00-wasmcni.conflist")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            written["plugins"][0]["capabilities"],
            json!({"io.kubernetes.cri.pod-annotations": true, "portMappings": true})
        );
    }

    #[test]
    fn refresh_reports_a_new_token_and_rewrites_only_it() {
        let h = host(Some(CBR0));
        install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap();
        assert!(!refresh_identity(&h.layout, &h.identity).unwrap());
        std::fs::write(&h.identity.token_file, "token-2").unwrap();
        assert!(refresh_identity(&h.layout, &h.identity).unwrap());
        let token = h.root.path().join("etc/cni/net.d/wasmcni.d/token");
        assert_eq!(std::fs::read_to_string(token).unwrap(), "token-2");
    }

    #[test]
    fn refuses_what_would_not_work_naming_it() {
        let empty = host(None);
        let e = install(
            &empty.layout,
            &binary(&empty, "v1"),
            &empty.identity,
            &node_conf(),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("no cluster network in /etc/cni/net.d"),
            "{e:#}"
        );
        assert!(e.downcast_ref::<NoClusterNetwork>().is_some(), "{e:#}");

        let h = host(Some(CBR0));
        std::fs::write(h.root.path().join("etc/cni/net.d/00-calico.conflist"), CBR0).unwrap();
        let e = install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap_err();
        assert!(
            format!("{e:#}").contains("00-calico.conflist sorts before"),
            "{e:#}"
        );

        let h = host(Some(CBR0));
        let mut conf = node_conf();
        conf.extra.insert("type".into(), json!("multus"));
        let e = install(&h.layout, &binary(&h, "v1"), &h.identity, &conf).unwrap_err();
        assert!(format!("{e:#}").contains("sets \"type\""), "{e:#}");

        let mut conf = node_conf();
        conf.extra.insert("loglevels".into(), json!("debug"));
        let e = install(&h.layout, &binary(&h, "v1"), &h.identity, &conf).unwrap_err();
        assert!(
            format!("{e:#}").contains("sets \"loglevels\", which wasmcni does not read"),
            "{e:#}"
        );

        let mut conf = node_conf();
        conf.extra
            .insert("defaultNetworks".into(), json!("not-a-list"));
        let e = install(&h.layout, &binary(&h, "v1"), &h.identity, &conf).unwrap_err();
        assert!(
            format!("{e:#}").contains("not make a valid wasmcni config"),
            "{e:#}"
        );

        std::fs::write(&h.identity.token_file, "").unwrap();
        let e = install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap_err();
        assert!(format!("{e:#}").contains("is empty"), "{e:#}");
    }

    #[test]
    fn uninstall_removes_exactly_what_install_wrote() {
        let h = host(Some(CBR0));
        install(&h.layout, &binary(&h, "v1"), &h.identity, &node_conf()).unwrap();
        let removed = uninstall(&h.layout).unwrap();
        assert_eq!(removed.len(), 3, "{removed:?}");
        let left: Vec<_> = std::fs::read_dir(h.root.path().join("etc/cni/net.d"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["10-cbr0.conflist"]);
        assert!(!h.root.path().join("opt/cni/bin/wasmcni").exists());
        assert_eq!(
            uninstall(&h.layout).unwrap(),
            Vec::<PathBuf>::new(),
            "twice is a no-op"
        );
        // Someone else's file under wasmcni's name stays.
        std::fs::write(
            h.root.path().join("etc/cni/net.d/00-wasmcni.conflist"),
            CBR0,
        )
        .unwrap();
        assert!(uninstall(&h.layout).is_err());
    }
}
