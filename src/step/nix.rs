//! The one way every step calls Nix: the builder's Nix found and its version read once
//! ([`Facts`]: what differs between the Nix versions nixfront supports), the build users made,
//! nixfront's settings and the client's secrets given to Nix as a configuration file only root
//! reads, the substituters this builder cannot reach dropped for the step, and every Nix
//! process run with the same flags, its stderr passed on to the step's log and its last lines
//! kept for the failure the user reads.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::conf::{BUILD_GROUP, add_build_users, non_empty, write_settings};
use super::failure;
use super::outcome::{Outcome, Stop, say};
use crate::plan::output::{REACH_DIR, REACH_TTL_SECONDS, TMP_DIR};
use crate::plan::secrets::SECRETS_DIR;
use crate::plan::spec::Settings;

/// What differs between the Nix versions nixfront supports (2.8 to today), read from `nix
/// --version`; a version this cannot read is taken as a current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub major: u32,
    pub minor: u32,
}

impl Facts {
    pub fn of(version_output: &str) -> Facts {
        let version = version_output.split_whitespace().last().unwrap_or("");
        let mut parts = version.split('.').map(|p| p.parse::<u32>());
        match (parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => Facts { major, minor },
            _ => Facts { major: 2, minor: 999 },
        }
    }

    fn at_least(&self, minor: u32) -> bool {
        self.major > 2 || self.minor >= minor
    }

    /// Since 2.13 a derivation's outputs are the installable `DRV^*`, and since 2.15 a bare
    /// `DRV` is the derivation file itself; before 2.13 a bare `DRV` means its outputs.
    pub fn outputs_of(&self, drv: &str) -> String {
        if self.at_least(13) { format!("{drv}^*") } else { drv.to_string() }
    }

    /// `nix derivation show` since 2.15, `nix show-derivation` before.
    pub fn derivation_show(&self) -> &'static [&'static str] {
        if self.at_least(15) { &["derivation", "show"] } else { &["show-derivation"] }
    }

    /// `nix config show` since 2.20, `nix show-config` before.
    pub fn config_show(&self) -> &'static [&'static str] {
        if self.at_least(20) { &["config", "show"] } else { &["show-config"] }
    }

    /// `nix store info` since 2.19, `nix store ping` before.
    pub fn store_info(&self) -> &'static [&'static str] {
        if self.at_least(19) { &["store", "info"] } else { &["store", "ping"] }
    }
}

/// The builder's Nix, set up for this step.
pub struct Nix {
    pub facts: Facts,
    /// The builder's own system.
    pub native: String,
    /// NIX_VERIFY_STORE and NIX_STORE_MAX, for the steps on the persistent store.
    pub verify_store: bool,
    pub store_max: Option<u64>,
    /// Whether the step works in the store other projects read ([`Settings::shared_store`]).
    pub shared: bool,
    /// nixfront's flags, after NIX_CONFIG and the image's nix.conf, so they win.
    flags: Vec<String>,
    env: Vec<(String, String)>,
}

/// What every Nix process on the shared store is told, after everything else (so it wins),
/// but the one locked build ([`super::guard::locked_build`]): build nothing here
/// (substituting and remote builders stay). Then no builder runs in a step where root writes
/// paths nobody locked first.
const BUILD_NOTHING: [&str; 3] = ["--option", "max-jobs", "0"];
/// What every Nix process on the shared store is told, the locked build too: import nothing
/// built while evaluating.
const IMPORT_NOTHING: [&str; 3] = ["--option", "allow-import-from-derivation", "false"];

/// The options Nix's ssh gets for remote builders (`NIX_SSHOPTS`): a host that does not
/// answer, or stops answering, fails the build within a minute instead of hanging it; a key
/// the host refuses fails at once instead of asking for a password nobody can type.
const SSH_OPTIONS: &str =
    "-o ConnectTimeout=15 -o ServerAliveInterval=15 -o ServerAliveCountMax=3 -o BatchMode=yes";

