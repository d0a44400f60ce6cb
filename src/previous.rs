//! The image a build is compared with, and what every image records for the build after it.
//!
//! Every image nixfront makes carries its closure in its config, under [`CLOSURE_FIELD`]: the
//! results and each store path with its NAR size, nothing more (a few dozen bytes a path). The
//! next build reads it back from the image it can name, whatever cache the job uses: an image
//! among `--cache-from` (inline cache, whether asked for by `--cache-to type=inline` or
//! `BUILDKIT_INLINE_CACHE=1`), or the image `NIX_PREVIOUS_IMAGE` names (with a `type=registry`,
//! `type=gha` or `type=local` cache, which hold no image). [`crate::summary`] says what changed
//! against it.
//!
//! This module owns the field, its format and size, and which of the named images a build
//! compares with ([`Previous::choose`]). A record is taken from an image anyone can make: one
//! that does not parse, or names something that is no store path, is ignored (the build then
//! reports no change); it decides nothing but the report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{info, warn};

use crate::closure::{Closure, StorePath};
use crate::limits::MAX_CLOSURE_RECORD_BYTES;

/// The image config's top-level field that holds the closure record.
pub const CLOSURE_FIELD: &str = "org.nixfront.closure.v1";

/// The store directory every recorded path is in.
const STORE_DIR: &str = "/nix/store/";

/// What an image's config records of its closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    results: Vec<String>,
    /// Each store path's NAR size.
    nar_sizes: BTreeMap<String, u64>,
}

/// The config field's value for `closure`, or `None` when it would exceed
/// [`MAX_CLOSURE_RECORD_BYTES`] (the image then goes without, and the next build reports no
/// change).
pub fn record(closure: &Closure) -> Option<Value> {
    let record = Record {
        results: closure.results.clone(),
        nar_sizes: closure.paths.iter().map(|p| (p.path.clone(), p.nar_size)).collect(),
    };
    let value = serde_json::to_value(&record).expect("a record serializes");
    let size = value.to_string().len();
    if size > MAX_CLOSURE_RECORD_BYTES {
        info!(size, "the closure record exceeds MAX_CLOSURE_RECORD_BYTES; the image config goes without it");
        return None;
    }
    Some(value)
}

/// The closure an image config records, if it records one that reads.
fn read(source: &str, config: &[u8]) -> Option<Closure> {
    if config.len() > crate::limits::MAX_MANIFEST_BYTES {
        return None;
    }
    let field = serde_json::from_slice::<Value>(config).ok()?.get_mut(CLOSURE_FIELD).map(Value::take)?;
    let record: Record = serde_json::from_value(field)
        .inspect_err(|e| warn!("ignoring the closure record of {source}: {e}"))
        .ok()?;
    let store_path = |p: &String| {
        p.strip_prefix(STORE_DIR)
            .is_some_and(|base| crate::names::check(crate::names::Kind::Program, base).is_ok())
    };
    if let Some(bad) = record.nar_sizes.keys().chain(&record.results).find(|p| !store_path(p)) {
        warn!("ignoring the closure record of {source}: {bad:?} is no store path");
        return None;
    }
    let paths = record
        .nar_sizes
        .into_iter()
        .map(|(path, nar_size)| StorePath {
            path,
            nar_size,
            nar_hash: None,
            references: Vec::new(),
            deriver: None,
        })
        .collect();
    Some(Closure { results: record.results, paths })
}

/// The image a platform's build is compared with: its reference and the closure it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous {
    pub image: String,
    pub closure: Closure,
}

impl Previous {
    /// The first of `configs` (image reference, config), in the order given, that records a
    /// closure: `NIX_PREVIOUS_IMAGE` first, then the `--cache-from` images.
    pub fn choose<'a>(configs: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Previous> {
        configs.into_iter().find_map(|(image, config)| {
            let closure = read(image, config)?;
            info!(paths = closure.paths.len(), "comparing with the closure {image} records");
            Some(Previous { image: image.to_string(), closure })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn closure(names: &[(&str, u64)]) -> Closure {
        let mut paths: Vec<StorePath> = names
            .iter()
            .map(|(name, size)| StorePath {
                path: format!("{STORE_DIR}{}-{name}", "a".repeat(32)),
                nar_size: *size,
                nar_hash: Some("sha256:x".into()),
                references: vec!["/nix/store/other".into()],
                deriver: Some("/nix/store/d.drv".into()),
            })
            .collect();
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        Closure { results: vec![paths[0].path.clone()], paths }
    }

    fn config_with(record: Value) -> Vec<u8> {
        json!({ "config": {}, CLOSURE_FIELD: record }).to_string().into_bytes()
    }

    #[test]
    fn a_record_holds_paths_and_sizes_and_comes_back() {
        let c = closure(&[("app-1.0", 10), ("lib-2.0", 2 << 20)]);
        let value = record(&c).unwrap();
        assert_eq!(value["narSizes"].as_object().unwrap().len(), 2);
        assert!(!value.to_string().contains("sha256:x"), "hashes, references and derivers are left out");
        let config = config_with(value);
        let back = Previous::choose([("reg/app:1", config.as_slice())]).unwrap();
        assert_eq!(back.image, "reg/app:1");
        assert_eq!(back.closure.results, c.results);
        let sized: Vec<(&str, u64)> =
            back.closure.paths.iter().map(|p| (p.path.as_str(), p.nar_size)).collect();
        let want: Vec<(&str, u64)> = c.paths.iter().map(|p| (p.path.as_str(), p.nar_size)).collect();
        assert_eq!(sized, want);
    }

    #[test]
    fn the_first_image_that_records_a_closure_is_chosen() {
        let (a, b) = (closure(&[("a-1", 1)]), closure(&[("b-1", 1)]));
        let none = br#"{"config":{}}"#.to_vec();
        let (ca, cb) = (config_with(record(&a).unwrap()), config_with(record(&b).unwrap()));
        let chosen = Previous::choose([("x", none.as_slice()), ("a", ca.as_slice()), ("b", cb.as_slice())]);
        assert_eq!(chosen.map(|p| p.image), Some("a".to_string()));
        assert_eq!(Previous::choose([("x", none.as_slice())]), None);
    }

    #[test]
    fn a_record_that_names_no_store_path_is_ignored() {
        for bad in ["/etc/passwd", "/nix/store/../../etc", "/nix/store/a\u{1b}[2Jb", "/nix/store/"] {
            let config = config_with(json!({ "results": [], "narSizes": { bad: 1 } }));
            assert_eq!(Previous::choose([("x", config.as_slice())]), None, "{bad:?}");
        }
        let results = config_with(json!({ "results": ["../x"], "narSizes": {} }));
        assert_eq!(Previous::choose([("x", results.as_slice())]), None);
        for junk in [json!("text"), json!({ "results": 1 }), json!({ "narSizes": { "/nix/store/a-b": -1 } })]
        {
            assert_eq!(Previous::choose([("x", config_with(junk).as_slice())]), None);
        }
    }

    #[test]
    fn a_record_too_big_is_left_out() {
        let many: Vec<(String, u64)> = (0..20_000).map(|i| (format!("p{i}"), 1)).collect();
        let names: Vec<(&str, u64)> = many.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        assert!(record(&closure(&names)).is_none());
    }
}
