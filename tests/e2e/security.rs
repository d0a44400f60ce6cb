//! A shared builder: no flake can change another build's image, store paths or share of the
//! store, or read its secrets (SECURITY.md). Each attack of tests/fixtures/hostile runs on the
//! builder's persistent store (as a dependency, in the dependency step) or in the package step,
//! and the victim's image stays byte-identical to the victim built on a clean builder.

use std::io::{BufRead, BufReader};

use serde_json::Value;

use crate::harness::{Engine, Fixture, assert_contains, image, tag};

const VICTIM: &str = "# syntax=org/nixfront\nFLAKE .#victim\n";

/// The hostile flake, building attack `name` aimed at `target`.
fn hostile(name: &str, target: &str) -> Fixture {
    let hostile =
        Fixture::from_dir("hostile", "hostile", &format!("# syntax=org/nixfront\nFLAKE .#{name}\n"));
    hostile.write("target", target);
    hostile
}

/// Builds package `name` of the hostile flake, which must build; its log.
fn build_hostile(engine: Engine, name: &str, extra: &[&str], target: &str) -> String {
    let run = engine.build(&hostile(name, target), &tag(&format!("attack-{name}"), engine), extra);
    assert!(run.ok, "{engine:?}: the hostile {name} should build: {}", run.all());
    run.all()
}

/// Runs one attack of the hostile flake, which must build and run; its log.
fn attack(engine: Engine, name: &str, extra: &[&str], target: &str) -> String {
    let log = build_hostile(engine, name, extra, target);
    assert_contains(&log, &[&format!("attack {name}, run ")]);
    log
}

/// Whether Nix built the derivation named `name` (`shareddep-1.0`) in the build of `log`.
fn built(log: &str, name: &str) -> bool {
    log.lines().any(|l| l.contains("building '/nix/store/") && l.contains(&format!("-{name}.drv'")))
}

/// The victim's image IDs on a clean builder: its message as written, and after an edit.
fn clean_victim(engine: Engine, victim: &Fixture) -> (String, String) {
    engine.prune();
    let (v1, _) = engine.build_id(victim, "victim", &[]);
    assert_eq!(engine.run_image(&tag("victim", engine), &[]).stdout, "victim ok\nshared data\n");
    victim.write("message", "victim v2\n");
    let (v2, _) = engine.build_id(victim, "victim", &[]);
    victim.write("message", "victim ok\n");
    engine.prune();
    (v1, v2)
}

on_engines! {
    builders(official);
    fn hostile_flakes_cannot_change_another_projects_image(engine) {
        let _engines = engine.exclusive();
        let victim = Fixture::from_dir("victim", "victim", VICTIM);
        let (clean, _) = clean_victim(engine, &victim);

        // Before the victim is ever built, create its dependency's store path and register it.
        let target = victim.eval_raw("shareddep.outPath");
        let log = attack(engine, "preempt", &[], &target);
        // A build user may create an entry in the store (its outputs go there), but never
        // register it; nixfront sweeps it, and Nix would replace it before building it.
        // Its own next step sweeps what it created.
        assert_contains(&log, &["attack preempt: created", "attack preempt: denied registering", "swept 1 entries"]);
        assert!(!log.contains("attack preempt: registered"), "{engine:?}: {log}");
        let (first, log) = engine.build_id(&victim, "victim", &[]);
        assert!(built(&log, "shareddep-1.0"), "{engine:?}: {log}");
        assert_eq!(first, clean, "{engine:?}: the victim's first build after the preemption:\n{log}");

        // With the victim's dependency in the store, overwrite and add files in it.
        let log = attack(engine, "tamper", &[], "none");
        assert_contains(&log, &["attack tamper: denied"]);
        assert!(
            !log.contains("attack tamper: overwrote") && !log.contains("attack tamper: planted in"),
            "{log}"
        );
        victim.write("unrelated.txt", "a new context: the build step runs again, nothing is rebuilt\n");
        let (again, log) = engine.build_id(&victim, "victim", &["--no-cache"]);
        assert!(!built(&log, "shareddep-1.0"), "{engine:?}: the dependency was rebuilt:\n{log}");
        assert_eq!(again, clean, "{engine:?}: the victim after tampering:\n{log}");

        // The store checks as consistent: nothing was changed.
        victim.write("unrelated.txt", "another new context\n");
        let (_, log) = engine.build_id(&victim, "victim", &["--build-arg", "NIX_VERIFY_STORE=true"]);
        assert_contains(&log, &["nixfront: the Nix store is consistent"]);

        // Files at the image's root, outside /nix/store, in the outputs, and a rewritten manifest.
        // (Without root links: the image root is then only what nixfront makes itself.)
        let log = attack(engine, "escape", &["--build-arg", "NIX_ROOT_LINKS=false"], "none");
        assert!(!log.contains("attack escape: wrote"), "{engine:?}: {log}");
        assert_eq!(log.matches("attack escape: denied").count(), 4, "{log}");
        let root = image::root_entries(engine, &tag("attack-escape", engine));
        assert_eq!(root, ["nix", "tmp"], "{engine:?}: the image root");
    }
}

