//! The exec every Nix step runs in: the builder image (pinned) with the frontend's own binary
//! mounted and first on the PATH, the step's spec as a file, a scratch directory, the build's
//! failure box and id, the persistent store or a store of the step's own, the context when the
//! step reads it, and the client's secrets. Also the report step, which reads the failure box
//! in the frontend's own image.

use bollard_buildkit_proto::pb;

use super::output::{
    self, BUILD_ID_SUFFIX, CONTEXT_DIR, FAILURES_CACHE_ID, FAILURES_DIR, FIXED_TIME_NS, META_DIR,
    REACH_CACHE_ID, REACH_DIR, SELF_DIR, SPEC_DIR, STEP_STORE_DIR, TMP_DIR,
};
use super::spec::{self, Settings, Spec, Work};
use super::{BuilderImage, Stage, secrets, store_cache_id};
use crate::llb::Lines;
use crate::llb::exec::{Exec, Mount};
use crate::llb::file::FileOp;
use crate::llb::{CachePolicy, State, source};
use crate::options::NixArgs;

/// Which Nix store a step works in.
#[derive(Clone, Copy)]
pub enum StepStore<'a> {
    /// The persistent store, an instance of it this step has to itself (`sharing=private`:
    /// BuildKit makes another instance rather than wait for a busy one), or without it
    /// (NIX_PERSISTENT_STORE=false) the builder image's own /nix.
    Persistent,
    /// A store of the step's own, gone with it: `/nix/store` is this state (whose
    /// `/nix/store` it is), mounted writable; what the step registers is in its own database.
    Own(&'a State),
    /// The builder image's own `/nix`, gone with the step: for builds whose store paths are
    /// known only once built (content-addressed), which Nix cannot lock before its builders
    /// run, so they never run on the persistent store.
    Image,
}

impl StepStore<'_> {
    /// Whether a step on this store works in the persistent store other builds read.
    fn is_shared(self, persistent_store: bool) -> bool {
        matches!(self, StepStore::Persistent) && persistent_store
    }
}

/// Where a Nix step runs: the builder, the platform and its Nix system, the context, nixfront's
/// settings, and the lines of the user's file the steps come from.
pub struct NixStep<'a> {
    pub builder: &'a BuilderImage,
    pub platform: &'a pb::Platform,
    /// The Nix system the builder runs natively (the build platform's).
    pub native: &'a str,
    pub context: &'a State,
    pub settings: &'a NixArgs,
    pub location: Option<Lines>,
    /// What the step's name starts with: `nixfront`, or `linux/arm64 nixfront` (see [`Stage`]).
    pub label: &'a str,
    /// The frontend's own image, whose binary runs in the step.
    pub frontend: &'a State,
    /// The build's id, under which a failing step leaves its failure (`None` where the step is
    /// made only for its key: the memo's).
    pub build_id: Option<&'a str>,
}

/// The frontend as a memo key names it: this release, whichever image carries it.
static KEYED_FRONTEND: std::sync::LazyLock<State> = std::sync::LazyLock::new(|| {
    FileOp::on(&State::scratch())
        .mkfile("/nixfront-version", 0o444, env!("CARGO_PKG_VERSION").as_bytes(), FIXED_TIME_NS)
        .build("[internal] nixfront, by its version")
});

impl NixStep<'_> {
    /// The name of this step's `stage`, doing `what`.
    pub fn name(&self, stage: Stage, what: &str) -> String {
        format!("[{} {}/{}] {what}", self.label, stage as usize, Stage::COUNT)
    }
}

