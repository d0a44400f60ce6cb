//! A binary cache the fleet shares (issue 27): `NIX_CACHE_TO` signs and uploads what a build
//! made to an HTTP cache that takes uploads (the world's server, `/upload/`), from which a
//! plain `nix build` on another machine and a second runner's cold build substitute; the
//! signing key reaches no derivation, image or log.

use crate::harness::buildhost::BuildHost;
use crate::harness::world::World;
use crate::harness::{Fixture, assert_contains, image, tag};

const APP: &str = "# syntax=org/nixfront\nFLAKE .#edited\n";

/// The derivations Nix built, from a build's log.
fn built(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("building '/nix/store/")).collect()
}

on_engines! {
    fn a_fleet_cache_gets_the_builds_paths_signed_and_serves_them(engine) {
        let _engines = engine.exclusive();
        let world = World::on(engine);
        let host = BuildHost::start();
        let fx = Fixture::new("fleet", APP);
        let fleet = format!("{}/upload/fleet-{}-{}", world.url, engine.name(), std::process::id());
        let netrc = Fixture::new("fleet-netrc", "unused\n");
        netrc.write("netrc", &world.netrc());
        let upload = [
            "--build-arg".to_string(),
            format!("NIX_CACHE_TO={fleet}"),
            "--secret".to_string(),
            host.signing_secret(engine),
            "--secret".to_string(),
            format!("id=netrc,src={}", netrc.file_for(engine, "netrc")),
        ];
        let upload: Vec<&str> = upload.iter().map(String::as_str).collect();

        // A CI build: the image, then its paths signed and uploaded.
        let t = tag("fleet", engine);
        let mark = world.mark(engine);
        let run = engine.build(&fx, &t, &upload);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_contains(&run.all(), &["building slowdep", &format!("store paths are in {fleet}")]);
        let puts: Vec<String> =
            world.since(engine, mark).into_iter().filter(|r| r.status == 201).map(|r| r.path).collect();
        let narinfos = puts.iter().filter(|p| p.ends_with(".narinfo")).count();
        assert!(narinfos >= 3, "the app, its dependency and busybox uploaded: {puts:?}");
        let key = host.signing_key_text();
        let secret = key.split(':').nth(1).unwrap_or_default().trim();
        assert!(!run.all().contains(secret), "the signing key in the log");
        let saved = String::from_utf8_lossy(&image::saved_bytes(engine, &t)).into_owned();
        assert!(!saved.contains(secret), "the signing key in the image");

        // The same build again: nothing new, nothing uploaded.
        let mark = world.mark(engine);
        let again = engine.build(&fx, &t, &upload);
        assert!(again.ok, "{engine:?}: {}", again.all());
        assert!(world.since(engine, mark).iter().all(|r| r.status != 201), "uploaded again");

        // A developer's plain `nix build` of the same flake substitutes everything from it and
        // builds nothing.
        let nix = host.nix(
            engine,
            &fx,
            &format!("fleet-{}", engine.name()),
            &[
                "--extra-experimental-features", "nix-command flakes",
                "build", "--no-link", "--print-out-paths",
                "--option", "substituters", &fleet,
                "--option", "trusted-public-keys", &host.public_key,
                "--option", "max-jobs", "0",
                &format!("path:/tmp/fleet-{}#edited", engine.name()),
            ],
        );
        assert!(nix.ok, "the plain nix build: {}", nix.all());
        assert!(nix.stdout.trim().ends_with("-edited-1.0"), "{}", nix.all());

        // A second runner (an empty builder and stores) with the fleet's cache as a substituter,
        // after an app edit: only the app is built.
        engine.prune();
        engine.prune_stores();
        fx.write("app/message", "message v2\n");
        let config = format!("NIX_CONFIG=extra-substituters = {fleet}\nextra-trusted-public-keys = {}", host.public_key);
        let second = engine.build(&fx, &tag("fleet-second", engine), &["--build-arg", &config]);
        assert!(second.ok, "{engine:?}: {}", second.all());
        let log = second.all();
        assert!(!log.contains("building slowdep"), "the dependency was built, not substituted:\n{log}");
        assert_eq!(built(&log).len(), 1, "only the app: {:?}", built(&log));
    }
}

on_engines! {
    /// The signing key is mounted in the upload step alone: a derivation of the same build
    /// cannot read it (it is not there), a co-tenant finds no trace of it, and a missing key is
    /// an error that says what to pass.
    fn the_signing_key_reaches_no_derivation(engine) {
        let _engines = engine.shared();
        let world = World::on(engine);
        let host = BuildHost::start();
        let fx = Fixture::from_dir("fleet-peek", "remote", "# syntax=org/nixfront\nFLAKE .#peek\n");
        fx.write("marker-a", "a");
        fx.write("marker-b", "b");
        let fleet = format!("{}/upload/fleet-peek-{}", world.url, engine.name());
        let cache_to = format!("NIX_CACHE_TO={fleet}");
        let netrc = Fixture::new("fleet-peek-netrc", "unused\n");
        netrc.write("netrc", &world.netrc());
        let netrc = format!("id=netrc,src={}", netrc.file_for(engine, "netrc"));
        let t = tag("fleet-peek", engine);
        let secret = host.signing_secret(engine);
        let run = engine.build(&fx, &t, &["--build-arg", &cache_to, "--secret", &secret, "--secret", &netrc]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        let saw = engine.run_image(&t, &[]).stdout;
        assert!(saw.contains("nix-signing-key") && saw.contains("No such file"), "{saw}");
        let key = host.signing_key_text();
        assert!(!saw.contains(key.split(':').nth(1).unwrap().trim()), "{saw}");

        // A co-tenant on the same builder, after the upload: whatever it builds finds no trace of
        // the key in the store it shares, nor anywhere else in its step.
        let body: String = key.split(':').nth(1).unwrap().trim().to_string();
        let marker = &body[4..36];
        let co = Fixture::from_dir("fleet-scan", "remote", "# syntax=org/nixfront\nFLAKE .#scan\n");
        let (a, b) = marker.split_at(marker.len() / 2);
        co.write("marker-a", a);
        co.write("marker-b", b);
        let scan = tag("fleet-scan", engine);
        let run = engine.build(&co, &scan, &[]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_eq!(engine.run_image(&scan, &[]).stdout, "found: \n", "the co-tenant found the signing key");

        let missing = engine.build(&fx, &tag("fleet-nokey", engine), &["--build-arg", &cache_to, "--no-cache"]);
        assert!(!missing.ok, "uploaded without a signing key:\n{}", missing.all());
        assert_contains(&crate::harness::final_error(&missing.all()), &["--secret id=nix-signing-key"]);
    }
}
