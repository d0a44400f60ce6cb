//! arm64 from this x86_64 machine: images of a flake's aarch64-linux package built through
//! binfmt emulation (and the explanation without it), a two-platform index, the arm64
//! frontend answering a whole build under emulation, and the release: one two-platform index
//! in a registry, pinned by digest.
//!
//! binfmt_misc belongs to the host kernel: the tests that switch emulation on and off take
//! [`EMULATION`] and put back what they found.

use std::sync::Mutex;

use crate::harness::{Engine, Fixture, assert_contains, assert_points_at, repo, script, script_output, tag};

/// Held while a test relies on binfmt's state or changes it.
static EMULATION: Mutex<()> = Mutex::new(());

/// aarch64 emulation on or off for as long as the guard lives; then as it was.
struct Emulation {
    before: String,
    _held: std::sync::MutexGuard<'static, ()>,
}

impl Emulation {
    fn set(on: bool) -> Self {
        let held = EMULATION.lock().unwrap_or_else(|e| e.into_inner());
        let emulation = Emulation { before: binfmt("status"), _held: held };
        emulation.switch(on);
        emulation
    }

    fn switch(&self, on: bool) {
        let wanted = if on { "on" } else { "off" };
        assert_eq!(binfmt(wanted), wanted, "scripts/arm64.sh binfmt");
    }
}

impl Drop for Emulation {
    fn drop(&mut self) {
        binfmt(if self.before == "on" { "on" } else { "off" });
    }
}

fn binfmt(what: &str) -> String {
    let run = script("arm64.sh", &["binfmt", what]);
    assert!(run.ok, "scripts/arm64.sh binfmt {what}: {}", run.all());
    run.stdout.trim().to_string()
}

