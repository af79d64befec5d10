//! Rebuild the bindings when the WIT changes (the macro alone does not tell cargo).
fn main() {
    println!("cargo:rerun-if-changed=../../wit");
}
