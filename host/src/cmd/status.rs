//! STATUS: whether an ADD could succeed now (spec 1.1).

use crate::cni::{Code, Error};
use crate::config::PluginConf;
use crate::delegate;

pub(super) fn status(conf: &PluginConf) -> Result<(), Error> {
    delegate::cluster_network(&conf.cluster_network)
        .map_err(|e| Error::new(Code::NotAvailable, "cluster network not ready", e.details))?;
    if !conf.kubeconfig.is_file() {
        return Err(Error::new(
            Code::NotAvailable,
            "kubeconfig missing",
            format!("{} does not exist", conf.kubeconfig.display()),
        ));
    }
    Ok(())
}
