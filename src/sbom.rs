//! A Nix-aware SBOM: the closure as an SPDX 2.3 document.
//!
//! The runtime closure is an exact bill of materials: one package per store path, with the
//! name and version Nix's own `parseDrvName` rule reads from it, its NAR hash, and a
//! DEPENDS_ON relationship for every reference. No file scanner guesses anything.

use serde_json::{Value, json};

use crate::closure::{Closure, StorePath};

/// The in-toto predicate type BuildKit recognises as an SBOM.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// The file name of the document, in the attestation and in the image (`NIX_SBOM_FILE`).
pub const FILE_NAME: &str = "sbom.spdx.json";

/// The document as the one file of a state: what an SBOM attestation points at.
pub fn attestation_file(document: &[u8], paths: usize) -> crate::llb::State {
    crate::llb::file::FileOp::on(&crate::llb::State::scratch())
        .mkfile(&format!("/{FILE_NAME}"), 0o444, document, crate::plan::output::FIXED_TIME_NS)
        .build(&format!("[nixfront] SBOM of {paths} store paths"))
}

/// Name and version of a store path's name part, as `builtins.parseDrvName`: the version
/// starts at the first `-` followed by a non-letter.
pub fn name_and_version(base_name: &str) -> (&str, &str) {
    let name = crate::closure::name_part(base_name);
    let bytes = name.as_bytes();
    for i in 0..bytes.len().saturating_sub(1) {
        if bytes[i] == b'-' && !bytes[i + 1].is_ascii_alphabetic() {
            return (&name[..i], &name[i + 1..]);
        }
    }
    (name, "")
}

/// A NAR hash (`sha256:<nix base-32>` or SRI `sha256-<base64>`) as lowercase hex.
pub fn nar_hash_hex(hash: &str) -> Option<String> {
    let bytes = if let Some(b32) = hash.strip_prefix("sha256:") {
        from_nix_base32(b32, 32)?
    } else if let Some(b64) = hash.strip_prefix("sha256-") {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(b64).ok()?
    } else {
        return None;
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (bytes.len() == 32).then(|| {
        bytes
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)] as char, HEX[usize::from(b & 15)] as char])
            .collect()
    })
}

/// Nix's base-32 (its own alphabet, least significant digit last) to `size` bytes, as Nix's
/// `parseHash32` reads it; `None` for a wrong length or character, or bits beyond `size`.
/// (The nix-base32 crate panics on some 52-character strings; fuzzing found it.)
fn from_nix_base32(text: &str, size: usize) -> Option<Vec<u8>> {
    if text.len() != (size * 8).div_ceil(5) {
        return None;
    }
    let mut bytes = vec![0u8; size];
    for (n, c) in text.bytes().rev().enumerate() {
        let digit = u16::from(crate::closure::base32_digit(c)?);
        let (i, j) = (n * 5 / 8, n * 5 % 8);
        let shifted = digit << j;
        bytes[i] |= shifted as u8;
        let carry = (shifted >> 8) as u8;
        if i + 1 < size {
            bytes[i + 1] |= carry;
        } else if carry != 0 {
            return None;
        }
    }
    Some(bytes)
}

fn spdx_id(path: &StorePath) -> String {
    // SPDX ids allow letters, digits, `.` and `-`; the store hash makes it unique.
    let clean: String = path
        .base_name()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect();
    format!("SPDXRef-Package-{clean}")
}

