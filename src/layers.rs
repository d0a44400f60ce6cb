//! The image's root filesystem: the closure copied out of the build, and a top layer with
//! what nixfront adds (`/tmp`, the WORKDIR).
//!
//! Every copy and directory carries a fixed time, so the same store paths give the same
//! layer contents in every build.

use crate::closure::{Closure, STORE_DIR};
use crate::llb::State;
use crate::llb::file::FileOp;

/// The time given to everything nixfront writes: 1 s after the epoch, as Nix gives store
/// files, in nanoseconds.
pub const FIXED_TIME_NS: i64 = 1_000_000_000;

/// What the top layer holds, besides the closure.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    pub workdir: Option<&'a str>,
}

/// The root filesystem: `/nix/store` with the whole closure, then `/tmp` (1777) and the
/// WORKDIR. `built` is the build's output, laid out as `nix/store/<path>`.
pub fn root_filesystem(closure: &Closure, built: &State, extras: &Extras) -> State {
    let store = closure_layer(closure, built);
    let mut top = FileOp::on(&store).mkdir("/tmp", 0o1777, FIXED_TIME_NS);
    if let Some(dir) = extras.workdir.filter(|d| *d != "/" && *d != "/tmp") {
        top = top.mkdir(dir, 0o755, FIXED_TIME_NS);
    }
    top.build("nixfront: /tmp and WORKDIR")
}

fn closure_layer(closure: &Closure, built: &State) -> State {
    let name = format!("copy closure: {} store paths", closure.paths.len());
    FileOp::on(&State::scratch()).copy(built, STORE_DIR, STORE_DIR, FIXED_TIME_NS).build(&name)
}
