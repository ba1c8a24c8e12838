//! VERSION: which spec versions we speak.

use serde_json::json;

use crate::config::{sniff_version, SUPPORTED_VERSIONS};

pub fn cmd_version(stdin: &[u8]) -> String {
    json!({
        "cniVersion": sniff_version(stdin),
        "supportedVersions": SUPPORTED_VERSIONS,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_in_callers_version() {
        let v: serde_json::Value =
            serde_json::from_str(&super::cmd_version(br#"{"cniVersion":"0.4.0"}"#)).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert!(v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "1.1.0"));
    }
}
