//! `state`: runc's state JSON for one container.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use libcontainer::container::{Container, ContainerStatus};
use serde::Serialize;

use crate::cli::{GlobalOpts, IdArg};

/// runc's `state` / `list --format json` record (field names and order as runc prints them).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RuncState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

pub fn state(args: IdArg, g: &GlobalOpts) -> Result<i32> {
    let container = super::load(g, &args.container_id)?;
    let s = runc_state(&container);
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(0)
}

pub fn status_name(c: &Container) -> &'static str {
    match c.status() {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

pub fn runc_state(c: &Container) -> RuncState {
    let stopped = c.status() == ContainerStatus::Stopped;
    let bundle = c.bundle().clone();
    let rootfs = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .ok()
        .and_then(|s| s.root().as_ref().map(|r| bundle.join(r.path())))
        .unwrap_or_else(|| bundle.join("rootfs"));
    RuncState {
        oci_version: oci_spec::runtime::VERSION.to_string(),
        id: c.id().to_string(),
        pid: if stopped {
            0
        } else {
            c.pid().map(|p| p.as_raw()).unwrap_or(0)
        },
        status: status_name(c),
        bundle,
        rootfs,
        created: format_time(c.created()),
        owner: c
            .creator()
            .map(|o| o.to_string_lossy().into_owned())
            .unwrap_or_default(),
        annotations: c.state.annotations.clone().unwrap_or_default(),
    }
}

pub fn format_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}
