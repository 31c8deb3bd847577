//! The delegate cache (Multus' cniDir idea): what ADD planned, written before any delegate
//! runs, so DEL can undo it without the API server or the pod.
//!
//! One JSON file per container, written to a temporary name and renamed. A missing or corrupt
//! file never blocks DEL: DEL then falls back to what it can find without it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;
use super::plan::Planned;
use crate::cni::types::{CniResult, NetConfList};

/// The format version of a record; a record of another version is treated as missing.
const FORMAT: u32 = 1;

/// Everything DEL needs to undo an ADD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The format version.
    pub format: u32,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// `namespace/name` of the pod.
    pub podref: String,
    /// CNI_IFNAME of the cluster network.
    pub ifname: String,
    /// The cluster network's config list.
    pub cluster: NetConfList,
    /// Its ADD result, once known.
    pub cluster_result: Option<CniResult>,
    /// The extra attachments, in ADD order.
    pub attachments: Vec<Planned>,
    /// Their ADD results, once known (same order).
    pub results: Vec<Option<CniResult>>,
}

impl Record {
    /// A record of a plan, before anything ran.
    pub fn new(
        container_id: &str,
        podref: &str,
        ifname: &str,
        cluster: &NetConfList,
        attachments: &[Planned],
    ) -> Self {
        Record {
            format: FORMAT,
            container_id: container_id.into(),
            podref: podref.into(),
            ifname: ifname.into(),
            cluster: cluster.clone(),
            cluster_result: None,
            attachments: attachments.to_vec(),
            results: vec![None; attachments.len()],
        }
    }

    fn path(dir: &Path, container_id: &str) -> PathBuf {
        // Container IDs are validated to [A-Za-z0-9_.-], so this stays inside `dir`.
        dir.join(container_id)
    }

    /// Write atomically (temp file + rename), readable by root only.
    pub fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = Self::path(dir, &self.container_id);
        let err = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
        let tmp = dir.join(format!(".{}.tmp", self.container_id));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(&serde_json::to_vec(self).expect("record serializes"))
            .map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// The record of `container_id`. Missing → `None`; unreadable or corrupt → `None` with a
    /// warning (DEL must go on without it).
    pub fn read(dir: &Path, container_id: &str) -> Option<Self> {
        let path = Self::path(dir, container_id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "delegate cache {} unreadable, continuing without it: {e}",
                    path.display()
                );
                return None;
            }
        };
        match serde_json::from_slice::<Record>(&bytes) {
            Ok(r) if r.format == FORMAT && r.container_id == container_id => Some(r),
            Ok(_) => {
                tracing::warn!(
                    "delegate cache {} is of another format or container, ignoring it",
                    path.display()
                );
                None
            }
            Err(e) => {
                tracing::warn!(
                    "delegate cache {} is corrupt, continuing without it: {e}",
                    path.display()
                );
                None
            }
        }
    }

    /// Every readable record in `dir` (temporary and corrupt files are skipped, with a warning
    /// for the corrupt ones).
    pub fn all(dir: &Path) -> Vec<Self> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| Self::read(dir, &n))
            .collect()
    }

    /// Remove the record; absent is success.
    pub fn remove(dir: &Path, container_id: &str) -> Result<(), Error> {
        let path = Self::path(dir, container_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::Cache { path, source: e })
            }
            _ => Ok(()),
        }
    }
}
