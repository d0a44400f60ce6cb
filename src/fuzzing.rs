//! The properties the fuzz targets check (fuzz/fuzz_targets) and the regression test replays
//! (tests/regressions.rs, every input under fuzz/regressions): one body per target, so a
//! crash found by fuzzing is replayed by `cargo test` exactly as the fuzzer ran it.
#![doc(hidden)]

use std::collections::BTreeMap;

/// The Nixfile parser and its expansion: any bytes, with build args taken from the first
/// line (`NAME=value` pairs split by `;`), give a typed file or an error naming the file and
/// lines inside it; warnings point inside it too.
pub fn nixfile(data: &[u8]) {
    let (args_line, file) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let args: BTreeMap<String, String> = String::from_utf8_lossy(args_line)
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let parsed = crate::nixfile::parse("Dockerfile", file, &args);
    let lines = file.iter().filter(|&&b| b == b'\n').count() + 1;
    if let Err(e) = &parsed.result {
        assert_eq!(e.file, "Dockerfile");
        assert!(
            e.lines.start >= 1 && e.lines.start <= e.lines.end && e.lines.end <= lines,
            "{e:?} in {lines} lines"
        );
        assert!(e.to_string().starts_with(&format!("Dockerfile:{}: ", e.lines.start)));
    }
    for w in &parsed.warnings {
        assert!(w.lines.start >= 1 && w.lines.end <= lines, "{w:?} in {lines} lines");
    }
}

/// Frontend option parsing: any `key=value` lines give options or an error.
pub fn options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::options::Options::from_pairs(text.split('\n').map(str::to_string));
}

/// The build manifest reader: any bytes give a closure whose references all lie inside it,
/// which groups into layers and an SBOM, or an error.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = crate::closure::parse_manifest(data) {
        let closure = manifest.closure;
        let _ = closure.main_result();
        for p in &closure.paths {
            for r in &p.references {
                assert!(closure.paths.iter().any(|q| &q.path == r), "{r} is outside the closure");
            }
        }
        let _ = crate::layers::grouping::group(&closure, 5);
        let _ = crate::sbom::document(&closure, ".", "1970-01-01T00:00:00Z", None);
    }
}

/// A fuzz target's check.
pub type Check = fn(&[u8]);

/// The targets by name, for the regression test.
pub const TARGETS: &[(&str, Check)] = &[("nixfile", nixfile), ("options", options), ("manifest", manifest)];
