//! Driving the two real engines from tests: fixtures on disk, builds, runs, inspection.
//!
//! Both engines are started by `scripts/engines.sh` and the frontend image is loaded by
//! `scripts/frontend-image.sh`; `scripts/test.sh` does both before running these tests.
//! d26 runs in a chroot, so fixtures live under the chroot's /tmp, where both engines see
//! them (the host path for d20, the chroot path for d26).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;

pub const NIX_IMAGE: &str = "localnix/nix:2.8";

fn ci_root() -> PathBuf {
    PathBuf::from(std::env::var("NIXFRONT_CI_ROOT").unwrap_or_else(|_| "/var/lib/nixfront-ci".into()))
}

fn trixie() -> PathBuf {
    ci_root().join("trixie")
}

/// Tests that prune an engine's build cache take this for writing; all others for reading,
/// so a prune never runs under another test's build.
static ENGINE_USE: RwLock<()> = RwLock::new(());

pub fn shared_engines() -> RwLockReadGuard<'static, ()> {
    ENGINE_USE.read().unwrap_or_else(|e| e.into_inner())
}

pub fn exclusive_engines() -> RwLockWriteGuard<'static, ()> {
    ENGINE_USE.write().unwrap_or_else(|e| e.into_inner())
}

/// The engines to test on: `NIXFRONT_E2E_ENGINES` (default `d20,d26`).
pub fn engines() -> Vec<Engine> {
    let list = std::env::var("NIXFRONT_E2E_ENGINES").unwrap_or_else(|_| "d20,d26".into());
    list.split(',')
        .map(|e| match e.trim() {
            "d20" => Engine::D20,
            "d26" => Engine::D26,
            other => panic!("unknown engine {other:?} in NIXFRONT_E2E_ENGINES"),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian 12's dockerd 20.10 (BuildKit 0.8), `DOCKER_BUILDKIT=1 docker build`.
    D20,
    /// Debian 13's dockerd 26.1 (BuildKit 0.13), `docker buildx build --load`.
    D26,
}

/// A finished command: its exit status and everything it printed.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::D20 => "d20",
            Engine::D26 => "d26",
        }
    }

    /// `docker ...` on this engine.
    pub fn docker(self, args: &[&str]) -> Run {
        let output = match self {
            Engine::D20 => Command::new("/usr/bin/docker").env("DOCKER_BUILDKIT", "1").args(args).output(),
            Engine::D26 => Command::new("chroot")
                .arg(trixie())
                .args(["docker", "-H", "unix:///run/d26/docker.sock"])
                .args(args)
                .output(),
        };
        Run::from(output.expect("docker runs"))
    }

    /// Builds `fixture` with `-t tag` and the test builder image; `extra` are more flags.
    pub fn build(self, fixture: &Fixture, tag: &str, extra: &[&str]) -> Run {
        self.build_context(&fixture.path_for(self), tag, extra)
    }

    /// Builds `context` (a directory as this engine sees it, or a URL).
    pub fn build_context(self, context: &str, tag: &str, extra: &[&str]) -> Run {
        let _ = self.docker(&["image", "rm", "-f", tag]);
        let dir = context.to_string();
        let mut args: Vec<&str> = match self {
            Engine::D20 => vec!["build"],
            Engine::D26 => vec!["buildx", "build", "--load"],
        };
        let nix_image = format!("NIX_IMAGE={NIX_IMAGE}");
        args.extend(["--progress=plain", "--build-arg", &nix_image, "-t", tag]);
        args.extend(extra);
        args.push(&dir);
        self.docker(&args)
    }

    /// `docker buildx build --print=<what>` (a subrequest; buildx 0.13 has it behind
    /// BUILDX_EXPERIMENTAL). Only dockerd 26's client can send subrequests.
    pub fn print(self, fixture: &Fixture, what: &str) -> Run {
        assert_eq!(self, Engine::D26, "the 20.10 client sends no subrequests");
        let nix_image = format!("NIX_IMAGE={NIX_IMAGE}");
        let output = Command::new("chroot")
            .arg(trixie())
            .args(["env", "BUILDX_EXPERIMENTAL=1", "docker", "-H", "unix:///run/d26/docker.sock"])
            .args(["buildx", "build", "--build-arg", &nix_image, &format!("--print={what}")])
            .arg(fixture.path_for(self))
            .output()
            .expect("docker runs");
        Run::from(output)
    }

    pub fn image_exists(self, tag: &str) -> bool {
        self.docker(&["image", "inspect", tag]).ok
    }

    /// `docker image inspect`, the first (only) object.
    pub fn inspect(self, tag: &str) -> Value {
        let run = self.docker(&["image", "inspect", tag]);
        assert!(run.ok, "inspect {tag}: {}", run.all());
        let list: Value = serde_json::from_str(&run.stdout).expect("inspect gives JSON");
        list[0].clone()
    }

    pub fn run_image(self, tag: &str, args: &[&str]) -> Run {
        let mut all = vec!["run", "--rm", tag];
        all.extend(args);
        self.docker(&all)
    }

    /// `docker builder prune -af`: a fresh builder, as on a new CI runner.
    pub fn prune(self) {
        let run = self.docker(&["builder", "prune", "-af"]);
        assert!(run.ok, "prune: {}", run.all());
    }

    /// The layer diff IDs of an image, bottom to top.
    pub fn diff_ids(self, tag: &str) -> Vec<String> {
        let layers = &self.inspect(tag)["RootFS"]["Layers"];
        layers.as_array().expect("layers").iter().map(|l| l.as_str().unwrap().to_string()).collect()
    }

    /// Everything `docker save` writes for an image: configs, manifests and layer tars.
    pub fn saved_bytes(self, tag: &str) -> Vec<u8> {
        let output = match self {
            Engine::D20 => Command::new("/usr/bin/docker").args(["save", tag]).output(),
            Engine::D26 => Command::new("chroot")
                .arg(trixie())
                .args(["docker", "-H", "unix:///run/d26/docker.sock", "save", tag])
                .output(),
        }
        .expect("docker save runs");
        assert!(output.status.success(), "save: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    }

    /// The in-toto statements attached to an image (dockerd 26's `docker save`), as
    /// `(predicate type, statement)`.
    pub fn attestations(self, tag: &str) -> Vec<(String, Value)> {
        let dir = tempdir("attest");
        let archive = dir.join("image.tar");
        std::fs::write(&archive, self.saved_bytes(tag)).unwrap();
        let untar = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&dir).output().unwrap();
        assert!(untar.status.success());
        let blob = |digest: &str| -> Value {
            let file = dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
            serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
        };
        let mut found = Vec::new();
        let mut stack: Vec<Value> =
            vec![serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()];
        while let Some(node) = stack.pop() {
            for m in node["manifests"].as_array().into_iter().flatten() {
                let child = blob(m["digest"].as_str().unwrap());
                if m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
                    for layer in child["layers"].as_array().into_iter().flatten() {
                        let statement = blob(layer["digest"].as_str().unwrap());
                        found
                            .push((statement["predicateType"].as_str().unwrap_or("").to_string(), statement));
                    }
                } else if child.get("manifests").is_some() {
                    stack.push(child);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        found
    }

    /// For each layer of `docker save`, bottom to top: its size in the saved archive and the
    /// store paths (`nix/store/<entry>`) it has files of.
    pub fn saved_layers(self, tag: &str) -> Vec<(u64, Vec<String>)> {
        let dir = tempdir(&format!("save-{}", self.name()));
        let archive = dir.join("image.tar");
        let save = match self {
            Engine::D20 => {
                Command::new("/usr/bin/docker").args(["save", "-o"]).arg(&archive).arg(tag).output()
            }
            Engine::D26 => Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "chroot {} docker -H unix:///run/d26/docker.sock save {tag} > {}",
                    trixie().display(),
                    archive.display()
                ))
                .output(),
        }
        .expect("docker save runs");
        assert!(save.status.success(), "save: {}", String::from_utf8_lossy(&save.stderr));
        let untar = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&dir).output().unwrap();
        assert!(untar.status.success());
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let layers: Vec<(u64, Vec<String>)> = manifest[0]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let file = dir.join(l.as_str().unwrap());
                let size = std::fs::metadata(&file).unwrap().len();
                let list = Command::new("tar").arg("-tf").arg(&file).output().unwrap();
                let mut entries = store_entries_of(&String::from_utf8_lossy(&list.stdout));
                entries.sort();
                entries.dedup();
                (size, entries)
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        layers
    }

    /// The entries directly under /nix/store in the image's filesystem.
    pub fn store_entries(self, tag: &str) -> Vec<String> {
        let create = self.docker(&["create", tag, "x"]);
        assert!(create.ok, "create: {}", create.all());
        let id = create.stdout.trim().to_string();
        let export = match self {
            Engine::D20 => Command::new("/usr/bin/docker").args(["export", &id]).output(),
            Engine::D26 => Command::new("chroot")
                .arg(trixie())
                .args(["docker", "-H", "unix:///run/d26/docker.sock", "export", &id])
                .output(),
        }
        .expect("export runs");
        let _ = self.docker(&["rm", &id]);
        let mut entries = tar_store_entries(&export.stdout);
        entries.sort();
        entries.dedup();
        entries
    }
}

