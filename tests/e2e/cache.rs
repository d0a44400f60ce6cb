//! CI-grade caching: a fresh runner that carries only BuildKit's exported cache rebuilds only
//! what changed, and gets the image a warm builder gets.

use crate::harness::{Engine, Fixture, assert_contains, image, tag};

const APP: &str = "# syntax=org/nixfront\nFLAKE .#edited\n";

/// The derivations Nix built, from a build's log.
fn built(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("building '/nix/store/")).collect()
}

/// Nothing was built: no derivation ran.
fn assert_nothing_built(engine: Engine, log: &str) {
    assert!(built(log).is_empty(), "{engine:?} built something:\n{log}");
}

on_builders! {
    builders(nix28);
    fn a_fresh_runner_with_a_local_cache_rebuilds_only_the_app() {
        let d26 = Engine::D26;
        let _engines = d26.exclusive();
        let fx = Fixture::new("ci-local", APP);
        // Outside the build context: the context must stay the same.
        let store = Fixture::new("ci-local-cache", "unused\n");
        let cache = store.file_for(d26, "cache");
        let export = format!("type=local,dest={cache},mode=max");
        let import = format!("type=local,src={cache}");
        d26.prune();
        let (cold, log) = d26.build_id(&fx, "ci-local", &["--cache-to", &export]);
        assert_contains(&log, &["building slowdep"]);

        // A new runner: empty builder, no image, the cache imported. Nothing is built.
        d26.prune();
        let _ = d26.docker(&["image", "rm", "-f", &tag("ci-local", d26)]);
        let (unchanged, log) = d26.build_id(&fx, "ci-local", &["--cache-from", &import]);
        assert_nothing_built(d26, &log);
        assert_eq!(unchanged, cold, "the same image from the cache");

        // Another new runner, after an app-only edit: only the app is built, on the
        // dependencies the cache carries.
        d26.prune();
        let _ = d26.docker(&["image", "rm", "-f", &tag("ci-local", d26)]);
        fx.write("app/message", "message v2\n");
        let (fresh, log) = d26.build_id(&fx, "ci-local", &["--cache-from", &import]);
        assert_contains(&log, &["-edited-1.0.drv'...", "dependencies from the dependency layers"]);
        assert!(!log.contains("building slowdep"), "a dependency was rebuilt:\n{log}");
        assert_eq!(built(&log).len(), 1, "only the app's derivation: {:?}", built(&log));
        assert_eq!(d26.run_image(&tag("ci-local", d26), &[]).stdout, "message v2\nslow dependency\n");

        // The same builder, everything run again (its store holds no dependency: the fresh
        // runner's package step took them from the layers), gives the same image.
        let (warm, _) = d26.build_id(&fx, "ci-local", &["--no-cache"]);
        assert_eq!(warm, fresh, "a fresh runner's image is the one built from scratch");
    }
}

/// The change in a `--metadata-file`: one path added (the edited app), whose NAR size is what
/// a redeploy moves, one removed, against `previous`; the summary's line says the same.
fn assert_change_in_metadata(fx: &Fixture, log: &str, metadata: &str, previous: &str, tag: &str) {
    let d26 = Engine::D26;
    assert_contains(log, &[&format!("since {previous}: 1 path added (edited-1.0), 1 removed")]);
    let written = std::fs::read_to_string(fx.host_path().join(metadata)).unwrap();
    let written: serde_json::Value = serde_json::from_str(&written).unwrap();
    let summary = &written["frontend.nixfront.summary"]["linux/amd64"];
    assert!(summary.is_object(), "the summary, decoded by buildx, in the metadata file: {written}");
    let change = &summary["change"];
    assert_eq!(change["against"].as_str(), Some(previous), "{summary}");
    let added = change["added"].as_array().expect("the added paths");
    assert_eq!(added.len(), 1, "{summary}");
    assert!(added[0]["path"].as_str().unwrap().ends_with("-edited-1.0"), "{summary}");
    let moved = change["redeployBytes"].as_u64().unwrap();
    assert!(moved > 0 && moved == added[0]["narSize"].as_u64().unwrap(), "{summary}");
    assert_eq!(change["removed"].as_array().unwrap().len(), 1, "the old app: {summary}");
    assert_eq!(
        summary["storePaths"].as_u64(),
        Some(image::store_entries(d26, tag).len() as u64),
        "{summary}"
    );
}

