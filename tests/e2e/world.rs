//! Flakes as users have them (scripts/nixworld.sh): inputs pinned in flake.lock and fetched
//! over HTTP (a tarball, a git repository whose input follows another, a relative path), a
//! signed binary cache with every dependency, a build-time toolchain outside the runtime
//! closure, a slow evaluation. Each way to name the cache, each input kind, and a fresh runner
//! whose edit downloads nothing.

use crate::harness::builders::builder_image;
use crate::harness::world::{World, downloads, unused_key};
use crate::harness::{Builder, Engine, assert_contains, image, tag};

/// The derivations Nix built, from a build's log.
fn built(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("building '/nix/store/")).collect()
}

/// Paths the image's /nix/store holds whose name ends with `suffix`.
fn in_image(engine: Engine, t: &str, suffix: &str) -> bool {
    image::store_entries(engine, t).iter().any(|e| e.ends_with(suffix))
}

on_engines! {
    builders(nix28, official);
    /// NIX_CONFIG names the cache: everything but the app is substituted; the toolchain stays
    /// out of the image; an edit fetches no input and downloads nothing.
    fn a_real_flake_builds_on_its_binary_cache_and_locked_inputs(engine) {
        let _engines = engine.shared();
        let world = World::on(engine);
        let app = world.app("web");
        let config = format!("NIX_CONFIG={}", world.cache_config_of("web"));
        let t = tag("world-web", engine);
        let mark = world.mark(engine);
        let run = engine.build(&app, &t, &["--build-arg", &config]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_contains(&run.all(), &["copying path", "toolchain-1.0' from 'http://172.17.0.1:18080/cache'"]);
        assert_eq!(built(&run.all()).len(), 1, "only the app: {:?}", built(&run.all()));
        if Builder::current() == Builder::Official {
            // The official image's default substituter is out of reach here: dropped once per
            // build, the world's cache (NIX_CONFIG) used without waiting on it.
            assert_contains(&run.all(), &["substituter https://cache.nixos.org/ is not reachable from this builder"]);
            assert!(!run.all().contains("retrying in"), "{engine:?} retried a substituter:\n{}", run.all());
        }
        let requests = world.since(engine, mark);
        for fetched in ["/pkgs.tar.gz", "/utils.git/"] {
            assert!(requests.iter().any(|r| r.path.starts_with(fetched)), "{engine:?}: {fetched} not fetched");
        }
        assert_eq!(engine.run_image(&t, &[]).stdout.lines().next(), Some("hello from web v1"));
        assert!(!in_image(engine, &t, "-toolchain-1.0"), "{engine:?}: the build-time toolchain is in the image");
        assert!(in_image(engine, &t, "-libnet-1.4") && in_image(engine, &t, "-libcore-2.1"));

        app.write("src/message", "hello from web v2\n");
        let mark = world.mark(engine);
        let edit = engine.build(&app, &t, &["--build-arg", &config]);
        assert!(edit.ok, "{engine:?}: {}", edit.all());
        assert_eq!(built(&edit.all()).len(), 1, "{:?}", built(&edit.all()));
        let requests = world.since(engine, mark);
        assert!(downloads(&requests).is_empty(), "{engine:?}: the edit downloaded {:?}", downloads(&requests));
        assert_eq!(engine.run_image(&t, &[]).stdout.lines().next(), Some("hello from web v2"));
    }
}

on_engines! {
    /// The builder image's own nix.conf names the cache, here the one behind auth, with the
    /// netrc passed as a secret.
    fn the_builder_images_nix_conf_and_a_netrc_name_a_private_cache(engine) {
        let _engines = engine.shared();
        let world = World::on(engine);
        let conf = format!(
            "RUN printf '%s\\n' 'substituters = {}/private/cache' 'trusted-public-keys = {}' >> /etc/nix/nix.conf\n",
            world.url, world.key
        );
        let builder = builder_image(engine, "private-cache", &conf);
        let app = world.app("web");
        app.write("netrc", &world.netrc());
        let secret = format!("id=netrc,src={}", app.file_for(engine, "netrc"));
        let with = format!("NIX_IMAGE={builder}");
        let t = tag("world-private", engine);
        let run = engine.build(&app, &t, &["--build-arg", &with, "--secret", &secret]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_contains(&run.all(), &["toolchain-1.0' from 'http://172.17.0.1:18080/private/cache'"]);
        assert!(!run.all().contains(&world.netrc_password), "{engine:?}: the password is in the log");
        // Without the netrc, the private cache refuses: everything is built (a builder image
        // of its own, so a store that has substituted nothing).
        let denied = builder_image(engine, "private-cache-denied", &format!("{conf}RUN true\n"));
        let app = world.app("web");
        let run = engine.build(&app, &tag("world-private-denied", engine), &["--build-arg", &format!("NIX_IMAGE={denied}")]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert!(built(&run.all()).len() > 1, "{engine:?}: substituted without credentials");
    }
}

on_engines! {
    /// The flake's own nixConfig names its cache, as Cachix users do: applied under the same
    /// policy as NIX_CONFIG, what is refused named in a warning.
    fn a_flakes_nix_config_names_its_cache(engine) {
        let _engines = engine.shared();
        let world = World::on(engine);
        let app = world.app("configured");
        // A key no other test trusts, so that this build's store is its own.
        let flake = std::fs::read_to_string(app.host_path().join("flake.nix")).unwrap();
        let flake = flake.replace("extra-trusted-public-keys = [ ", &format!("extra-trusted-public-keys = [ \"{}\" ", unused_key("configured")));
        app.write("flake.nix", &flake);
        let t = tag("world-configured", engine);
        let run = engine.build(&app, &t, &[]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_contains(&run.all(), &["toolchain-1.0' from 'http://172.17.0.1:18080/cache'"]);
        assert_eq!(built(&run.all()).len(), 1, "{:?}", built(&run.all()));
        assert_contains(&run.all(), &["FlakeConfigRefused", "nixConfig.bash-prompt is not applied"]);
        assert_eq!(engine.run_image(&t, &[]).stdout.lines().next(), Some("hello from configured web"));
    }
}

/// `--build-context NAME=DIR` replaces flake input NAME (buildx; Docker 20.10's client has no
/// named contexts): the replaced input is neither fetched nor used, FLAKE's further packages
/// evaluated with it replaced too.
#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn a_build_context_replaces_a_flake_input() {
    let d26 = Engine::D26;
    let _engines = d26.shared();
    let world = World::on(d26);
    let app = world.app("web");
    app.write("Dockerfile", "# syntax=org/nixfront\nFLAKE . .#cacert\n");
    // utils, changed: its mkApp marks the app.
    app.write(
        "my-utils/flake.nix",
        r#"{
  inputs.pkgs.url = "http://172.17.0.1:18080/pkgs.tar.gz";
  outputs = { self, pkgs }: {
    lib.greeting = name: "hi from my utils";
    lib.mkApp = args: pkgs.lib.mkApp (args // { name = "mine-1.0"; });
  };
}
"#,
    );
    let config = format!("NIX_CONFIG={}", world.cache_config(false));
    let mark = world.mark(d26);
    let dir = app.file_for(d26, "my-utils");
    let t = tag("world-override", d26);
    let run = d26.build(&app, &t, &["--build-arg", &config, "--build-context", &format!("utils={dir}")]);
    assert!(run.ok, "{}", run.all());
    assert_contains(&run.all(), &["-mine-1.0.drv'"]);
    assert!(in_image(d26, &t, "-nss-cacert-3.98"), "FLAKE's second package is in the image");
    let requests = world.since(d26, mark);
    assert!(!requests.iter().any(|r| r.path.starts_with("/utils.git")), "the replaced input was fetched");
    let bad = d26.build(&app, &t, &["--build-context", &format!("nope={dir}")]);
    assert!(!bad.ok);
    assert_contains(&bad.all(), &["--build-context nope: the flake has no input nope"]);
}

on_engines! {
    /// A fresh runner with BuildKit's cache (a local cache on Docker 26, inline cache on 20.10)
    /// rebuilds an edited app on its imported dependencies: no input fetched, no NAR
    /// downloaded, nothing built but the app.
    fn a_fresh_runners_edit_downloads_nothing(engine) {
        let _engines = engine.exclusive();
        let world = World::on(engine);
        let app = world.app("web");
        let config = format!("NIX_CONFIG={}", world.cache_config(false));
        let store = crate::harness::Fixture::new("world-ci-cache", "unused\n");
        let cache = store.file_for(engine, "cache");
        let (export, import): (Vec<String>, Vec<String>) = match engine {
            Engine::D26 => (
                vec!["--cache-to".into(), format!("type=local,dest={cache},mode=max")],
                vec!["--cache-from".into(), format!("type=local,src={cache}")],
            ),
            Engine::D20 => (
                vec!["--build-arg".into(), "BUILDKIT_INLINE_CACHE=1".into()],
                vec!["--cache-from".into(), tag("world-ci-source", engine)],
            ),
        };
        let with = |extra: &[String]| {
            let mut all = vec!["--build-arg".to_string(), config.clone()];
            all.extend(extra.iter().cloned());
            all
        };
        engine.prune();
        let exported = with(&export);
        let exported: Vec<&str> = exported.iter().map(String::as_str).collect();
        engine.build_id(&app, "world-ci-source", &exported);
        engine.prune();
        app.write("src/message", "hello from the runner\n");
        let mark = world.mark(engine);
        let imported = with(&[&export[..], &import[..]].concat());
        let imported: Vec<&str> = imported.iter().map(String::as_str).collect();
        let (_, log) = engine.build_id(&app, "world-ci-edit", &imported);
        let requests = world.since(engine, mark);
        assert_eq!(built(&log).len(), 1, "{engine:?}: only the app: {:?}", built(&log));
        // Inline cache (Docker 20.10) carries the image's layers and nothing else: the locked
        // inputs and the build-time toolchain, which the image does not hold, come again from
        // the server. A local cache carries them.
        if engine == Engine::D26 {
            assert!(downloads(&requests).is_empty(), "the fresh runner's edit downloaded {:?}", downloads(&requests));
        }
        assert_eq!(engine.run_image(&tag("world-ci-edit", engine), &[]).stdout.lines().next(), Some("hello from the runner"));

        // An edit of flake.nix itself on another fresh runner: the locked inputs are fixed by
        // the lock file alone (nixConfig is read from flake.nix as written), so the fetch
        // step comes from the cache too.
        engine.prune();
        let flake = std::fs::read_to_string(app.host_path().join("flake.nix")).unwrap();
        app.write("flake.nix", &flake.replace("web-1.0", "web-1.1"));
        let mark = world.mark(engine);
        let (_, log) = engine.build_id(&app, "world-ci-flake-edit", &imported);
        let requests = world.since(engine, mark);
        assert_eq!(built(&log).len(), 1, "{engine:?}: only the app: {:?}", built(&log));
        if engine == Engine::D26 {
            assert!(downloads(&requests).is_empty(), "the fresh runner's flake.nix edit downloaded {:?}", downloads(&requests));
        }
    }
}