impl Nix {
    /// Checks the builder has Nix, makes the build users, writes the settings, and drops the
    /// substituters this builder cannot reach.
    pub fn setup(settings: &Settings) -> Outcome<Nix> {
        let path = std::env::var("PATH").unwrap_or_default();
        if !path.split(':').any(|dir| Path::new(dir).join("nix").is_file()) {
            return Err(Stop::no_nix(&path));
        }
        let version = Command::new("nix").arg("--version").output()?;
        let facts = Facts::of(&String::from_utf8_lossy(&version.stdout));
        add_build_users(Path::new("/etc"))?;
        let conf = write_settings(settings, Path::new(SECRETS_DIR), Path::new(TMP_DIR))?;
        let option = |name: &str, value: &str| ["--option".to_string(), name.to_string(), value.to_string()];
        let sandbox = if settings.sandbox { "true" } else { "false" };
        let mut flags: Vec<String> = [
            option("filter-syscalls", "false"),
            option("sandbox", sandbox),
            option("sandbox-fallback", "false"),
            option("build-users-group", BUILD_GROUP),
            option("accept-flake-config", "false"),
            option("extra-platforms", &settings.native),
        ]
        .concat();
        let netrc = Path::new(SECRETS_DIR).join("netrc");
        if non_empty(&netrc) {
            flags.extend(option("netrc-file", &netrc.to_string_lossy()));
        }
        let env = vec![
            ("NIX_USER_CONF_FILES".to_string(), conf.to_string_lossy().into_owned()),
            ("NIX_SSHOPTS".to_string(), SSH_OPTIONS.to_string()),
        ];
        let mut nix = Nix {
            facts,
            native: settings.native.clone(),
            verify_store: settings.verify_store,
            store_max: settings.store_max,
            shared: settings.shared_store,
            flags,
            env,
        };
        nix.drop_unreachable_substituters(settings.remember_reach.then(|| Path::new(REACH_DIR)))?;
        Ok(nix)
    }

    /// `nix` with nixfront's flags; on the shared store, one that builds nothing.
    pub fn nix(&self) -> Command {
        self.on_store(self.nix_unrestricted(), false)
    }

    fn nix_unrestricted(&self) -> Command {
        let mut command = Command::new("nix");
        command.args(["--extra-experimental-features", "nix-command flakes"]).args(&self.flags);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// `command` with what the shared store demands ([`BUILD_NOTHING`] unless `builds`,
    /// [`IMPORT_NOTHING`] always); unchanged on a store of the step's own.
    fn on_store(&self, mut command: Command, builds: bool) -> Command {
        if self.shared {
            if !builds {
                command.args(BUILD_NOTHING);
            }
            command.args(IMPORT_NOTHING);
        }
        command
    }

    /// `nix` for `system` that may run builders: for [`super::guard::locked_build`] alone
    /// (its unit test holds every other file of the step to that).
    pub(super) fn nix_with_builders(&self, system: &str) -> Command {
        for_system(self.on_store(self.nix_unrestricted(), true), system)
    }

    /// `nix` for `system`.
    pub fn nix_for(&self, system: &str) -> Command {
        for_system(self.nix(), system)
    }

    /// `nix-store` with the same settings; on the shared store, one that builds nothing.
    pub fn nix_store(&self) -> Command {
        let mut command = self.on_store(Command::new("nix-store"), false);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs `command` (Nix), its stderr passed on to the step's log: its stdout. A failure
    /// carries Nix's last lines.
    pub fn run(&self, command: &mut Command) -> Outcome<Vec<u8>> {
        self.run_with(command, None)
    }

    /// The same, with `input` on its stdin.
    pub fn run_with(&self, command: &mut Command, input: Option<&[u8]>) -> Outcome<Vec<u8>> {
        match run_teed(command, input)? {
            (true, stdout, _) => Ok(stdout),
            (false, _, lines) => Err(failure::of_nix(&lines)),
        }
    }

    /// Runs `command` quietly: its stdout, or its stderr's last line.
    pub fn quiet(&self, command: &mut Command) -> Result<Vec<u8>, String> {
        let output = command.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let text = String::from_utf8_lossy(&output.stderr);
        Err(text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("failed").trim().to_string())
    }

    /// Drops, for this step, the HTTP(S) substituters this builder cannot reach: Nix would try
    /// each in every process, retrying with backoff, before building what it lacks. Every one
    /// Nix would use is asked for its nix-cache-info once, with a bounded connect time, and
    /// the answer kept in `record` (root's alone) for a while, so that a build asks once, not
    /// in every step. The rest keep Nix's order and priorities; the list goes last in
    /// NIX_CONFIG, where it wins.
    fn drop_unreachable_substituters(&mut self, record: Option<&Path>) -> Outcome<()> {
        let Ok(config) = self.quiet(self.nix().args(self.facts.config_show())) else { return Ok(()) };
        let config = String::from_utf8_lossy(&config);
        let Some(line) = config.lines().find_map(|l| l.strip_prefix("substituters = ")) else {
            return Ok(());
        };
        let mut kept = Vec::new();
        let mut dropped = false;
        for url in line.split_whitespace() {
            if url.starts_with("http://") || url.starts_with("https://") {
                let (reachable, why) = self.reachable(url, record);
                if !reachable {
                    say(&format!(
                        "substituter {url} is not reachable from this builder, so this step does without it ({why})"
                    ));
                    dropped = true;
                    continue;
                }
            }
            kept.push(url);
        }
        if dropped {
            let before = std::env::var("NIX_CONFIG").unwrap_or_default();
            self.env.push(("NIX_CONFIG".to_string(), format!("{before}\nsubstituters = {}", kept.join(" "))));
        }
        Ok(())
    }

    /// Whether substituter `url` answered, from what a step of the last minutes learnt (in
    /// `record`), or asked now; and why.
    fn reachable(&self, url: &str, record: Option<&Path>) -> (bool, String) {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let file = record.map(|dir| dir.join(reach_record_name(url)));
        if let Some(found) = file.as_deref().and_then(|f| Reach::read(f, now)) {
            return (found.reachable, format!("{}, found {} s ago", found.why, now - found.when));
        }
        let mut ask = self.nix();
        ask.args(self.facts.store_info()).args([
            "--store",
            url,
            "--option",
            "connect-timeout",
            "3",
            "--option",
            "download-attempts",
            "1",
        ]);
        let (reachable, why) = match self.quiet(&mut ask) {
            Ok(_) => (true, "answered".to_string()),
            Err(why) => (false, why),
        };
        if let (Some(dir), Some(file)) = (record, file) {
            let reach = Reach { when: now, reachable, why: why.clone() };
            if let Err(e) = reach.write(dir, &file) {
                say(&format!("cannot keep what the substituter's answer was ({e})"));
            }
        }
        (reachable, why)
    }
}

/// What a step learnt of a substituter: kept as data, read back only as that (any build on
/// this BuildKit could have written it; it decides at most whether a step asks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reach {
    when: u64,
    reachable: bool,
    why: String,
}

impl Reach {
    /// A record of the last [`REACH_TTL_SECONDS`], if `file` holds one (a plain file, never a link).
    fn read(file: &Path, now: u64) -> Option<Reach> {
        let meta = std::fs::symlink_metadata(file).ok()?;
        if !meta.is_file() || meta.len() > 4096 {
            return None;
        }
        let mut reach: Reach = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        reach.why.retain(|c| !c.is_control());
        (reach.when <= now && now - reach.when < REACH_TTL_SECONDS).then_some(reach)
    }

