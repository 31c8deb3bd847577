//! Device information files (the Network Plumbing WG's device-info spec), as Multus v4.2.4 and
//! the NAD client v1.7.6 handle them for an attachment given a `deviceID`.
//!
//! Multus names a file for the attachment — `<network>-<container ID>_<ifname>` under
//! [`CNI_DIR`], `/` spelt `-` — hands its path to the plugins that declare the capability
//! `CNIDeviceInfoFile` (an SR-IOV or vDPA plugin writes what it attached there), reads it back
//! after ADD into the network-status entry's `device-info`, and removes it on DEL.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where CNI device-info files live (`baseDevInfoPath` + `cniDevInfoSubDir`).
pub const CNI_DIR: &str = "/var/run/k8s.cni.cncf.io/devinfo/cni";

/// The capability a plugin declares to be handed the file's path.
pub const CAPABILITY: &str = "CNIDeviceInfoFile";

/// The device-info file of attachment `network` (`namespace/name`) on `ifname` of container
/// `container_id`: Multus' `GetCNIDeviceInfoPath("<network>-<container>_<ifname>")`.
pub fn cni_path(network: &str, container_id: &str, ifname: &str) -> PathBuf {
    Path::new(CNI_DIR).join(format!("{network}-{container_id}_{ifname}").replace('/', "-"))
}

/// A device-info document (`v1.DeviceInfo`): what is kept of a file, and what network-status
/// carries. Unknown keys are dropped, as Go's decoder drops them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `type`.
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// `version`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// `pci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<Pci>,
    /// `vdpa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<Vdpa>,
    /// `vhost-user`.
    #[serde(
        default,
        rename = "vhost-user",
        skip_serializing_if = "Option::is_none"
    )]
    pub vhost_user: Option<VhostUser>,
    /// `memif`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memif: Option<Memif>,
}

/// `pci`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Pci {
    /// `pci-address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    /// `vhost-net`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vhost_net: String,
    /// `rdma-device`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rdma_device: String,
    /// `pf-pci-address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pf_pci_address: String,
    /// `representor-device`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub representor_device: String,
}

/// `vdpa`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Vdpa {
    /// `parent-device`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parent_device: String,
    /// `driver`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    /// `path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `pci-address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    /// `pf-pci-address`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pf_pci_address: String,
    /// `representor-device`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub representor_device: String,
}

/// `vhost-user`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostUser {
    /// `mode`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// `path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

/// `memif`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memif {
    /// `role`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// `path`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `mode`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
}

/// The device info a plugin wrote at `path`, if it wrote one. A file that is not a device-info
/// document is logged and left out of network-status, as Multus does; the attachment stands.
pub fn load(path: &Path) -> Option<DeviceInfo> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("device info {}: {e}", path.display());
            return None;
        }
    };
    serde_json::from_slice(&text)
        .map_err(|e| tracing::warn!("device info {} is not one: {e}", path.display()))
        .ok()
}

/// Remove the file at `path` (DEL, and an ADD undone); absent is done.
pub fn clean(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("device info {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_path_is_multus_own() {
        assert_eq!(
            cni_path("default/sriov-a", "c0ffee", "net1"),
            Path::new("/var/run/k8s.cni.cncf.io/devinfo/cni/default-sriov-a-c0ffee_net1")
        );
    }

    #[test]
    fn documents_keep_the_spec_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("d");
        std::fs::write(
            &f,
            json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.4","x":1},"extra":true})
                .to_string(),
        )
        .unwrap();
        let d = load(&f).unwrap();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:3b:02.4"}})
        );
        std::fs::write(&f, "{\"pci\": 7}").unwrap();
        assert_eq!(load(&f), None, "not a document: left out");
        clean(&f);
        clean(&f);
        assert_eq!(load(&f), None);
    }
}
