//! wasmcni: a Kubernetes CNI meta-plugin (the job of Multus + IPVLAN + Whereabouts) whose
//! decisions — which networks a pod gets, which address it receives — run as sandboxed
//! WebAssembly components. The ADD data path reads top to bottom in [`cmd::add`].

pub mod cli;
pub mod cmd;
pub mod cni;
pub mod config;
pub mod daemon;
pub mod delegate;
pub mod files;
pub mod guest;
pub mod install;
pub mod ipam;
pub mod k8s;
pub mod logging;
pub mod netlink;
pub mod netns;
pub mod node;
pub mod reconcile;
