//! Every input gets a correct image or an error that points at the right line: hostile and
//! odd files, files read as Dockerfiles read them, limits, builder images that lack things,
//! subrequests that see what the build sees, and dates the exporter does not take from the clock.

use crate::harness::builders::{builder_image, builder_without};
use crate::harness::engine::nix_image;
use crate::harness::{
    Engine, Fixture, assert_contains, assert_no_internal_paths, assert_points_at, final_error, tag,
};

/// Builds a fixture whose Dockerfile is `file`, which must fail with `message`, marked at the
/// line `marked` (buildx), leaving no image; `--check` answers with the same error instead of
/// crashing (only buildx sends it).
fn fails_at_its_line(engine: Engine, name: &str, file: &[u8], message: &str, marked: &str) {
    let _engines = engine.shared();
    let fx = Fixture::new(name, "");
    fx.write_bytes("Dockerfile", file);
    let t = tag(name, engine);
    let build = engine.build(&fx, &t, &[]);
    assert!(!build.ok, "{name} on {engine:?} should fail:\n{}", build.all());
    assert_contains(&final_error(&build.all()), &[message]);
    assert_points_at(engine, &build.all(), marked);
    assert!(!engine.image_exists(&t), "{name} on {engine:?} left an image");
    if engine == Engine::D26 {
        let check = engine.print(&fx, "lint", &[]);
        assert_contains(&check.all(), &[message]);
        assert!(!check.all().contains("hit a bug"), "{}", check.all());
    }
}

on_engines! {
    fn a_name_that_expands_to_nothing_fails_at_its_line(engine) {
        fails_at_its_line(engine, "blank-name", b"# syntax=org/nixfront\nFLAKE .#hello\nENV $A $B\n", "Dockerfile:3: ENV: a name is empty", "ENV $A $B");
    }
}

on_engines! {
    fn a_blank_default_fails_at_its_line(engine) {
        fails_at_its_line(engine, "blank-default", b"# syntax=org/nixfront\nLABEL ${X:- }\nFLAKE .#hello\n", "Dockerfile:2: LABEL: ", "LABEL ${X:- }");
    }
}

on_engines! {
    fn a_nul_in_json_fails_at_its_line(engine) {
        fails_at_its_line(engine, "json-nul", b"# syntax=org/nixfront\nFLAKE .#hello\nENTRYPOINT [\"a\\u0000b\"]\n", "contains a NUL character", "ENTRYPOINT [\"a\\u0000b\"]");
    }
}

on_engines! {
    fn a_raw_nul_byte_fails_at_its_line(engine) {
        fails_at_its_line(engine, "raw-nul", b"# syntax=org/nixfront\nFLAKE .#hello\n\0LABEL a=b\n", "NUL byte (line 3, column 1)", "LABEL a=b");
    }
}

on_engines! {
    fn an_invisible_character_is_shown_at_its_line(engine) {
        fails_at_its_line(engine, "invisible", "# syntax=org/nixfront\n\u{200b}FLAKE .#hello\n".as_bytes(), "unknown instruction `\\u{200b}FLAKE`", "FLAKE .#hello");
    }
}

on_engines! {
    fn a_nixfile_named_like_nix_code_is_still_a_nixfile(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("dotnix", "unused\n");
        fx.write("deploy/Dockerfile.nix", "# syntax=org/nixfront\nFLAKE .#bye\n");
        let t = tag("dotnix", engine);
        let built = engine.build(&fx, &t, &["-f", &fx.file_for(engine, "deploy/Dockerfile.nix")]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "bye from bye\n", "{engine:?}: FLAKE .#bye was read");
    }
}

