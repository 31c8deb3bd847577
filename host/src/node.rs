//! What lives as long as the process, apart from what lives for one CNI call.
//!
//! Exec mode builds a [`Node`] for its one call; a node daemon builds one and serves many calls
//! on it; the IPAM controller needs none (it uses `ipam` and `k8s` alone, no Wasm engine). A
//! call's own state — its request, pod, config, pins read for it — is `delegate::Call`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::guest::{self, Guests};
use crate::{ipam, k8s};

/// Process-lifetime state: the Wasm engines (with their compiled guests, linkers and worker
/// threads), the Kubernetes clients (each one connection pool) and what this process last
/// read and wrote of its node's IPAM blocks, made on first use.
#[derive(Default)]
pub struct Node {
    /// Serves one call only (exec mode): guest calls run on a thread of their own instead of a
    /// worker pool, whose start-up (threads, the CPU count from cgroups) one call never repays.
    one_call: bool,
    /// By (guest cache directory, deadline in ms): the settings an engine is made with. A node
    /// has one config, so in practice one engine.
    guests: Mutex<HashMap<(PathBuf, u64), Arc<Guests>>>,
    /// By kubeconfig path.
    clients: tokio::sync::Mutex<HashMap<PathBuf, k8s::Client>>,
    /// By kubeconfig path (one cluster's blocks are not another's).
    blocks: Mutex<HashMap<PathBuf, Arc<ipam::Blocks>>>,
}

impl Node {
    /// A node context for many calls (a daemon): guest calls run on a bounded worker pool.
    /// Nothing is started yet: DEL, CHECK, GC and STATUS never pay for an engine.
    pub fn new() -> Arc<Self> {
        Arc::new(Node::default())
    }

    /// A node context for exactly one call (exec mode).
    pub fn for_one_call() -> Arc<Self> {
        Arc::new(Node {
            one_call: true,
            ..Node::default()
        })
    }

    /// The engine for guests cached in `cache_dir` with a deadline of `timeout_ms` per call,
    /// started on first use.
    pub fn guests(&self, cache_dir: &Path, timeout_ms: u64) -> Result<Arc<Guests>, guest::Error> {
        let key = (cache_dir.to_path_buf(), timeout_ms);
        let mut map = self.guests.lock().map_err(|_| guest::Error::Engine {
            why: "the engine table is poisoned (an earlier panic)".into(),
        })?;
        if let Some(g) = map.get(&key) {
            return Ok(g.clone());
        }
        let g = Guests::new(key.0.clone(), Duration::from_millis(timeout_ms))
            .map(|g| if self.one_call { g.one_call() } else { g })
            .map_err(|e| guest::Error::Engine {
                why: format!("{e:#}"),
            })?;
        map.insert(key, g.clone());
        Ok(g)
    }

    /// The API client for the identity in `kubeconfig`, made on first use and then shared.
    pub async fn kube(&self, kubeconfig: &Path) -> Result<k8s::Client, k8s::Error> {
        let mut map = self.clients.lock().await;
        if let Some(c) = map.get(kubeconfig) {
            return Ok(c.clone());
        }
        let c = k8s::Client::from_kubeconfig(kubeconfig).await?;
        map.insert(kubeconfig.to_path_buf(), c.clone());
        Ok(c)
    }

    /// This node's IPAM blocks in the cluster of `kubeconfig`, as this process last read and
    /// wrote them ([`ipam::Cached`] puts them in front of that cluster's client).
    pub fn blocks(&self, kubeconfig: &Path) -> Arc<ipam::Blocks> {
        let mut map = self.blocks.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(kubeconfig.to_path_buf())
            .or_insert_with(|| Arc::new(ipam::Blocks::new(!self.one_call)))
            .clone()
    }
}
