//! The Docker conventions users bring: build args, reproducible images, subrequests.

use crate::harness::git::GitServer;
use crate::harness::{Engine, Fixture, assert_contains, assert_points_at, image, tag};

on_engines! {
    fn build_args_expand_and_nixfront_args_are_checked(engine) {
        let _engines = engine.shared();
        let fx =
            Fixture::new("args", "# syntax=org/nixfront\nARG APP=bye\nFLAKE .#${APP}\nLABEL built-app=$APP\n");
        let t = tag("args", engine);
        let default = engine.build(&fx, &t, &[]);
        assert!(default.ok, "{engine:?}: {}", default.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "bye from bye\n");

        let given = engine.build(&fx, &t, &["--build-arg", "APP=hello"]);
        assert!(given.ok, "{engine:?}: {}", given.all());
        assert_eq!(engine.inspect(&t)["Config"]["Labels"]["built-app"], "hello");
        assert_eq!(engine.run_image(&t, &[]).stdout, "hello from the greeting dependency\nargs:\n");

        let typo = engine.build(&fx, &t, &["--build-arg", "NIX_LAYER=3"]);
        assert!(!typo.ok, "{engine:?}: a misspelt nixfront arg must fail");
        assert_contains(&typo.all(), &["unknown build arg NIX_LAYER: did you mean NIX_LAYERS?"]);
        assert!(!engine.image_exists(&t));
    }
}