    /// A new file of root's (never through a planted link), renamed over the record.
    fn write(&self, dir: &Path, file: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let mut new = tempfile::Builder::new().prefix(".record.").tempfile_in(dir)?;
        new.write_all(&serde_json::to_vec(self).unwrap_or_default())?;
        new.persist(file).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The record's file name for substituter `url`.
fn reach_record_name(url: &str) -> String {
    let digest = crate::llb::definition::digest_of(url.as_bytes());
    format!("{}.json", &digest["sha256:".len()..][..16])
}

/// `command` for Nix system `system`.
fn for_system(mut command: Command, system: &str) -> Command {
    command.args(["--option", "system", system]);
    command
}

/// Runs `command` with its stderr passed on line by line and its last lines kept: whether it
/// succeeded, its stdout, those lines.
pub fn run_teed(
    command: &mut Command,
    input: Option<&[u8]>,
) -> std::io::Result<(bool, Vec<u8>, Vec<String>)> {
    const KEPT: usize = 400;
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = command.spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let passer = std::thread::spawn(move || {
        let mut kept: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).into_owned();
            eprintln!("{line}");
            if kept.len() == KEPT {
                kept.pop_front();
            }
            kept.push_back(line);
        }
        Vec::from(kept)
    });
    // Fed from a thread of its own, so that a child writing as it reads never waits on us.
    let feeder = match (child.stdin.take(), input) {
        (Some(mut stdin), Some(input)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || stdin.write_all(&input)))
        }
        _ => None,
    };
    let mut stdout = Vec::new();
    child.stdout.take().expect("piped").read_to_end(&mut stdout)?;
    if let Some(feeder) = feeder {
        feeder.join().unwrap_or(Ok(()))?;
    }
    let status = child.wait()?;
    let lines = passer.join().unwrap_or_default();
    Ok((status.success(), stdout, lines))
}

