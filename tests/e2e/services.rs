//! What real services need in their image: several packages, a named user, CA certificates,
//! time zones, root links, files from the context, a base image; and every bad input an error
//! at its line.

use crate::harness::builders::base_image;
use crate::harness::world::World;
use crate::harness::{Engine, Fixture, assert_contains, assert_points_at, image, tag};

/// Checks run inside the image, with the base image's busybox; one line each.
const CHECKS: &str = r#"id -un
echo "$BASE_ENV"
cat "$SSL_CERT_FILE"
cat /etc/ssl/certs/ca-certificates.crt
cat "$TZDIR/Europe/Paris"
/bin/web | head -n 1
cat /etc/app/config.toml
stat -c %U /data
pwd
cat /etc/os-release
cat /etc/services
"#;

fn dockerfile(base: &str) -> String {
    format!(
        "# syntax=org/nixfront\nFROM {base}\nFLAKE . .#cacert .#tzdata .#iana-etc\nUSER app\nWORKDIR /data\n\
         COPY --chown=app config.toml /etc/app/config.toml\n"
    )
}

on_engines! {
    /// The world's app with cacert, tzdata and iana-etc from its nixpkgs-like input, a named
    /// user, a WORKDIR, a COPY'd file, on a base image; then an app edit moves one small layer,
    /// and the same inputs built again with --no-cache give the same layers.
    fn a_service_image_has_its_packages_user_certificates_zones_config_and_base(engine) {
        let _engines = engine.shared();
        let world = World::on(engine);
        let base = base_image(engine);
        let app = world.app("web");
        app.write("Dockerfile", &dockerfile(&base));
        app.write("config.toml", "greeting = \"hi\"\n");
        let config = format!("NIX_CONFIG={}", world.cache_config(false));
        let t = tag("service", engine);
        let run = engine.build(&app, &t, &["--build-arg", &config]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        let checked = engine.docker(&["run", "--rm", "--entrypoint", "/bin/sh", &t, "-c", CHECKS]);
        assert!(checked.ok, "{engine:?}: {}", checked.all());
        let lines: Vec<&str> = checked.stdout.lines().collect();
        let ca = "-----BEGIN CERTIFICATE----- (the Nix world's test CA) -----END CERTIFICATE-----";
        assert_eq!(
            lines,
            [
                "app",
                "from-base",
                ca,
                ca,
                "TZif test zone Europe/Paris",
                "hello from web v1",
                "greeting = \"hi\"",
                "app",
                "/data",
                "ID=nixfront-test-base",
                "http 80/tcp",
            ],
            "{engine:?}"
        );
        let config = engine.inspect(&t)["Config"].clone();
        assert_eq!(config["User"], "1000:1000", "{engine:?}: numeric, for runAsNonRoot");
        let env: Vec<&str> = config["Env"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert!(env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"), "{env:?}");
        assert_eq!(env[0], "BASE_ENV=from-base", "the base's Env first: {env:?}");
        assert_eq!(config["Labels"]["org.opencontainers.image.base.name"], format!("docker.io/{base}"), "{engine:?}");
        let before = engine.diff_ids(&t);

        // The same inputs again, every step run anew: the same layers.
        let again = engine.build(&app, &t, &["--build-arg", &config_arg(&world), "--no-cache"]);
        assert!(again.ok, "{engine:?}: {}", again.all());
        assert_eq!(engine.diff_ids(&t), before, "{engine:?}: layers built again differ");

        // An edit of the app: one small layer changes (its own paths and the image root).
        app.write("src/message", "hello from web v2\n");
        let edit = engine.build(&app, &t, &["--build-arg", &config_arg(&world)]);
        assert!(edit.ok, "{engine:?}: {}", edit.all());
        let after = engine.diff_ids(&t);
        assert_eq!(before.len(), after.len());
        let new: Vec<usize> = (0..after.len()).filter(|&i| !before.contains(&after[i])).collect();
        assert_eq!(new.len(), 1, "{engine:?}: one new layer, got {new:?}");
        let layers = image::saved_layers(engine, &t);
        let (size, paths) = &layers[new[0]];
        assert!(paths.len() == 1 && paths[0].ends_with("-web-1.0"), "{engine:?}: {paths:?}");
        assert!(*size < 64 * 1024, "{engine:?}: the changed layer is {size} bytes");
        let web = engine.docker(&["run", "--rm", "--entrypoint", "/bin/web", &t]);
        assert_eq!(web.stdout.lines().next(), Some("hello from web v2"), "{engine:?}: {}", web.all());
    }
}

fn config_arg(world: &World) -> String {
    format!("NIX_CONFIG={}", world.cache_config(false))
}

/// Builds `dockerfile` in the basic fixture, which must fail; its output.
fn failing(engine: Engine, name: &str, dockerfile: &str, extra: &[&str]) -> String {
    let fx = Fixture::new(name, dockerfile);
    fx.write("config.toml", "x = 1\n");
    let run = engine.build(&fx, &tag(name, engine), extra);
    assert!(!run.ok, "{engine:?} {name}: built, but should not have");
    run.all()
}

on_engines! {
    /// Several packages link into the image root; without root links only the well-known files
    /// do; and each bad input fails at its line, saying what to do.
    fn root_links_merge_and_bad_inputs_fail_at_their_lines(engine) {
        let _engines = engine.shared();
        let fx = Fixture::new("links", "# syntax=org/nixfront\nFLAKE .#hello .#bye\nUSER 1000\n");
        let t = tag("links", engine);
        let run = engine.build(&fx, &t, &[]);
        assert!(run.ok, "{engine:?}: {}", run.all());
        if engine == Engine::D26 {
            // BuildKit 0.8 shows no warnings; the image-root step prints it when it runs.
            assert_contains(&run.all(), &["NoCaCertificates"]);
        }
        let (_, entries) = image::filesystem(engine, &t);
        for link in ["bin/hello", "bin/bye"] {
            assert!(entries.iter().any(|e| e == link), "{engine:?}: no /{link} in {entries:?}");
        }
        let off = engine.build(&fx, &t, &["--build-arg", "NIX_ROOT_LINKS=false"]);
        assert!(off.ok, "{engine:?}: {}", off.all());
        assert_eq!(image::root_entries(engine, &t), ["nix", "tmp"], "{engine:?}: nothing linked");

        let base = base_image(engine);
        image::load_with_config(engine, &base, "nixfront-e2e/base-arm64:1", |c| c["architecture"] = "arm64".into());
        let cases: &[(&str, &[&str], &str)] = &[
            ("FLAKE .#hello .#hello2\n", &["/bin/hello would be both", "hello-0.1/bin/hello", "hello-0.2/bin/hello"], "FLAKE .#hello .#hello2"),
            ("FLAKE .#hello\nUSER App\n", &["Dockerfile:3: USER: `App` is not a user or group"], "USER App"),
            ("FLAKE .#hello\nCOPY ../secret /etc/\n", &["Dockerfile:3: COPY: `../secret` points outside the build context"], "COPY ../secret /etc/"),
            ("FLAKE .#hello\nCOPY --chown=www config.toml /etc/\n", &["Dockerfile:3: COPY: --chown=www: the image has no user www"], "COPY --chown=www config.toml /etc/"),
            ("FLAKE .#hello\nCOPY missing.toml /etc/\n", &["missing.toml"], "COPY missing.toml /etc/"),
            // dockerd 20.10 passes over a local image of another platform and tries the registry.
            ("FROM nixfront-e2e/base-arm64:1\nFLAKE .#hello\n", match engine {
                Engine::D20 => &["FROM nixfront-e2e/base-arm64:1: no image for linux/amd64 can be resolved"],
                Engine::D26 => &["FROM nixfront-e2e/base-arm64:1: the image is for linux/arm64, the build for linux/amd64"],
            }, "FROM nixfront-e2e/base-arm64:1"),
        ];
        for (i, (file, needles, marked)) in cases.iter().enumerate() {
            let out = failing(engine, &format!("bad-{i}"), &format!("# syntax=org/nixfront\n{file}"), &[]);
            assert_contains(&out, needles);
            assert_points_at(engine, &out, marked);
        }
    }
}