/// What a CI job on Docker 26 does with buildx's own inline cache (`--cache-to type=inline`,
/// which BuildKit never tells the frontend about): push the image, then on a fresh runner
/// build the next version from it. The pushed config carries the memo and the closure record;
/// the fresh runner builds the app alone, and its `--metadata-file` says which store path the
/// edit added and the bytes a redeploy moves (Docker 20.10's `docker build` writes no metadata
/// file).
#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn the_metadata_file_says_what_changed_since_the_inline_cache_image() {
    let d26 = Engine::D26;
    let _engines = d26.exclusive();
    let _registry = crate::harness::Registry::start();
    let fx = Fixture::new("ci-summary", APP);
    let pushed = "localhost:5000/nixfront-summary:1";
    d26.prune();
    let first = d26.build(&fx, pushed, &["--cache-to", "type=inline", "--provenance=false"]);
    assert!(first.ok, "{}", first.all());
    assert_contains(&first.all(), &["building slowdep"]);
    let push = d26.docker(&["push", pushed]);
    assert!(push.ok, "docker push: {}", push.all());
    let config = image::raw_config(d26, pushed);
    let memo = config["org.nixfront.memo.v1"].as_object().expect("the memo in the pushed image's config");
    assert_eq!(memo.len(), 2, "the dependency step's and the package step's answers: {memo:?}");
    assert!(config["org.nixfront.closure.v1"]["narSizes"].is_object(), "the closure record: {config}");

    // A fresh runner: an empty builder, the pushed image its only cache.
    d26.prune();
    let _ = d26.docker(&["image", "rm", "-f", pushed]);
    fx.write("app/message", "message v2\n");
    let t = tag("ci-summary", d26);
    let metadata = fx.file_for(d26, "../ci-summary-metadata.json");
    let next = d26.build(&fx, &t, &["--cache-from", pushed, "--metadata-file", &metadata]);
    assert!(next.ok, "{}", next.all());
    let log = next.all();
    assert!(!log.contains("building slowdep"), "a dependency was rebuilt:\n{log}");
    assert_eq!(built(&log).len(), 1, "only the app's derivation: {:?}", built(&log));
    assert_change_in_metadata(&fx, &log, "../ci-summary-metadata.json", pushed, &t);
}

/// docs/ci.md's quickstart on Docker 26: a `type=registry` cache (which holds no image) and
/// the pushed image named by `NIX_PREVIOUS_IMAGE`; a fresh runner after an edit builds the app
/// alone and reports the change against that image.
#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn the_metadata_file_says_what_changed_since_the_previous_image_with_a_registry_cache() {
    let d26 = Engine::D26;
    let _engines = d26.exclusive();
    let _registry = crate::harness::Registry::start();
    let fx = Fixture::new("ci-registry", APP);
    let pushed = "localhost:5000/nixfront-registry:latest";
    let cache = "type=registry,ref=localhost:5000/nixfront-registry:cache";
    let previous = ["--build-arg", &format!("NIX_PREVIOUS_IMAGE={pushed}")];
    d26.prune();
    let to = format!("{cache},mode=max");
    let export = [&["--cache-to", &to, "--provenance=false"][..], &previous].concat();
    let first = d26.build(&fx, pushed, &export);
    assert!(first.ok, "{}", first.all());
    assert!(!first.all().contains(" since "), "no previous image yet: {}", first.all());
    let push = d26.docker(&["push", pushed]);
    assert!(push.ok, "docker push: {}", push.all());

    d26.prune();
    let _ = d26.docker(&["image", "rm", "-f", pushed]);
    fx.write("app/message", "message v2\n");
    let t = tag("ci-registry", d26);
    let metadata = fx.file_for(d26, "../ci-registry-metadata.json");
    let import = [&["--cache-from", cache, "--metadata-file", &metadata][..], &previous].concat();
    let next = d26.build(&fx, &t, &import);
    assert!(next.ok, "{}", next.all());
    let log = next.all();
    assert!(!log.contains("building slowdep"), "a dependency was rebuilt:\n{log}");
    assert_eq!(built(&log).len(), 1, "only the app's derivation: {:?}", built(&log));
    assert_change_in_metadata(
        &fx,
        &log,
        "../ci-registry-metadata.json",
        "localhost:5000/nixfront-registry:latest",
        &t,
    );
    assert_eq!(d26.run_image(&t, &[]).stdout, "message v2\nslow dependency\n");
}

