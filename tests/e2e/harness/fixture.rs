//! Build contexts for tests: a fresh directory under the d26 chroot's /tmp (where both
//! engines see it) holding a flake from tests/fixtures, the static busybox it builds with,
//! and the test's Dockerfile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::engine::{Engine, Run, reference_nix_image, trixie};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh, uniquely named directory on the host (removed by the caller).
pub fn tempdir(name: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("nixfront-e2e-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory with a flake and a Dockerfile, visible to both engines. Removed when dropped.
pub struct Fixture {
    /// Path inside the d26 chroot (`/tmp/nixfront-e2e/...`).
    inner: String,
}

impl Fixture {
    /// The test flake of tests/fixtures/basic, with `dockerfile`.
    pub fn new(name: &str, dockerfile: &str) -> Self {
        let fixture = Self::from_dir(name, "basic", dockerfile);
        fixture.write("app/message", "message v1\n");
        // The nonce makes `slowdep` new to every store, so its first build really builds it.
        fixture
    }

    /// The flake of tests/fixtures/`dir` (copied whole), with `dockerfile`, tools/busybox and
    /// a `nonce` file unique to this fixture (for derivations that must run again).
    pub fn from_dir(name: &str, dir: &str, dockerfile: &str) -> Self {
        Self::from_path(name, &super::repo().join("tests/fixtures").join(dir), dockerfile)
    }

    /// The flake in directory `from` (copied whole), with `dockerfile`, tools/busybox and a
    /// unique `nonce` file.
    pub fn from_path(name: &str, from: &Path, dockerfile: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let fixture = Fixture { inner: format!("/tmp/nixfront-e2e/{}-{name}-{n}", std::process::id()) };
        let host = fixture.host_path();
        let _ = std::fs::remove_dir_all(&host);
        copy_dir(from, &host);
        std::fs::create_dir_all(host.join("tools")).unwrap();
        std::fs::copy("/bin/busybox", host.join("tools/busybox")).expect("busybox-static is installed");
        fixture.write("Dockerfile", dockerfile);
        fixture.write("nonce", &format!("{}-{n}-{:?}", std::process::id(), std::time::SystemTime::now()));
        fixture
    }

    pub fn write(&self, name: &str, text: &str) {
        self.write_bytes(name, text.as_bytes());
    }

    pub fn write_bytes(&self, name: &str, bytes: &[u8]) {
        let path = self.host_path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.host_path().join(name)).unwrap();
    }

    /// Where `name` is for `engine` (a path it can open: the chroot's own for d26).
    pub fn file_for(&self, engine: Engine, name: &str) -> String {
        format!("{}/{name}", self.path_for(engine))
    }

    pub fn host_path(&self) -> PathBuf {
        trixie().join(self.inner.trim_start_matches('/'))
    }

    pub fn path_for(&self, engine: Engine) -> String {
        match engine {
            Engine::D20 => self.host_path().to_string_lossy().into_owned(),
            Engine::D26 => self.inner.clone(),
        }
    }

    /// Runs `script` with `$1` = this fixture's flake `#attr`, in the tests' default builder image
    /// on d20 with the fixture mounted read-only: Nix outside nixfront, for reference answers.
    fn nix_outside(&self, script: &str, attr: &str) -> Run {
        let mount = format!("{}:/src:ro", self.host_path().display());
        let installable = format!("path:/src#{attr}");
        let image = reference_nix_image();
        let args = ["run", "--rm", "-v", &mount, &image, "sh", "-c", script, "sh", &installable];
        Engine::D20.docker(&args)
    }

    /// `nix eval --raw` of `attr` of the fixture's flake, in the builder image on d20.
    pub fn eval_raw(&self, attr: &str) -> String {
        let run = self.nix_outside("nix eval --raw --no-write-lock-file \"$1\"", attr);
        assert!(run.ok, "eval {attr} failed: {}", run.all());
        run.stdout.trim().to_string()
    }

    /// `nix path-info -r` of `attr`, built independently in the builder image on d20: what
    /// the image's /nix/store must hold.
    pub fn expected_closure(&self, attr: &str) -> Vec<String> {
        let script = "nix build --no-link --no-write-lock-file \"$1\" >&2 && nix path-info -r \"$1\"";
        let run = self.nix_outside(script, attr);
        assert!(run.ok, "reference build failed: {}", run.all());
        let mut paths: Vec<String> = run
            .stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("/nix/store/"))
            .map(str::to_string)
            .collect();
        paths.sort();
        paths
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.host_path());
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
