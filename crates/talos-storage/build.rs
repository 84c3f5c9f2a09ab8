//! Build script: rebuild the crate when a migration changes.

// `embed_migrations!` reads the SQL at compile time; without this, editing a migration would not
// rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
