//! Links the functions a shim runs first in its text (shim/symbol-order.txt, recorded by
//! scripts/shim-symbol-order.sh). The kernel maps a binary's pages in 64 KB windows around
//! each fault, so code that runs spread over the whole text makes all of it resident in every
//! shim; packed together it fills a few windows and the rest is never mapped. The order is a
//! layout hint only: a symbol that no longer exists is skipped.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=symbol-order.txt");
    println!("cargo:rerun-if-env-changed=POLIS_SHIM_LINK_MAP");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    // The option is lld's, the linker rustc uses by itself on this target; a build that names
    // another linker (config or flags) gets the default layout instead of a link error.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = std::env::var_os("RUSTC_LINKER").is_some()
        || flags
            .split('\x1f')
            .any(|f| f.contains("linker") || f.contains("fuse-ld") || f.contains("self-contained"));
    if other_linker || std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return;
    }
    let bin = "cargo:rustc-link-arg-bin=containerd-shim-polis-v2";
    println!("{bin}=-Wl,--symbol-ordering-file={dir}/symbol-order.txt");
    println!("{bin}=-Wl,--no-warn-symbol-ordering");
    // A link map on request, to check the layout (it shows what sits where).
    if let Ok(map) = std::env::var("POLIS_SHIM_LINK_MAP") {
        println!("{bin}=-Wl,-Map={map}");
    }
}
