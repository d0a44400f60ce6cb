//! A shared builder, round three (SECURITY.md, "One rule for the store, one for names"): the
//! ways a co-tenant found past the sweep and the lock files, each with its own hostile
//! fixture. Builders that run while a flake is evaluated, or for a content-addressed package,
//! plant nothing root then writes through; a build context name that climbs out of its
//! directory is refused where it is parsed (sent by a raw client, since buildx refuses it
//! itself); a flake.lock input on the builder's own files is refused; a bound set by another
//! project collects another store.

use crate::harness::{Engine, Fixture, assert_contains, assert_no_internal_paths, final_error, tag};

const VICTIM: &str = "# syntax=org/nixfront\nFLAKE .#victim\n";

/// The hostile flake building `name`.
fn hostile(name: &str) -> Fixture {
    let fx = Fixture::from_dir("hostile", "hostile", &format!("# syntax=org/nixfront\nFLAKE .#{name}\n"));
    fx.write("target", "none");
    fx
}

/// Whether Nix built the derivation named `name` in the build of `log`.
fn built(log: &str, name: &str) -> bool {
    log.lines().any(|l| l.contains("building '/nix/store/") && l.contains(&format!("-{name}.drv'")))
}

/// The victim's image ID on a clean builder; then the victim built, so that its dependency is
/// a valid path of the store the attacker lands on. The dependency's path.
fn victim_in_store(engine: Engine, victim: &Fixture) -> (String, String) {
    engine.prune();
    let (clean, log) = engine.build_id(victim, "victim", &[]);
    assert!(built(&log, "shareddep-1.0"), "{engine:?}: {log}");
    (clean, victim.eval_raw("shareddep.outPath"))
}

/// The hostile flake building `name`, aimed at linking the lock file of its path `later` (an
/// attribute) to a new file `file` in the victim's dependency `dep`.
fn aimed(name: &str, later: &str, dep: &str, file: &str) -> Fixture {
    let fx = hostile(name);
    let later = fx.eval_raw(later);
    fx.write("target", &format!("{later} {dep}/{file}"));
    fx
}

/// The victim's image built again with every step run, on the store the attack left: the
/// clean image, and no planted file in its dependency.
fn victim_unchanged(engine: Engine, victim: &Fixture, clean: &str, planted: &str) {
    victim.write("unrelated.txt", &format!("a new context after {planted}\n"));
    let (again, log) = engine.build_id(victim, "victim", &["--no-cache"]);
    assert_eq!(again, clean, "{engine:?}: the victim after the attack:\n{log}");
    let listing = engine.run_image(&tag("victim", engine), &[]);
    assert_eq!(listing.stdout, "victim ok\nshared data\n");
}

on_engines! {
    /// A builder run while the flake is evaluated (import from derivation) links the lock file
    /// of the derivation the same evaluation writes next to a new file in another project's
    /// valid store path. On the shared store Nix imports nothing built while evaluating: the
    /// build fails saying what to do, and no builder ran.
    fn a_builder_run_while_evaluating_plants_nothing(engine) {
        let _engines = engine.exclusive();
        let victim = Fixture::from_dir("victim", "victim", VICTIM);
        let (clean, dep) = victim_in_store(engine, &victim);
        let fx = aimed("ifdplant", "ifdlater.drvPath", &dep, "planted-by-ifd");
        let run = engine.build(&fx, &tag("attack-ifdplant", engine), &[]);
        assert!(!run.ok, "{engine:?}: {}", run.all());
        let error = final_error(&run.all());
        assert_contains(&error, &["(import from derivation)", "--build-arg NIX_PERSISTENT_STORE=false"]);
        assert!(!run.all().contains("attack ifdplant: planted"), "{engine:?}: a builder ran: {}", run.all());
        assert_no_internal_paths(&run.all());
        victim_unchanged(engine, &victim, &clean, "planted-by-ifd");
    }
}

