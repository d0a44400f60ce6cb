//! The engines and the docker commands tests run on them. Every command goes through
//! scripts/docker.sh, which owns each engine's command line.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde_json::Value;

use super::Fixture;

/// A fact of scripts/lib.sh (`NIX_IMAGE`, `CI_ROOT`, ...), as scripts/facts.sh prints it: the
/// scripts own these, the tests read them.
pub fn fact(name: &str) -> String {
    static FACTS: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
        std::sync::OnceLock::new();
    let facts = FACTS.get_or_init(|| {
        let out = super::script("facts.sh", &[]);
        assert!(out.ok, "scripts/facts.sh: {}", out.all());
        out.stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect()
    });
    facts.get(name).unwrap_or_else(|| panic!("scripts/facts.sh prints no {name}")).clone()
}

/// The Nix builder a test builds with (scripts/lib.sh names the images, scripts/engines.sh
/// makes them): a test runs with [`Builder::Current`] unless `on_engines!` names others for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// Debian 13's nix-bin (Nix 2.26), named by `--build-arg NIX_IMAGE`: the tests' default.
    Current,
    /// Debian 12's nix-bin (Nix 2.8), the oldest Nix nixfront supports.
    Oldest,
    /// The replica of the official nixos/nix image (Nix in /nix/store), tagged as nixfront's
    /// default builder: the build names no NIX_IMAGE, as users' do.
    Official,
}

thread_local! {
    /// The builder of the test running on this thread (each test has a thread of its own).
    static BUILDER: std::cell::Cell<Builder> = const { std::cell::Cell::new(Builder::Current) };
}

impl Builder {
    /// The builder `on_engines!` names: `nix28` or `official`.
    pub fn named(name: &str) -> Builder {
        match name {
            "nix28" => Builder::Oldest,
            "official" => Builder::Official,
            other => panic!("no test builder is called {other}: nix28 or official"),
        }
    }

    /// The builder of the running test.
    pub fn current() -> Builder {
        BUILDER.with(|b| b.get())
    }

    /// Makes this the builder of the running test.
    pub fn set(self) {
        BUILDER.with(|b| b.set(self));
    }

    /// The image's reference.
    pub fn image(self) -> String {
        let image = fact(match self {
            Builder::Current => "NIX_IMAGE",
            Builder::Oldest => "NIX_IMAGE_OLDEST",
            Builder::Official => "NIX_IMAGE_OFFICIAL",
        });
        if self == Builder::Official {
            let default = nixfront::options::args::DEFAULT_NIX_IMAGE;
            assert_eq!(image, default, "scripts/lib.sh must tag the replica as nixfront's default builder");
        }
        image
    }

    /// The build's `--build-arg NIX_IMAGE=...`; none for the official image, nixfront's default.
    pub fn build_arg(self) -> Option<String> {
        (self != Builder::Official).then(|| format!("NIX_IMAGE={}", self.image()))
    }

    /// What a test's image tags carry, so that one test on two builders never shares a tag.
    pub fn tag_suffix(self) -> &'static str {
        match self {
            Builder::Current => "",
            Builder::Oldest => "-nix28",
            Builder::Official => "-official",
        }
    }
}

/// The Nix builder image of the running test.
pub fn nix_image() -> String {
    Builder::current().image()
}

/// The tests' default builder image (Nix 2.26), for answers from Nix outside nixfront.
pub fn reference_nix_image() -> String {
    Builder::Current.image()
}

/// Per engine: tests that prune its build cache take this for writing; all others for
/// reading, so a prune never runs under another test's build on that engine.
static ENGINE_USE: [RwLock<()>; 2] = [RwLock::new(()), RwLock::new(())];

/// Docker 20.10's BuildKit (0.8) can panic and take dockerd down when two builds of the same
/// content from different contexts run at once ("failed to get edge", moby/moby#42414, fixed
/// in later BuildKits), which the suite's parallel tests would do all the time; so builds on
/// d20 take turns, except where a test runs two at once on purpose.
static D20_BUILDS: Mutex<()> = Mutex::new(());

/// Where scripts/engines.sh keeps the engines' chroots and the Nix world (`$CI_ROOT`).
pub fn ci_root() -> PathBuf {
    PathBuf::from(fact("CI_ROOT"))
}

