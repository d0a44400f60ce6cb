//! The core promise: a flake reference becomes an image that holds exactly its runtime
//! closure and runs; every instruction reaches the config; bad input fails clearly and
//! leaves no image.

use crate::harness::{
    Engine, Fixture, assert_contains, assert_no_internal_paths, final_error, image, is_step_log, tag,
};

on_engines! {
    builders(nix28, official);
    fn the_image_runs_and_holds_exactly_the_closure(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("closure", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let expected = fx.expected_closure("hello");
        assert_eq!(expected.len(), 3, "hello + greeting + tools: {expected:?}");
        let t = tag("closure", engine);
        let build = engine.build(&fx, &t, &[]);
        assert!(build.ok, "{engine:?} build failed:\n{}", build.all());
        let run = engine.run_image(&t, &["a", "b"]);
        assert!(run.ok, "{engine:?} run failed: {}", run.all());
        assert_eq!(run.stdout, "hello from the greeting dependency\nargs:a b\n", "{engine:?}");
        assert_eq!(image::store_entries(engine, &t), expected, "{engine:?}: /nix/store must be the closure");
        // The closure carries busybox (the fixture's builder): use it to look at /tmp.
        let tools = expected.iter().find(|p| p.ends_with("-tools")).unwrap();
        let busybox = format!("/nix/store/{tools}/busybox");
        let stat =
            engine.docker(&["run", "--rm", "--entrypoint", &busybox, &t, "stat", "-c", "%a %u", "/tmp"]);
        assert_eq!(stat.stdout, "1777 0\n", "{engine:?}: {}", stat.all());
        // Steps are named by their stage, as the Dockerfile frontend numbers its steps.
        assert_contains(&build.all(), &["[nixfront 2/6] nix eval .#hello", "[nixfront 5/6] nix build .#hello"]);
        // The last step's name is the summary: layers, size, the largest paths.
        assert_contains(&build.all(), &["[nixfront] linux/amd64: 4 layers, ", " in 3 store paths; largest: tools "]);
        let history =
            engine.docker(&["image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", &t]).stdout;
        assert_contains(
            &history,
            &["layer 1/3: greeting-1.0", "layer 2/3: tools", "layer 3/3: hello-0.1", "nixfront: /tmp"],
        );
    }
}

on_engines! {
    fn flake_and_target_select_the_attribute(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("select", "# syntax=org/nixfront\nFLAKE .#bye\n");
        let t = tag("select", engine);
        let by_file = engine.build(&fx, &t, &[]);
        assert!(by_file.ok, "{engine:?}: {}", by_file.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "bye from bye\n");

        let by_target = engine.build(&fx, &t, &["--target", "hello"]);
        assert!(by_target.ok, "{engine:?}: {}", by_target.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "hello from the greeting dependency\nargs:\n");
        let labels = &engine.inspect(&t)["Config"]["Labels"];
        assert_eq!(labels["org.nixfront.flake"], ".#hello", "{engine:?}");
    }
}

on_engines! {
    builders(official);
    fn every_config_instruction_reaches_the_image(engine) {
        let _engines = engine.shared();
        let dockerfile = r#"# syntax=org/nixfront
    FLAKE .#multi
    ENTRYPOINT ["two"]
    CMD ["--flag"]
    ENV GREETING="hi there" \
        MODE=prod
    LABEL org.opencontainers.image.title=multi team=core
    EXPOSE 8080 53/udp
    USER 1000:1000
    WORKDIR /srv/app
    STOPSIGNAL SIGINT
    VOLUME ["/data"]
    "#;
        let fx = Fixture::new("config", dockerfile);
        let t = tag("config", engine);
        let build = engine.build(&fx, &t, &["--label", "from.cli=yes"]);
        assert!(build.ok, "{engine:?}: {}", build.all());
        let image = engine.inspect(&t);
        let c = &image["Config"];
        let ep = c["Entrypoint"][0].as_str().unwrap();
        assert!(ep.starts_with("/nix/store/") && ep.ends_with("-multi-1.0/bin/two"), "{ep}");
        assert_eq!(c["Cmd"], serde_json::json!(["--flag"]));
        let env: Vec<&str> = c["Env"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(env[0].starts_with("PATH=/nix/store/") && env[0].contains("-multi-1.0/bin:"), "{env:?}");
        assert!(env.contains(&"GREETING=hi there") && env.contains(&"MODE=prod"), "{env:?}");
        assert_eq!(c["Labels"]["team"], "core");
        assert_eq!(c["Labels"]["org.opencontainers.image.title"], "multi");
        assert_eq!(c["Labels"]["from.cli"], "yes");
        assert_eq!(c["Labels"]["org.nixfront.version"], env!("CARGO_PKG_VERSION"));
        assert!(c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some());
        assert_eq!(c["User"], "1000:1000");
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["StopSignal"], "SIGINT");
        assert!(c["Volumes"].get("/data").is_some());
        assert_eq!(image["Os"], "linux");
        assert_eq!(image["Architecture"], "amd64");
        // The program runs as the user from its WORKDIR, which exists in the image.
        let run = engine.run_image(&t, &[]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_eq!(run.stdout, "two\n");
    }
}

on_engines! {
    fn a_flake_nix_can_be_the_dockerfile(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("flakefile", "unused\n");
        fx.remove("Dockerfile");
        let t = tag("flakefile", engine);
        let build = engine.build(&fx, &t, &["-f", &fx.file_for(engine, "flake.nix")]);
        assert!(build.ok, "{engine:?}: {}", build.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "hello from the greeting dependency\nargs:\n");
    }
}

/// Builds `dockerfile` (in a fixture without flake.nix when `no_flake`), which must fail with
/// every one of `expect` in its final error, leave no image and never crash: the error a
/// person reads, returned by the frontend, never our internal paths.
fn fails_clearly(engine: Engine, name: &str, dockerfile: &str, no_flake: bool, expect: &[&str]) -> String {
    let _engines = engine.shared();
    let fx = Fixture::new(name, dockerfile);
    if no_flake {
        fx.remove("flake.nix");
    }
    let t = tag(name, engine);
    let build = engine.build(&fx, &t, &[]);
    assert!(!build.ok, "{name} on {engine:?} should fail:\n{}", build.all());
    let error = final_error(&build.all());
    assert_contains(&error, expect);
    assert!(!engine.image_exists(&t), "{name} on {engine:?} left an image");
    assert!(!build.all().contains("panicked"), "{name}: {}", build.all());
    assert_no_internal_paths(&build.all());
    error
}

on_engines! {
    fn an_unknown_instruction_is_named_with_a_suggestion(engine) {
        let file = "# syntax=org/nixfront\nFLAKE .#hello\nEXPOS 80\n";
        fails_clearly(engine, "unknown-instruction", file, false, &["Dockerfile:3: EXPOS: unknown instruction `EXPOS`; did you mean EXPOSE?"]);
    }
}

on_engines! {
    builders(nix28);
    fn a_missing_flake_says_what_nix_said(engine) {
        let file = "# syntax=org/nixfront\nFLAKE .#hello\n";
        fails_clearly(engine, "missing-flake", file, true, &["evaluating .#hello failed", "Nix said", "flake.nix"]);
    }
}

on_engines! {
    builders(nix28, official);
    fn a_missing_attribute_is_named_with_the_packages_the_flake_has(engine) {
        let file = "# syntax=org/nixfront\nFLAKE .#nosuchattr\n";
        let error = fails_clearly(engine, "missing-attribute", file, false, &["no attribute `nosuchattr`", "default", "hello"]);
        let near = fails_clearly(engine, "near-attribute", "# syntax=org/nixfront\nFLAKE .#helo\n", false, &["did you mean `hello`?"]);
        assert!(!error.contains("did you mean") && near.contains("FLAKE .#helo"), "{error}\n{near}");
    }
}

on_engines! {
    builders(nix28, official);
    fn a_failing_derivation_is_named_with_its_log_in_the_error(engine) {
        let file = "# syntax=org/nixfront\nFLAKE .#broken\n";
        let expect = ["the derivation broken-1.0 failed to build", "kaboom: the build of broken failed on purpose", "nix build .#broken` failed"];
        let first = fails_clearly(engine, "failing-derivation", file, false, &expect);
        // A failure is never cached: the next build runs the derivation again (its log says so)
        // and fails the same way.
        let again = engine.build(&Fixture::new("failing-derivation", file), &tag("failing-derivation", engine), &[]);
        assert!(!again.ok);
        assert_eq!(final_error(&again.all()), first, "the same error");
        assert!(
            again.all().lines().any(|l| l.starts_with('#') && is_step_log(l) && l.contains("compiling the thing")),
            "the derivation ran again:\n{}",
            again.all()
        );
    }
}

on_engines! {
    fn shell_metacharacters_reach_nix_unexpanded(engine) {
        // The whole reference comes back unexpanded: no shell ever parsed it (Nix 2.8 calls it
        // no valid URL, 2.26 no path it can find; nixfront's words are the same).
        let file = "# syntax=org/nixfront\nFLAKE '.#hello;touch${IFS}/tmp/pwned;$(id)`id`'\n";
        fails_clearly(engine, "shell-metacharacters", file, false, &["evaluating .#hello;touch${IFS}/tmp/pwned;$(id)`id` failed"]);
    }
}

on_engines! {
    fn a_shell_form_command_is_refused_at_its_line(engine) {
        let file = "# syntax=org/nixfront\nFLAKE .#hello\n\nCMD hello --now\n";
        fails_clearly(engine, "shell-form", file, false, &["Dockerfile:4: CMD: shell form is not possible"]);
    }
}

on_engines! {
    fn a_package_of_several_programs_asks_for_an_entrypoint(engine) {
        let file = "# syntax=org/nixfront\nFLAKE .#multi\n";
        fails_clearly(engine, "no-entrypoint", file, false, &["add ENTRYPOINT", "one, two"]);
    }
}

on_engines! {
    builders(nix28, official);
    /// Without the persistent store everything is one step (scripts/single.sh): the same
    /// closure, an image that runs, the summary.
    fn without_the_persistent_store_the_package_builds_in_one_step(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("one-step", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let expected = fx.expected_closure("hello");
        let t = tag("one-step", engine);
        let build = engine.build(&fx, &t, &["--build-arg", "NIX_PERSISTENT_STORE=false"]);
        assert!(build.ok, "{engine:?} build failed:\n{}", build.all());
        assert_contains(&build.all(), &["store paths copied", "[nixfront] linux/amd64: ", " in 3 store paths"]);
        assert!(!build.all().contains("nix eval .#hello"), "no evaluation step:\n{}", build.all());
        assert_eq!(image::store_entries(engine, &t), expected, "{engine:?}: /nix/store must be the closure");
        let run = engine.run_image(&t, &["x"]);
        assert_eq!(run.stdout, "hello from the greeting dependency\nargs:x\n", "{engine:?}: {}", run.all());
    }
}