on_engines! {
    /// A content-addressed package (its paths are known only once built, so nothing can lock
    /// them first), whose dependency links the lock file of the next dependency's output to a
    /// new file in another project's valid store path: it builds in a store of its own, and
    /// the victim's store path and image stay as they were.
    fn a_content_addressed_build_plants_nothing(engine) {
        let _engines = engine.exclusive();
        let victim = Fixture::from_dir("victim", "victim", VICTIM);
        let (clean, dep) = victim_in_store(engine, &victim);
        let fx = aimed("caplant", "calater.outPath", &dep, "planted-by-ca");
        let ca = ["--build-arg", "NIX_CONFIG=extra-experimental-features = ca-derivations"];
        let run = engine.build(&fx, &tag("attack-caplant", engine), &ca);
        // The planter ran (in a store of the step's own, where the victim's path is not).
        assert_contains(&run.all(), &["attack caplant, run "]);
        victim_unchanged(engine, &victim, &clean, "planted-by-ca");
    }
}

on_engines! {
    /// A raw client (a frontend that calls nixfront through BuildKit's gateway, as `buildctl
    /// --opt` or bake may) names a build context `../self`, which would mount the client's
    /// directory over the step's own binary: refused before anything runs.
    fn a_context_name_that_climbs_out_is_refused(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("raw-client", "# syntax=org/raw-client\nFLAKE .#hello\n");
        // What would run as root in each step if the name were taken.
        fx.write("nixfront", "#!/bin/sh\necho planted-by-client > /nix/store/planted-by-client\n");
        for name in ["../self", "x/../../self", "UPPER"] {
            let opt = format!("RAW_OPT_0=context:{name}=local:context");
            let run = engine.build(&fx, &tag("raw-client", engine), &["--build-arg", &opt]);
            assert!(!run.ok, "{engine:?} {name}: {}", run.all());
            assert_contains(
                &run.all(),
                &[&format!("--build-context {name}: \"{name}\" is not a build context name"), "for example"],
            );
            assert!(!run.all().contains("nix eval"), "{engine:?}: a step ran: {}", run.all());
        }
        // The raw client itself works: with an option buildx could send, nixfront builds.
        let run = engine.build(&fx, &tag("raw-client", engine), &["--build-arg", "RAW_OPT_0=label:raw=client"]);
        assert!(run.ok, "{engine:?}: the raw client: {}", run.all());
    }
}

on_engines! {
    /// A flake.lock whose input is one of the builder's own files (`file:///etc/...`): refused
    /// with the input's name, before Nix fetches anything.
    fn a_locked_input_on_the_builders_files_is_refused(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("local-input", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let lock = r#"{"nodes": {
            "secrets": {"flake": false, "locked": {"narHash": "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                        "type": "file", "url": "file:///etc/shadow"},
                        "original": {"type": "file", "url": "file:///etc/shadow"}},
            "root": {"inputs": {"secrets": "secrets"}}},
          "root": "root", "version": 7}"#;
        fx.write("flake.lock", lock);
        let run = engine.build(&fx, &tag("local-input", engine), &[]);
        assert!(!run.ok, "{engine:?}: {}", run.all());
        assert_contains(&final_error(&run.all()), &["secrets", "file:///etc/shadow"]);
        assert!(!run.all().contains("locked input"), "{engine:?}: the fetch step ran: {}", run.all());
    }
}

on_engines! {
    /// A co-tenant that sets the victim's NIX_STORE_MAX gets a bounded store of its own: its
    /// garbage collection leaves the victim's store as it was.
    fn a_bound_set_by_another_project_collects_another_store(engine) {
        let _engines = engine.exclusive();
        let bound = ["--no-cache", "--build-arg", "NIX_STORE_MAX=1"];
        let victim = Fixture::from_dir("victim-bounded", "victim", VICTIM);
        victim.write("message", "bounded victim\n");
        let (before, log) = engine.build_id(&victim, "victim-bounded", &bound);
        assert!(built(&log, "shareddep-1.0"), "{engine:?}: {log}");
        for round in 0..4 {
            let fx = hostile("holder");
            fx.write("nonce", &format!("co-tenant round {round}"));
            let run = engine.build(&fx, &tag("attack-holder", engine), &bound);
            assert!(run.ok, "{engine:?}: {}", run.all());
        }
        let (after, log) = engine.build_id(&victim, "victim-bounded", &bound);
        assert!(!built(&log, "shareddep-1.0"), "{engine:?}: the victim's store was collected:\n{log}");
        assert_eq!(after, before);
    }
}
