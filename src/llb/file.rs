//! FileOp: copies, directories and files made by BuildKit itself, without a container.
//!
//! Actions chain: each one applies to the result of the one before, the first to the base
//! state. Only the last action's result is an output. Times are Unix nanoseconds, `-1` for
//! "leave it to BuildKit".

use bollard_buildkit_proto::pb;
use pb::file_action::Action;

use super::{CachePolicy, Lines, Meta, Node, Output, State};

/// A FileOp being built on top of `base`.
pub struct FileOp {
    base: State,
    inputs: Vec<Output>,
    actions: Vec<(i64, Action)>, // (secondary input index, action)
    location: Option<Lines>,
    cache: CachePolicy,
}

impl FileOp {
    pub fn on(base: &State) -> Self {
        FileOp {
            base: base.clone(),
            inputs: Vec::new(),
            actions: Vec::new(),
            location: None,
            cache: CachePolicy::default(),
        }
    }

    /// How BuildKit's cache treats this op.
    pub fn cache(mut self, cache: CachePolicy) -> Self {
        self.cache = cache;
        self
    }

    /// The lines of the user's file this op comes from.
    pub fn at(mut self, location: Option<Lines>) -> Self {
        self.location = location;
        self
    }

    /// Copies what is inside directory `src` of `from` into `dest`, merging with what is
    /// there and creating `dest`'s parents; modes and owners are kept, and every copied entry,
    /// directories included, gets `timestamp`.
    pub fn copy_contents(self, from: &State, src: &str, dest: &str, timestamp: i64) -> Self {
        self.push_copy(from, src, dest, timestamp, true)
    }

    /// Copies the entry `src` of `from` (a file, a link or a whole directory) to `dest`,
    /// creating `dest`'s parents; its mode, owner and kind are kept, every copied entry gets
    /// `timestamp`.
    pub fn copy_entry(self, from: &State, src: &str, dest: &str, timestamp: i64) -> Self {
        self.push_copy(from, src, dest, timestamp, false)
    }

    fn push_copy(
        mut self,
        from: &State,
        src: &str,
        dest: &str,
        timestamp: i64,
        dir_copy_contents: bool,
    ) -> Self {
        let secondary = self.input_index(from);
        let copy = pb::FileActionCopy {
            src: src.to_string(),
            dest: dest.to_string(),
            mode: -1,
            create_dest_path: true,
            dir_copy_contents,
            timestamp,
            ..Default::default()
        };
        self.actions.push((secondary, Action::Copy(copy)));
        self
    }

    /// A Dockerfile COPY of `src` (wildcards allowed, symlinks followed, a directory's
    /// contents) of `from` to `dest` (into it when it ends with `/`), owned by `owner`
    /// (`uid:gid`) and with `mode` when given, every copied entry getting `timestamp`.
    pub fn copy_as_dockerfile(
        mut self,
        from: &State,
        src: &str,
        dest: &str,
        owner: Option<(u32, u32)>,
        mode: Option<u32>,
        timestamp: i64,
    ) -> Self {
        let secondary = self.input_index(from);
        let by_id = |id| pb::UserOpt { user: Some(pb::user_opt::User::ById(id)) };
        let copy = pb::FileActionCopy {
            src: src.to_string(),
            dest: dest.to_string(),
            owner: owner.map(|(uid, gid)| pb::ChownOpt { user: Some(by_id(uid)), group: Some(by_id(gid)) }),
            mode: mode.map_or(-1, |m| m as i32),
            follow_symlink: true,
            dir_copy_contents: true,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: false,
            timestamp,
            ..Default::default()
        };
        self.actions.push((secondary, Action::Copy(copy)));
        self
    }

    /// Makes directory `path` (and its parents) with `mode`.
    pub fn mkdir(self, path: &str, mode: i32, timestamp: i64) -> Self {
        self.mkdir_owned(path, mode, None, timestamp)
    }