/// A quiet Nix command's JSON answer, or null when it failed or gave none.
pub fn json_or_null(output: Result<Vec<u8>, String>) -> serde_json::Value {
    output.ok().and_then(|json| serde_json::from_slice(&json).ok()).unwrap_or(serde_json::Value::Null)
}

/// Store paths, one a line, from a Nix command's output.
pub fn lines_of(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Nix set up as a step on the shared store (`shared`) or on a store of its own.
    fn nix_on(shared: bool) -> Nix {
        Nix {
            facts: Facts::of("nix (Nix) 2.26.3"),
            native: "x86_64-linux".into(),
            verify_store: false,
            store_max: None,
            shared,
            flags: vec!["--option".into(), "sandbox".into(), "false".into()],
            env: Vec::new(),
        }
    }

    fn args_of(command: &Command) -> String {
        command.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn on_the_shared_store_every_nix_builds_nothing_but_the_guard_s() {
        let shared = nix_on(true);
        for command in [shared.nix(), shared.nix_for("aarch64-linux"), shared.nix_store()] {
            let args = args_of(&command);
            assert!(args.contains("--option max-jobs 0"), "{args}");
            assert!(args.contains("--option allow-import-from-derivation false"), "{args}");
        }
        // The flags come after nixfront's own, so that nothing before them changes them.
        let args = args_of(&shared.nix());
        assert!(args.find("sandbox").unwrap() < args.find("max-jobs").unwrap(), "{args}");
        let builds = args_of(&shared.nix_with_builders("x86_64-linux"));
        assert!(
            !builds.contains("max-jobs") && builds.contains("allow-import-from-derivation false"),
            "{builds}"
        );
        let own = nix_on(false);
        for command in [own.nix(), own.nix_store()] {
            let args = args_of(&command);
            assert!(!args.contains("max-jobs") && !args.contains("allow-import-from-derivation"), "{args}");
        }
    }

    #[test]
    fn each_nix_version_gets_its_own_syntax() {
        let old = Facts::of("nix (Nix) 2.8.1");
        assert_eq!(old.outputs_of("/nix/store/a-x.drv"), "/nix/store/a-x.drv");
        assert_eq!(old.derivation_show(), ["show-derivation"]);
        assert_eq!(old.config_show(), ["show-config"]);
        assert_eq!(old.store_info(), ["store", "ping"]);
        let mid = Facts::of("nix (Nix) 2.14.1");
        assert_eq!(mid.outputs_of("/nix/store/a-x.drv"), "/nix/store/a-x.drv^*");
        assert_eq!(mid.derivation_show(), ["show-derivation"]);
        for current in ["nix (Nix) 2.26.3", "nix (Nix) 3.0.0", "nix (Determinate Nix 3.1) 2.29.0", "garbage"]
        {
            let facts = Facts::of(current);
            assert_eq!(facts.derivation_show(), ["derivation", "show"], "{current}");
            assert_eq!(facts.config_show(), ["config", "show"], "{current}");
            assert_eq!(facts.store_info(), ["store", "info"], "{current}");
        }
        assert_eq!(Facts::of("nix (Nix) 2.24.10").store_info(), ["store", "info"]);
    }

    #[test]
    fn a_reach_record_is_data_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(reach_record_name("http://cache.example"));
        let reach = Reach { when: 1000, reachable: false, why: "timed out".into() };
        reach.write(dir.path(), &file).unwrap();
        assert_eq!(Reach::read(&file, 1010), Some(reach.clone()));
        assert_eq!(Reach::read(&file, 1000 + REACH_TTL_SECONDS), None, "too old");
        assert_eq!(Reach::read(&file, 999), None, "from the future");
        std::fs::write(&file, "1000 no $(touch /tmp/x)").unwrap();
        assert_eq!(Reach::read(&file, 1010), None, "the old shell format, or a forgery, is asked again");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(Reach::read(&link, 1010), None, "never through a link");
    }

    #[test]
    fn a_command_s_stderr_is_kept_and_its_stdout_returned() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo one >&2; echo two >&2; exit 3"]);
        let (ok, stdout, lines) = run_teed(&mut command, None).unwrap();
        assert!(!ok);
        assert_eq!(stdout, b"out\n");
        assert_eq!(lines, ["one", "two"]);
        let mut cat = Command::new("cat");
        let (ok, stdout, _) = run_teed(&mut cat, Some(b"given")).unwrap();
        assert!(ok);
        assert_eq!(stdout, b"given");
    }
}