on_engines! {
    builders(official);
    /// A builder plants, at a dependency's path that the store lacks while BuildKit still has
    /// it, links and a hard link to another project's file: nothing writes through them, and
    /// they are gone as soon as its builders are.
    fn planted_links_reach_no_other_projects_file(engine) {
        let _engines = engine.exclusive();
        let victim = Fixture::from_dir("victim", "victim", VICTIM);
        let (_, clean_v2) = clean_victim(engine, &victim);
        let dep = victim.eval_raw("shareddep.outPath");
        let canary = hostile("canary", "none").eval_raw("canary.outPath");
        engine.build_id(&victim, "victim", &[]);

        // The stores dropped, BuildKit's cache of the victim's steps kept; another project's
        // file valid in the new store; then the plant.
        engine.prune_stores();
        build_hostile(engine, "holder", &["--no-cache"], "none");
        let plant = engine.build(&hostile("plant", &format!("{dep} {canary}/file")), &tag("attack-plant", engine), &[]);
        assert!(!plant.ok, "{engine:?}: the plant fails: {}", plant.all());
        // Its plants go as soon as its builders are gone, before root does anything more.
        assert_contains(&plant.all(), &["attack plant: planted", "nixfront: swept"]);

        // The victim's edit (its package step takes its dependency from the layers), and the
        // same with every step run again (on the store the plant was made in).
        victim.write("message", "victim v2\n");
        let (edit, log) = engine.build_id(&victim, "victim", &[]);
        assert_eq!(edit, clean_v2, "{engine:?}: the victim's edit after the plant:\n{log}");
        let (again, log) = engine.build_id(&victim, "victim", &["--no-cache"]);
        assert_eq!(again, clean_v2, "{engine:?}: the victim built again on the planted store:\n{log}");
        let log = attack(engine, "readcanary", &[], &canary);
        assert_contains(&log, &["attack readcanary: canary intact"]);
    }
}

on_engines! {
    /// A project imports an image whose memo (the inline cache's answers) registers a store path
    /// of another project, which a builder planted: nothing is registered.
    fn a_forged_memo_registers_nothing(engine) {
        let _engines = engine.exclusive();
        let victim = Fixture::from_dir("victim", "victim", VICTIM);
        let (clean, _) = clean_victim(engine, &victim);
        let dep = victim.eval_raw("shareddep.outPath");

        let inline = ["--build-arg", "BUILDKIT_INLINE_CACHE=1"];
        build_hostile(engine, "forger", &inline, "none");
        let forged_tag = tag("forged", engine);
        image::load_with_config(engine, &tag("attack-forger", engine), &forged_tag, |config| {
            let memo = config["org.nixfront.memo.v1"].as_object_mut().expect("the forger's memo");
            for answer in memo.values_mut() {
                let mut parsed: Value = serde_json::from_str(answer.as_str().unwrap()).unwrap();
                let Some(db) = parsed.get("db").and_then(Value::as_str) else { continue };
                let forged_db = format!("{db}{dep}\nsha256:{}\n120\n\n0\n", "0".repeat(64));
                parsed["db"] = Value::String(forged_db);
                let mut info: Value = serde_json::from_str(parsed["pathInfo"].as_str().unwrap()).unwrap();
                let entry = serde_json::json!({"path": dep, "narHash": format!("sha256:{}", "0".repeat(64)),
                    "narSize": 120, "references": []});
                match &mut info {
                    Value::Array(items) => items.push(entry),
                    Value::Object(map) => {
                        map.insert(dep.clone(), entry);
                    }
                    _ => panic!("path-info shape"),
                }
                parsed["pathInfo"] = Value::String(info.to_string());
                *answer = Value::String(parsed.to_string());
            }
        });
        attack(engine, "preempt", &[], &dep);
        // The forger's build reads its memo and takes no forged answer (the dependencies'
        // closure holds a path none of the inputs leads to): its dependency step runs, and
        // nothing registers the path.
        let with_forged = [&inline[..], &["--cache-from", &forged_tag]].concat();
        let forger = hostile("forger", "none");
        forger.write("nonce", "forged run");
        let run = engine.build(&forger, &tag("attack-forger2", engine), &with_forged);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_contains(&run.all(), &["nix: realise"]);

        let (first, log) = engine.build_id(&victim, "victim", &[]);
        assert!(built(&log, "shareddep-1.0"), "{engine:?}: {log}");
        assert_eq!(first, clean, "{engine:?}: the victim after the forged memo:\n{log}");
        assert_eq!(engine.run_image(&tag("victim", engine), &[]).stdout, "victim ok\nshared data\n");
    }
}

