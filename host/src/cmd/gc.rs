//! GC (spec 1.1): release everything this node attached that the runtime no longer lists in
//! `cni.dev/valid-attachments` (or the older `cni.dev/attachments`).
//!
//! The delegate cache is the inventory: every ADD wrote a record before creating anything. A
//! record whose (container ID, CNI_IFNAME) is not listed is undone exactly as DEL undoes it —
//! addresses released, delegates' DEL run — and removed. Listed attachments are not touched. IPPool
//! entries are released only through records: a pool is shared by the whole cluster, and this
//! node's runtime lists only this node's attachments.

use std::collections::HashSet;

use serde_json::Value;

use super::{call, del::undo, pod_stub};
use crate::cni::{Code, Error, Request};
use crate::config::PluginConf;
use crate::delegate::cache::Record;
use crate::k8s::ObjectRef;

pub(super) async fn gc(
    node: &std::sync::Arc<crate::node::Node>,
    req: &Request,
    conf: PluginConf,
    stdin: &[u8],
) -> Result<(), Error> {
    let valid = valid_attachments(stdin)?;
    super::wait_ready(&conf).await?;
    let kube = node.kube(&conf.kubeconfig).await.ok();
    let mut first: Option<Error> = None;
    for rec in Record::all(&conf.cni_dir) {
        if valid.contains(&(rec.container_id.clone(), rec.ifname.clone())) {
            continue;
        }
        tracing::info!(
            "GC: {} ({}, {}) is no longer valid",
            rec.podref,
            rec.container_id,
            rec.ifname
        );
        // A record's pod was validated when ADD wrote it; one that no longer parses (a damaged
        // record) is still undone, under the text it holds.
        let pod = match ObjectRef::parse(&rec.podref, "") {
            Ok(p) => pod_stub(&p, None),
            Err(_) => crate::guest::Pod {
                namespace: String::new(),
                name: rec.podref.clone(),
                uid: String::new(),
                labels: Vec::new(),
                annotations: Vec::new(),
            },
        };
        // ADD validated both before writing the record; a record whose ID or interface no longer
        // validates is damaged, and left for DEL to report rather than acted on here.
        let (Ok(id), Ok(ifname)) = (
            crate::cni::ContainerId::new(&rec.container_id),
            crate::cni::IfName::new(&rec.ifname),
        ) else {
            tracing::warn!(
                "GC: skipping a damaged delegate cache record ({:?}, {:?})",
                rec.container_id,
                rec.ifname
            );
            continue;
        };
        let mut r = req.clone();
        r.container_id = id;
        r.ifname = ifname;
        r.netns = None;
        let call = call(node, &r, conf.clone(), pod, kube.clone());
        match undo(&call, &rec).await {
            Ok(()) => {
                if let Err(e) = Record::remove(&conf.cni_dir, &rec.container_id) {
                    first.get_or_insert(e.into());
                }
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The (container ID, interface) pairs the runtime still uses.
fn valid_attachments(stdin: &[u8]) -> Result<HashSet<(String, String)>, Error> {
    let v: Value = serde_json::from_slice(stdin)
        .map_err(|e| Error::new(Code::Decode, "network config is not JSON", e.to_string()))?;
    let list = v
        .get("cni.dev/valid-attachments")
        .or_else(|| v.get("cni.dev/attachments"))
        .ok_or_else(|| {
            Error::new(
                Code::InvalidConfig,
                "GC without cni.dev/valid-attachments",
                "the runtime must list the attachments still in use (libcni does); nothing was released",
            )
        })?;
    let bad = |why: &str| {
        Error::new(
            Code::InvalidConfig,
            "invalid cni.dev/valid-attachments",
            why.to_string(),
        )
    };
    list.as_array()
        .ok_or_else(|| bad("must be a list of {\"containerID\", \"ifname\"}"))?
        .iter()
        .map(|a| {
            match (
                a.get("containerID").and_then(Value::as_str),
                a.get("ifname").and_then(Value::as_str),
            ) {
                (Some(c), Some(i)) => Ok((c.to_string(), i.to_string())),
                _ => Err(bad("every entry needs containerID and ifname")),
            }
        })
        .collect()
}
