//! containerd-shim-polis-v2: the binary containerd starts; the shim itself is the library.

// Only the static shim links glibc's archive, where these replacements keep its gettext and
// locale machinery out; a dynamic build (and the tests) keep glibc's own symbols. They stay in
// the binary's own crate so the linker always takes them before glibc's.
#[cfg(target_feature = "crt-static")]
mod static_link;

fn main() {
    polis_shim::main()
}
