//! A shared builder: no flake can change another build's image or read its secrets
//! (SECURITY.md). Each attack of tests/fixtures/hostile runs on the builder's persistent store,
//! and the victim's image stays byte-identical to the victim built on a clean builder.

use crate::harness::engine::d26_only;
use crate::harness::{
    Engine, Fixture, assert_contains, engines, exclusive_engines, image, shared_engines, tag,
};

const VICTIM: &str = "# syntax=org/nixfront\nFLAKE .#victim\n";

/// Runs one attack of the hostile flake; its log.
fn attack(engine: Engine, name: &str, extra: &[&str], target: &str) -> String {
    let hostile =
        Fixture::from_dir("hostile", "hostile", &format!("# syntax=org/nixfront\nFLAKE .#{name}\n"));
    hostile.write("target", target);
    let t = tag(&format!("attack-{name}"), engine);
    let run = engine.build(&hostile, &t, extra);
    assert!(run.ok, "{engine:?}: the attack {name} should build: {}", run.all());
    assert_contains(&run.all(), &[&format!("attack {name}, run ")]);
    run.all()
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn hostile_flakes_cannot_change_another_projects_image() {
    let _engines = exclusive_engines();
    for engine in engines() {
        let victim = Fixture::from_dir("victim", "victim", VICTIM);
        engine.prune();
        let (clean, _) = engine.build_id(&victim, "victim", &[]);
        assert_eq!(engine.run_image(&tag("victim", engine), &[]).stdout, "victim ok\nshared data\n");

        // 2. Before the victim is ever built, create its output path and register it.
        engine.prune();
        let target = victim.eval_raw("victim.outPath");
        let log = attack(engine, "preempt", &[], &target);
        // A build user may create an entry in the store (its outputs go there), but never
        // register it: Nix replaces an invalid path before it builds it.
        assert_contains(&log, &["attack preempt: denied registering"]);
        assert!(!log.contains("attack preempt: registered"), "{engine:?}: {log}");
        let (first, log) = engine.build_id(&victim, "victim", &[]);
        assert_eq!(first, clean, "{engine:?}: the victim's first build after the preemption:\n{log}");

        // 1. With the victim in the store, overwrite and add files in its paths.
        let log = attack(engine, "tamper", &[], "none");
        assert_contains(&log, &["attack tamper: denied"]);
        assert!(
            !log.contains("attack tamper: overwrote") && !log.contains("attack tamper: planted in"),
            "{log}"
        );
        victim.write("unrelated.txt", "a new context: the build step runs again, nothing is rebuilt\n");
        let (again, log) = engine.build_id(&victim, "victim", &[]);
        assert_contains(&log, &["store paths copied"]);
        assert!(!log.contains("-victim-1.0.drv"), "{engine:?}: the victim was rebuilt:\n{log}");
        assert_eq!(again, clean, "{engine:?}: the victim after tampering:\n{log}");

        // 3. The store checks as consistent: nothing was changed.
        victim.write("unrelated.txt", "another new context\n");
        let (_, log) = engine.build_id(&victim, "victim", &["--build-arg", "NIX_VERIFY_STORE=true"]);
        assert_contains(&log, &["nixfront: the Nix store is consistent"]);

        // 5. Files at the image's root, outside /nix/store, and a rewritten manifest.
        let log = attack(engine, "escape", &[], "none");
        assert!(!log.contains("attack escape: wrote"), "{engine:?}: {log}");
        assert_eq!(log.matches("attack escape: denied").count(), 3, "{log}");
        let root = image::root_entries(engine, &tag("attack-escape", engine));
        assert_eq!(root, ["nix", "tmp"], "{engine:?}: the image root");
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn a_derivation_cannot_read_the_builds_secrets() {
    let _engines = shared_engines();
    const VALUE: &str = "SECRET-NETRC-5e2b";
    let secrets = Fixture::new("secret-file", "unused\n");
    secrets.write("netrc", &format!("machine cache.example.invalid login u password {VALUE}\n"));
    for engine in engines() {
        let netrc = format!("id=netrc,src={}", secrets.file_for(engine, "netrc"));
        let log = attack(engine, "secret", &["--secret", &netrc], "none");
        assert_contains(&log, &["attack secret: denied", "nixfront: using the netrc from --secret id=netrc"]);
        assert!(!log.contains(VALUE), "{engine:?}: the secret is in the log");
        let saved = image::saved_bytes(engine, &tag("attack-secret", engine));
        assert!(
            !saved.windows(VALUE.len()).any(|w| w == VALUE.as_bytes()),
            "{engine:?}: the secret is in the image"
        );
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn flake_references_to_the_builders_own_files_are_refused() {
    let _engines = shared_engines();
    for reference in ["path:/nixfront/bin", "/nix/var/nix#x", "file:///etc"] {
        let fx = Fixture::new("abs-ref", &format!("# syntax=org/nixfront\nLABEL a=b\nFLAKE {reference}\n"));
        for engine in engines() {
            let run = engine.build(&fx, &tag("abs-ref", engine), &[]);
            assert!(!run.ok, "{engine:?} {reference}: {}", run.all());
            assert_contains(
                &run.all(),
                &[&format!("flake reference `{reference}`"), "never from files of the builder"],
            );
            assert!(!run.all().contains("nix build"), "{engine:?}: Nix ran: {}", run.all());
        }
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn no_cache_keeps_the_store() {
    let _engines = shared_engines();
    for engine in engines() {
        let fx = Fixture::new("nocache-store", "# syntax=org/nixfront\nFLAKE .#edited\n");
        let t = tag("nocache-store", engine);
        let first = engine.build(&fx, &t, &[]);
        assert!(first.ok, "{engine:?}: {}", first.all());
        assert_contains(&first.all(), &["building slowdep"]);
        let again = engine.build(&fx, &t, &["--no-cache"]);
        assert!(again.ok, "{engine:?}: {}", again.all());
        assert_contains(&again.all(), &["store paths copied"]);
        assert!(!again.all().contains("building slowdep"), "{engine:?}: --no-cache emptied the store");
        fx.write("app/message", "message v2\n");
        let edit = engine.build(&fx, &t, &[]);
        assert!(edit.ok, "{engine:?}: {}", edit.all());
        assert_contains(&edit.all(), &["-edited-1.0.drv'..."]);
        assert!(
            !edit.all().contains("building slowdep"),
            "{engine:?}: the edit after --no-cache rebuilt a dependency"
        );
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn nix_sandbox_runs_where_the_builder_grants_it() {
    let _engines = shared_engines();
    let sandbox = ["--build-arg", "NIX_SANDBOX=true"];
    for engine in engines() {
        let hostile = Fixture::from_dir("probe", "hostile", "# syntax=org/nixfront\nFLAKE .#probe\n");
        let refused = engine.build(&hostile, &tag("probe", engine), &sandbox);
        assert!(!refused.ok, "{engine:?}: {}", refused.all());
        assert_contains(
            &refused.all(),
            &["NIX_SANDBOX=true runs Nix's sandbox", "--allow security.insecure"],
        );
    }
    let d26 = d26_only("NIX_SANDBOX (dockerd 20.10's docker build cannot grant security.insecure)");
    let hostile = Fixture::from_dir("probe", "hostile", "# syntax=org/nixfront\nFLAKE .#probe\n");
    let run =
        d26.build(&hostile, &tag("probe", d26), &[&sandbox[..], &["--allow", "security.insecure"]].concat());
    assert!(run.ok, "{}", run.all());
    assert_contains(&run.all(), &["attack probe: no /nixfront"]);
    // The same probe, new to the store, without the sandbox: it sees the build step.
    let plain_probe = Fixture::from_dir("probe-plain", "hostile", "# syntax=org/nixfront\nFLAKE .#probe\n");
    let plain = d26.build(&plain_probe, &tag("probe", d26), &[]);
    assert_contains(&plain.all(), &["attack probe: sees /nixfront"]);
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn a_bounded_store_collects_garbage_and_keeps_the_latest_build() {
    let _engines = shared_engines();
    // A trust setting (with no effect) gives these builds a store of their own, so that
    // collecting garbage there never reaches the tests running beside this one.
    let own_store = ["--build-arg", "NIX_CONFIG=require-sigs = true"];
    let bound = [&own_store[..], &["--build-arg", "NIX_STORE_MAX=64K"]].concat();
    for engine in engines() {
        let other = Fixture::new("bound-other", "# syntax=org/nixfront\nFLAKE .#edited\n");
        assert!(engine.build(&other, &tag("bound-other", engine), &own_store).ok);
        let fx = Fixture::new("bound", "# syntax=org/nixfront\nFLAKE .#edited\n");
        let t = tag("bound", engine);
        let first = engine.build(&fx, &t, &bound);
        assert!(first.ok, "{engine:?}: {}", first.all());
        assert_contains(
            &first.all(),
            &["over NIX_STORE_MAX=65536: collecting garbage", "after collecting garbage"],
        );
        fx.write("app/message", "message v2\n");
        let edit = engine.build(&fx, &t, &bound);
        assert!(edit.ok, "{engine:?}: {}", edit.all());
        assert_contains(&edit.all(), &["-edited-1.0.drv'..."]);
        assert!(
            !edit.all().contains("building slowdep"),
            "{engine:?}: the bound dropped the latest build's inputs"
        );
        assert_eq!(engine.run_image(&t, &[]).stdout, "message v2\nslow dependency\n");
        // The other project's dependency was collected: it builds again.
        let other_again =
            engine.build(&other, &tag("bound-other", engine), &[&own_store[..], &["--no-cache"]].concat());
        assert_contains(&other_again.all(), &["building slowdep"]);
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn nix_config_cannot_weaken_isolation() {
    let _engines = shared_engines();
    let fx = Fixture::new("nixconf-refused", "# syntax=org/nixfront\nFLAKE .#hello\n");
    for engine in engines() {
        for (setting, why) in [
            ("build-users-group =", "never as root"),
            ("post-build-hook = /bin/sh", "runs a program as root"),
            ("extra-sandbox-paths = /run/secrets", "builder's files"),
        ] {
            let run = engine.build(
                &fx,
                &tag("nixconf-refused", engine),
                &["--build-arg", &format!("NIX_CONFIG={setting}")],
            );
            assert!(!run.ok, "{engine:?} {setting}: {}", run.all());
            assert_contains(&run.all(), &["cannot be set here", why]);
        }
    }
}
