//! The runtime's environment variables (spec: "Parameters").

use std::path::PathBuf;

use super::{Code, Error};

/// The operation the runtime asks for (CNI_COMMAND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach the container; must succeed when things are already gone.
    Del,
    /// Verify that what ADD made is still in place.
    Check,
    /// Report the supported spec versions.
    Version,
    /// Report whether the plugin is ready for ADDs (spec 1.1).
    Status,
    /// Release everything not in `cni.dev/valid-attachments` (spec 1.1).
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The spelling the spec uses, for delegates' CNI_COMMAND.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }
}

/// CNI_ARGS as containerd and CRI-O send them: `K=V;K=V`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// Every pair, in order, as the runtime sent it (passed on to delegates unchanged).
    pub raw: String,
    /// K8S_POD_NAMESPACE.
    pub pod_namespace: Option<String>,
    /// K8S_POD_NAME.
    pub pod_name: Option<String>,
    /// K8S_POD_UID.
    pub pod_uid: Option<String>,
    /// K8S_POD_INFRA_CONTAINER_ID.
    pub infra_container_id: Option<String>,
    /// IP: static addresses for whereabouts-style IPAM (comma-separated CIDRs).
    pub ip: Option<String>,
    /// GATEWAY: their gateways (comma-separated).
    pub gateway: Option<String>,
    /// MAC: the interface's MAC (the reference macvlan reads it; Multus passes a network
    /// selection's `mac` this way).
    pub mac: Option<String>,
}

impl CniArgs {
    /// These args with `pairs` appended, as Multus appends a network selection's `mac` and
    /// `ips` (`MAC=`, `IP=`) for that network's plugins: a later pair wins.
    pub fn with(&self, pairs: &[(String, String)]) -> CniArgs {
        if pairs.is_empty() {
            return self.clone();
        }
        let mut raw = self.raw.clone();
        for (k, v) in pairs {
            if !raw.is_empty() {
                raw.push(';');
            }
            raw.push_str(&format!("{k}={v}"));
        }
        // Every pair was KEY=VALUE already, and the values are the host's (validated).
        CniArgs::parse(&raw).unwrap_or_else(|_| self.clone())
    }

    fn parse(raw: &str) -> Result<Self, Error> {
        let mut args = CniArgs {
            raw: raw.to_string(),
            ..Default::default()
        };
        for pair in raw.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::new(
                    Code::InvalidEnv,
                    "invalid CNI_ARGS",
                    format!(
                        "{pair:?} is not KEY=VALUE (CNI_ARGS is KEY=VALUE pairs separated by ';')"
                    ),
                )
            })?;
            let slot = match k {
                "K8S_POD_NAMESPACE" => &mut args.pod_namespace,
                "K8S_POD_NAME" => &mut args.pod_name,
                "K8S_POD_UID" => &mut args.pod_uid,
                "K8S_POD_INFRA_CONTAINER_ID" => &mut args.infra_container_id,
                "IP" => &mut args.ip,
                "GATEWAY" => &mut args.gateway,
                "MAC" => &mut args.mac,
                // IgnoreUnknown and anything else: ours to ignore, delegates still get them.
                _ => continue,
            };
            *slot = Some(v.to_string()).filter(|v| !v.is_empty());
        }
        Ok(args)
    }
}

/// A validated string: read as `&str` (Deref, `as_str`, Display), made only by its `new`.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string!(
    /// A container ID as the spec allows it (letters, digits, `_.-`, starting with a letter or
    /// digit), validated once where it enters: safe as a file name (the delegate cache) and as a
    /// value in the API.
    ContainerId
);

impl ContainerId {
    /// `id`, if the spec allows it.
    pub fn new(id: &str) -> Result<Self, Error> {
        validate_container_id(id)?;
        Ok(ContainerId(id.to_string()))
    }
}

validated_string!(
    /// An interface name the kernel (and a pod's sysctls) accept; see [`validate_ifname`].
    IfName
);

impl IfName {
    /// `name`, if it is a usable interface name.
    pub fn new(name: &str) -> Result<Self, String> {
        validate_ifname(name)?;
        Ok(IfName(name.to_string()))
    }
}

/// One CNI invocation's parameters, validated.
#[derive(Debug, Clone)]
pub struct Request {
    /// CNI_COMMAND.
    pub command: Command,
    /// CNI_CONTAINERID (empty for VERSION, STATUS, GC).
    pub container_id: ContainerId,
    /// CNI_NETNS; `None` when the runtime sent none (allowed for DEL).
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME: the cluster network's interface in the pod (usually `eth0`; empty for
    /// VERSION, STATUS, GC).
    pub ifname: IfName,
    /// CNI_ARGS.
    pub args: CniArgs,
    /// CNI_PATH, split.
    pub path: Vec<PathBuf>,
}