/// Names of `nix/store/<entry>` in a tar stream.
fn tar_store_entries(tar: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-t"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tar runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(tar).expect("tar reads");
    }
    let out = child.wait_with_output().expect("tar lists");
    store_entries_of(&String::from_utf8_lossy(&out.stdout))
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

fn tempdir(name: &str) -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("nixfront-e2e-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A directory with a flake and a Dockerfile, visible to both engines.
pub struct Fixture {
    /// Path inside the d26 chroot (`/tmp/nixfront-e2e/...`).
    inner: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Fixture {
    /// A fresh directory with the standard test flake (see `FLAKE`) and `dockerfile`.
    pub fn new(name: &str, dockerfile: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let inner = format!("/tmp/nixfront-e2e/{}-{name}-{n}", std::process::id());
        let fixture = Fixture { inner };
        let host = fixture.host_path();
        let _ = std::fs::remove_dir_all(&host);
        std::fs::create_dir_all(host.join("tools")).unwrap();
        std::fs::copy("/bin/busybox", host.join("tools/busybox")).expect("busybox-static is installed");
        std::fs::create_dir_all(host.join("app")).unwrap();
        fixture.write("app/message", "message v1\n");
        // Makes `slowdep` new to every store, so its first build really builds it.
        fixture.write("nonce", &format!("{}-{n}-{:?}", std::process::id(), std::time::SystemTime::now()));
        fixture.write("flake.nix", FLAKE);
        fixture.write("Dockerfile", dockerfile);
        fixture
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.host_path().join(name), text).unwrap();
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

    fn path_for(&self, engine: Engine) -> String {
        match engine {
            Engine::D20 => self.host_path().to_string_lossy().into_owned(),
            Engine::D26 => self.inner.clone(),
        }
    }

    /// `nix path-info -r` of `attr`, built independently in the builder image on d20: what
    /// the image's /nix/store must hold.
    pub fn expected_closure(&self, attr: &str) -> Vec<String> {
        let mount = format!("{}:/src:ro", self.host_path().display());
        let installable = format!("path:/src#{attr}");
        let script = "nix build --no-link --no-write-lock-file \"$1\" >&2 && nix path-info -r \"$1\"";
        let run = Engine::D20.docker(&[
            "run",
            "--rm",
            "-v",
            &mount,
            NIX_IMAGE,
            "sh",
            "-c",
            script,
            "sh",
            &installable,
        ]);
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

/// A unique image tag for one test on one engine.
pub fn tag(test: &str, engine: Engine) -> String {
    format!("nixfront-e2e/{test}:{}", engine.name())
}

/// Asserts `haystack` contains every needle, showing it all when not.
pub fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
    }
}

/// The test flake: self-contained (static busybox as the builder, no nixpkgs).
/// - `hello`: prints a greeting read from its runtime dependency `greeting`; mainProgram set.
/// - `bye`: another app, for `--target`.
/// - `multi`: two executables and no mainProgram.
/// - `broken`: a derivation whose builder fails after printing a marker.
/// - `edited`: reads `./app/message` and depends on `slowdep`, which sleeps 2 s and is new
///   to every fixture (`./nonce`): an app-only edit is a change to `app/message`.
/// - `wide`: an app with eight small dependencies, for layer limits.
/// - `sys`: prints the Nix system it was built for (packages exist for x86_64 and i686).
/// - `ctxfiles`: prints the names in the flake's source directory.
pub const FLAKE: &str = r#"# syntax=org/nixfront
{
  outputs = { self }:
    let
      bb = "${./tools}/busybox";
      # The same packages for both systems; a static x86_64 busybox runs either way here.
      packagesFor = system:
        let
          mk = name: script: derivation {
            inherit name system;
            builder = bb;
            args = [ "sh" "-c" script ];
          };
          greeting = mk "greeting-1.0" ''
            ${bb} mkdir -p $out/share
            echo "hello from the greeting dependency" > $out/share/greeting
          '';
          app = name: body: (mk name ''
            ${bb} mkdir -p $out/bin
            printf '#!${bb} sh\n${body}\n' > $out/bin/${builtins.head (builtins.split "-" name)}
            ${bb} chmod +x $out/bin/*
          '');
          hello = (app "hello-0.1" ''${bb} cat ${greeting}/share/greeting; echo "args:$*"'')
            // { meta.mainProgram = "hello"; meta.description = "Prints a greeting"; };
          bye = app "bye-0.2" ''echo "bye from bye"'';
          sys = app "sys-1.0" ''echo "built for ${system}"'';
          multi = mk "multi-1.0" ''
            ${bb} mkdir -p $out/bin
            printf '#!${bb} sh\necho one\n' > $out/bin/one
            printf '#!${bb} sh\necho two\n' > $out/bin/two
            ${bb} chmod +x $out/bin/one $out/bin/two
          '';
          slowdep = mk "slowdep-1.0" ''
            echo "building slowdep ${builtins.readFile ./nonce}"
            ${bb} sleep 2
            ${bb} mkdir -p $out
            echo "slow dependency" > $out/d
          '';
          # The message is read at build time: the app's source is not a runtime dependency.
          edited = (mk "edited-1.0" ''
            ${bb} mkdir -p $out/bin
            msg=$(${bb} cat ${./app}/message)
            printf '#!${bb} sh\necho "%s"\n${bb} cat ${slowdep}/d\n' "$msg" > $out/bin/edited
            ${bb} chmod +x $out/bin/edited
          '') // { meta.mainProgram = "edited"; };
          wdeps = builtins.genList
            (i: mk "wdep${toString i}-1.0" "${bb} mkdir -p $out; echo ${toString i} > $out/v") 8;
          wide = (app "wide-1.0" "${bb} cat ${builtins.concatStringsSep " " (map (d: "${d}/v") wdeps)}")
            // { meta.mainProgram = "wide"; };
          # Lists the flake's own source directory: what of the context reached Nix.
          ctxfiles = app "ctxfiles-1.0" "echo ${toString (builtins.attrNames (builtins.readDir ./.))}";
          broken = mk "broken-1.0" ''
            echo "compiling the thing"
            echo "kaboom: the build of broken failed on purpose" >&2
            exit 3
          '';
        in {
          default = hello;
          inherit hello bye sys multi broken greeting edited wide ctxfiles;
        };
    in {
      packages.x86_64-linux = packagesFor "x86_64-linux";
      packages.i686-linux = packagesFor "i686-linux";
    };
}
"#;

/// A `git daemon` on loopback serving one repository made from a fixture, reachable by the
/// engine's BuildKit (inside dockerd 26's network namespace for d26). Stops when dropped.
pub struct GitServer {
    child: std::process::Child,
    _repos: PathBuf,
    pub url: String,
}

impl GitServer {
    pub fn serve(engine: Engine, fixture: &Fixture, port: u16) -> Self {
        let repos = tempdir("git");
        let repo = repos.join("ctx.git");
        let git = |args: &[&str], dir: &std::path::Path| {
            let out = Command::new("git").args(args).current_dir(dir).output().expect("git runs");
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let work = fixture.host_path();
        git(&["init", "-q", "-b", "main"], &work);
        git(&["add", "-A"], &work);
        git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "ctx"], &work);
        git(&["clone", "-q", "--bare", work.to_str().unwrap(), repo.to_str().unwrap()], &repos);
        let mut cmd = match engine {
            Engine::D20 => Command::new("git"),
            Engine::D26 => {
                let pid =
                    std::fs::read_to_string(trixie().join("run/d26/docker.pid")).expect("dockerd 26 pid");
                let mut c = Command::new("nsenter");
                c.args(["-t", pid.trim(), "-n", "git"]);
                c
            }
        };
        let child = cmd
            .args(["daemon", "--export-all", "--reuseaddr", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", repos.display()))
            .arg(&repos)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0) // its own group, so that Drop stops every process it starts
            .spawn()
            .expect("git daemon starts");
        std::thread::sleep(std::time::Duration::from_millis(500));
        GitServer { child, _repos: repos, url: format!("git://127.0.0.1:{port}/ctx.git") }
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._repos);
    }
}
