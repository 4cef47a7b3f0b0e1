//! Nothing is generated here. The build dependency on protoc-bin-vendored
//! makes cargo fetch a protoc with the sources, for `scripts/protoc` (named
//! by PROTOC in `.cargo/config.toml`) to hand to the Spark Connect client's
//! build script, so that building needs no system protoc.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(path) = protoc_bin_vendored::protoc_bin_path() {
        println!("cargo:rustc-env=CUTOVER_VENDORED_PROTOC={}", path.display());
    }
}
