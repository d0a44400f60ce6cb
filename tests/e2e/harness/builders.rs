//! Builder images with something missing, made from the test builder image with a plain
//! Dockerfile (the engine's own frontend, nothing pulled), once per engine and test run.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::engine::{Engine, NIX_IMAGE};
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
        std::fs::write(dir.join("Dockerfile"), format!("FROM {NIX_IMAGE}\n{lines}")).unwrap();
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