    /// Makes directory `path` (and its parents) with `mode`, owned by `owner` (`uid:gid`).
    pub fn mkdir_owned(mut self, path: &str, mode: i32, owner: Option<(u32, u32)>, timestamp: i64) -> Self {
        let by_id = |id| pb::UserOpt { user: Some(pb::user_opt::User::ById(id)) };
        let owner = owner.map(|(uid, gid)| pb::ChownOpt { user: Some(by_id(uid)), group: Some(by_id(gid)) });
        let mkdir =
            pb::FileActionMkDir { path: path.to_string(), mode, make_parents: true, owner, timestamp };
        self.actions.push((-1, Action::Mkdir(mkdir)));
        self
    }

    /// Removes `path` (recursively), which must exist.
    pub fn rm(mut self, path: &str) -> Self {
        let rm = pb::FileActionRm { path: path.to_string(), allow_not_found: false, allow_wildcard: false };
        self.actions.push((-1, Action::Rm(rm)));
        self
    }

    /// Writes `data` to `path` with `mode`.
    pub fn mkfile(mut self, path: &str, mode: i32, data: &[u8], timestamp: i64) -> Self {
        let mkfile = pb::FileActionMkFile {
            path: path.to_string(),
            mode,
            data: data.to_vec(),
            owner: None,
            timestamp,
        };
        self.actions.push((-1, Action::Mkfile(mkfile)));
        self
    }

    fn input_index(&mut self, state: &State) -> i64 {
        let Some(output) = &state.0 else { return -1 };
        let same = |o: &Output| std::sync::Arc::ptr_eq(&o.node, &output.node) && o.index == output.index;
        if let Some(i) = self.inputs.iter().position(same) {
            return i as i64;
        }
        self.inputs.push(output.clone());
        (self.inputs.len() - 1) as i64
    }

    /// The state after all actions; `name` is what progress output shows. With no actions the
    /// base is returned unchanged.
    pub fn build(mut self, name: &str) -> State {
        if self.actions.is_empty() {
            return self.base;
        }
        let base = self.base.clone();
        let base_index = self.input_index(&base);
        let input_count = self.inputs.len() as i64;
        let last = self.actions.len() - 1;
        let actions = self
            .actions
            .into_iter()
            .enumerate()
            .map(|(i, (secondary, action))| pb::FileAction {
                // The first action works on the base; each later one on its predecessor's result.
                input: if i == 0 { base_index } else { input_count + i as i64 - 1 },
                secondary_input: secondary,
                output: if i == last { 0 } else { -1 },
                action: Some(action),
            })
            .collect();
        let op = pb::Op { op: Some(pb::op::Op::File(pb::FileOp { actions })), ..Default::default() };
        let meta = Meta { name: Some(name.to_string()), location: self.location, cache: self.cache };
        State::from_node(Node { op, inputs: self.inputs, meta }, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::definition::decode;
    use crate::llb::source;

    fn file_op(state: &State) -> (Vec<pb::Input>, pb::FileOp) {
        let ops = decode(&state.to_definition());
        let (_, op) = &ops[ops.len() - 2];
        let Some(pb::op::Op::File(file)) = &op.op else { panic!("not a file op") };
        (op.inputs.clone(), file.clone())
    }

    #[test]
    fn actions_chain_on_scratch_and_reference_their_predecessor() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let state = FileOp::on(&State::scratch())
            .copy_contents(&image, "/bin", "/bin", 1)
            .mkdir("/tmp", 0o1777, 1)
            .build("two actions");
        let (inputs, file) = file_op(&state);
        assert_eq!(inputs.len(), 1);
        let a = &file.actions;
        assert_eq!((a[0].input, a[0].secondary_input, a[0].output), (-1, 0, -1));
        assert_eq!((a[1].input, a[1].secondary_input, a[1].output), (1, -1, 0));
    }

    #[test]
    fn a_base_state_is_input_zero() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let state = FileOp::on(&image).mkdir("/x", 0o755, -1).build("mkdir");
        let (inputs, file) = file_op(&state);
        assert_eq!(inputs.len(), 1);
        assert_eq!(file.actions[0].input, 0);
    }
}
