//! polis-bridge: a CNI plugin (bridge, IPAM, port mapping) — not built yet.
fn main() {
    eprintln!("polis-bridge is not implemented yet");
    std::process::exit(1);
}
