//! CNI error codes and the error type every command returns.
//!
//! Library modules have their own `thiserror` enums; they are mapped to a
//! [`CniError`] (code + message) at the command boundary, because the code is
//! what the runtime acts on.

use serde::Serialize;

/// Well-known error codes from the CNI spec (section "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (>= 100): the IPAM range has no free address left.
    pub const RANGE_EXHAUSTED: u32 = 100;
    /// Plugin-specific: a kernel (netlink / nftables) operation failed.
    pub const KERNEL_FAILURE: u32 = 101;
    /// Plugin-specific: CHECK found the attachment different from the result.
    pub const CHECK_MISMATCH: u32 = 102;
    /// Plugin-specific: a delegated plugin failed without a CNI error.
    pub const DELEGATE_FAILURE: u32 = 103;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object the spec asks a failing plugin to print on stdout.
    pub fn to_json(&self, cni_version: &str) -> String {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Out<'a> {
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_string(&Out {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(|_| format!("{{\"code\":{},\"msg\":\"unprintable error\"}}", self.code))
    }
}

pub type CniResult<T> = Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_spec_fields() {
        let e = CniError::new(code::INVALID_CONFIG, "bridge name too long").with_details("x");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bridge name too long");
        assert_eq!(v["details"], "x");
    }

    #[test]
    fn empty_details_are_omitted() {
        let e = CniError::new(code::IO_FAILURE, "m");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert!(v.get("details").is_none());
    }
}
