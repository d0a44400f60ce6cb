//! The steps' shell functions (scripts/common.sh) run on their own, with a fake `nix` and
//! `nix-store` that record how they were called: what the functions do to a store a builder
//! planted things in, and what reaches Nix's command line.

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::SCRIPTS;

/// A scratch directory with common.sh and fake Nix tools, removed when dropped.
pub(super) struct Sandbox {
    pub(super) dir: PathBuf,
}

impl Sandbox {
    pub(super) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("nixfront-script-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        let common = SCRIPTS.iter().find(|(n, _)| *n == "common.sh").unwrap().1;
        std::fs::write(dir.join("common.sh"), common).unwrap();
        // Each fake writes its arguments, one a line, to calls/<tool>, and answers
        // `--check-validity --print-invalid` by echoing the paths listed in invalid.
        for tool in ["nix", "nix-store"] {
            let fake = format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >>{dir}/calls-{tool}\n\
                 case \" $* \" in *' --print-invalid '*) cat {dir}/invalid 2>/dev/null ;; esac\n",
                dir = dir.display()
            );
            let path = dir.join("bin").join(tool);
            std::fs::write(&path, fake).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Sandbox { dir }
    }

    /// Runs `body` in `sh` after sourcing common.sh; its output, which must be a success.
    pub(super) fn run(&self, body: &str) -> String {
        self.run_in("sh", body)
    }

    /// The same in `shell` (bash: the official image's /bin/sh).
    pub(super) fn run_in(&self, shell: &str, body: &str) -> String {
        let script = format!(". {}/common.sh\n{body}\n", self.dir.display());
        let path = format!("{}:/usr/bin:/bin", self.dir.join("bin").display());
        let out = Command::new(shell)
            .arg("-c")
            .arg(script)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", path)
            .env("TMPDIR", self.dir.join("tmp"))
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{body}:\n{text}");
        text
    }