on_engines! {
    fn nix_config_reaches_nix_build_and_not_the_image(engine) {
        let _engines = engine.shared();
        // A new `slowdep` must be built: with max-jobs = 0 Nix refuses to, proving it read the line.
        let fx = Fixture::new("nixconf", "# syntax=org/nixfront\nFLAKE .#edited\n");
        let t = tag("nixconf", engine);
        let refused = engine.build(&fx, &t, &["--build-arg", "NIX_CONFIG=max-jobs = 0"]);
        assert!(!refused.ok, "{engine:?}: {}", refused.all());
        // "unable to start any build" (Nix 2.8), "Unable to start any build" (2.26).
        assert_contains(&refused.all().to_lowercase(), &["unable to start any build"]);

        let built = engine.build(&fx, &t, &["--build-arg", "NIX_CONFIG=max-jobs = 1"]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        let env = engine.inspect(&t)["Config"]["Env"].to_string();
        assert!(!env.contains("max-jobs") && !env.contains("NIX_CONFIG"), "{engine:?}: {env}");
    }
}

on_engines! {
    fn the_same_flake_gives_the_same_image_on_a_fresh_builder(engine) {
        let _engines = engine.exclusive();
        let fx = Fixture::new("repro", "# syntax=org/nixfront\nFLAKE .#hello\nEXPOSE 80\n");
        let t = tag("repro", engine);
        // buildx adds a provenance attestation (with build times) unless told not to.
        let extra: &[&str] = if engine == Engine::D26 { &["--provenance=false"] } else { &[] };
        let first = engine.build(&fx, &t, extra);
        assert!(first.ok, "{engine:?}: {}", first.all());
        let id = engine.inspect(&t)["Id"].clone();
        assert_eq!(engine.inspect(&t)["Created"], "1970-01-01T00:00:00Z");
        engine.prune();
        let second = engine.build(&fx, &t, extra);
        assert!(second.ok, "{engine:?}: {}", second.all());
        assert_eq!(engine.inspect(&t)["Id"], id, "{engine:?}: image ID after a prune");

        let mut dated = extra.to_vec();
        dated.extend(["--build-arg", "SOURCE_DATE_EPOCH=1700000000"]);
        let third = engine.build(&fx, &t, &dated);
        assert!(third.ok, "{engine:?}: {}", third.all());
        let image = engine.inspect(&t);
        assert_eq!(image["Created"], "2023-11-14T22:13:20Z", "{engine:?}");
    }
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn subrequests_answer_outline_targets_lint_and_describe() {
    let d26 = Engine::D26;
    let _engines = d26.shared();
    let fx = Fixture::new("print", "# syntax=org/nixfront\nARG APP=hello\nFLAKE .#${APP}\n");
    let outline = d26.print(&fx, "outline", &[]);
    assert!(outline.ok, "{}", outline.all());
    assert_contains(&outline.stdout, &["APP", "hello", "NIX_IMAGE", "NIX_LAYERS", "netrc", "access-tokens"]);

    let targets = d26.print(&fx, "targets", &[]);
    assert!(targets.ok, "{}", targets.all());
    for name in ["bye", "edited", "greeting", "hello (default)", "multi", "wide"] {
        assert!(targets.stdout.contains(name), "{name} missing from:\n{}", targets.stdout);
    }

    let describe = d26.print(&fx, "subrequests.describe", &[]);
    assert!(describe.ok, "{}", describe.all());
    assert_contains(&describe.stdout, &["outline", "targets", "lint"]);

    let linted = Fixture::new(
        "lint",
        "# syntax=org/nixfront\nFLAKE .#hello\nCMD [\"a\"]\nenv LEGACY value\nCMD [\"b\"]\n",
    );
    let lint = d26.print(&linted, "lint", &[]);
    assert_contains(
        &lint.all(),
        &["RepeatedInstruction", "Dockerfile:5: CMD is also given on line 3", "LegacyKeyValueFormat"],
    );
}

on_engines! {
    fn secrets_reach_nix_build_and_nothing_else(engine) {
        let _engines = engine.shared();
        const NETRC_VALUE: &str = "SECRET-NETRC-8c1f";
        const TOKEN_VALUE: &str = "SECRET-TOKEN-77aa";
        // A new derivation, so nix build really runs with the secrets mounted.
        let fx = Fixture::new("secrets", "# syntax=org/nixfront\nFLAKE .#edited\n");
        // Outside the build context, so the context transfer cannot carry them.
        let secrets = Fixture::new("secret-files", "unused\n");
        secrets.write("netrc", &format!("machine cache.example.invalid login u password {NETRC_VALUE}\n"));
        secrets.write("tokens", &format!("github.com={TOKEN_VALUE}\n"));
        let t = tag("secrets", engine);
        let netrc = format!("id=netrc,src={}", secrets.file_for(engine, "netrc"));
        let tokens = format!("id=access-tokens,src={}", secrets.file_for(engine, "tokens"));
        let run = engine.build(&fx, &t, &["--secret", &netrc, "--secret", &tokens]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        assert_contains(
            &run.all(),
            &[
                "nixfront: using the netrc from --secret id=netrc",
                "nixfront: using access tokens from --secret id=access-tokens",
            ],
        );
        let saved = image::saved_bytes(engine, &t);
        let inspect = engine.inspect(&t).to_string();
        for value in [NETRC_VALUE, TOKEN_VALUE] {
            assert!(!run.all().contains(value), "{engine:?}: {value} in the build output");
            assert!(!inspect.contains(value), "{engine:?}: {value} in the image config");
            let found = saved.windows(value.len()).any(|w| w == value.as_bytes());
            assert!(!found, "{engine:?}: {value} in docker save output");
        }
    }
}

on_engines! {
    fn platforms_map_to_nix_systems(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new(
            "platforms",
            "# syntax=org/nixfront\nARG TARGETARCH\nARG BUILDPLATFORM\nFLAKE .#sys\nLABEL arch=$TARGETARCH built-on=$BUILDPLATFORM\n",
        );
        let t = tag("platforms", engine);
        let single = engine.build(&fx, &t, &["--platform", "linux/386"]);
        assert!(single.ok, "{engine:?}: {}", single.all());
        assert_contains(&single.all(), &["building for i686-linux on a x86_64-linux builder"]);
        let image = engine.inspect(&t);
        assert_eq!(image["Architecture"], "386", "{engine:?}");
        assert_eq!(image["Config"]["Labels"]["arch"], "386", "{engine:?}: TARGETARCH");
        assert_eq!(image["Config"]["Labels"]["built-on"], "linux/amd64", "{engine:?}: BUILDPLATFORM");
        let mut run = vec!["run", "--rm"];
        if engine == Engine::D26 {
            run.extend(["--platform", "linux/386"]);
        }
        run.push(&t);
        assert_eq!(engine.docker(&run).stdout, "built for i686-linux\n", "{engine:?}");

        let both = engine.build(&fx, &t, &["--platform", "linux/amd64,linux/386"]);
        match engine {
            Engine::D20 => {
                // Docker 20.10 refuses a platform list before the frontend runs; with buildctl
                // on BuildKit 0.8 the frontend refuses it (unit-tested in frontend.rs).
                assert!(!both.ok, "BuildKit 0.8 cannot export two platforms");
                assert_contains(&both.all(), &["linux/amd64,linux/386", "invalid"]);
                assert!(!engine.image_exists(&t));
            }
            Engine::D26 => {
                assert!(both.ok, "{}", both.all());
                for (platform, system) in [("linux/amd64", "x86_64-linux"), ("linux/386", "i686-linux")] {
                    let out = engine.docker(&["run", "--rm", "--platform", platform, &t]);
                    assert_eq!(out.stdout, format!("built for {system}\n"), "{platform}: {}", out.all());
                }
            }
        }
    }
}

on_engines! {
    fn the_sbom_is_the_closure(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("sbom", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let closure = fx.expected_closure("hello");
        let t = tag("sbom", engine);
        if engine == Engine::D26 {
            // No scanner image can be pulled here: the SBOM can only be nixfront's own.
            let built = engine.build(&fx, &t, &["--sbom=true"]);
            assert!(built.ok, "{}", built.all());
            let spdx: Vec<serde_json::Value> = image::attestations(engine, &t)
                .into_iter()
                .filter(|(kind, _)| kind == "https://spdx.dev/Document")
                .map(|(_, statement)| statement["predicate"].clone())
                .collect();
            assert_eq!(spdx.len(), 1, "one SBOM for the one platform");
            assert_sbom_is(&spdx[0], &closure);
        }
        // Any BuildKit: the same document inside the image.
        let built = engine.build(&fx, &t, &["--build-arg", "NIX_SBOM_FILE=true"]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        let tools = closure.iter().find(|p| p.ends_with("-tools")).unwrap();
        let busybox = format!("/nix/store/{tools}/busybox");
        let cat = engine.docker(&["run", "--rm", "--entrypoint", &busybox, &t, "cat", "/sbom.spdx.json"]);
        assert!(cat.ok, "{engine:?}: {}", cat.all());
        assert_sbom_is(&serde_json::from_str(&cat.stdout).unwrap(), &closure);
    }
}

fn assert_sbom_is(spdx: &serde_json::Value, closure: &[String]) {
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");
    let mut sources: Vec<String> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["sourceInfo"].as_str().unwrap().trim_start_matches("Nix store path /nix/store/").to_string()
        })
        .collect();
    sources.sort();
    assert_eq!(sources, closure, "one package per store path");
    let hello = spdx["packages"].as_array().unwrap().iter().find(|p| p["name"] == "hello").unwrap();
    assert_eq!(hello["versionInfo"], "0.1");
    assert_eq!(hello["checksums"][0]["algorithm"], "SHA256");
    let depends =
        spdx["relationships"].as_array().unwrap().iter().filter(|r| r["relationshipType"] == "DEPENDS_ON");
    assert_eq!(
        depends.count(),
        2,
        "hello -> greeting and hello -> tools (busybox); greeting refers to nothing"
    );
}

on_engines! {
    fn the_context_honours_dockerignore_and_is_not_sent_when_unused(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("ignore", "# syntax=org/nixfront\nFLAKE .#ctxfiles\n");
        fx.write("secret.txt", "not for the image\n");
        {
            let t = tag("ignore", engine);
            fx.write(".dockerignore", "# keep secrets out\n/secret.txt\n");
            let ignored = engine.build(&fx, &t, &[]);
            assert!(ignored.ok, "{engine:?}: {}", ignored.all());
            let listing = engine.run_image(&t, &[]).stdout;
            assert!(listing.contains("flake.nix") && !listing.contains("secret.txt"), "{engine:?}: {listing}");

            fx.remove(".dockerignore");
            let all = engine.build(&fx, &t, &[]);
            assert!(all.ok, "{engine:?}: {}", all.all());
            assert!(engine.run_image(&t, &[]).stdout.contains("secret.txt"), "{engine:?}: without .dockerignore");
        }
        // A reference that needs no context: nothing of it is transferred (the fetch itself fails
        // here, offline).
        let remote = Fixture::new("nocontext", "# syntax=org/nixfront\nFLAKE github:nixfront-test/none#x\n");
        {
            let run = engine.build(&remote, &tag("nocontext", engine), &[]);
            assert!(!run.ok);
            assert_contains(&run.all(), &["github:nixfront-test/none"]);
            assert!(
                !run.all().contains("load build context"),
                "{engine:?} transferred the context:\n{}",
                run.all()
            );
            assert!(!run.all().contains("load the context's .dockerignore"), "{engine:?}");
        }
    }
}

on_engines! {
    fn a_git_url_is_a_remote_context(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("gitctx", "# syntax=org/nixfront\nFLAKE .#bye\n");
        let server = GitServer::serve(engine, &fx, 19418 + engine as u16);
        let t = tag("gitctx", engine);
        let built = engine.build_context(&format!("{}#main", server.url), &t, &[]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        assert_eq!(engine.run_image(&t, &[]).stdout, "bye from bye\n", "{engine:?}");
    }
}

on_engines! {
    fn parser_warnings_reach_the_build_output_where_buildkit_shows_them(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("warn", "# syntax=org/nixfront\nFLAKE .#bye\nCMD [\"a\"]\nCMD [\"b\"]\n");
        let t = tag("warn", engine);
        let built = engine.build(&fx, &t, &[]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        // What the warning says holds: only the last CMD counts.
        assert_eq!(engine.inspect(&t)["Config"]["Cmd"], serde_json::json!(["b"]), "{engine:?}");
        match engine {
            // BuildKit 0.13 has gateway.warnings; buildx lists them after the build.
            Engine::D26 => {
                assert_contains(&built.all(), &["RepeatedInstruction", "CMD is also given on line 3"])
            }
            // BuildKit 0.8 cannot show a frontend's warnings: the build goes on without them.
            Engine::D20 => assert!(!built.all().contains("RepeatedInstruction"), "{}", built.all()),
        }
    }
}

on_engines! {
    fn no_cache_runs_the_build_again(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("nocache", "# syntax=org/nixfront\nFLAKE .#bye\n");
        let t = tag("nocache", engine);
        assert!(engine.build(&fx, &t, &[]).ok);
        let cached = engine.build(&fx, &t, &[]);
        assert!(
            cached.ok && !cached.all().contains("nixfront: closure of"),
            "{engine:?}: the nix step was cached"
        );
        let again = engine.build(&fx, &t, &["--no-cache"]);
        assert!(again.ok, "{engine:?}: {}", again.all());
        assert_contains(&again.all(), &["nixfront: closure of 2 store paths"]);
    }
}

on_engines! {
    /// `HEALTHCHECK` reaches the config with its program resolved in the package's bin/;
    /// `# check=` skips rules and, with error=true, fails the build on a warning the build
    /// finds (the basic flake has no flake.lock: FlakeNotLocked).
    fn healthcheck_and_the_check_directive(engine) {
        let _engines = engine.shared();
        let healthy = Fixture::new(
            "healthcheck",
            "# syntax=org/nixfront\n# check=skip=FlakeNotLocked,NoCaCertificates;error=true\nFLAKE .#hello\n\
             HEALTHCHECK --interval=10s --retries=2 CMD [\"hello\", \"--ping\"]\n",
        );
        let t = tag("healthcheck", engine);
        let built = engine.build(&healthy, &t, &[]);
        assert!(built.ok, "{engine:?}: {}", built.all());
        let check = &engine.inspect(&t)["Config"]["Healthcheck"];
        let test = check["Test"].as_array().expect("a Healthcheck test");
        assert_eq!(test[0], "CMD", "{check}");
        assert!(test[1].as_str().unwrap().ends_with("-hello-0.1/bin/hello"), "{check}");
        assert_eq!((check["Interval"].as_u64(), check["Retries"].as_u64()), (Some(10_000_000_000), Some(2)), "{check}");

        let strict = Fixture::new("check-error", "# syntax=org/nixfront\n# check=error=true\nFLAKE .#hello\n");
        let failed = engine.build(&strict, &tag("check-error", engine), &[]);
        assert!(!failed.ok, "{engine:?}: a warning with error=true built:\n{}", failed.all());
        assert_contains(&failed.all(), &["lint rule FlakeNotLocked failed", "error=true"]);
        assert_points_at(engine, &failed.all(), "FLAKE .#hello");
        // The build arg wins over the directive.
        let relaxed = engine.build(&strict, &tag("check-error", engine), &["--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all"]);
        assert!(relaxed.ok, "{engine:?}: {}", relaxed.all());
    }
}
