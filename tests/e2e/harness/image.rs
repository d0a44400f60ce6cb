//! Looking inside built images: `docker save` layers and the store paths each holds, the
//! image's /nix/store, and the in-toto attestations attached to it.

use std::process::Command;

use serde_json::Value;

use super::engine::Engine;
use super::fixture::tempdir;

/// An image saved and unpacked into a temporary directory, removed when dropped.
struct Saved {
    dir: std::path::PathBuf,
}

impl Saved {
    fn new(engine: Engine, tag: &str) -> Self {
        let dir = tempdir(&format!("save-{}", engine.name()));
        let archive = dir.join("image.tar");
        std::fs::write(&archive, engine.docker_bytes(&["save", tag])).unwrap();
        let untar = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&dir).output().unwrap();
        assert!(untar.status.success());
        Saved { dir }
    }

    fn json(&self, path: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join(path)).unwrap()).unwrap()
    }

    fn blob(&self, digest: &str) -> Value {
        self.json(&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")))
    }
}

impl Drop for Saved {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// For each layer of `docker save`, bottom to top: its size in the saved archive and the
/// store paths (`nix/store/<entry>`) it has files of.
pub fn saved_layers(engine: Engine, tag: &str) -> Vec<(u64, Vec<String>)> {
    let saved = Saved::new(engine, tag);
    let manifest = saved.json("manifest.json");
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let file = saved.dir.join(l.as_str().unwrap());
            let size = std::fs::metadata(&file).unwrap().len();
            let list = Command::new("tar").arg("-tf").arg(&file).output().unwrap();
            let mut entries = store_entries_of(&String::from_utf8_lossy(&list.stdout));
            entries.sort();
            entries.dedup();
            (size, entries)
        })
        .collect()
}

/// The image's config as stored, fields Docker does not show included (`docker save`).
pub fn raw_config(engine: Engine, tag: &str) -> Value {
    let saved = Saved::new(engine, tag);
    let manifest = saved.json("manifest.json");
    saved.json(manifest[0]["Config"].as_str().unwrap())
}

/// Loads, as `new_tag`, image `tag` with its config changed by `edit`: an image a project could
/// make itself and import as a cache source. Written in the classic `docker save` format
/// (manifest.json naming the config and the layer tars), which both engines load.
pub fn load_with_config(engine: Engine, tag: &str, new_tag: &str, edit: impl FnOnce(&mut Value)) {
    use sha2::Digest;
    let saved = Saved::new(engine, tag);
    let mut manifest = saved.json("manifest.json");
    let mut config = saved.json(manifest[0]["Config"].as_str().unwrap());
    edit(&mut config);
    let bytes = serde_json::to_vec(&config).unwrap();
    let name = format!("{:x}.json", sha2::Sha256::digest(&bytes));
    std::fs::write(saved.dir.join(&name), &bytes).unwrap();
    manifest[0]["Config"] = Value::String(name);
    manifest[0]["RepoTags"] = serde_json::json!([new_tag]);
    std::fs::write(saved.dir.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    for oci in ["index.json", "oci-layout", "image.tar"] {
        let _ = std::fs::remove_file(saved.dir.join(oci));
    }
    let archive = saved.dir.join("forged.tar");
    let tar = Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("--exclude=forged.tar")
        .arg("-C")
        .arg(&saved.dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
    let load = engine.command(&["load", "-i", &engine_path(engine, &archive)]).output().unwrap();
    assert!(load.status.success(), "docker load: {}", String::from_utf8_lossy(&load.stderr));
}

/// A host path as `engine` sees it (d26 sees its chroot).
fn engine_path(engine: Engine, host: &std::path::Path) -> String {
    match engine {
        Engine::D20 => host.to_string_lossy().into_owned(),
        Engine::D26 => {
            let inner = format!("/tmp/{}", host.file_name().unwrap().to_string_lossy());
            std::fs::copy(host, super::engine::trixie().join(inner.trim_start_matches('/'))).unwrap();
            inner
        }
    }
}

/// The top-level entries of the image's layers (what the image itself puts at its root).
pub fn root_entries(engine: Engine, tag: &str) -> Vec<String> {
    let saved = Saved::new(engine, tag);
    let manifest = saved.json("manifest.json");
    let mut entries: Vec<String> = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            let list =
                Command::new("tar").arg("-tf").arg(saved.dir.join(l.as_str().unwrap())).output().unwrap();
            String::from_utf8_lossy(&list.stdout)
                .lines()
                .filter_map(|line| line.trim_start_matches("./").split('/').next().map(str::to_string))
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    entries.sort();
    entries.dedup();
    entries
}

/// Everything `docker save` writes for an image: configs, manifests and layer tars.
pub fn saved_bytes(engine: Engine, tag: &str) -> Vec<u8> {
    engine.docker_bytes(&["save", tag])
}

/// The in-toto statements attached to an image (dockerd 26's `docker save`), as
/// `(predicate type, statement)`.
pub fn attestations(engine: Engine, tag: &str) -> Vec<(String, Value)> {
    let saved = Saved::new(engine, tag);
    let mut found = Vec::new();
    let mut stack = vec![saved.json("index.json")];
    while let Some(node) = stack.pop() {
        for m in node["manifests"].as_array().into_iter().flatten() {
            let child = saved.blob(m["digest"].as_str().unwrap());
            if m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
                for layer in child["layers"].as_array().into_iter().flatten() {
                    let statement = saved.blob(layer["digest"].as_str().unwrap());
                    found.push((statement["predicateType"].as_str().unwrap_or("").to_string(), statement));
                }
            } else if child.get("manifests").is_some() {
                stack.push(child);
            }
        }
    }
    found
}

/// The entries directly under /nix/store in the image's filesystem, and every path of it.
pub fn filesystem(engine: Engine, tag: &str) -> (Vec<String>, Vec<String>) {
    let create = engine.docker(&["create", tag, "x"]);
    assert!(create.ok, "create: {}", create.all());
    let id = create.stdout.trim().to_string();
    let export = engine.docker_bytes(&["export", &id]);
    let _ = engine.docker(&["rm", &id]);
    let listing = tar_listing(&export);
    let mut entries = store_entries_of(&listing);
    entries.sort();
    entries.dedup();
    let paths =
        listing.lines().map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string()).collect();
    (entries, paths)
}

/// The entries directly under /nix/store in the image's filesystem.
pub fn store_entries(engine: Engine, tag: &str) -> Vec<String> {
    filesystem(engine, tag).0
}

/// The listing of a tar archive (through a file: a pipe both ways would deadlock on big ones).
fn tar_listing(tar: &[u8]) -> String {
    let dir = tempdir("listing");
    let file = dir.join("archive.tar");
    std::fs::write(&file, tar).unwrap();
    let out = Command::new("tar").arg("-tf").arg(&file).output().expect("tar lists");
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `<entry>` of every `nix/store/<entry>...` line of a tar listing.
fn store_entries_of(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(|l| l.trim_start_matches("./"))
        .filter_map(|l| l.strip_prefix("nix/store/"))
        .filter_map(|rest| rest.split('/').next())
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}