impl NixStep<'_> {
    /// The same step for a key that holds from build to build and from builder to builder
    /// (the memo's, which every image config carries): without the build's id, and with the
    /// frontend named by its version rather than its image, whose digest differs between the
    /// release's amd64 and arm64 images (and would make their images' configs differ).
    pub fn for_key(&self) -> NixStep<'_> {
        NixStep { build_id: None, frontend: &KEYED_FRONTEND, ..*self }
    }

    /// What every Nix step on `store` is told besides its work.
    fn settings(&self, store: StepStore) -> Settings {
        let settings = self.settings;
        Settings {
            shared_store: store.is_shared(settings.persistent_store),
            native: self.native.to_string(),
            sandbox: settings.sandbox,
            verify_store: settings.verify_store,
            store_max: settings.store_max,
            nix_defaults: crate::options::nixconf::defaults_text(),
            remember_reach: settings.persistent_store,
        }
    }

    /// An exec of `nixfront step <name>` in the builder, with the client's secrets, told
    /// `work` (its spec, with `files` beside it). The binary is the frontend's own, mounted
    /// read-only; the spec is data. The context is mounted only when `with_context` (a step
    /// without it keeps its cache key across edits).
    pub(super) fn exec(
        &self,
        with_context: bool,
        store: StepStore,
        work: Work,
        files: &[(&str, &[u8])],
    ) -> Exec {
        let root = source::pinned_image(&self.builder.reference, Some(self.platform.clone()));
        // The upload's keys reach the cache-to step alone, where no derivation runs.
        let upload = matches!(work, Work::CacheTo(_));
        let spec = Spec { settings: Some(self.settings(store)), work };
        let mut exec = self.step_exec(&root, &spec, files);
        let settings = self.settings;
        if settings.persistent_store {
            // What the build's first step learnt of the substituters, for the others; a
            // hermetic build (NIX_PERSISTENT_STORE=false) keeps no state and asks in each step.
            let reach =
                Mount::cache(REACH_DIR, REACH_CACHE_ID, pb::CacheSharingOpt::Shared, &State::scratch());
            exec = exec.mount(reach);
        }
        match store {
            StepStore::Persistent if settings.persistent_store => {
                // BuildKit keys a cache mount by its id and the ref it is seeded from, so the
                // seed keeps its identity under --no-cache (then the store survives). An image
                // that carries Nix in /nix seeds the store with it, straight from the (pinned)
                // image source; otherwise the store starts from an empty /nix made on scratch.
                // Neither holds the builder image's layers, so neither reaches an exported cache.
                let cache = store_cache_id(
                    self.builder,
                    settings.nix_config.as_ref(),
                    settings.store_max,
                    &settings.store_owner,
                );
                let seed = if self.builder.has_nix_in_store() {
                    root.clone()
                } else {
                    FileOp::on(&State::scratch())
                        .mkdir("/nix", 0o755, FIXED_TIME_NS)
                        .cache(CachePolicy { survives_no_cache: true })
                        .build("[internal] an empty Nix store")
                };
                exec = exec.mount(
                    Mount::cache("/nix", &cache, pb::CacheSharingOpt::Private, &seed).with_selector("/nix"),
                );
            }
            StepStore::Persistent | StepStore::Image => {}
            StepStore::Own(state) => {
                // Writable, with an output nothing uses: BuildKit keys the step by the state's
                // cache key, never by hashing its content (a closure of GBs).
                exec = exec.mount(Mount::writable(STEP_STORE_DIR, state).with_selector(STEP_STORE_DIR));
            }
        }
        if with_context {
            exec = exec.mount(Mount::readonly(CONTEXT_DIR, self.context));
            exec.cwd = CONTEXT_DIR.to_string();
        }
        if settings.sandbox {
            // Nix's sandbox makes namespaces and mounts: BuildKit's insecure mode.
            exec.insecure = true;
        }
        if let Some(config) = &settings.nix_config {
            exec.env.retain(|e| !e.starts_with("NIX_CONFIG="));
            exec.env.push(format!("NIX_CONFIG={}", config.text));
        }
        secrets::mount_all(exec, upload)
    }

    /// An exec of `nixfront step <name>` on `root` told `spec` (with `files` beside it): the
    /// frontend's binary, a scratch directory, the failure box and the build's id, and
    /// `root`'s environment with the binary first on the PATH.
    fn step_exec(&self, root: &State, spec: &Spec, files: &[(&str, &[u8])]) -> Exec {
        let spec_dir =
            spec_dir(spec, files, &format!("[internal] the spec of nixfront's {} step", spec.work.name()));
        let args = vec!["nixfront".to_string(), "step".to_string(), spec.work.name().to_string()];
        let mut exec = Exec::new(root, args)
            .mount(Mount::readonly(SELF_DIR, self.frontend))
            .mount(Mount::readonly(SPEC_DIR, &spec_dir))
            .mount(Mount::scratch(TMP_DIR))
            .mount(failure_box());
        let mut env = builder_env(&self.builder.env);
        for var in env.iter_mut().filter(|v| v.starts_with("PATH=")) {
            *var = format!("PATH={SELF_DIR}:{}", &var["PATH=".len()..]);
        }
        env.push(format!("TMPDIR={TMP_DIR}"));
        exec.env = env;
        if let Some(id) = self.build_id {
            let theirs = self.builder.env.iter().find_map(|e| e.strip_prefix("NO_PROXY=")).unwrap_or("");
            let mine = format!("{id}{BUILD_ID_SUFFIX}");
            exec.no_proxy = Some(if theirs.is_empty() { mine } else { format!("{theirs},{mine}") });
        }
        exec.platform = Some(self.platform.clone());
        exec.location = self.location;
        exec
    }

    /// An exec of `nixfront step <name>` in the builder that runs no Nix: no store, no
    /// secrets, no context.
    pub(super) fn tool_exec(&self, work: Work) -> Exec {
        let root = source::pinned_image(&self.builder.reference, Some(self.platform.clone()));
        self.step_exec(&root, &Spec { settings: None, work }, &[])
    }
}