/// The SPDX 2.3 JSON document for `closure`, built from flake reference `flake`, dated
/// `created` (RFC 3339).
pub fn document(closure: &Closure, flake: &str, created: &str, base: Option<&str>) -> Value {
    let packages: Vec<Value> = closure
        .paths
        .iter()
        .map(|p| {
            let (name, version) = name_and_version(p.base_name());
            let mut package = json!({
                "SPDXID": spdx_id(p),
                "name": name,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "supplier": "NOASSERTION",
                "sourceInfo": format!("Nix store path {}", p.path),
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": purl(name, version, p),
                }],
            });
            if !version.is_empty() {
                package["versionInfo"] = json!(version);
            }
            if let Some(hex) = p.nar_hash.as_deref().and_then(nar_hash_hex) {
                package["checksums"] = json!([{ "algorithm": "SHA256", "checksumValue": hex }]);
                package["comment"] = json!("The SHA256 checksum is of the store path's NAR serialisation");
            }
            package
        })
        .collect();
    // Each path's SPDX id, made once: the relationships name each path many times.
    let ids: Vec<String> = closure.paths.iter().map(spdx_id).collect();
    let id_of = |path: &str| {
        closure.paths.binary_search_by(|p| p.path.as_str().cmp(path)).ok().map(|i| ids[i].as_str())
    };
    let mut relationships: Vec<Value> = closure
        .results
        .iter()
        .filter_map(|r| id_of(r))
        .map(|id| {
            json!({ "spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": id })
        })
        .collect();
    for (p, id) in closure.paths.iter().zip(&ids) {
        for r in p.references.iter().filter_map(|r| id_of(r)) {
            relationships.push(json!({
                "spdxElementId": id,
                "relationshipType": "DEPENDS_ON",
                "relatedSpdxElement": r,
            }));
        }
    }
    let main = closure.main_result();
    let namespace_key = crate::closure::base_name(main);
    let comment = match base {
        None => "The runtime closure of the built Nix package: every store path in the image".to_string(),
        Some(base) => format!(
            "The runtime closure of the built Nix package: every store path nixfront put in the image. \
             The image is built on the base image {base}, whose own contents are not listed here"
        ),
    };
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("nixfront {flake}"),
        "documentNamespace": format!("https://nixfront.invalid/spdx/{namespace_key}"),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: nixfront-{}", env!("CARGO_PKG_VERSION"))],
            "comment": comment,
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// `pkg:nix/<name>@<version>?storepath=...`: Nix has no registered purl type; this names the
/// store path, which identifies the package exactly.
fn purl(name: &str, version: &str, path: &StorePath) -> String {
    let version = if version.is_empty() { String::new() } else { format!("@{version}") };
    format!("pkg:nix/{name}{version}?storepath={}", path.path.replace('/', "%2F"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closure::parse_manifest;

    const APP: &str = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-hello-0.1";
    const DEP: &str = "/nix/store/5cm7mjwzb4sn2g0p820008k22m69xsrv-python3.11-requests-2.31.0";
    const TOOLS: &str = "/nix/store/8digwrcy1qxcqaiqg16dsf0z16ns0s8n-tools";

    #[test]
    fn names_and_versions_follow_parse_drv_name() {
        fn n(s: &str) -> (&str, &str) {
            name_and_version(&s[11..])
        }
        assert_eq!(n(APP), ("hello", "0.1"));
        assert_eq!(n(DEP), ("python3.11-requests", "2.31.0"));
        assert_eq!(n(TOOLS), ("tools", ""));
        assert_eq!(name_and_version("0123456789abcdfghijklmnpqrsvwxyz-glibc-2.38-27"), ("glibc", "2.38-27"));
    }

    #[test]
    fn nar_hashes_decode_from_both_encodings() {
        // The same hash in Nix base-32 (Nix 2.8's path-info) and SRI (recent Nix).
        let b32 = "sha256:1ri1d3vln3lkn7aqjpb23crmppm7k5lh6b41vnxi3vwnjkanvcrr";
        let hex = nar_hash_hex(b32).unwrap();
        assert_eq!(hex.len(), 64);
        let bytes: Vec<u8> =
            (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
        use base64::Engine;
        let sri = format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
        assert_eq!(nar_hash_hex(&sri).unwrap(), hex);
        assert_eq!(nar_hash_hex("md5:abc"), None);
        // Found by fuzzing: the nix-base32 crate panicked on this one; it is 52 valid
        // characters whose top bits overflow 32 bytes.
        assert_eq!(nar_hash_hex("sha256:1b8m03r63zqh5njf7l5wnldhh7c134ip5vpj0850ymkq1iyzi2cy5s"), None);
        assert_eq!(nar_hash_hex("sha256:short"), None);
        // Known values, from `nix hash to-base32 --type sha256 <hex>`.
        let known = [
            (
                "094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic",
                "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            ),
            (
                "0080000000000000000000000000000000000000000000000000",
                "0000000000000000000000000000000000000000000000000000000000000001",
            ),
            (
                "000000000000000000000000000000000000000000000000007z",
                "ff00000000000000000000000000000000000000000000000000000000000000",
            ),
        ];
        for (b32, hex) in known {
            assert_eq!(nar_hash_hex(&format!("sha256:{b32}")).as_deref(), Some(hex), "{b32}");
        }
    }

    #[test]
    fn the_document_lists_every_path_with_its_dependencies() {
        let manifest = format!(
            r#"{{"results":["{APP}"],"pathInfo":[
            {{"path":"{DEP}","narHash":"sha256:1ri1d3vln3lkn7aqjpb23crmppm7k5lh6b41vnxi3vwnjkanvcrr","narSize":5,"references":["{TOOLS}"]}},
            {{"path":"{TOOLS}","narSize":2,"references":[]}},
            {{"path":"{APP}","narSize":1,"references":["{DEP}","{TOOLS}"]}}]}}"#
        );
        let closure = parse_manifest(manifest.as_bytes()).unwrap().closure;
        let doc = document(&closure, ".#hello", "1970-01-01T00:00:00Z", None);
        let on_base =
            document(&closure, ".#hello", "1970-01-01T00:00:00Z", Some("docker.io/library/debian@sha256:1"));
        let comment = on_base["creationInfo"]["comment"].as_str().unwrap();
        assert!(comment.contains("debian@sha256:1, whose own contents are not listed"), "{comment}");
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        let packages = doc["packages"].as_array().unwrap();
        assert_eq!(packages.len(), 3);
        let requests = packages.iter().find(|p| p["name"] == "python3.11-requests").unwrap();
        assert_eq!(requests["versionInfo"], "2.31.0");
        assert_eq!(requests["checksums"][0]["algorithm"], "SHA256");
        assert!(requests["sourceInfo"].as_str().unwrap().contains(DEP));
        let rel = |kind: &str| {
            doc["relationships"].as_array().unwrap().iter().filter(|r| r["relationshipType"] == kind).count()
        };
        assert_eq!(rel("DESCRIBES"), 1);
        assert_eq!(rel("DEPENDS_ON"), 3, "app->dep, app->tools, dep->tools");
        assert!(packages.iter().all(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-Package-")));
    }
}