    pub(super) fn calls(&self, tool: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(format!("calls-{tool}")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = Command::new("rm").arg("-rf").arg(&self.dir).status();
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Gives `path` (not followed) to a build user's uid.
fn give_to_builder(path: &Path) {
    std::os::unix::fs::lchown(path, Some(30001), Some(30000)).unwrap();
}

#[test]
fn the_sweep_removes_what_builders_planted_and_nothing_it_points_at() {
    if !is_root() {
        eprintln!("skipped: making files of a build user needs root");
        return;
    }
    let sb = Sandbox::new("sweep");
    let store = sb.path("store");
    std::fs::create_dir_all(store.join(".links")).unwrap();
    // Another project's file, valid and root's, outside and inside the store.
    std::fs::write(sb.path("outside"), "another project's file\n").unwrap();
    let valid = store.join("0000000000000000000000000000000a-valid");
    std::fs::create_dir_all(valid.join("bin")).unwrap();
    std::fs::write(valid.join("bin/prog"), "valid\n").unwrap();
    // A planted directory whose entries link out, a planted symlink, a lock file that is a
    // symlink, a lock file that is a hard link to a valid file, a name with a newline.
    let dir = store.join("0000000000000000000000000000000b-planted");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    symlink(sb.path("outside"), dir.join("bin/x")).unwrap();
    give_to_builder(&dir.join("bin/x"));
    give_to_builder(&dir.join("bin"));
    give_to_builder(&dir);
    let link = store.join("0000000000000000000000000000000c-link");
    symlink(valid.join("bin/prog"), &link).unwrap();
    give_to_builder(&link);
    let lock_link = store.join("0000000000000000000000000000000d-next.lock");
    symlink(sb.path("outside"), &lock_link).unwrap();
    give_to_builder(&lock_link);
    let hard = store.join("0000000000000000000000000000000f-other.lock");
    std::fs::hard_link(valid.join("bin/prog"), &hard).unwrap();
    let newline = store.join("0000000000000000000000000000000g-a\nb");
    std::fs::write(&newline, "junk").unwrap();
    give_to_builder(&newline);
    // Root's own: a lock file Nix left, and an entry of the builder image's.
    let nix_lock = store.join("0000000000000000000000000000000h-built.lock");
    std::fs::write(&nix_lock, "").unwrap();
    let image_own = store.join("0000000000000000000000000000000i-from-the-image");
    std::fs::create_dir_all(&image_own).unwrap();

    let out = sb.run(&format!("sweep_store {}", store.display()));
    assert!(out.contains("swept 5 entries"), "{out}");
    for gone in [&dir, &link, &lock_link, &hard, &newline] {
        assert!(std::fs::symlink_metadata(gone).is_err(), "{} stayed", gone.display());
    }
    for kept in [&valid, &nix_lock, &image_own, &store.join(".links")] {
        assert!(kept.exists(), "{} was removed", kept.display());
    }
    assert_eq!(std::fs::read_to_string(sb.path("outside")).unwrap(), "another project's file\n");
    assert_eq!(std::fs::read_to_string(valid.join("bin/prog")).unwrap(), "valid\n");
    assert_eq!(std::fs::metadata(valid.join("bin/prog")).unwrap().nlink(), 1, "the hard link went");
    // Nothing planted: nothing said.
    assert!(!sb.run(&format!("sweep_store {}", store.display())).contains("swept"));
}

#[test]
fn lock_files_are_made_before_nix_runs_and_never_over_an_existing_one() {
    let sb = Sandbox::new("prelock");
    let p = sb.path("store-path");
    std::fs::write(sb.path("list"), format!("{}\n", p.display())).unwrap();
    sb.run(&format!("prelock {}", sb.path("list").display()));
    let lock = sb.path("store-path.lock");
    assert!(std::fs::symlink_metadata(&lock).unwrap().is_file());
    // One left by an earlier step serves again.
    sb.run(&format!("prelock {}", sb.path("list").display()));
    // A planted symlink is never written through.
    std::fs::remove_file(&lock).unwrap();
    symlink(sb.path("outside"), &lock).unwrap();
    let script = format!(". {}/common.sh\nprelock {}\n", sb.dir.display(), sb.path("list").display());
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to build over it"));
    assert!(!sb.path("outside").exists(), "nothing was created through the link");
}

#[test]
fn store_paths_reach_nix_as_they_are_never_as_patterns() {
    let sb = Sandbox::new("glob");
    // A path whose name holds `?`, and an entry the pattern would match.
    let store = sb.path("nix/store");
    std::fs::create_dir_all(store.join("0000000000000000000000000000000a-abc")).unwrap();
    let odd = format!("{}/0000000000000000000000000000000a-a?c", store.display());
    std::fs::write(sb.path("list"), format!("{odd}\n")).unwrap();
    sb.run(&format!(
        "nix_opts= ; closure_of {list} {dir}/info.json {dir}/closure",
        list = sb.path("list").display(),
        dir = sb.dir.display()
    ));
    let calls = sb.calls("nix");
    assert!(calls.contains(&odd), "{calls:?}");
    assert!(!calls.iter().any(|a| a.ends_with("-abc")), "expanded: {calls:?}");
}

#[test]
fn access_tokens_go_to_a_file_only_root_reads_never_to_the_environment() {
    let sb = Sandbox::new("settings");
    std::fs::create_dir_all(sb.path("secrets")).unwrap();
    std::fs::write(sb.path("secrets/access-tokens"), "github.com=ghp_TOKEN\n").unwrap();
    let out = sb.run(&format!(
        "NIXFRONT_NIX_DEFAULTS='max-silent-time = 3600'; use_settings {}/secrets {}/tmp; \
         echo \"conf=$NIX_USER_CONF_FILES\"; env",
        sb.dir.display(),
        sb.dir.display()
    ));
    let conf = out.lines().find_map(|l| l.strip_prefix("conf=")).unwrap();
    let text = std::fs::read_to_string(conf).unwrap();
    assert!(text.contains("max-silent-time = 3600") && text.contains("access-tokens = github.com=ghp_TOKEN"));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(Path::new(conf)), 0o600);
    assert_eq!(mode(Path::new(conf).parent().unwrap()), 0o700);
    let env: Vec<&str> = out.lines().filter(|l| l.contains('=') && !l.starts_with("conf=")).collect();
    assert!(env.iter().all(|l| !l.contains("ghp_TOKEN")), "{env:?}");
}

#[test]
fn a_laid_out_tree_keeps_links_as_links() {
    let sb = Sandbox::new("layout");
    std::fs::write(sb.path("outside"), "outside\n").unwrap();
    let src = sb.path("src/0000000000000000000000000000000a-p");
    std::fs::create_dir_all(&src).unwrap();
    symlink(sb.path("outside"), src.join("link")).unwrap();
    std::fs::write(sb.path("list"), format!("{}\n", src.display())).unwrap();
    sb.run(&format!("lay_out {} {}/out", sb.path("list").display(), sb.dir.display()));
    let copied = sb.path("out/nix/store/0000000000000000000000000000000a-p/link");
    assert!(std::fs::symlink_metadata(&copied).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_link(&copied).unwrap(), sb.path("outside"));
    let time = std::fs::symlink_metadata(sb.path("out/nix/store")).unwrap().mtime();
    assert_eq!(time, 1, "nixfront's fixed time on the directories it makes");
}

#[test]
fn the_listing_of_root_packages_reads_back_and_the_root_step_makes_the_plan() {
    use crate::layers::roots;
    let sb = Sandbox::new("roots");
    let app = sb.path("store/app");
    let cacert = sb.path("store/cacert");
    std::fs::create_dir_all(app.join("bin")).unwrap();
    std::fs::write(app.join("bin/app"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(cacert.join("etc/ssl/certs")).unwrap();
    std::fs::write(cacert.join("etc/ssl/certs/ca-bundle.crt"), "CERTS\n").unwrap();
    let list = format!("{}\n{}\n", app.display(), cacert.display());
    std::fs::write(sb.path("roots"), &list).unwrap();
    sb.run(&format!("NIXFRONT_ROOT_DEPTH={} list_roots roots listing", roots::LISTING_DEPTH));
    let text = std::fs::read_to_string(sb.path("listing")).unwrap();
    let paths: Vec<String> = list.lines().map(str::to_string).collect();
    let listed = roots::parse_listing(&text, &paths);
    assert_eq!(listed[0].entries.get("bin/app"), Some(&roots::Kind::Leaf), "{text}");
    assert_eq!(listed[1].entries.get("etc/ssl/certs"), Some(&roots::Kind::Dir), "{text}");

    let wants = roots::Wants {
        links: true,
        files: vec![("/etc/motd".into(), "hello\n".into(), "test".into())],
        ..Default::default()
    };
    let plan = roots::plan(&listed, &wants).unwrap();
    let (entries, files) = crate::frontend::root::spec(&plan);
    // The step as root.sh runs it, without chown when not root.
    std::fs::create_dir_all(sb.path("spec")).unwrap();
    std::fs::write(sb.path("spec/root"), &entries).unwrap();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(sb.path(&format!("spec/file-{i}")), f).unwrap();
    }
    let root_sh = SCRIPTS.iter().find(|(n, _)| *n == "root.sh").unwrap().1;
    let root_sh = if is_root() { root_sh.to_string() } else { root_sh.replace("chown ", ": ") };
    std::fs::write(sb.path("root.sh"), root_sh).unwrap();
    std::fs::create_dir_all(sb.path("out")).unwrap();
    sb.run("NIXFRONT_ROOT_OUT=out NIXFRONT_SPEC=spec NIXFRONT_SPEC_ROOT=root . ./root.sh");
    let link = std::fs::read_link(sb.path("out/etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert_eq!(link, cacert.join("etc/ssl/certs/ca-bundle.crt"));
    assert_eq!(std::fs::read_to_string(sb.path("out/bin/app")).unwrap(), "#!/bin/sh\n", "through the link");
    assert_eq!(std::fs::read_to_string(sb.path("out/etc/motd")).unwrap(), "hello\n");
    for entry in ["out/bin", "out/bin/app", "out/etc/ssl", "out/etc/motd"] {
        let meta = std::fs::symlink_metadata(sb.path(entry)).unwrap();
        assert_eq!(meta.mtime(), 1, "{entry} has nixfront's fixed time");
    }
}

#[test]
fn a_system_the_builder_cannot_run_is_only_substituted_and_named_by_its_exit_code() {
    let sb = Sandbox::new("cannot-run");
    let env = format!(
        "native=x86_64-linux nix_opts= NIXFRONT_PROBES={} NIXFRONT_PROBE_STATUS={} NIXFRONT_EXIT_CANNOT_RUN=91",
        sb.dir.display(),
        crate::probe::STATUS
    );
    let probe = sb.path("probe-aarch64-linux");
    let write_probe = |bytes: &[u8]| {
        std::fs::write(&probe, bytes).unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let max_jobs = |calls: &[String]| calls.windows(2).any(|w| w[0] == "max-jobs" && w[1] == "0");

    // Its own system, and another whose probe runs (here the native probe stands in for an
    // emulated one): Nix builds as usual.
    sb.run(&format!("{env}; build_for x86_64-linux --no-link a"));
    if std::env::consts::ARCH == "x86_64" {
        write_probe(&crate::probe::executable("x86_64-linux").unwrap());
        sb.run(&format!("{env}; build_for aarch64-linux --no-link b"));
    }
    assert!(!max_jobs(&sb.calls("nix")), "{:?}", sb.calls("nix"));

    // A probe the kernel refuses (the shell then reads it as a script; it never exits 73):
    // substitutes and remote builders only.
    write_probe(b"\x7fELF not for this machine; exit 0\n");
    let out = sb.run(&format!("{env}; build_for aarch64-linux --no-link c"));
    assert!(out.contains("cannot run aarch64-linux programs"), "{out}");
    assert!(max_jobs(&sb.calls("nix")), "{:?}", sb.calls("nix"));

    // When Nix still had to build something, the step ends with EXIT_CANNOT_RUN.
    std::fs::write(sb.path("bin/nix"), "#!/bin/sh\nexit 1\n").unwrap();
    let out =
        sb.run(&format!("{env}; (build_for aarch64-linux --no-link d) && echo built || echo \"exit $?\""));
    assert!(out.contains("exit 91"), "{out}");
}

/// The step's JSON as the scripts write it is what the frontend reads: the package step's
/// manifest with its split of the closure, the one-step build's, and the evaluation's plan,
/// each with the version the contract gives it.
#[test]
fn the_manifests_and_the_plan_the_scripts_write_are_what_the_frontend_reads() {
    use crate::plan::output::{PLAN_VERSION, SINGLE_MANIFEST_VERSION, STEP_MANIFEST_VERSION};
    let sb = Sandbox::new("manifests");
    let p = |name: &str| format!("/nix/store/{}-{name}", name.chars().next().unwrap().to_string().repeat(32));
    let (app, dep, src, tool) = (p("app"), p("dep"), p("src"), p("tool"));
    let write = |name: &str, text: String| std::fs::write(sb.path(name), text).unwrap();
    write("closure", format!("{src}\n{app}\n{dep}\n"));
    write("deps", format!("{dep}\n{tool}\n"));
    write("sources", format!("{src}\n"));
    write("results", format!("{app}\n"));
    let info = |path: &str, refs: &[&str]| {
        let refs: Vec<String> = refs.iter().map(|r| format!("\"{r}\"")).collect();
        format!(r#"{{"path":"{path}","narSize":10,"references":[{}]}}"#, refs.join(","))
    };
    write(
        "path-info.json",
        format!("[{},{},{}]", info(&app, &[&dep, &src]), info(&dep, &[]), info(&src, &[])),
    );
    let versions = format!(
        "NIXFRONT_STEP_MANIFEST_VERSION={STEP_MANIFEST_VERSION} NIXFRONT_SINGLE_MANIFEST_VERSION={SINGLE_MANIFEST_VERSION} \
         NIXFRONT_PLAN_VERSION={PLAN_VERSION}"
    );
    sb.run(&format!(
        "{versions}; split_closure closure deps sources part-sources part-results && \
         write_package_manifest results part-sources part-results path-info.json manifest.json"
    ));
    let read = |name: &str, version| {
        crate::closure::read_manifest(&std::fs::read(sb.path(name)).unwrap(), version).unwrap()
    };
    let manifest = read("manifest.json", STEP_MANIFEST_VERSION);
    let split = manifest.laid_out.expect("the split");
    assert_eq!(
        (split.sources, split.results),
        (vec![src.clone()], vec![app.clone()]),
        "the dependency stays out"
    );
    assert_eq!(manifest.closure.results, std::slice::from_ref(&app));

    write("package.json", r#"{"name":"app","mainProgram":"app"}"#.into());
    write("flake.json", r#"{"lastModified":7}"#.into());
    sb.run(&format!(
        "{versions}; write_single_manifest results package.json flake.json path-info.json single.json"
    ));
    let single = read("single.json", SINGLE_MANIFEST_VERSION);
    assert_eq!(
        (single.package.main_program.as_deref(), single.package.flake_last_modified),
        (Some("app"), Some(7))
    );

    let drv = format!("{}.drv", p("app"));
    let derivations = format!(
        r#"{{"{drv}":{{"outputs":{{"out":{{"path":"{app}"}}}},"inputSrcs":["{src}"],"inputDrvs":{{}}}}}}"#
    );
    write("derivations.json", derivations);
    write("package.json", format!(r#"{{"mainProgram":"app","outputs":[{{"name":"out","path":"{app}"}}]}}"#));
    write("extras.json", "[]".into());
    write("flake.json", "null".into());
    sb.run(&format!(
        "{versions}; write_plan {drv} derivations.json sources package.json extras.json flake.json plan.json"
    ));
    let plan =
        crate::plan::derivation::parse_plan(&std::fs::read(sb.path("plan.json")).unwrap()).unwrap().unwrap();
    assert_eq!((plan.outputs, plan.sources), (vec![app], vec![src]));

    sb.run("make_extras extras");
    let tmp = std::fs::symlink_metadata(sb.path("extras/tmp")).unwrap();
    assert_eq!((tmp.mode() & 0o7777, tmp.mtime()), (0o1777, 1));
}
