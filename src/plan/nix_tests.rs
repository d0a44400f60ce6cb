//! The steps' shell functions that differ by Nix version or by what the builder can reach
//! (scripts/common.sh), run on their own with fake Nix tools (see [`super::script_tests`]):
//! each Nix version gets its own syntax, and a substituter out of reach costs a build one try.

use std::os::unix::fs::PermissionsExt;

use super::script_tests::Sandbox;

/// A derivation reaches `nix build` as the installable of its outputs in the version's syntax:
/// `DRV^*` since Nix 2.13 (a bare DRV is the file itself since 2.15), `DRV` before, as
/// `nix --version` tells the step; the commands renamed since 2.8 are called by the version's
/// names.
#[test]
fn each_nix_version_gets_its_own_syntax() {
    let drv = "/nix/store/0000000000000000000000000000000a-app-1.0.drv";
    let old = "show-derivation|show-config|store ping";
    let new = "derivation show|config show|store info";
    for (version, installable, commands) in [
        ("2.8.1", drv.to_string(), old),
        ("2.26.3", format!("{drv}^*"), new),
        ("2.24.10", format!("{drv}^*"), new),
        ("2.14.1", format!("{drv}^*"), old),
        ("3.0", format!("{drv}^*"), new),
    ] {
        let sb = Sandbox::new(&format!("outputs-{version}"));
        let nix = sb.path("bin/nix");
        let recording = std::fs::read_to_string(&nix).unwrap();
        let answering = recording.replacen(
            "#!/bin/sh\n",
            &format!("#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'nix (Nix) {version}'; exit 0; }}\n"),
            1,
        );
        std::fs::write(&nix, answering).unwrap();
        std::fs::write(sb.path("drvs"), format!("{drv}\n")).unwrap();
        let env = "native=x86_64-linux nix_opts= NIXFRONT_PROBES=/nonexistent NIXFRONT_PROBE_STATUS=0";
        let facts = sb.run("nix_version_facts; echo \"$derivation_show|$config_show|$store_info\"");
        assert_eq!(facts.trim(), commands, "Nix {version}");
        sb.run(&format!(
            "{env}; nix_version_facts; realise_locked x86_64-linux {}",
            sb.path("drvs").display()
        ));
        let calls = sb.calls("nix");
        let builds = calls.iter().filter(|a| **a == "build").count();
        let given = calls.iter().filter(|a| **a == installable).count();
        assert_eq!(
            (builds, given),
            (2, 2),
            "Nix {version}: the dry run and the build get {installable}: {calls:?}"
        );
        assert!(!calls.iter().any(|a| a.starts_with(drv) && *a != installable), "Nix {version}: {calls:?}");
    }
}

/// A substituter the builder cannot reach (the official image's cache.nixos.org offline) is
/// dropped for the step after one try; the others keep their order, and a step whose every
/// substituter answers leaves NIX_CONFIG as the client gave it.
#[test]
fn unreachable_substituters_are_dropped_once_and_the_rest_kept_in_order() {
    let sb = Sandbox::new("substituters");
    let fake = format!(
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >>{dir}/calls-nix\n\
         case \" $* \" in\n\
           *' config show '*) echo \"substituters = $(cat {dir}/subs)\" ;;\n\
           *' --store https://down.example '*) echo 'error: unable to download: Could not resolve host' >&2; exit 1 ;;\n\
         esac\n",
        dir = sb.dir.display()
    );
    std::fs::write(sb.path("bin/nix"), fake).unwrap();
    let check = "nix_opts= config_show='config show' store_info='store info'; \
                 NIX_CONFIG='extra-substituters = https://mine.example'; drop_unreachable_substituters; \
                 printf '[%s]' \"$NIX_CONFIG\"";
    std::fs::write(
        sb.path("subs"),
        "https://mine.example https://down.example s3://bucket http://also.example",
    )
    .unwrap();
    let out = sb.run(check);
    assert!(
        out.contains("[extra-substituters = https://mine.example\nsubstituters = https://mine.example s3://bucket http://also.example]"),
        "{out}"
    );
    assert!(
        out.contains("substituter https://down.example is not reachable")
            && out.contains("Could not resolve host"),
        "{out}"
    );
    let asked: Vec<String> =
        sb.calls("nix").windows(2).filter(|w| w[0] == "--store").map(|w| w[1].clone()).collect();
    assert_eq!(
        asked,
        ["https://mine.example", "https://down.example", "http://also.example"],
        "only HTTP(S), once each"
    );

    std::fs::write(sb.path("subs"), "https://mine.example").unwrap();
    let out = sb.run(check);
    assert!(out.ends_with("[extra-substituters = https://mine.example]"), "{out}");

    // With the shared record, a build's later steps take what its first step learnt, for
    // NIXFRONT_REACH_TTL seconds, and ask again after.
    std::fs::create_dir(sb.path("reach")).unwrap();
    std::fs::write(sb.path("subs"), "https://down.example https://mine.example").unwrap();
    let stores = || sb.calls("nix").iter().filter(|a| *a == "--store").count();
    let with_record_in = |shell: &str, ttl: u32| {
        let body = format!("NIXFRONT_REACH={} NIXFRONT_REACH_TTL={ttl}; {check}", sb.path("reach").display());
        sb.run_in(shell, &body)
    };
    let with_record = |ttl: u32| with_record_in("sh", ttl);
    let before = stores();
    let first = with_record(300);
    assert_eq!(stores(), before + 2, "the first step asks each: {first}");
    let second = with_record(300);
    assert_eq!(stores(), before + 2, "a later step asks none: {second}");
    assert!(
        second.contains("[extra-substituters = https://mine.example\nsubstituters = https://mine.example]"),
        "{second}"
    );
    assert!(second.contains("Could not resolve host, found ") && second.contains(" s ago)"), "{second}");
    let mode = std::fs::metadata(sb.path("reach")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the record is root's alone");
    with_record(0);
    assert_eq!(stores(), before + 4, "past the TTL each is asked again");

    // A record any build could have written is data: one that is not `SECONDS yes|no ...`
    // is asked again, and nothing in it runs (bash evaluates `x[$(cmd)]` in arithmetic).
    let pwned = sb.path("pwned");
    for forged in
        [format!("x[$(touch {})] yes", pwned.display()), "12a no".to_string(), "99 maybe".to_string()]
    {
        for entry in std::fs::read_dir(sb.path("reach")).unwrap() {
            std::fs::write(entry.unwrap().path(), &forged).unwrap();
        }
        let before = stores();
        with_record_in("bash", 300);
        assert_eq!(stores(), before + 2, "{forged:?} is not a record");
        assert!(!pwned.exists(), "{forged:?} ran");
    }
}
