//! Fast rebuilds and small redeploys: the persistent store keeps dependencies built, an
//! app-only edit changes one layer, layer limits hold, layers are the same on a fresh
//! builder, and concurrent builds leave the store consistent.

use std::collections::BTreeSet;

use crate::harness::{Engine, Fixture, assert_contains, image, tag};

const FILE_EDITED: &str = "# syntax=org/nixfront\nFLAKE .#edited\n";

on_engines! {
    builders(nix28, official);
    fn an_app_edit_rebuilds_only_the_app_and_changes_one_small_layer(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("edit", FILE_EDITED);
        let t = tag("edit", engine);
        let first = engine.build(&fx, &t, &[]);
        assert!(first.ok, "{engine:?}: {}", first.all());
        assert_contains(&first.all(), &["building slowdep"]);
        let before = engine.diff_ids(&t);

        fx.write("app/message", "message v2\n");
        let second = engine.build(&fx, &t, &[]);
        assert!(second.ok, "{engine:?}: {}", second.all());
        assert_contains(&second.all(), &["-edited-1.0.drv'..."]);
        assert!(!second.all().contains("building slowdep"), "{engine:?} rebuilt an unchanged dependency");
        assert_eq!(engine.run_image(&t, &[]).stdout, "message v2\nslow dependency\n");

        let after = engine.diff_ids(&t);
        assert_eq!(before.len(), after.len());
        let new: Vec<usize> = (0..after.len()).filter(|&i| !before.contains(&after[i])).collect();
        assert_eq!(new.len(), 1, "{engine:?}: one new layer, got {new:?}");
        let layers = image::saved_layers(engine, &t);
        let (size, paths) = &layers[new[0]];
        assert!(paths.len() == 1 && paths[0].ends_with("-edited-1.0"), "{engine:?}: {paths:?}");
        assert!(*size < 16 * 1024, "{engine:?}: the changed layer is {size} bytes");
        // The builder's own Nix (in its /nix/store where the image has it there, as the
        // official one does) stays in the builder's store, never in the image.
        assert_eq!(image::store_entries(engine, &t), fx.expected_closure("edited"), "{engine:?}");
    }
}

/// Every store path lies wholly in one layer, and there are no more layers than allowed.
fn assert_whole_paths(engine: Engine, t: &str, expected: &[String], limit: usize) {
    let layers = image::saved_layers(engine, t);
    assert!(layers.len() <= limit, "{engine:?}: {} layers for NIX_LAYERS={limit}", layers.len());
    for path in expected {
        let holders: Vec<usize> = (0..layers.len()).filter(|&i| layers[i].1.contains(path)).collect();
        assert_eq!(holders.len(), 1, "{engine:?}: {path} is in layers {holders:?}");
    }
    let all: BTreeSet<&String> = layers.iter().flat_map(|(_, p)| p).collect();
    assert_eq!(all.len(), expected.len(), "{engine:?}: only closure paths");
}

on_engines! {
    fn layer_limits_hold_and_every_path_is_whole_in_one_layer(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("wide", "# syntax=org/nixfront\nFLAKE .#wide\n");
        let expected = fx.expected_closure("wide");
        assert_eq!(expected.len(), 10, "wide, eight deps and tools");
        let t = tag("wide", engine);
        let limited = engine.build(&fx, &t, &["--build-arg", "NIX_LAYERS=4"]);
        assert!(limited.ok, "{engine:?}: {}", limited.all());
        assert_whole_paths(engine, &t, &expected, 4);
        assert_eq!(engine.run_image(&t, &[]).stdout, "0\n1\n2\n3\n4\n5\n6\n7\n");

        let roomy = engine.build(&fx, &t, &[]);
        assert!(roomy.ok, "{engine:?}: {}", roomy.all());
        assert_eq!(engine.diff_ids(&t).len(), 11, "{engine:?}: ten paths alone and the top layer");
        assert_whole_paths(engine, &t, &expected, 11);

        let bad = engine.build(&fx, &t, &["--build-arg", "NIX_LAYERS=1"]);
        assert!(!bad.ok);
        assert_contains(&bad.all(), &["NIX_LAYERS=\"1\": expected a whole number from 2 to 125"]);
    }
}

on_engines! {
    builders(nix28);
    fn layers_are_identical_on_a_fresh_builder(engine) {
        let _engines = engine.exclusive();
        let fx = Fixture::new("fresh", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let t = tag("fresh", engine);
        let first = engine.build(&fx, &t, &[]);
        assert!(first.ok, "{engine:?}: {}", first.all());
        let before = engine.diff_ids(&t);
        engine.prune();
        let second = engine.build(&fx, &t, &[]);
        assert!(second.ok, "{engine:?}: {}", second.all());
        assert_contains(&second.all(), &["-hello-0.1.drv'..."]); // really rebuilt from scratch
        assert_eq!(engine.diff_ids(&t), before, "{engine:?}: layer diff IDs after a prune");
    }
}

on_engines! {
    fn concurrent_builds_share_the_store_safely(engine) {
        let _engines = engine.shared();
        let (a, b) = (Fixture::new("conc-a", FILE_EDITED), Fixture::new("conc-b", FILE_EDITED));
        let (ta, tb) = (tag("conc-a", engine), tag("conc-b", engine));
        let (ra, rb) = std::thread::scope(|s| {
            let ja = s.spawn(|| engine.build_alongside(&a, &ta, &[]));
            let jb = s.spawn(|| engine.build_alongside(&b, &tb, &[]));
            (ja.join().unwrap(), jb.join().unwrap())
        });
        assert!(ra.ok && rb.ok, "{engine:?}:\n{}\n{}", ra.all(), rb.all());
        assert_contains(&ra.all(), &["building slowdep"]);
        assert_contains(&rb.all(), &["building slowdep"]);

        let check = Fixture::new("conc-verify", "# syntax=org/nixfront\nFLAKE .#hello\n");
        let tc = tag("conc-verify", engine);
        let verified = engine.build(&check, &tc, &["--build-arg", "NIX_VERIFY_STORE=true"]);
        assert!(verified.ok, "{engine:?}: {}", verified.all());
        assert_contains(&verified.all(), &["nixfront: the Nix store is consistent"]);
    }
}

on_engines! {
    fn a_closure_of_3000_small_paths_builds_in_the_default_layers(engine) {
        let _engines = engine.shared();
        let fx = Fixture::from_dir("many", "many", "# syntax=org/nixfront\nFLAKE .\n");
        let t = tag("many", engine);
        let started = std::time::Instant::now();
        let built = engine.build(&fx, &t, &[]);
        let elapsed = started.elapsed();
        assert!(built.ok, "{engine:?}: {}", built.all());
        eprintln!("{engine:?}: a closure of 3000 small paths built in {:.1} s", elapsed.as_secs_f64());
        assert_eq!(engine.run_image(&t, &[]).stdout.trim(), "3000");
        let layers = engine.diff_ids(&t);
        assert!(layers.len() <= 100, "{engine:?}: {} layers for the default NIX_LAYERS=100", layers.len());
        let entries = image::store_entries(engine, &t);
        assert_eq!(entries.len(), 3002, "{engine:?}: 3000 paths, the app and its tools");
    }
}
