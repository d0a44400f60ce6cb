//! Driving the two real engines from tests, a module per concern: [`engine`] runs docker on
//! an engine (through scripts/docker.sh, the one place its command line is written),
//! [`fixture`] makes build contexts from the files under tests/fixtures, [`image`] looks
//! inside built images, [`git`] serves a repository for remote contexts, [`builders`] makes
//! broken builder images.
//!
//! Both engines are started by `scripts/engines.sh` and the frontend image is loaded by
//! `scripts/frontend-image.sh`; `scripts/test.sh` does both before running these tests.

pub mod builders;
pub mod buildhost;
pub mod engine;
pub mod fixture;
pub mod git;
pub mod image;
pub mod world;

pub use engine::{Builder, Engine};
pub use fixture::Fixture;

/// An end-to-end test on each engine: `on_engines! { fn name(engine) { ... } }` makes the
/// function and the tests `name::d20` and `name::d26`, so that one engine's failure never hides
/// the other's result and a filter (`cargo test --test e2e d26`) picks one engine. Each runs
/// with the tests' default builder (Nix 2.26); `on_engines! { builders(nix28, official); fn
/// ... }` also runs it with the oldest Nix and with the official image's replica as nixfront's
/// default builder, as `name::nix28::d20` and so on (`cargo test --test e2e official` picks those).
macro_rules! on_engines {
    ($(#[doc = $doc:expr])* fn $name:ident($engine:ident) $body:block) => {
        on_engines! { builders(); $(#[doc = $doc])* fn $name($engine) $body }
    };
    (builders($($builder:ident),*); $(#[doc = $doc:expr])* fn $name:ident($engine:ident) $body:block) => {
        $(#[doc = $doc])*
        fn $name($engine: $crate::harness::Engine) $body

        mod $name {
            #[test]
            #[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
            fn d20() {
                super::$name($crate::harness::Engine::D20)
            }

            #[test]
            #[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
            fn d26() {
                super::$name($crate::harness::Engine::D26)
            }

            $(
                mod $builder {
                    #[test]
                    #[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
                    fn d20() {
                        $crate::harness::Builder::named(stringify!($builder)).set();
                        super::super::$name($crate::harness::Engine::D20)
                    }

                    #[test]
                    #[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
                    fn d26() {
                        $crate::harness::Builder::named(stringify!($builder)).set();
                        super::super::$name($crate::harness::Engine::D26)
                    }
                }
            )*
        }
    };
}

/// A test of one engine (the function picks it) with the tests' default builder and with the
/// builders named: `on_builders! { builders(nix28); fn name() { ... } }` makes the tests
/// `name::current` and `name::nix28`.
macro_rules! on_builders {
    (builders($($builder:ident),*); $(#[doc = $doc:expr])* fn $name:ident() $body:block) => {
        $(#[doc = $doc])*
        fn $name() $body

        mod $name {
            #[test]
            #[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
            fn current() {
                super::$name()
            }

            $(
                #[test]
                #[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
                fn $builder() {
                    $crate::harness::Builder::named(stringify!($builder)).set();
                    super::$name()
                }
            )*
        }
    };
}

/// `scripts/NAME ARGS`, run as it is (a script of ours that tests drive, such as arm64.sh).
pub fn script(name: &str, args: &[&str]) -> engine::Run {
    engine::Run::from(script_output(name, args))
}

/// The same, with its raw output (for bytes, such as a registry's blob).
pub fn script_output(name: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("bash")
        .arg(repo().join("scripts").join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("scripts/{name} runs: {e}"))
}

/// The local registry in dockerd 26's network namespace (scripts/registry.sh), started empty
/// for one test at a time and stopped when the guard goes.
pub struct Registry {
    _held: std::sync::MutexGuard<'static, ()>,
}

static REGISTRY: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Registry {
    pub fn start() -> Registry {
        let held = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let started = script("registry.sh", &["start"]);
        assert!(started.ok, "scripts/registry.sh start: {}", started.all());
        Registry { _held: held }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = script("registry.sh", &["stop"]);
    }
}

/// The variables of a `NAME=value` file a script wrote (world.env, host.env): a lookup that
/// names the file and the variable it lacks.
pub fn env_file(path: &std::path::Path) -> impl Fn(&str) -> String + use<> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is not there ({e}): run the script that writes it", path.display()));
    let file = path.display().to_string();
    move |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{file} lacks {name}"))
            .to_string()
    }
}

/// A unique image tag for one test on one engine with its builder.
pub fn tag(test: &str, engine: Engine) -> String {
    format!("nixfront-e2e/{test}{}:{}", Builder::current().tag_suffix(), engine.name())
}

/// Asserts `haystack` contains every needle, showing it all when not.
pub fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(haystack.contains(needle), "expected {needle:?} in:\n{haystack}");
    }
}

/// The error a failed build ends with, as the client prints it: from buildx's last `ERROR:`
/// line (Docker 20.10's last `failed to solve` line) to the end.
pub fn final_error(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("ERROR: ") || (l.contains("failed to solve") && !l.starts_with('#')))
        .unwrap_or_else(|| panic!("no final error in:\n{output}"));
    lines[start..].join("\n")
}

/// Whether `line` is a line of a step's log (`#12 0.345 text`, or `0.345 text` in buildx's box).
pub fn is_step_log(line: &str) -> bool {
    let rest = match line.strip_prefix('#') {
        Some(r) => r.trim_start_matches(|c: char| c.is_ascii_digit()).trim_start(),
        None => line.trim_start(),
    };
    let (number, _) = rest.split_once(' ').unwrap_or((rest, ""));
    number.contains('.') && number.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// No line a user reads outside the steps' logs names nixfront's internal paths.
pub fn assert_no_internal_paths(output: &str) {
    for line in output.lines().filter(|l| !is_step_log(l)) {
        assert!(!line.contains("/nixfront/"), "an internal path in {line:?}:\n{output}");
    }
}

/// buildx shows the offending line of the file marked with `>>>`; the 20.10 client shows
/// only the message. Checks the mark (on d26) and that nothing crashed.
pub fn assert_points_at(engine: Engine, output: &str, line: &str) {
    assert!(!output.contains("panicked") && !output.contains("hit a bug"), "{engine:?} crashed:\n{output}");
    if engine == Engine::D26 {
        let marked = output
            .lines()
            .find(|l| l.contains(" >>> "))
            .unwrap_or_else(|| panic!("no >>> line in:\n{output}"));
        assert!(marked.trim_end().ends_with(line), "{engine:?} marks {marked:?}, not {line:?}:\n{output}");
    }
}

/// The root of the repository (where scripts/ and tests/fixtures are).
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
