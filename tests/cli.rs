//! The binary as a person runs it: `--version` and `--help` answer and exit; `step` (what runs
//! inside BuildKit's steps) needs its spec; anything else is refused without starting a gateway
//! session.

use std::process::Command;

fn nixfront(arg: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nixfront")).arg(arg).output().expect("the binary runs")
}

#[test]
fn version_and_help_answer_and_other_arguments_are_refused() {
    let version = nixfront("--version");
    assert!(version.status.success());
    assert_eq!(String::from_utf8_lossy(&version.stdout), format!("nixfront {}\n", env!("CARGO_PKG_VERSION")));
    let help = nixfront("--help");
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("# syntax="));
    let other = nixfront("--serve");
    assert_eq!(other.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&other.stderr).contains("unknown argument \"--serve\""));
}

#[test]
fn a_step_outside_buildkit_says_what_it_lacks() {
    let bare = nixfront("step");
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("which step?"));
    let output = Command::new(env!("CARGO_BIN_EXE_nixfront")).args(["step", "evaluate"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "no spec: nothing runs");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the step's spec"));
}