on_engines! {
    /// A fixed-output derivation (it has the network) asks for Nix's settings and looks for the
    /// access tokens everywhere a builder can read: they are nowhere.
    fn fixed_output_derivations_cannot_read_the_access_tokens(engine) {
        let _engines = engine.shared();
        const TOKEN: &str = "ghp_SECRETTOKEN5e2b";
        let secrets = Fixture::new("tokens-file", "unused\n");
        secrets.write("tokens", &format!("github.com={TOKEN}\n"));
        let tokens = format!("id=access-tokens,src={}", secrets.file_for(engine, "tokens"));
        let run = engine.build(&hostile("tokens", "none"), &tag("attack-tokens", engine), &["--secret", &tokens]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        let log = run.all();
        assert_contains(&log, &["attack tokens: NIX_USER_CONF_FILES=", "nixfront: using access tokens"]);
        assert!(!log.contains(TOKEN) && !log.contains("attack tokens: found"), "{engine:?}: {log}");
        let saved = image::saved_bytes(engine, &tag("attack-tokens", engine));
        assert!(!saved.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "{engine:?}: in the image");
    }
}

on_engines! {
    /// `NIX_STORE_MAX=1` collects a store of that build's own: another project keeps its store.
    fn a_bound_collects_only_its_own_store(engine) {
        // Alone on the engine: builds run one after the other take the same instance of the store.
        let _engines = engine.exclusive();
        let victim = Fixture::from_dir("victim-bound", "victim", VICTIM);
        victim.write("message", "bound victim\n");
        let (before, _) = engine.build_id(&victim, "victim-bound", &["--no-cache"]);
        let log = build_hostile(engine, "holder", &["--no-cache", "--build-arg", "NIX_STORE_MAX=1"], "none");
        assert_contains(&log, &["over NIX_STORE_MAX=1: collecting garbage"]);
        let (after, log) = engine.build_id(&victim, "victim-bound", &["--no-cache"]);
        assert!(!built(&log, "shareddep-1.0"), "{engine:?}: the victim's store was collected:\n{log}");
        assert_eq!(after, before);
    }
}

on_engines! {
    /// A build that never ends holds no other build, whose steps take another instance of the
    /// store; junk a failed build leaves is swept as soon as its builders are gone; Nix's timeouts
    /// end a silent build.
    fn a_stuck_build_holds_no_other_build_and_junk_is_swept(engine) {
        let _engines = engine.exclusive();
        let no_timeouts = ["--build-arg", "NIX_CONFIG=max-silent-time = 0\ntimeout = 0"];
        let sleeper = hostile("sleeper", "none");
        let mut stuck = engine.spawn_build(&sleeper, &tag("attack-sleeper", engine), &no_timeouts);
        // Wait (at most two minutes) until the sleeper's builder runs: it holds an instance.
        let output = BufReader::new(stuck.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in output.lines().map_while(Result::ok) {
                if line.contains("attack sleeper, run") {
                    let _ = tx.send(());
                }
            }
        });
        let ready = rx.recv_timeout(std::time::Duration::from_secs(120)).is_ok();
        let victim = Fixture::from_dir("victim-stuck", "victim", VICTIM);
        let run = engine.build_alongside(&victim, &tag("victim-stuck", engine), &["--no-cache"]);
        assert!(stuck.try_wait().unwrap().is_none(), "{engine:?}: the sleeper ended (ready: {ready})");
        let _ = std::process::Command::new("kill").args(["-TERM", "--", &format!("-{}", stuck.id())]).status();
        let _ = stuck.wait();
        assert!(run.ok, "{engine:?}: the victim beside a stuck build: {}", run.all());
        assert!(built(&run.all(), "shareddep-1.0"), "{engine:?}: {}", run.all());

        // The junk goes as soon as the failed build's builders are gone, in its own step.
        let junk = engine.build(&hostile("junk", "none"), &tag("attack-junk", engine), &[]);
        assert!(!junk.ok);
        assert_contains(&junk.all(), &["attack junk: left junk in the store"]);
        let swept = junk.all().lines().find_map(|l| l.split_once("nixfront: swept ").map(|(_, r)| r.to_string()));
        let kib: u64 = swept
            .as_deref()
            .and_then(|r| r.rsplit_once('(')?.1.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{engine:?}: nothing swept:\n{}", junk.all()));
        assert!(kib >= 80 * 1024, "{engine:?}: swept only {kib} KiB");
        let run = engine.build(&victim, &tag("victim-stuck", engine), &["--no-cache"]);
        assert!(run.ok, "{engine:?}: {}", run.all());

        let silent = ["--build-arg", "NIX_CONFIG=max-silent-time = 3"];
        let timed_out = engine.build(&hostile("silent", "none"), &tag("attack-silent", engine), &silent);
        assert!(!timed_out.ok);
        assert_contains(&timed_out.all(), &["timed out after 3 seconds of silence"]);
    }
}

on_engines! {
    fn a_derivation_cannot_read_the_builds_secrets(engine) {
        let _engines = engine.shared();
        const VALUE: &str = "SECRET-NETRC-5e2b";
        let secrets = Fixture::new("secret-file", "unused\n");
        secrets.write("netrc", &format!("machine cache.example.invalid login u password {VALUE}\n"));
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

on_engines! {
    fn flake_references_to_the_builders_own_files_are_refused(engine) {
        let _engines = engine.shared();
        for reference in ["path:/nixfront/bin", "/nix/var/nix#x", "file:///etc"] {
            let fx = Fixture::new("abs-ref", &format!("# syntax=org/nixfront\nLABEL a=b\nFLAKE {reference}\n"));
            {
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
}

on_engines! {
    builders(official);
    fn no_cache_keeps_the_store(engine) {
        // Alone on the engine: a build beside it could take the instance of the store this
        // one's steps would use, and this one would get another.
        let _engines = engine.exclusive();
        let fx = Fixture::new("nocache-store", "# syntax=org/nixfront\nFLAKE .#edited\n");
        let t = tag("nocache-store", engine);
        let first = engine.build(&fx, &t, &[]);
        assert!(first.ok, "{engine:?}: {}", first.all());
        assert_contains(&first.all(), &["building slowdep"]);
        let again = engine.build(&fx, &t, &["--no-cache"]);
        assert!(again.ok, "{engine:?}: {}", again.all());
        assert_contains(&again.all(), &["nixfront: closure of"]);
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

on_engines! {
    /// Without the entitlement the build is refused, saying how to grant it.
    fn nix_sandbox_needs_the_insecure_entitlement(engine) {
        let _engines = engine.shared();
        let hostile = Fixture::from_dir("probe", "hostile", "# syntax=org/nixfront\nFLAKE .#probe\n");
        let refused = engine.build(&hostile, &tag("probe", engine), &["--build-arg", "NIX_SANDBOX=true"]);
        assert!(!refused.ok, "{engine:?}: {}", refused.all());
        assert_contains(&refused.all(), &["NIX_SANDBOX=true runs Nix's sandbox", "--allow security.insecure"]);
    }
}

/// dockerd 26 grants it (dockerd 20.10's docker build cannot ask for it).
#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn nix_sandbox_runs_where_the_builder_grants_it() {
    let d26 = Engine::D26;
    let _engines = d26.shared();
    let sandbox = ["--build-arg", "NIX_SANDBOX=true"];
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

on_engines! {
    fn a_bounded_store_collects_garbage_and_keeps_the_latest_build(engine) {
        let _engines = engine.shared();
        // A trust setting (with no effect) gives these builds a store of their own, so that
        // collecting garbage there never reaches the tests running beside this one.
        let own_store = ["--build-arg", "NIX_CONFIG=require-sigs = true"];
        let bound = [&own_store[..], &["--build-arg", "NIX_STORE_MAX=64K"]].concat();
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
        // Every step again, on the bounded store: the latest build's inputs are still there.
        fx.write("app/message", "message v2\n");
        let edit = engine.build(&fx, &t, &[&bound[..], &["--no-cache"]].concat());
        assert!(edit.ok, "{engine:?}: {}", edit.all());
        assert_contains(&edit.all(), &["-edited-1.0.drv'..."]);
        assert!(
            !edit.all().contains("building slowdep"),
            "{engine:?}: the bound dropped the latest build's inputs"
        );
        assert_eq!(engine.run_image(&t, &[]).stdout, "message v2\nslow dependency\n");
        // The other project, whose store has no bound, keeps its dependency.
        let other_again =
            engine.build(&other, &tag("bound-other", engine), &[&own_store[..], &["--no-cache"]].concat());
        assert!(other_again.ok, "{engine:?}: {}", other_again.all());
        assert!(!other_again.all().contains("building slowdep"), "{engine:?}: {}", other_again.all());
    }
}

on_engines! {
    fn nix_config_cannot_weaken_isolation(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("nixconf-refused", "# syntax=org/nixfront\nFLAKE .#hello\n");
        for (setting, why) in [
            ("build-users-group =", "never as root"),
            ("post-build-hook = /bin/sh", "runs a program as root"),
            ("extra-sandbox-paths = /run/secrets", "builder's files"),
            ("pure-eval = false", "pure mode"),
            ("flake-registry = /etc/registry.json", "files of the builder"),
            ("access-tokens = github.com=x", "--secret id=access-tokens"),
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
