//! Builder images with something missing, made from the test builder image with a plain
//! Dockerfile (the engine's own frontend, nothing pulled), once per engine and test run.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::engine::{Engine, nix_image};
use super::fixture::tempdir;

static MADE: Mutex<BTreeSet<(&'static str, &'static str)>> = Mutex::new(BTreeSet::new());

/// The tag of a builder image: the test builder image after `run` (a shell command).
pub fn builder_without(engine: Engine, name: &'static str, run: &str) -> String {
    builder_image(engine, name, &format!("RUN {run}\n"))
}

/// The tag of a builder image: the test builder image with `lines` of Dockerfile after its
/// FROM; the context holds a static `busybox`.
pub fn builder_image(engine: Engine, name: &'static str, lines: &str) -> String {
    let tag = format!("nixfront-e2e/builder-{name}:latest");
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if made.insert((engine.name(), name)) {
        let dir = tempdir(&format!("builder-{name}"));
        std::fs::write(dir.join("Dockerfile"), format!("FROM {}\n{lines}", nix_image())).unwrap();
        std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
        let context = match engine {
            Engine::D20 => dir.to_string_lossy().into_owned(),
            Engine::D26 => {
                // d26 sees only its chroot: build there from a copy.
                let inner = format!("/tmp/{}", dir.file_name().unwrap().to_string_lossy());
                let host = super::engine::trixie().join(inner.trim_start_matches('/'));
                std::fs::create_dir_all(&host).unwrap();
                std::fs::copy(dir.join("Dockerfile"), host.join("Dockerfile")).unwrap();
                std::fs::copy(dir.join("busybox"), host.join("busybox")).unwrap();
                inner
            }
        };
        let args: Vec<&str> = match engine {
            Engine::D20 => vec!["build", "-q", "-t", &tag, &context],
            Engine::D26 => vec!["buildx", "build", "--load", "-q", "-t", &tag, &context],
        };
        let built = engine.docker(&args);
        assert!(built.ok, "making builder {name} on {engine:?}: {}", built.all());
        let _ = std::fs::remove_dir_all(&dir);
    }
    tag
}

/// The tag of a base image for FROM, imported from a root filesystem made here: a merged-usr
/// layout (`/bin -> usr/bin`) with the static busybox and its applets, an /etc/passwd with root
/// alone, /etc/os-release, and `BASE_ENV=from-base` in its config. Once per engine and run.
pub fn base_image(engine: Engine) -> String {
    let tag = "nixfront-e2e/base:1".to_string();
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if made.insert((engine.name(), "base")) {
        let dir = tempdir("base-rootfs");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::copy("/bin/busybox", root.join("usr/bin/busybox")).unwrap();
        for applet in ["sh", "id", "cat", "stat", "ls", "env", "readlink"] {
            std::os::unix::fs::symlink("busybox", root.join("usr/bin").join(applet)).unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=nixfront-test-base\n").unwrap();
        let tar = std::process::Command::new("tar")
            .arg("-cf")
            .arg(dir.join("root.tar"))
            .arg("-C")
            .arg(&root)
            .arg(".")
            .output()
            .unwrap();
        assert!(tar.status.success(), "{}", String::from_utf8_lossy(&tar.stderr));
        let imported = engine
            .command(&[
                "import",
                "--change",
                "ENV BASE_ENV=from-base",
                "--change",
                "ENV PATH=/usr/bin:/bin",
                "-",
                &tag,
            ])
            .stdin(std::fs::File::open(dir.join("root.tar")).unwrap())
            .output()
            .unwrap();
        assert!(imported.status.success(), "docker import: {}", String::from_utf8_lossy(&imported.stderr));
        let _ = std::fs::remove_dir_all(&dir);
    }
    tag
}
