//! The Nix plan: a parsed Nixfile and the options become the flake reference to build and
//! the LLB execs that run Nix in the builder image.
//!
//! With the persistent store a package is built in four steps ([`steps`]), so that what does
//! not change across an edit is a step result whose cache key names its store paths: BuildKit's
//! cache (local, or exported to a fresh CI runner) answers for it. Evaluate (keyed by the
//! context); realise the package's inputs (keyed by their derivations); lay their closure out
//! as layers (keyed by the store paths of each layer); build the package on top (keyed by the
//! context). Without the store, or for a package whose inputs' outputs are only known once
//! built, one step does it all ([`single_build`]).
//!
//! [`output`] is the contract of those steps (where they read and write), [`spec`] what each is
//! told and answers (serde types both sides share), [`secrets`] the client secrets they may
//! use, [`derivation`] reads the evaluation's plan. What runs in a step is this binary,
//! `nixfront step <name>` ([`crate::step`]), mounted from the frontend's own image: the flake
//! reference reaches Nix as one argument of it, never as shell text.

pub mod derivation;
pub mod exec;
pub mod output;
pub mod secrets;
pub mod spec;
pub mod steps;
pub mod upload;

use anyhow::Result;
use serde::Deserialize;

use crate::llb::State;
#[cfg(test)]
use crate::llb::source;
use crate::nixfile::Nixfile;
use crate::options::nixconf::NixConfig;
use output::{CONTEXT_DIR, FIXED_TIME_NS};

/// The flake reference as the user wrote it and as Nix gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeRef {
    /// For messages and labels: `.#hello`.
    pub written: String,
    /// For Nix: `path:/nixfront/src#hello`.
    pub for_nix: String,
    /// Whether the build context must be transferred and mounted.
    pub uses_context: bool,
    /// The flake's directory in the build context (`""` for its root), when it is there.
    pub context_dir: Option<String>,
}

/// Works out the reference to build: the file's FLAKE (default `.`, the default package),
/// with `--target` replacing its attribute. `.`, `./dir` and other relative paths mean the
/// build context; a reference that names the builder's own filesystem (an absolute path,
/// `..`, a `file` transport) is refused.
pub fn flake_ref(nixfile: &Nixfile, target: Option<&str>) -> Result<FlakeRef> {
    let from_file = nixfile.flake.as_ref().map(|f| f.value.as_str()).unwrap_or(".");
    let written = match target {
        Some(attr) => format!("{}#{attr}", from_file.split_once('#').map_or(from_file, |(base, _)| base)),
        None => from_file.to_string(),
    };
    flake_ref_of(written)
}

/// FLAKE's further references (the packages beside the program), as [`flake_ref`] takes them.
pub fn extra_refs(nixfile: &Nixfile) -> Result<Vec<FlakeRef>> {
    nixfile.extra_flakes.iter().map(|written| flake_ref_of(written.clone())).collect()
}

/// One reference as written, for Nix.
fn flake_ref_of(written: String) -> Result<FlakeRef> {
    let refuse = |why: &str| {
        anyhow::anyhow!(
            "flake reference `{written}` {why}: nixfront builds from the build context (`.`, `./dir#attr`) \
             or from a remote reference (`github:owner/repo#attr`), never from files of the builder"
        )
    };
    let without_path_scheme = written.strip_prefix("path:");
    let local = without_path_scheme.unwrap_or(&written);
    let (base, fragment) = match local.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (local, None),
    };
    let (dir, query) = base.split_once('?').map_or((base, None), |(d, q)| (d, Some(q)));
    let scheme = dir.split_once(':').map(|(s, _)| s).filter(|s| !s.contains('/'));
    if let Some(scheme) = scheme.filter(|_| without_path_scheme.is_none()) {
        if scheme.rsplit('+').next() == Some("file") {
            return Err(refuse("reads local files (a `file` transport)"));
        }
        return Ok(FlakeRef { for_nix: written.clone(), written, uses_context: false, context_dir: None });
    }
    if dir.starts_with('/') {
        return Err(refuse("is an absolute path on the builder"));
    }
    let is_path = dir.starts_with('.') || dir.contains('/') || without_path_scheme.is_some();
    if !is_path {
        // A flake registry name (`nixpkgs#hello`).
        return Ok(FlakeRef { for_nix: written.clone(), written, uses_context: false, context_dir: None });
    }
    let escapes = |path: &str| path.split('/').any(|part| part == "..");
    let sub = dir.strip_prefix("./").unwrap_or(if dir == "." { "" } else { dir }).trim_matches('/');
    let mut dir_param = query.into_iter().flat_map(|q| q.split('&')).filter_map(|kv| kv.strip_prefix("dir="));
    if escapes(sub) || dir_param.clone().any(|d| escapes(d) || d.starts_with('/')) {
        return Err(refuse("points outside the build context"));
    }
    let mut for_nix = format!("path:{CONTEXT_DIR}");
    if !sub.is_empty() {
        for_nix.push('/');
        for_nix.push_str(sub);
    }
    if let Some(q) = query {
        for_nix.push('?');
        for_nix.push_str(q);
    }
    if let Some(f) = fragment {
        for_nix.push('#');
        for_nix.push_str(f);
    }
    let in_sub = dir_param.next_back().map(|d| d.trim_matches('/'));
    let context_dir =
        [sub, in_sub.unwrap_or("")].iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join("/");
    Ok(FlakeRef { written, for_nix, uses_context: true, context_dir: Some(context_dir) })
}

