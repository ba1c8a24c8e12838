//! containerd-shim-polis-v2: the containerd shim v2 for Polis (not built yet; see the issue).
fn main() {
    eprintln!("containerd-shim-polis-v2 is not implemented yet");
    std::process::exit(1);
}
