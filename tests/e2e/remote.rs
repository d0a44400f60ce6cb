//! Remote builders, end to end, offline (issue 27): a Nix build host over ssh-ng
//! (scripts/buildhost.sh) that really builds, chosen by `builders` in `NIX_CONFIG` with the
//! `ssh-key` secret, and what the secret must never reach.

use std::time::{Duration, Instant};

use crate::harness::buildhost::BuildHost;
use crate::harness::{Fixture, assert_contains, assert_points_at, final_error, image, tag};

/// The remote fixture building `attr`, with the key's marker halves in place (only `scan`
/// reads them).
fn fixture(name: &str, attr: &str, marker: &str) -> Fixture {
    let fx = Fixture::from_dir(name, "remote", &format!("# syntax=org/nixfront\nFLAKE .#{attr}\n"));
    let (a, b) = marker.split_at(marker.len() / 2);
    fx.write("marker-a", a);
    fx.write("marker-b", b);
    fx
}

/// The derivations built on the host, from a build's log (Nix says where it builds).
fn built_remotely<'a>(log: &'a str, host: &BuildHost) -> Vec<&'a str> {
    let on = format!("' on '{}'", host.uri);
    log.lines().filter(|l| l.contains("building '/nix/store/") && l.contains(&on)).collect()
}

/// 40 characters of the private key's body: what a leak of the key would hold.
fn marker_of(host: &BuildHost) -> String {
    let text = host.key_text();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    body[20..60].to_string()
}

on_engines! {
    /// With `max-jobs = 0` nothing can build locally: the app and its dependency are built on
    /// the host (its log says so, its store has them), and the image is a local build's.
    fn a_remote_builder_builds_the_app(engine) {
        let _engines = engine.shared();
        let host = BuildHost::start();
        let fx = fixture("remote-app", "app", "unused");
        let config = host.config_for(&host.uri, "max-jobs = 0");
        let secret = host.secret(engine, true);
        let t = tag("remote-app", engine);
        let run = engine.build(&fx, &t, &["--build-arg", &config, "--secret", &secret]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        let log = run.all();
        let remote = built_remotely(&log, &host);
        assert_eq!(remote.len(), 2, "the dependency and the app, on the host: {remote:?}\n{log}");
        assert!(!host.built_here("-remote-app-1.0").is_empty(), "the host's store has the app");
        assert_eq!(engine.run_image(&t, &[]).stdout, "remote app\na dependency\n");

        // The same flake built here: the same layers.
        let local = tag("remote-app-local", engine);
        let run = engine.build(&fx, &local, &[]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert!(built_remotely(&run.all(), &host).is_empty());
        assert_eq!(engine.inspect(&t)["RootFS"], engine.inspect(&local)["RootFS"], "a local build's layers");
    }
}

on_engines! {
    /// A package that needs a system feature only the host lists goes there on its own (local
    /// builds are allowed), and without the host it cannot be built: said at the FLAKE line.
    fn a_package_that_needs_the_hosts_feature_is_built_there(engine) {
        let _engines = engine.shared();
        let host = BuildHost::start();
        let fx = fixture("remote-featured", "featured", "unused");
        let config = host.config_for(&host.uri, "");
        let secret = host.secret(engine, true);
        let t = tag("remote-featured", engine);
        let run = engine.build(&fx, &t, &["--build-arg", &config, "--secret", &secret]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        let log = run.all();
        let remote = built_remotely(&log, &host);
        assert!(remote.iter().any(|l| l.contains("-remote-featured-1.0.drv")), "{log}");
        assert_eq!(engine.run_image(&t, &[]).stdout, "built where remote-only is\n");

        let alone = engine.build(&fx, &tag("remote-featured-alone", engine), &[]);
        assert!(!alone.ok, "built without the host:\n{}", alone.all());
        assert_points_at(engine, &alone.all(), "FLAKE .#featured");
        assert_contains(&final_error(&alone.all()), &["remote-only"]);
    }
}

on_engines! {
    /// A host that refuses the key, and one that is not there, are errors at the FLAKE line
    /// that say which builder, not a hang.
    fn a_host_that_refuses_the_key_or_is_gone_is_an_error(engine) {
        let _engines = engine.shared();
        let host = BuildHost::start();
        let fx = fixture("remote-refused", "app", "unused");
        let refused = host.secret(engine, false);
        let config = host.config_for(&host.uri, "max-jobs = 0");
        let run = engine.build(&fx, &tag("remote-refused", engine), &["--build-arg", &config, "--secret", &refused]);
        assert!(!run.ok, "built with a refused key:\n{}", run.all());
        assert_points_at(engine, &run.all(), "FLAKE .#app");
        assert_contains(&final_error(&run.all()), &["root@172.17.0.1"]);

        // Nothing answers at that address in the engine's network namespace.
        let gone = host.config_for("ssh-ng://root@172.17.0.254", "max-jobs = 0");
        let secret = host.secret(engine, true);
        let start = Instant::now();
        let run = engine.build(&fx, &tag("remote-gone", engine), &["--build-arg", &gone, "--secret", &secret]);
        assert!(!run.ok, "built without a host:\n{}", run.all());
        assert!(start.elapsed() < Duration::from_secs(300), "a host that is gone hangs the build");
        assert_points_at(engine, &run.all(), "FLAKE .#app");
        assert_contains(&final_error(&run.all()), &["root@172.17.0.254"]);
    }
}

on_engines! {
    /// The `ssh-key` secret reaches Nix's ssh alone: not a derivation built here (it runs as a
    /// build user), not one built on the host, not the image, the log, nor a co-tenant that
    /// writes the same `builders` line (and so shares the store) on the same builder.
    fn the_builders_key_reaches_no_derivation_image_log_or_co_tenant(engine) {
        let _engines = engine.shared();
        let host = BuildHost::start();
        let marker = marker_of(&host);
        let secret = host.secret(engine, true);
        let config = host.config_for(&host.uri, "");

        // Built here: the secret is mounted in the step, where the build user cannot read it.
        let fx = fixture("remote-peek", "peek", &marker);
        let t = tag("remote-peek", engine);
        let run = engine.build(&fx, &t, &["--secret", &secret]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        let saw = engine.run_image(&t, &[]).stdout;
        assert!(saw.starts_with("peek saw: ") && !saw.contains(&marker), "{saw}");
        // Built on the host.
        let remote = tag("remote-peek-remote", engine);
        fx.write("nonce", "another nonce");
        let max = host.config_for(&host.uri, "max-jobs = 0");
        let run = engine.build(&fx, &remote, &["--build-arg", &max, "--secret", &secret, "--no-cache"]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert!(!run.all().contains(&marker), "the key in the log");
        let saw = engine.run_image(&remote, &[]).stdout;
        assert!(saw.starts_with("peek saw: ") && !saw.contains(&marker), "{saw}");
        let saved = String::from_utf8_lossy(&image::saved_bytes(engine, &remote)).into_owned();
        assert!(!saved.contains(&marker), "the key in the image");

        // A co-tenant with the same builders line and no key: whatever it builds finds no trace
        // of the key in the store it shares, nor anywhere else in its step.
        let co = fixture("remote-scan", "scan", &marker);
        let t = tag("remote-scan", engine);
        let run = engine.build(&co, &t, &["--build-arg", &config]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "found: \n", "the co-tenant found the key");
    }
}
