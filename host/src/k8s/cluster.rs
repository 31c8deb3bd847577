//! The cluster-wide reads and writes of the IPAM reconciler (`wasmcni reconcile`): every pod,
//! every reservation, its Lease and its Events. The CNI identity has none of these grants but
//! Events' create (deploy/rbac.yaml: a failed call's Warning on its pod); the reconciler's are
//! in deploy/reconciler.yaml.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Api;
use kube::api::{ListParams, PostParams};

use super::{Client, Error, OverlappingRangeIPReservation, status_code};

/// What the reconciler needs of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// metadata.uid.
    pub uid: String,
    /// status.phase ("Pending", "Running", …).
    pub phase: String,
    /// The addresses its `k8s.v1.cni.cncf.io/network-status` annotation lists; `None` when it
    /// has none (or it cannot be read): nothing is then known about which addresses it uses.
    pub status_ips: Option<Vec<String>>,
}

impl PodSummary {
    fn of(p: &Pod) -> Self {
        let status_ips = p
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("k8s.v1.cni.cncf.io/network-status"))
            .and_then(|s| serde_json::from_str::<Vec<serde_json::Value>>(s).ok())
            .map(|nets| {
                nets.iter()
                    .filter_map(|n| n.get("ips").and_then(|i| i.as_array()))
                    .flatten()
                    .filter_map(|ip| ip.as_str().map(str::to_string))
                    .collect()
            });
        PodSummary {
            uid: p.metadata.uid.clone().unwrap_or_default(),
            phase: p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
            status_ips,
        }
    }
}

impl Client {
    /// Every pod of the cluster, by `namespace/name`.
    pub async fn pod_summaries(&self) -> Result<BTreeMap<String, PodSummary>, Error> {
        let api: Api<Pod> = Api::all(self.kube.clone());
        let mut out = BTreeMap::new();
        let mut lp = ListParams::default().limit(500);
        loop {
            let page = api
                .list(&lp)
                .await
                .map_err(|e| Error::from_kube("listing pods", e))?;
            for p in &page.items {
                let ns = p.metadata.namespace.clone().unwrap_or_default();
                let name = p.metadata.name.clone().unwrap_or_default();
                out.insert(format!("{ns}/{name}"), PodSummary::of(p));
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(c) => lp = lp.continue_token(&c),
                None => return Ok(out),
            }
        }
    }

    /// The pod `namespace/name` now, if it exists (the live check before anything is freed).
    pub async fn pod_summary(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<PodSummary>, Error> {
        let api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        api.get_opt(name)
            .await
            .map(|p| p.as_ref().map(PodSummary::of))
            .map_err(|e| Error::from_kube(format!("reading pod {namespace}/{name}"), e))
    }

    /// Every OverlappingRangeIPReservation in `namespace`.
    pub async fn reservations(
        &self,
        namespace: &str,
    ) -> Result<Vec<OverlappingRangeIPReservation>, Error> {
        let api: Api<OverlappingRangeIPReservation> = Api::namespaced(self.kube.clone(), namespace);
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| {
                Error::from_kube(
                    format!("listing OverlappingRangeIPReservations in {namespace}"),
                    e,
                )
            })
    }

    /// Take or renew the Lease `namespace/name` for `holder`: `Ok(true)` when `holder` holds it
    /// for the next `seconds`, `Ok(false)` when another live holder has it. The write is
    /// conditional on the resourceVersion read, so two candidates never both win.
    pub async fn acquire_lease(
        &self,
        namespace: &str,
        name: &str,
        holder: &str,
        seconds: i32,
    ) -> Result<bool, Error> {
        let api: Api<Lease> = Api::namespaced(self.kube.clone(), namespace);
        let what = || format!("taking Lease {namespace}/{name}");
        let now = wall_clock();
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| Error::from_kube(what(), e))?;
        let mut lease = match current {
            None => Lease {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(namespace.into()),
                    ..Default::default()
                },
                spec: None,
            },
            Some(l) => l,
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(holder);
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(MicroTime(t)), Some(d)) => now.as_second() - t.as_second() >= i64::from(d),
            _ => true,
        };
        if !mine && !expired {
            return Ok(false);
        }
        let mut next = spec.clone();
        if !mine {
            next.acquire_time = Some(MicroTime(now));
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(holder.into());
        next.lease_duration_seconds = Some(seconds);
        next.renew_time = Some(MicroTime(now));
        lease.spec = Some(next);
        let written = if lease.metadata.resource_version.is_none() {
            api.create(&PostParams::default(), &lease).await
        } else {
            api.replace(name, &PostParams::default(), &lease).await
        };
        match written {
            Ok(_) => Ok(true),
            // Someone else wrote it first (a create or a newer resourceVersion).
            Err(e) if status_code(&e) == Some(409) => Ok(false),
            Err(e) => Err(Error::from_kube(what(), e)),
        }
    }

    /// Record an Event `reason` about `object` (a pod, or an IPPool when the pod is gone):
    /// `warning` for a failure (a CNI call's), Normal otherwise (what the reconciler freed).
    pub async fn event(
        &self,
        object: ObjectReference,
        warning: bool,
        reason: &str,
        message: &str,
        component: &str,
    ) -> Result<(), Error> {
        let ns = object.namespace.clone().unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.kube.clone(), &ns);
        let now = Time(wall_clock());
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!(
                    "{}.",
                    object.name.clone().unwrap_or_else(|| "wasmcni".into())
                )),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: object,
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some(component.into()),
                host: None,
            }),
            reporting_component: Some(component.into()),
            ..Default::default()
        };
        api.create(&PostParams::default(), &ev)
            .await
            .map(drop)
            .map_err(|e| Error::from_kube(format!("recording an Event in {ns}"), e))
    }
}

/// The wall clock as k8s-openapi's time type.
fn wall_clock() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}
