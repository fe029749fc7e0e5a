// Re-embed the SQL migrations (refinery's `embed_migrations!`) whenever one changes or is added.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
