//! The runtime's source, embedded in the CLI so that an installed `cargo-lprobe` always links
//! the runtime it was built with: it is written next to the rewritten workspace at each build.

/// (file name under `src/`, content) of every runtime source file.
pub const FILES: &[(&str, &str)] = &[
    ("args.rs", include_str!("../../probe-runtime/src/args.rs")),
    (
        "capture.rs",
        include_str!("../../probe-runtime/src/capture.rs"),
    ),
    (
        "control.rs",
        include_str!("../../probe-runtime/src/control.rs"),
    ),
    ("expr.rs", include_str!("../../probe-runtime/src/expr.rs")),
    ("json.rs", include_str!("../../probe-runtime/src/json.rs")),
    ("lib.rs", include_str!("../../probe-runtime/src/lib.rs")),
    (
        "location.rs",
        include_str!("../../probe-runtime/src/location.rs"),
    ),
    (
        "panics.rs",
        include_str!("../../probe-runtime/src/panics.rs"),
    ),
    ("path.rs", include_str!("../../probe-runtime/src/path.rs")),
    ("probe.rs", include_str!("../../probe-runtime/src/probe.rs")),
    ("regex.rs", include_str!("../../probe-runtime/src/regex.rs")),
    (
        "registry.rs",
        include_str!("../../probe-runtime/src/registry.rs"),
    ),
    ("sink.rs", include_str!("../../probe-runtime/src/sink.rs")),
    ("stack.rs", include_str!("../../probe-runtime/src/stack.rs")),
    (
        "template.rs",
        include_str!("../../probe-runtime/src/template.rs"),
    ),
    ("time.rs", include_str!("../../probe-runtime/src/time.rs")),
    (
        "timing.rs",
        include_str!("../../probe-runtime/src/timing.rs"),
    ),
    ("value.rs", include_str!("../../probe-runtime/src/value.rs")),
];

/// The runtime's package name in the rewritten workspace; its library is `probe_runtime`.
pub const PACKAGE: &str = "lprobe-runtime";

/// The runtime crate's manifest.
pub fn manifest() -> String {
    format!(
        "[package]\nname = \"{PACKAGE}\"\nversion = \"{}\"\nedition = \"2021\"\npublish = false\n\n[lib]\nname = \"probe_runtime\"\npath = \"src/lib.rs\"\n\n[workspace]\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_runtime_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../probe-runtime/src");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .expect("runtime source dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".rs"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = super::FILES.iter().map(|f| f.0).collect();
        assert_eq!(
            on_disk, embedded,
            "add new runtime files to runtime_src::FILES"
        );
    }
}