/// The report step: the failures the build's steps left, read in the frontend's own image
/// (nothing of the builder's runs) into [`output::FAILURES_FILE`] of its output. Keyed by the
/// build's id: it runs once per build that asks.
pub fn failure_report(frontend: &State, build_id: &str) -> State {
    let spec = Spec { settings: None, work: Work::Report { build: build_id.to_string() } };
    let spec_dir = spec_dir(&spec, &[], "[internal] what the failed step said");
    // On an empty root: the frontend's image holds nothing but the binary (at /nixfront, where
    // the step's own directories go), so it is mounted as every step mounts it.
    let args = vec![format!("{SELF_DIR}{}", output::SELF_BINARY), "step".to_string(), "report".to_string()];
    let mut exec = Exec::new(&State::scratch(), args)
        .mount(Mount::readonly(SELF_DIR, frontend))
        .mount(Mount::readonly(SPEC_DIR, &spec_dir))
        .mount(failure_box());
    // Keyed by the build's id, new in every build, so --no-cache need not mark it: marked, it
    // found none of the failures the build's steps left (BuildKit 0.13), and the error lost
    // what the failed step said.
    exec.cache = CachePolicy { survives_no_cache: true };
    let meta = exec.output(META_DIR, &State::scratch());
    exec.build("[internal] what the failed step said").state(&meta)
}

/// A step's spec directory: `spec` as [`spec::SPEC_FILE`], and `files` beside it.
fn spec_dir(spec: &Spec, files: &[(&str, &[u8])], name: &str) -> State {
    let text = serde_json::to_vec(spec).unwrap_or_default();
    let first =
        FileOp::on(&State::scratch()).mkfile(&format!("/{}", spec::SPEC_FILE), 0o444, &text, FIXED_TIME_NS);
    files
        .iter()
        .fold(first, |op, (file, data)| op.mkfile(&format!("/{file}"), 0o444, data, FIXED_TIME_NS))
        .build(name)
}

/// The failure box, as every step and the report step mount it.
fn failure_box() -> Mount {
    Mount::cache(FAILURES_DIR, FAILURES_CACHE_ID, pb::CacheSharingOpt::Shared, &State::scratch())
}

/// The builder's own environment, with a PATH and HOME Nix can work with.
fn builder_env(image_env: &[String]) -> Vec<String> {
    let mut env: Vec<String> = image_env.to_vec();
    let has = |name: &str| image_env.iter().any(|e| e.starts_with(&format!("{name}=")));
    if !has("PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string());
    }
    if !has("HOME") {
        env.push("HOME=/root".to_string());
    }
    env
}
