//! Test-only: a valid component, but a WASI command rather than an adapter.

fn main() {
    println!("not an adapter");
}