/// The arm64 fixture, with Debian's static arm64 busybox beside the host's.
fn arm64_fixture(name: &str, dockerfile: &str) -> Fixture {
    let run = script("arm64.sh", &["busybox"]);
    assert!(run.ok, "scripts/arm64.sh busybox: {}", run.all());
    let fx = Fixture::from_dir(name, "arm64", dockerfile);
    let busybox =
        std::fs::read(crate::harness::engine::ci_root().join("arm64/busybox")).expect("the arm64 busybox");
    fx.write_bytes("tools-aarch64/busybox", &busybox);
    std::fs::set_permissions(
        fx.host_path().join("tools-aarch64/busybox"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    fx
}

/// `docker run --rm --platform PLATFORM TAG`'s output.
fn run_as(engine: Engine, platform: &str, t: &str) -> String {
    let out = engine.docker(&["run", "--rm", "--platform", platform, t]);
    assert!(out.ok, "{engine:?} run {platform} {t}: {}", out.all());
    out.stdout
}

on_engines! {
    builders(official);
    fn arm64_images_build_through_emulation_and_say_why_not_without(engine) {
        let _engines = engine.shared();
        let fx = arm64_fixture("arm64", "# syntax=org/nixfront\nFLAKE .#default\n");
        let t = tag("arm64", engine);

        // No emulation: refused before Nix builds anything, with the system and the ways out,
        // at the FLAKE line.
        let emulation = Emulation::set(false);
        let refused = engine.build(&fx, &t, &["--platform", "linux/arm64"]);
        assert!(!refused.ok, "{engine:?}: built aarch64 code without emulation:\n{}", refused.all());
        assert_contains(
            &refused.all(),
            &["cannot run aarch64-linux", "x86_64-linux", "binfmt_misc", "remote Nix builder", "binary cache"],
        );
        assert_points_at(engine, &refused.all(), "FLAKE .#default");
        assert!(!engine.image_exists(&t), "{engine:?}: a failed build left an image");

        // With qemu-user-static in binfmt_misc: no flag needed, and the image runs (emulated).
        emulation.switch(true);
        let built = engine.build(&fx, &t, &["--platform", "linux/arm64"]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        assert_eq!(engine.inspect(&t)["Architecture"], "arm64", "{engine:?}");
        assert_eq!(
            run_as(engine, "linux/arm64", &t),
            "built for aarch64-linux on aarch64, running on aarch64\n",
            "{engine:?}"
        );

        let both = engine.build(&fx, &t, &["--platform", "linux/amd64,linux/arm64"]);
        match engine {
            // Docker 20.10 refuses a platform list (see conventions::platforms_map_to_nix_systems).
            Engine::D20 => assert!(!both.ok, "BuildKit 0.8 cannot export two platforms"),
            Engine::D26 => {
                assert!(both.ok, "{}", both.all());
                assert_contains(&both.all(), &["[linux/arm64 nixfront 5/6] nix build .#default (aarch64-linux)"]);
                assert_eq!(run_as(engine, "linux/amd64", &t), "built for x86_64-linux on x86_64, running on x86_64\n");
                assert_eq!(
                    run_as(engine, "linux/arm64", &t),
                    "built for aarch64-linux on aarch64, running on aarch64\n"
                );
                let index = index_of(engine, &t);
                assert_eq!(platforms_in(&index), ["linux/amd64", "linux/arm64"], "{index}");
            }
        }
    }
}

/// The OCI index of a local image on d26 (containerd's image store), from `docker save`.
fn index_of(engine: Engine, t: &str) -> serde_json::Value {
    let tar = engine.docker_bytes(&["save", t]);
    let dir = crate::harness::fixture::tempdir("save");
    std::fs::write(dir.join("image.tar"), tar).unwrap();
    let untar =
        std::process::Command::new("tar").arg("-xf").arg(dir.join("image.tar")).current_dir(&dir).status();
    assert!(untar.unwrap().success());
    let top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).expect("index.json");
    // index.json names the image's own index (or manifest) by digest.
    let digest = top["manifests"][0]["digest"].as_str().expect("a digest").to_string();
    let blob = dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
    let index = serde_json::from_slice(&std::fs::read(blob).unwrap()).expect("the index");
    std::fs::remove_dir_all(&dir).unwrap();
    index
}

/// The `os/architecture` of every image manifest an index lists (attestations left out).
fn platforms_in(index: &serde_json::Value) -> Vec<String> {
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("an index")
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"].is_null())
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    platforms
}

/// The version this checkout releases.
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The staged arm64 frontend binary (scripts/arm64.sh frontend), built when missing.
fn arm64_frontend() -> std::path::PathBuf {
    let path = repo().join("target/frontend/linux-arm64/nixfront");
    if !path.exists() {
        let run = script("arm64.sh", &["frontend"]);
        assert!(run.ok, "scripts/arm64.sh frontend: {}", run.all());
    }
    path
}

/// Runs an aarch64 `program --version` under qemu-user, as a person would try it.
fn version_under_qemu(program: &std::path::Path) -> String {
    let bytes = std::fs::read(program).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "an ELF executable");
    assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 0xb7, "for aarch64 (EM_AARCH64)");
    let out = std::process::Command::new("qemu-aarch64-static").arg(program).arg("--version").output();
    let out = out.expect("qemu-aarch64-static (scripts/arm64.sh binfmt on installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn the_arm64_frontend_runs_a_whole_build_under_emulation() {
    let d26 = Engine::D26;
    let _engines = d26.shared();
    let _emulation = Emulation::set(true);
    let binary = arm64_frontend();
    assert_eq!(version_under_qemu(&binary), format!("nixfront {}\n", version()));

    // BuildKit runs a frontend image of its own platform: an image whose config says amd64
    // and whose binary is aarch64 makes the emulated binary answer the whole gateway session.
    let image = Fixture::from_dir(
        "arm64-frontend",
        "arm64",
        "FROM scratch\nCOPY nixfront /nixfront\nENTRYPOINT [\"/nixfront\"]\n",
    );
    std::fs::copy(&binary, image.host_path().join("nixfront")).unwrap();
    let frontend = "nixfront-e2e/frontend-arm64:emulated";
    let made = d26.build(&image, frontend, &["--provenance=false"]);
    assert!(made.ok, "{}", made.all());

    let by_amd64 = Fixture::new("by-amd64", "# syntax=org/nixfront\nFLAKE .#hello\nCMD [\"x\"]\n");
    let by_arm64 = Fixture::new("by-arm64", &format!("# syntax={frontend}\nFLAKE .#hello\nCMD [\"x\"]\n"));
    by_arm64.write("nonce", &std::fs::read_to_string(by_amd64.host_path().join("nonce")).unwrap());
    let (amd64_id, _) = d26.build_id(&by_amd64, "by-amd64", &[]);
    let (arm64_id, log) = d26.build_id(&by_arm64, "by-arm64", &[]);
    assert_eq!(arm64_id, amd64_id, "the two frontends build different images:\n{log}");
    let out = d26.docker(&["run", "--rm", &tag("by-arm64", d26)]);
    assert_eq!(out.stdout, "hello from the greeting dependency\nargs:x\n", "{}", out.all());
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn a_release_is_one_two_platform_index_pinned_by_digest() {
    let d26 = Engine::D26;
    let _engines = d26.shared();
    let _emulation = Emulation::set(true);
    arm64_frontend();
    let _registry = crate::harness::Registry::start();
    let released = script("release.sh", &["localhost:5000/nixfront", "d26"]);
    assert!(released.ok, "scripts/release.sh: {}", released.all());
    let pinned = released.stdout.trim().to_string();
    let (named, digest) = pinned.split_once('@').expect("release.sh prints NAME:VERSION@DIGEST");
    assert_eq!(named, format!("localhost:5000/nixfront:{}", version()));

    // Every tag names the one index.
    let (major, minor) = {
        let parts: Vec<&str> = version().split('.').collect();
        (parts[0].to_string(), format!("{}.{}", parts[0], parts[1]))
    };
    let tags: serde_json::Value = serde_json::from_str(&get("/v2/nixfront/tags/list", &[]).stdout).unwrap();
    let mut listed: Vec<String> =
        tags["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect();
    listed.sort();
    let mut wanted = vec![version().to_string(), minor, major, "latest".to_string()];
    wanted.sort();
    assert_eq!(listed, wanted);
    const INDEX: &str = "Accept: application/vnd.oci.image.index.v1+json";
    for t in &wanted {
        let head = get(&format!("/v2/nixfront/manifests/{t}"), &["-I", "-H", INDEX]);
        assert!(head.stdout.contains("application/vnd.oci.image.index.v1+json"), "tag {t}:\n{}", head.stdout);
        let header = head.stdout.to_ascii_lowercase();
        assert!(header.contains(&format!("docker-content-digest: {digest}")), "tag {t}:\n{}", head.stdout);
    }
    let index: serde_json::Value =
        serde_json::from_str(&get(&format!("/v2/nixfront/manifests/{digest}"), &["-H", INDEX]).stdout)
            .unwrap();
    assert_eq!(platforms_in(&index), ["linux/amd64", "linux/arm64"], "{index}");

    // The arm64 image's binary is an aarch64 executable that runs under qemu-user.
    let arm64 =
        index["manifests"].as_array().unwrap().iter().find(|m| m["platform"]["architecture"] == "arm64");
    let manifest_digest = arm64.unwrap()["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_str(
        &get(
            &format!("/v2/nixfront/manifests/{manifest_digest}"),
            &["-H", "Accept: application/vnd.oci.image.manifest.v1+json"],
        )
        .stdout,
    )
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer: the binary on scratch");
    let dir = crate::harness::fixture::tempdir("release");
    let layer = get_bytes(&format!("/v2/nixfront/blobs/{}", layers[0]["digest"].as_str().unwrap()));
    std::fs::write(dir.join("layer.tar.gz"), layer).unwrap();
    let untar = std::process::Command::new("tar")
        .args(["-xzf", "layer.tar.gz", "nixfront"])
        .current_dir(&dir)
        .status();
    assert!(untar.unwrap().success());
    assert_eq!(version_under_qemu(&dir.join("nixfront")), format!("nixfront {}\n", version()));
    std::fs::remove_dir_all(&dir).unwrap();

    // A user pins the release by digest: dockerd 26 pulls it from the registry and builds.
    let fx = Fixture::new("pinned", &format!("# syntax={pinned}\nFLAKE .#hello\n"));
    let built = d26.build(&fx, &tag("pinned", d26), &[]);
    assert!(built.ok, "{}", built.all());
    assert_contains(&built.all(), &[&pinned]);
    let out = d26.docker(&["run", "--rm", &tag("pinned", d26)]);
    assert_eq!(out.stdout, "hello from the greeting dependency\nargs:\n", "{}", out.all());
}

/// `GET PATH` from the registry, which must answer.
fn get(path: &str, curl: &[&str]) -> crate::harness::engine::Run {
    let mut args = vec!["get", path];
    args.extend(curl);
    let run = script("registry.sh", &args);
    assert!(run.ok, "GET {path}: {}", run.all());
    run
}

fn get_bytes(path: &str) -> Vec<u8> {
    let out = script_output("registry.sh", &["get", path, "-L"]);
    assert!(out.status.success(), "GET {path}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}