on_engines! {
    fn quotes_and_continuations_read_as_in_dockerfiles(engine) {
        let _engines = engine.shared();
        let file = "# syntax=org/nixfront\nARG APP=hello\nFLAKE .#$APP\nLABEL msg=\"it's $APP\" joined=\"x\\\ny\" \\\n  raw='$APP'\n";
        let fx = Fixture::new("quotes", file);
        let t = tag("quotes", engine);
        let built = engine.build(&fx, &t, &[]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        let labels = &engine.inspect(&t)["Config"]["Labels"];
        assert_eq!(labels["msg"], "it's hello", "{engine:?}");
        assert_eq!(labels["joined"], "xy", "{engine:?}: a continuation inside quotes joins without a blank");
        assert_eq!(labels["raw"], "$APP", "{engine:?}");
    }
}

on_engines! {
    fn oversized_files_are_refused_by_the_limit_and_big_ones_still_point_at_their_line(engine) {
        let _engines = engine.shared();
        let huge = Fixture::new("huge", "");
        let mut text = String::from("# syntax=org/nixfront\nFLAKE .#hello\n");
        while text.len() < 20 << 20 {
            text.push_str("# padding padding padding padding padding padding padding padding padding\n");
        }
        huge.write("Dockerfile", &text);
        // Just under the limit, with an error on its last line: the whole file travels as the
        // error's source, through BuildKit, to the client.
        let big = Fixture::new("big", "");
        let mut text = String::from("# syntax=org/nixfront\nFLAKE .#hello\n");
        let label = format!("LABEL padding=\"{}\"\n", "padding ".repeat(250));
        while text.len() + label.len() < (1 << 20) - 100 {
            text.push_str(&label);
        }
        text.push_str("EXPOS 80\n");
        big.write("Dockerfile", &text);
        let refused = engine.build(&huge, &tag("huge", engine), &[]);
        assert!(!refused.ok);
        assert_contains(&refused.all(), &["larger than 1048576 bytes (limit MAX_FILE_BYTES)"]);
        let failed = engine.build(&big, &tag("big", engine), &[]);
        assert!(!failed.ok);
        assert_contains(&failed.all(), &["EXPOS: unknown instruction"]);
        assert_points_at(engine, &failed.all(), "EXPOS 80");
    }
}

on_engines! {
    fn a_failing_build_points_at_the_flake_line_or_the_syntax_line(engine) {
        let _engines = engine.shared();
        let explicit =
            Fixture::new("fails-at", "# syntax=org/nixfront\n# the package\n\nFLAKE .#broken\nEXPOSE 80\n");
        let implicit = Fixture::new("fails-implicit", "# syntax=org/nixfront\nEXPOSE 80\n");
        let run = engine.build(&explicit, &tag("fails-at", engine), &[]);
        assert!(!run.ok);
        assert_contains(&run.all(), &["kaboom", "`nix build .#broken` failed"]);
        assert_points_at(engine, &run.all(), "FLAKE .#broken");
        let run = engine.build(&implicit, &tag("fails-implicit", engine), &["--target", "broken"]);
        assert!(!run.ok);
        assert_points_at(engine, &run.all(), "# syntax=org/nixfront");
    }
}

on_engines! {
    fn a_builder_image_without_nix_is_named_at_the_flake_line(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("builders", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let image = builder_without(engine, "nix", "rm -f /usr/bin/nix /usr/bin/nix-*");
        let run = engine.build(&fx, &tag("no-nix", engine), &["--build-arg", &format!("NIX_IMAGE={image}")]);
        assert!(!run.ok, "{engine:?}: a builder image without nix built");
        let error = final_error(&run.all());
        assert_contains(&error, &[&format!("the builder image docker.io/{image} has no `nix` on its PATH")]);
        assert_points_at(engine, &run.all(), "FLAKE .#hello");
        assert_no_internal_paths(&run.all());
    }
}

on_engines! {
    /// The steps run nixfront's own static binary: a builder image needs Nix, not a shell or /tmp.
    fn a_builder_image_without_a_shell_or_tmp_works(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("builders", "# syntax=org/nixfront\nFLAKE .#hello\n");
        for (name, run) in [("sh", "rm -f /bin/sh /usr/bin/sh /bin/bash /usr/bin/bash"), ("tmp", "rm -rf /tmp")] {
            let image = builder_without(engine, name, run);
            let t = tag(&format!("no-{name}"), engine);
            let run = engine.build(&fx, &t, &["--build-arg", &format!("NIX_IMAGE={image}")]);
            assert!(run.ok, "{engine:?}: an image without {name} builds: {}", run.all());
            assert_eq!(engine.run_image(&t, &[]).stdout, "hello from the greeting dependency\nargs:\n");
        }
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn subrequests_answer_with_what_the_build_would_use() {
    let d26 = Engine::D26;
    let _engines = d26.shared();
    let fx = Fixture::new("outline-values", "# syntax=org/nixfront\nARG APP=hello\nFLAKE .#${APP}\n");
    let outline = d26.print(&fx, "outline", &["--build-arg", "APP=bye", "--build-arg", "NIX_LAYERS=40"]);
    assert!(outline.ok, "{}", outline.all());
    let line_of = |name: &str| outline.stdout.lines().find(|l| l.starts_with(name)).unwrap_or("").to_string();
    assert!(line_of("APP ").contains("bye"), "{}", outline.stdout);
    assert!(line_of("NIX_LAYERS ").contains("40"), "{}", outline.stdout);
    assert!(line_of("NIX_SBOM_FILE ").contains("false"), "{}", outline.stdout);
    assert_contains(&outline.stdout, &["TARGET:      .#bye"]);

    // Listing targets evaluates the flake: an import from derivation is refused in the store
    // builds share (a builder would run where root then writes), saying what to do, and works
    // in a store of the build's own.
    let ifd = Fixture::from_dir("targets-config", "ifd", "# syntax=org/nixfront\nFLAKE .#app\n");
    let own = ["--build-arg", "NIX_PERSISTENT_STORE=false"];
    let listed = d26.print(&ifd, "targets", &own);
    assert!(listed.ok, "{}", listed.all());
    assert_contains(&listed.stdout, &["app (default)", "described at build time"]);
    let refused = d26.print(&ifd, "targets", &[]);
    assert!(!refused.ok, "{}", refused.all());
    assert_contains(
        &refused.all(),
        &["listing the packages of .#app failed", "(import from derivation)", "NIX_PERSISTENT_STORE=false"],
    );
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn oci_layouts_are_identical_after_a_prune() {
    let d26 = Engine::D26;
    let _engines = d26.exclusive();
    let fx = Fixture::new("oci", "# syntax=org/nixfront\nFLAKE .#hello\n");
    let index = |name: &str| {
        let dest = fx.file_for(d26, name);
        let out = format!("type=oci,dest={dest}");
        let nix_image = format!("NIX_IMAGE={}", nix_image());
        let context = fx.path_for(d26);
        let args =
            ["buildx", "build", "--build-arg", &nix_image, "--provenance=false", "--output", &out, &context];
        let run = d26.docker(&args);
        assert!(run.ok, "{}", run.all());
        let tar = std::process::Command::new("tar")
            .args(["-xOf"])
            .arg(fx.host_path().join(name))
            .arg("index.json")
            .output()
            .unwrap();
        String::from_utf8(tar.stdout).unwrap()
    };
    let first = index("one.tar");
    d26.prune();
    let second = index("two.tar");
    assert_eq!(first, second, "index.json after a prune");
    assert_contains(&first, &["\"org.opencontainers.image.created\":\"1970-01-01T00:00:00Z\""]);
}

on_engines! {
    fn a_builder_image_with_nix_in_its_store_seeds_the_persistent_store(engine) {
        let _engines = engine.shared();
        // Like the official nixos/nix image: the shell lives in /nix/store, the Env names /nix.
        const SHELL: &str = "/nix/store/00000000000000000000000000000000-busybox";
        let lines = format!(
            "COPY busybox {SHELL}/bin/busybox\nRUN ln -sf {SHELL}/bin/busybox /bin/sh\n\
             ENV PATH=/nix/var/nix/profiles/default/bin:/usr/local/bin:/usr/bin:/bin\n"
        );
        let fx = Fixture::new("nixlike", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let image = builder_image(engine, "nixlike", &lines);
        let with = format!("NIX_IMAGE={image}");
        let t = tag("nixlike", engine);
        let run = engine.build(&fx, &t, &["--build-arg", &with]);
        assert!(run.ok, "{engine:?}: a store seeded from the image's /nix: {}", run.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "hello from the greeting dependency\nargs:\n");
        let again = engine.build(&fx, &t, &["--build-arg", &with, "--no-cache"]);
        assert!(again.ok, "{engine:?}: {}", again.all());
        assert!(
            !again.all().contains("-greeting-1.0.drv"),
            "{engine:?}: the store was lost:\n{}",
            again.all()
        );
    }
}