/// The directory of the chroot dockerd 26 runs in.
pub fn trixie() -> PathBuf {
    PathBuf::from(fact("TRIXIE"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian 12's dockerd 20.10 (BuildKit 0.8), `DOCKER_BUILDKIT=1 docker build`.
    D20 = 0,
    /// Debian 13's dockerd 26.1 (BuildKit 0.13), `docker buildx build --load`.
    D26 = 1,
}

/// A finished command: its exit status and everything it printed.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
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
    /// `program` in the network namespace this engine's dockerd (and its builds) run in, where
    /// its docker0 is 172.17.0.1.
    pub fn in_netns(self, program: &str) -> Command {
        let pidfile = match self {
            Engine::D20 => PathBuf::from(fact("D20_PIDFILE")),
            Engine::D26 => trixie().join(fact("D26_PIDFILE").trim_start_matches('/')),
        };
        let pid = std::fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()));
        let mut c = Command::new("nsenter");
        c.args(["-t", pid.trim(), "-n", program]);
        c
    }

    /// For a test that builds on this engine: no prune runs meanwhile.
    pub fn shared(self) -> RwLockReadGuard<'static, ()> {
        ENGINE_USE[self as usize].read().unwrap_or_else(|e| e.into_inner())
    }

    /// For a test that prunes this engine's build cache: no other test builds meanwhile.
    pub fn exclusive(self) -> RwLockWriteGuard<'static, ()> {
        ENGINE_USE[self as usize].write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn name(self) -> &'static str {
        match self {
            Engine::D20 => "d20",
            Engine::D26 => "d26",
        }
    }

    /// `docker ARGS` on this engine, not yet run.
    pub fn command(self, args: &[&str]) -> Command {
        let mut cmd = Command::new(super::repo().join("scripts/docker.sh"));
        cmd.arg(self.name()).args(args);
        cmd
    }

    /// `docker ARGS` on this engine, run.
    pub fn docker(self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("scripts/docker.sh runs"))
    }

    /// `docker ARGS` with its raw stdout (for `docker save`).
    pub fn docker_bytes(self, args: &[&str]) -> Vec<u8> {
        let output = self.command(args).stderr(Stdio::inherit()).output().expect("scripts/docker.sh runs");
        assert!(output.status.success(), "docker {args:?} failed");
        output.stdout
    }

    /// The build command with the test's builder image, the tag and plain progress.
    fn build_args(self, tag: &str) -> Vec<String> {
        let mut args: Vec<String> = match self {
            Engine::D20 => vec!["build".into()],
            Engine::D26 => vec!["buildx".into(), "build".into(), "--load".into()],
        };
        args.push("--progress=plain".to_string());
        if let Some(arg) = Builder::current().build_arg() {
            args.extend(["--build-arg".to_string(), arg]);
        }
        args.extend(["-t".to_string(), tag.to_string()]);
        args
    }

    /// Builds `fixture` with `-t tag` and the test builder image; `extra` are more flags.
    pub fn build(self, fixture: &Fixture, tag: &str, extra: &[&str]) -> Run {
        self.build_context(&fixture.path_for(self), tag, extra)
    }

    /// Builds `fixture`, which must succeed, without buildx's provenance (it records build
    /// times), and returns its image ID and log: two builds of the same flake compare by ID.
    pub fn build_id(self, fixture: &Fixture, name: &str, extra: &[&str]) -> (String, String) {
        let t = crate::harness::tag(name, self);
        let mut flags = extra.to_vec();
        if self == Engine::D26 {
            flags.push("--provenance=false");
        }
        let run = self.build(fixture, &t, &flags);
        assert!(run.ok, "{self:?} {name}: {}", run.all());
        (self.inspect(&t)["Id"].as_str().expect("an image ID").to_string(), run.all())
    }

    /// Builds `context` (a directory as this engine sees it, or a URL).
    pub fn build_context(self, context: &str, tag: &str, extra: &[&str]) -> Run {
        let _turn = (self == Engine::D20).then(|| D20_BUILDS.lock().unwrap_or_else(|e| e.into_inner()));
        self.build_now(context, tag, extra)
    }

    /// Builds `fixture` without waiting for other d20 builds: for the test of two builds at once.
    pub fn build_alongside(self, fixture: &Fixture, tag: &str, extra: &[&str]) -> Run {
        self.build_now(&fixture.path_for(self), tag, extra)
    }

    fn build_now(self, context: &str, tag: &str, extra: &[&str]) -> Run {
        let _ = self.docker(&["image", "rm", "-f", tag]);
        let mut args = self.build_args(tag);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(context.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.docker(&args);
        // runc failing to start a step's container (its init died before it said anything) is
        // the engine's, not the build's: seen once in a whole suite's run, never again on the
        // same build. Such a build runs once more, and says so.
        if !run.ok && run.all().contains("waiting for init preliminary setup") {
            eprintln!("{self:?}: runc could not start a container; building {tag} once more");
            return self.docker(&args);
        }
        run
    }

    /// `docker buildx build --print=<what>` (a subrequest; buildx 0.13 has it behind
    /// BUILDX_EXPERIMENTAL). Only dockerd 26's client can send subrequests.
    pub fn print(self, fixture: &Fixture, what: &str, extra: &[&str]) -> Run {
        assert_eq!(self, Engine::D26, "the 20.10 client sends no subrequests");
        let builder = Builder::current().build_arg();
        let print = format!("--print={what}");
        let context = fixture.path_for(self);
        let mut args = vec!["buildx", "build"];
        if let Some(arg) = &builder {
            args.extend(["--build-arg", arg]);
        }
        args.push(&print);
        args.extend(extra);
        args.push(&context);
        Run::from(self.command(&args).env("BUILDX_EXPERIMENTAL", "1").output().expect("docker runs"))
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

    /// Starts building `fixture` and returns at once, the build's output (stdout and stderr)
    /// on the child's stdout, the child in a process group of its own: for a build that runs
    /// while others do (it never takes the d20 builds' turn).
    pub fn spawn_build(self, fixture: &Fixture, tag: &str, extra: &[&str]) -> std::process::Child {
        let mut args = self.build_args(tag);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(fixture.path_for(self));
        Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 2>&1")
            .arg(super::repo().join("scripts/docker.sh"))
            .arg(self.name())
            .args(&args)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("scripts/docker.sh runs")
    }

    /// `docker builder prune --filter type=exec.cachemount`: the persistent stores dropped,
    /// BuildKit's cache of every step kept (as when a store is lost while its steps are cached).
    pub fn prune_stores(self) {
        let run = self.docker(&["builder", "prune", "-f", "--filter", "type=exec.cachemount"]);
        assert!(run.ok, "prune the stores: {}", run.all());
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
}