impl Request {
    /// Read and validate the environment (`vars` is `std::env::vars()` in production).
    pub fn from_env(vars: &[(String, String)]) -> Result<Self, Error> {
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let missing = |k: &str, why: &str| {
            Error::new(
                Code::InvalidEnv,
                format!("{k} is not set"),
                format!("the runtime must set {k} ({why})"),
            )
        };
        let raw = get("CNI_COMMAND")
            .ok_or_else(|| missing("CNI_COMMAND", "ADD, DEL, CHECK, VERSION, STATUS or GC"))?;
        let command = Command::parse(raw).ok_or_else(|| {
            Error::new(
                Code::InvalidEnv,
                "unknown CNI_COMMAND",
                format!("{raw:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"),
            )
        })?;
        let path = get("CNI_PATH")
            .unwrap_or("")
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        let args = CniArgs::parse(get("CNI_ARGS").unwrap_or(""))?;
        let mut req = Request {
            command,
            container_id: ContainerId::default(),
            netns: None,
            ifname: IfName::default(),
            args,
            path,
        };
        if matches!(command, Command::Version | Command::Status | Command::Gc) {
            return Ok(req);
        }
        let id = get("CNI_CONTAINERID").filter(|v| !v.is_empty());
        req.container_id =
            ContainerId::new(id.ok_or_else(|| missing("CNI_CONTAINERID", "the container's ID"))?)?;
        let ifname = get("CNI_IFNAME").filter(|v| !v.is_empty()).ok_or_else(|| {
            missing(
                "CNI_IFNAME",
                "the interface name in the container, e.g. eth0",
            )
        })?;
        req.ifname = IfName::new(ifname).map_err(|why| {
            Error::new(
                Code::InvalidEnv,
                "invalid CNI_IFNAME",
                format!("{ifname:?}: {why}"),
            )
        })?;
        req.netns = get("CNI_NETNS")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if req.netns.is_none() && command != Command::Del {
            return Err(missing(
                "CNI_NETNS",
                "the path of the container's network namespace",
            ));
        }
        Ok(req)
    }
}

/// The spec's rule for container IDs: alphanumerics plus `_.-`, starting with an alphanumeric.
fn validate_container_id(id: &str) -> Result<(), Error> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidEnv,
            "invalid CNI_CONTAINERID",
            format!(
                "{id:?}: must be letters, digits, '_', '.', '-', starting with a letter or digit"
            ),
        ))
    }
}

/// Linux interface name rules (as the spec states them): 1–15 bytes, no '/', ':' or whitespace,
/// not "." or "..".
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 15 {
        return Err(format!(
            "is {} bytes long, the kernel allows 15",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("is not a valid name".into());
    }
    // `lo` exists in every namespace; `all` and `default` are the names of the per-namespace
    // sysctl directories (/proc/sys/net/ipv4/conf/{all,default}), which an interface's sysctls
    // would then overwrite.
    if matches!(name, "lo" | "all" | "default") {
        return Err(format!("is reserved in every network namespace ({name:?})"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return Err(format!("contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_needs_container_netns_ifname() {
        let base = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/x"),
        ];
        assert!(Request::from_env(&vars(&base)).is_ok());
        for drop in ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
            let v: Vec<_> = base.iter().filter(|(k, _)| *k != drop).cloned().collect();
            let e = Request::from_env(&vars(&v)).unwrap_err();
            assert_eq!(e.code, Code::InvalidEnv, "{drop}");
            assert!(e.msg.contains(drop), "{}", e.msg);
        }
    }

    #[test]
    fn del_allows_missing_netns() {
        let r = Request::from_env(&vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ]))
        .unwrap();
        assert!(r.netns.is_none());
    }

    #[test]
    fn cni_args_are_parsed_and_kept() {
        let raw = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_UID=u;K8S_POD_INFRA_CONTAINER_ID=c";
        let a = CniArgs::parse(raw).unwrap();
        assert_eq!(a.pod_namespace.as_deref(), Some("default"));
        assert_eq!(a.pod_name.as_deref(), Some("p"));
        assert_eq!(a.pod_uid.as_deref(), Some("u"));
        assert_eq!(a.infra_container_id.as_deref(), Some("c"));
        assert_eq!(a.raw, raw);
        assert_eq!(
            CniArgs::parse("novalue").unwrap_err().code,
            Code::InvalidEnv
        );
    }

    #[test]
    fn interface_and_container_names() {
        assert!(validate_ifname("net1").is_ok());
        assert!(validate_ifname("abcdefghijklmnop").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("..").is_err());
        assert!(validate_container_id("-abc").is_err());
        assert!(validate_container_id("abc_1.2-3").is_ok());
    }
}
