//! Self-confinement of the shim server (not wired yet).

/// Placeholder: the shim does not confine itself yet.
pub fn confine_if_enabled() {}
