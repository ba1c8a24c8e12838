//! polis-snapshotter: a containerd proxy snapshotter on overlayfs — not built yet.
fn main() {
    eprintln!("polis-snapshotter is not implemented yet");
    std::process::exit(1);
}
