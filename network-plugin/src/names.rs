//! The names the spec and the kernel constrain, shared by the parsing of the
//! environment (container ID, ifname) and of the configuration (network name, bridge).

use crate::error::{code, CniError, CniResult};

/// The spec's character set for network names and container IDs; "." and
/// ".." alone are refused since they are path components.
pub fn is_spec_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Linux interface names: 1..=15 bytes, no '/', ':' or whitespace, not "." or "..".
pub fn validate_ifname(name: &str) -> CniResult<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if bad {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("interface name {name:?} is invalid (1-15 bytes, no '/', ':' or spaces)"),
        ));
    }
    Ok(())
}