/// The attribute paths Nix tries for a reference's `#fragment`, in its order: under
/// `packages.<system>` and `legacyPackages.<system>`, then as written; `.path` alone as
/// written; none, the default package.
pub fn attr_paths(reference: &str, system: &str) -> Vec<Vec<String>> {
    let fragment = reference.split_once('#').map_or("", |(_, f)| f);
    let parse = |text: &str| -> Vec<String> {
        let (mut parts, mut current, mut quoted) = (Vec::new(), String::new(), false);
        for c in text.chars() {
            match c {
                '"' => quoted = !quoted,
                '.' if !quoted => parts.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        parts.push(current);
        parts
    };
    let under = |prefix: &[&str], path: Vec<String>| -> Vec<String> {
        prefix.iter().map(|p| p.to_string()).chain(path).collect()
    };
    if fragment.is_empty() {
        return vec![
            under(&["packages", system, "default"], vec![]),
            under(&["defaultPackage", system], vec![]),
        ];
    }
    if let Some(exact) = fragment.strip_prefix('.') {
        return vec![parse(exact)];
    }
    let path = parse(fragment);
    vec![under(&["packages", system], path.clone()), under(&["legacyPackages", system], path.clone()), path]
}

/// Refuses a flake that resolved (through the flake registry) to files of the builder: what
/// [`flake_ref`] refuses when written out.
pub fn check_resolved(flake: &FlakeRef, resolved: Option<&str>) -> Result<()> {
    let Some(resolved) = resolved.filter(|_| !flake.uses_context) else { return Ok(()) };
    let scheme = resolved.split_once(':').map(|(s, _)| s).unwrap_or("");
    if resolved.starts_with('/') || scheme == "path" || scheme.rsplit('+').next() == Some("file") {
        anyhow::bail!(
            "flake reference `{}` resolves to `{resolved}`, files of the builder: nixfront builds from the \
             build context or from a remote reference; write the reference out",
            flake.written
        );
    }
    Ok(())
}

/// The builder image, resolved: where it is and the environment it declares.
#[derive(Debug, Clone)]
pub struct BuilderImage {
    /// Normalised reference, pinned to its digest when BuildKit gave one.
    pub reference: String,
    pub digest: String,
    pub env: Vec<String>,
}

impl BuilderImage {
    /// From `ResolveImageConfig`'s answer.
    pub fn from_config(reference: &str, digest: &str, config: &[u8]) -> Result<Self> {
        #[derive(Deserialize, Default)]
        struct Config {
            #[serde(rename = "Env", default)]
            env: Option<Vec<String>>,
        }
        #[derive(Deserialize)]
        struct Image {
            #[serde(default)]
            config: Option<Config>,
        }
        let image: Image = serde_json::from_slice(config)
            .map_err(|e| anyhow::anyhow!("the config of builder image {reference} is not valid: {e}"))?;
        let env = image.config.unwrap_or_default().env.unwrap_or_default();
        let pinned = if digest.is_empty() || reference.contains('@') {
            reference.to_string()
        } else {
            format!("{reference}@{digest}")
        };
        Ok(BuilderImage { reference: pinned, digest: digest.to_string(), env })
    }

    /// Whether Nix itself lives in the image's /nix (as in the official nixos/nix image, whose
    /// Env puts /nix/var/nix/profiles/default/bin on the PATH), so the persistent store must
    /// start as a copy of it; otherwise (Debian's nix-bin) it starts empty. Read from the
    /// config, which costs nothing: looking inside the image would pull it even when every
    /// step is cached.
    pub fn has_nix_in_store(&self) -> bool {
        self.env.iter().any(|e| e.split_once('=').is_some_and(|(_, v)| v.contains("/nix/")))
    }
}

/// A step whose answer (its metadata output, read) the memo may hold: the step and that key,
/// made together so that they cannot disagree.
pub struct Keyed {
    /// The step's metadata output.
    pub meta: State,
    /// The memo's key of its answer ([`crate::memo`]): the step made with placeholders for
    /// what names the client's session.
    pub memo_key: String,
}

/// The states the one-step build produces.
pub struct NixBuild {
    /// The closure, each store path as its own tree `<base>/nix/store/<base>`, and the
    /// extras tree.
    pub closure: State,
    /// The manifest directory.
    pub meta: State,
}

/// The layout version of the persistent store: a store made by an earlier nixfront (whose
/// derivations ran as root, or whose builds took paths from BuildKit's cache into it) is never
/// reused.
const STORE_VERSION: &str = "v3";

/// The id of the cache mount that holds the persistent /nix: one per store layout version,
/// builder image, set of trusted sources (a build that trusts other substituters or keys gets a
/// store of its own, so what it trusts never reaches builds that do not) and bound (a build
/// that bounds its store with NIX_STORE_MAX collects only a store of its own: its project's,
/// `owner`, with that bound).
pub fn store_cache_id(
    builder: &BuilderImage,
    config: Option<&NixConfig>,
    store_max: Option<u64>,
    owner: &str,
) -> String {
    let key = if builder.digest.is_empty() { &builder.reference } else { &builder.digest };
    let mut id = format!("nixfront-store-{STORE_VERSION}-{key}");
    let short =
        |text: &str| crate::llb::definition::digest_of(text.as_bytes())["sha256:".len()..][..16].to_string();
    if let Some(trust) = config.map(|c| &c.trust).filter(|t| !t.is_empty()) {
        id.push_str("-trust-");
        id.push_str(&short(&trust.join("\n")));
    }
    if let Some(max) = store_max {
        id.push_str(&format!("-bounded-{max}-{}", short(owner)));
    }
    id
}

/// The steps of a build, in the order they run: each step's name is numbered by its stage,
/// `[nixfront 2/6] nix eval .#app`, as the Dockerfile frontend numbers a stage's steps. A
/// build that needs no fetch, or runs at once, skips numbers rather than renumber: a step
/// keeps its name, and its place in the log, from build to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Fetch = 1,
    Evaluate,
    Realise,
    LayOut,
    Build,
    ImageRoot,
}

impl Stage {
    const COUNT: usize = 6;
}

/// The reference without its `#fragment`.
pub fn without_fragment(reference: &str) -> &str {
    reference.split_once('#').map_or(reference, |(base, _)| base)
}

/// A step on an x86_64-linux builder, without a location, for the tests of the steps.
#[cfg(test)]
fn test_step<'a>(
    builder: &'a BuilderImage,
    platform: &'a bollard_buildkit_proto::pb::Platform,
    settings: &'a crate::options::NixArgs,
    context: &'a State,
) -> exec::NixStep<'a> {
    exec::NixStep {
        builder,
        platform,
        native: "x86_64-linux",
        context,
        settings,
        location: None,
        label: "nixfront",
        frontend: test_frontend(),
        build_id: Some("0123456789abcdef0123456789abcdef"),
    }
}