#[test]
#[ignore = "needs both engines and the frontend image: run scripts/test.sh"]
fn the_exported_cache_carries_the_closure_once_and_no_builder_image() {
    let d26 = Engine::D26;
    let _engines = d26.exclusive();
    let fx = Fixture::new("ci-size", APP);
    let store = Fixture::new("ci-size-cache", "unused\n");
    let cache = store.file_for(d26, "cache");
    d26.prune();
    let (_, _) = d26.build_id(&fx, "ci-size", &["--cache-to", &format!("type=local,dest={cache},mode=max")]);
    let blobs = store.host_path().join("cache/blobs/sha256");
    let exported: u64 =
        std::fs::read_dir(&blobs).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let image: u64 = image::saved_layers(d26, &tag("ci-size", d26)).iter().map(|(size, _)| size).sum();
    let builder: u64 = d26.inspect(&crate::harness::engine::nix_image())["Size"].as_u64().unwrap();
    // Besides the image's layers: the derivations and sources the package is made from, twice
    // (the evaluation's binary cache, from which the dependency steps take them, and its tree
    // for the package step), here mostly the static busybox these flakes build with (about
    // 1 MB compressed).
    let sources = std::fs::metadata("/bin/busybox").unwrap().len() * 12 / 10;
    assert!(
        exported < image * 13 / 10 + sources + 200_000,
        "exported {exported} bytes for an image of {image} (and {sources} of sources)"
    );
    assert!(exported < builder / 4, "the builder image ({builder} bytes) is in the export ({exported})");
}

on_builders! {
    builders(nix28);
    fn a_fresh_runner_with_inline_cache_rebuilds_only_the_app() {
        let d20 = Engine::D20;
        let _engines = d20.exclusive();
        let fx = Fixture::new("ci-inline", APP);
        let inline = ["--build-arg", "BUILDKIT_INLINE_CACHE=1"];
        d20.prune();
        let (_, log) = d20.build_id(&fx, "ci-inline-source", &inline);
        assert_contains(&log, &["building slowdep", "[nixfront] linux/amd64: ", " layers, ", "largest: "]);
        let source = tag("ci-inline-source", d20);
        let config = image::raw_config(d20, &source);
        let memo = config["org.nixfront.memo.v1"].as_object().expect("the memo in the image config");
        assert_eq!(memo.len(), 2, "the dependency step's and the package step's answers: {memo:?}");

        // A new builder with the image as its only cache (Docker 20.10 reads inline cache from
        // it): nothing is built, the evaluation aside; the memo in the image config answers
        // for the steps nixfront would otherwise read.
        d20.prune();
        let with_cache = [&inline[..], &["--cache-from", &source]].concat();
        let (_, log) = d20.build_id(&fx, "ci-inline", &with_cache);
        assert_nothing_built(d20, &log);
        assert_contains(&log, &[&format!("the same store paths as {source}: a redeploy moves 0 B")]);
        // The image IDs differ only by the inline cache records the config carries (with their
        // times): the layers and the config proper are the same.
        let (a, b) = (d20.inspect(&source), d20.inspect(&tag("ci-inline", d20)));
        assert_eq!(a["RootFS"], b["RootFS"], "the same layers from the inline cache");
        assert_eq!(a["Config"], b["Config"]);
        assert_eq!(a["Created"], b["Created"]);

        // Another new builder, after an app-only edit: only the app is built, on the dependency
        // layers the image carries.
        d20.prune();
        fx.write("app/message", "message v2\n");
        let (_, log) = d20.build_id(&fx, "ci-inline-edit", &with_cache);
        assert_contains(&log, &["-edited-1.0.drv'...", "dependencies from the dependency layers"]);
        // The summary says what changed against the image the cache came from (its memo:
        // inline cache).
        assert_contains(&log, &[&format!("since {source}: 1 path added (edited-1.0), 1 removed, a redeploy moves ")]);
        assert_eq!(built(&log).len(), 1, "only the app's derivation: {:?}", built(&log));
        let edited = tag("ci-inline-edit", d20);
        assert_eq!(d20.run_image(&edited, &[]).stdout, "message v2\nslow dependency\n");

        // The same builder, everything run again, gives the same layers and config; without
        // inline cache the memo is there too (BuildKit does not tell a frontend which it is).
        d20.build_id(&fx, "ci-inline-warm", &["--no-cache"]);
        let (fresh, warm) = (d20.inspect(&edited), d20.inspect(&tag("ci-inline-warm", d20)));
        assert_eq!(fresh["RootFS"], warm["RootFS"], "a fresh runner's layers are the warm builder's");
        assert_eq!(fresh["Config"], warm["Config"]);
        let config = image::raw_config(d20, &tag("ci-inline-warm", d20));
        assert!(config["org.nixfront.memo.v1"].is_object(), "the memo without inline cache: {config}");
    }
}
