//! polis-runc: the binary; the runtime itself is the library.

fn main() {
    polis_runtime::main()
}