/// The frontend's image, as the tests' steps mount it.
#[cfg(test)]
fn test_frontend() -> &'static State {
    static FRONTEND: std::sync::OnceLock<State> = std::sync::OnceLock::new();
    FRONTEND.get_or_init(|| source::image("docker.io/org/nixfront:test@sha256:0123", None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::definition::decode;
    use crate::nixfile::{Lines, Spanned};
    use crate::options::NixArgs;
    use bollard_buildkit_proto::pb;
    use exec::NixStep;
    use output::{BUILD_ID_SUFFIX, FAILURES_CACHE_ID, SELF_DIR};
    use spec::Spec;
    use spec::Work;
    use steps::{nix_packages, single_build};

    fn with_flake(reference: &str) -> Nixfile {
        Nixfile {
            flake: Some(Spanned { value: reference.to_string(), lines: Lines::one(2) }),
            ..Default::default()
        }
    }

    #[test]
    fn relative_references_point_into_the_context() {
        let cases = [
            (".", "path:/nixfront/src"),
            (".#hello", "path:/nixfront/src#hello"),
            ("./sub#x.y", "path:/nixfront/src/sub#x.y"),
            ("path:./sub?dir=z#a", "path:/nixfront/src/sub?dir=z#a"),
        ];
        for (written, for_nix) in cases {
            let r = flake_ref(&with_flake(written), None).unwrap();
            assert_eq!((r.for_nix.as_str(), r.uses_context), (for_nix, true), "{written}");
        }
        let dirs: Vec<String> = [".#a", "./sub#x", "path:./sub?dir=z#a"]
            .iter()
            .map(|w| flake_ref(&with_flake(w), None).unwrap().context_dir.unwrap())
            .collect();
        assert_eq!(dirs, ["", "sub", "sub/z"]);
        let r = flake_ref(&Nixfile::default(), None).unwrap();
        assert_eq!(r.for_nix, "path:/nixfront/src");
    }

    #[test]
    fn a_registry_name_may_not_resolve_to_the_builders_files() {
        let named = flake_ref(&with_flake("mine#app"), None).unwrap();
        for bad in ["path:/etc", "/etc", "git+file:///root/repo", "file:///x.tar.gz"] {
            let e = check_resolved(&named, Some(bad)).unwrap_err().to_string();
            assert!(e.contains("files of the builder") && e.contains(bad), "{e}");
        }
        assert!(check_resolved(&named, Some("github:NixOS/nixpkgs/abc")).is_ok());
        assert!(check_resolved(&named, None).is_ok());
        let context = flake_ref(&with_flake(".#app"), None).unwrap();
        assert!(check_resolved(&context, Some("path:/nixfront/src")).is_ok(), "the context itself");
    }

    #[test]
    fn other_references_pass_through_without_the_context() {
        let r = flake_ref(&with_flake("github:o/r#pkg"), None).unwrap();
        assert_eq!((r.for_nix.as_str(), r.uses_context), ("github:o/r#pkg", false));
    }

    #[test]
    fn target_replaces_the_attribute() {
        let r = flake_ref(&with_flake(".#hello"), Some("other")).unwrap();
        assert_eq!((r.written.as_str(), r.for_nix.as_str()), (".#other", "path:/nixfront/src#other"));
        let r = flake_ref(&Nixfile::default(), Some("x")).unwrap();
        assert_eq!(r.written, ".#x");
    }

    #[test]
    fn references_to_the_builders_own_files_are_refused() {
        for bad in [
            "./../up#x",
            "..#x",
            "../x",
            "/nix/var/nix#x",
            "path:/nixfront/bin",
            "path:/etc#x",
            "file:///etc",
            "git+file:///root/repo#x",
            "tarball+file:///x.tar#y",
            "path:./sub?dir=../..#x",
            "./sub?dir=/etc#x",
        ] {
            let e = flake_ref(&with_flake(bad), None).unwrap_err().to_string();
            assert!(e.contains("never from files of the builder"), "{bad}: {e}");
        }
        let r = flake_ref(&with_flake("sub/dir#x"), None).unwrap();
        assert_eq!((r.for_nix.as_str(), r.uses_context), ("path:/nixfront/src/sub/dir#x", true));
        let r = flake_ref(&with_flake("nixpkgs#hello"), None).unwrap();
        assert_eq!((r.for_nix.as_str(), r.uses_context), ("nixpkgs#hello", false));
        let r = flake_ref(&with_flake("git+https://example.com/r?dir=sub#x"), None).unwrap();
        assert!(!r.uses_context);
    }

    fn persistent() -> NixArgs {
        NixArgs::from_build_args(&Default::default()).unwrap()
    }

    fn builder() -> BuilderImage {
        BuilderImage::from_config(
            "docker.io/localnix/nix:2.8",
            "sha256:abc",
            br#"{"config":{"Env":["PATH=/usr/bin:/bin"]}}"#,
        )
        .unwrap()
    }

    fn build_definition(reference: &str) -> pb::Definition {
        let nf = with_flake(reference);
        let flake = flake_ref(&nf, None).unwrap();
        let platform = crate::llb::platform("linux", "amd64", "");
        let context = source::local(
            &source::Local { name: "context".into(), session_id: "s".into(), ..Default::default() },
            "context",
        );
        let (builder, settings) = (builder(), persistent());
        let step = NixStep {
            location: Some(crate::llb::Lines::one(2)),
            ..test_step(&builder, &platform, &settings, &context)
        };
        single_build(&flake, &[], "x86_64-linux", &step).closure.to_definition()
    }

    /// A step on the persistent store (the package listing) of `.#hello`.
    fn persistent_definition() -> pb::Definition {
        let flake = flake_ref(&with_flake(".#hello"), None).unwrap();
        let platform = crate::llb::platform("linux", "amd64", "");
        let (builder, settings, context) = (builder(), persistent(), State::scratch());
        nix_packages(&flake, "x86_64-linux", &test_step(&builder, &platform, &settings, &context))
            .to_definition()
    }

    /// The spec the first exec of `def` is told.
    fn spec_of(def: &pb::Definition) -> Spec {
        decode(def)
            .into_iter()
            .filter_map(|(_, op)| match op.op {
                Some(pb::op::Op::File(f)) => Some(f.actions),
                _ => None,
            })
            .flatten()
            .find_map(|a| match a.action {
                Some(pb::file_action::Action::Mkfile(m)) => serde_json::from_slice(&m.data).ok(),
                _ => None,
            })
            .expect("a spec")
    }

    #[test]
    fn only_steps_on_the_persistent_store_are_told_it_is_shared() {
        let single = build_definition(".#hello");
        assert!(the_exec(&single).mounts.iter().all(|m| m.dest != "/nix"), "the image's own store");
        assert!(!spec_of(&single).settings.unwrap().shared_store);
        assert!(spec_of(&persistent_definition()).settings.unwrap().shared_store);
    }

    fn the_exec(def: &pb::Definition) -> pb::ExecOp {
        decode(def)
            .into_iter()
            .find_map(|(_, op)| match op.op {
                Some(pb::op::Op::Exec(e)) => Some(e),
                _ => None,
            })
            .expect("an exec op")
    }

    /// The identifiers of the definition's source ops.
    fn source_identifiers(def: &pb::Definition) -> Vec<String> {
        decode(def)
            .into_iter()
            .filter_map(|(_, op)| match op.op {
                Some(pb::op::Op::Source(s)) => Some(s.identifier),
                _ => None,
            })
            .collect()
    }

    /// The input digests of the definition's exec op, by input index.
    fn exec_inputs(def: &pb::Definition) -> Vec<String> {
        decode(def)
            .into_iter()
            .find_map(|(_, op)| match op.op {
                Some(pb::op::Op::Exec(_)) => Some(op.inputs.iter().map(|i| i.digest.clone()).collect()),
                _ => None,
            })
            .expect("an exec op")
    }

    #[test]
    fn an_image_with_nix_in_its_store_seeds_the_persistent_store_from_it() {
        let official = BuilderImage::from_config(
            "docker.io/nixos/nix:2.24.10",
            "sha256:def",
            br#"{"config":{"Env":["PATH=/root/.nix-profile/bin:/nix/var/nix/profiles/default/bin:/usr/bin"]}}"#,
        )
        .unwrap();
        assert!(official.has_nix_in_store() && !builder().has_nix_in_store());
        let flake = flake_ref(&with_flake(".#hello"), None).unwrap();
        let platform = crate::llb::platform("linux", "amd64", "");
        let settings = persistent();
        let context = State::scratch();
        let step = test_step(&official, &platform, &settings, &context);
        let def = nix_packages(&flake, "x86_64-linux", &step).to_definition();
        let exec = the_exec(&def);
        let store = exec.mounts.iter().find(|m| m.dest == "/nix").unwrap();
        assert_eq!((store.input, store.selector.as_str()), (0, "/nix"), "the image's own /nix, as the root");
    }

    #[test]
    fn the_step_runs_the_frontend_s_own_binary_first_on_the_path() {
        let def = build_definition(".#hello");
        let exec = the_exec(&def);
        let meta = exec.meta.unwrap();
        assert_eq!(meta.args, ["nixfront", "step", "single"]);
        assert!(meta.env.contains(&"PATH=/nixfront/self:/usr/bin:/bin".to_string()), "{:?}", meta.env);
        let id = meta.proxy_env.expect("the build's id").no_proxy;
        assert_eq!(id, format!("0123456789abcdef0123456789abcdef{BUILD_ID_SUFFIX}"));
        let own = exec.mounts.iter().find(|m| m.dest == SELF_DIR).unwrap();
        assert!(own.readonly);
        let sources = source_identifiers(&def);
        assert!(sources.contains(&"docker-image://docker.io/org/nixfront:test@sha256:0123".to_string()));
    }

    #[test]
    fn the_same_input_gives_a_byte_identical_definition() {
        assert_eq!(build_definition(".#hello"), build_definition(".#hello"));
        assert_ne!(build_definition(".#hello").def, build_definition(".#other").def);
    }

    #[test]
    fn the_reference_is_one_argv_element_and_nowhere_else() {
        let evil = "./x#a;$(touch /pwned)`id`\"'\n";
        let def = build_definition(evil);
        let exec = the_exec(&def);
        let meta = exec.meta.unwrap();
        let expected = "path:/nixfront/src/x#a;$(touch /pwned)`id`\"'\n".to_string();
        assert!(meta.args.iter().chain(&meta.env).all(|a| !a.contains("pwned")));
        // The reference is a string of the spec, which the step reads as data.
        let specs: Vec<Spec> = decode(&def)
            .into_iter()
            .flat_map(|(_, op)| match op.op {
                Some(pb::op::Op::File(f)) => f.actions,
                _ => Vec::new(),
            })
            .filter_map(|a| match a.action {
                Some(pb::file_action::Action::Mkfile(m)) => serde_json::from_slice(&m.data).ok(),
                _ => None,
            })
            .collect();
        let [Spec { work: Work::Single { reference, flake, system, .. }, .. }] = &specs[..] else {
            panic!("one spec: {specs:?}")
        };
        assert_eq!(
            (reference, flake.as_str(), system.as_str()),
            (&expected, "path:/nixfront/src/x", "x86_64-linux")
        );
    }

    #[test]
    fn the_exec_mounts_the_pinned_builder_and_the_context() {
        let def = build_definition(".#hello");
        let exec = the_exec(&def);
        let dests: Vec<_> = exec.mounts.iter().map(|m| (m.dest.as_str(), m.readonly, m.output)).collect();
        assert_eq!(
            dests,
            [
                ("/", false, 0),
                ("/nixfront/failures", false, -1),
                ("/nixfront/meta", false, 1),
                ("/nixfront/out", false, 2),
                ("/nixfront/reach", false, -1),
                ("/nixfront/self", true, -1),
                ("/nixfront/spec", true, -1),
                ("/nixfront/src", true, -1),
                ("/nixfront/tmp", false, -1),
                ("/run/buildkit/ssh_agent.0", false, -1),
                ("/run/secrets/access-tokens", false, -1),
                ("/run/secrets/netrc", false, -1),
                ("/run/secrets/ssh-key", false, -1),
            ]
        );
        let sources = source_identifiers(&def);
        assert!(sources.contains(&"docker-image://docker.io/localnix/nix:2.8@sha256:abc".to_string()));
        let (def, exec) = (persistent_definition(), the_exec(&persistent_definition()));
        let store = exec.mounts.iter().find(|m| m.dest == "/nix").unwrap();
        let cache = store.cache_opt.as_ref().unwrap();
        assert_eq!(cache.id, "nixfront-store-v3-sha256:abc", "versioned: an earlier layout is never reused");
        assert_eq!(cache.sharing, pb::CacheSharingOpt::Private as i32, "an instance of its own");
        assert_eq!(store.selector, "/nix");
        let seed =
            decode(&def).into_iter().find(|(digest, _)| *digest == exec_inputs(&def)[store.input as usize]);
        assert!(
            matches!(seed.map(|(_, op)| op.op), Some(Some(pb::op::Op::File(_)))),
            "an image without Nix in /nix: an empty store on scratch"
        );
        let meta = exec.meta.unwrap();
        assert!(meta.env.contains(&"HOME=/root".to_string()));
        assert!(meta.env.contains(&"TMPDIR=/nixfront/tmp".to_string()), "no need for the image's /tmp");
        let secrets = meta.env.iter().filter(|e| e.contains("access-tokens") || e.contains("netrc")).count();
        assert_eq!(secrets, 0, "no secret, nor where one is, in the environment: {:?}", meta.env);
        assert_eq!(meta.cwd, CONTEXT_DIR);
        let location = def.source.as_ref().map(|s| s.locations.len());
        assert_eq!(location, None, "marshalled without the file: no source map");
    }

    #[test]
    fn a_bound_or_a_trust_setting_gives_a_store_of_its_own() {
        let plain = store_cache_id(&builder(), None, None, "");
        let trusting = crate::options::nixconf::check("extra-substituters = https://c.example").unwrap();
        let with_trust = store_cache_id(&builder(), Some(&trusting), None, "");
        let bounded = store_cache_id(&builder(), None, Some(1), "a");
        assert!(plain != with_trust && plain != bounded && with_trust != bounded);
        assert!(bounded.starts_with(&plain), "{bounded}");
        let harmless = crate::options::nixconf::check("max-jobs = 2").unwrap();
        assert_eq!(store_cache_id(&builder(), Some(&harmless), None, ""), plain);
        // The same bound set by another project: another store.
        assert_ne!(store_cache_id(&builder(), None, Some(1), "b"), bounded);
        assert_eq!(store_cache_id(&builder(), None, None, "b"), plain, "only a bounded store is a project's");
    }

    #[test]
    fn secrets_and_ssh_are_optional_mounts_of_the_build_only() {
        let exec = the_exec(&build_definition(".#hello"));
        let secrets: Vec<(&str, String, bool)> = exec
            .mounts
            .iter()
            .filter_map(|m| m.secret_opt.as_ref().map(|s| (m.dest.as_str(), s.id.clone(), s.optional)))
            .collect();
        assert_eq!(
            secrets,
            [
                ("/run/secrets/access-tokens", "access-tokens".into(), true),
                ("/run/secrets/netrc", "netrc".into(), true),
                ("/run/secrets/ssh-key", "ssh-key".into(), true)
            ]
        );
        let ssh = exec.mounts.iter().find_map(|m| m.ssh_opt.as_ref()).expect("an ssh mount");
        assert!(ssh.optional && ssh.id == "default");
        assert!(exec.meta.unwrap().env.contains(&format!("SSH_AUTH_SOCK={}", secrets::SSH_SOCKET)));
    }

    #[test]
    fn listing_targets_uses_the_builds_secrets_and_nix_config() {
        let flake = flake_ref(&with_flake(".#hello"), None).unwrap();
        let platform = crate::llb::platform("linux", "amd64", "");
        let mut settings = persistent();
        settings.nix_config = Some(crate::options::nixconf::check("max-jobs = 2").unwrap());
        let (builder, context) = (builder(), State::scratch());
        let step = test_step(&builder, &platform, &settings, &context);
        let exec = the_exec(&nix_packages(&flake, "x86_64-linux", &step).to_definition());
        let secrets: Vec<&str> =
            exec.mounts.iter().filter_map(|m| m.secret_opt.as_ref().map(|s| s.id.as_str())).collect();
        assert_eq!(secrets, ["access-tokens", "netrc", "ssh-key"]);
        let meta = exec.meta.unwrap();
        assert!(meta.env.contains(&"NIX_CONFIG=max-jobs = 2".to_string()));
        assert_eq!(meta.args[2], "packages");
    }

    #[test]
    fn a_hermetic_build_has_no_store_cache() {
        let flake = flake_ref(&with_flake(".#hello"), None).unwrap();
        let platform = crate::llb::platform("linux", "amd64", "");
        let builder = builder();
        let mut settings = persistent();
        settings.persistent_store = false;
        let context = State::scratch();
        let step = test_step(&builder, &platform, &settings, &context);
        let def = single_build(&flake, &[], "x86_64-linux", &step).closure.to_definition();
        let caches: Vec<String> =
            the_exec(&def).mounts.iter().filter_map(|m| m.cache_opt.as_ref().map(|c| c.id.clone())).collect();
        assert_eq!(caches, [FAILURES_CACHE_ID], "no store, no substituters' record: only the failure box");
    }

    #[test]
    fn a_reference_without_context_mounts_none() {
        let exec = the_exec(&build_definition("github:o/r#pkg"));
        assert!(exec.mounts.iter().all(|m| m.dest != CONTEXT_DIR));
    }
}
