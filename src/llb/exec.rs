//! ExecOp: a process run in a container made of mounts.
//!
//! Mounts are sorted by destination (as BuildKit's own client does, so nested mounts land in
//! order) and every writable bind mount that asks for it becomes an output, numbered in that
//! order. The root mount is always an output (index 0): BuildKit mounts a root whose output
//! is skipped read-only.

use bollard_buildkit_proto::pb;

use super::{Meta, Node, Output, State};

/// How a mount is backed.
#[derive(Debug, Clone)]
pub enum MountKind {
    /// A state, read-only or writable.
    Bind { readonly: bool, output: bool },
    /// A persistent BuildKit cache directory, seeded from the source state the first time.
    Cache { id: String, sharing: pb::CacheSharingOpt },
    /// A secret file from the client's session.
    Secret { id: String, optional: bool },
    /// An SSH agent socket from the client's session.
    Ssh { id: String, optional: bool },
}

#[derive(Debug, Clone)]
pub struct Mount {
    pub dest: String,
    pub source: State,
    pub selector: String,
    pub kind: MountKind,
}

impl Mount {
    /// A writable mount of `source` whose result is one of the exec's outputs.
    pub fn output(dest: &str, source: &State) -> Self {
        Self::bind(dest, source, false, true)
    }

    /// A read-only view of `source`.
    pub fn readonly(dest: &str, source: &State) -> Self {
        Self::bind(dest, source, true, false)
    }

    fn bind(dest: &str, source: &State, readonly: bool, output: bool) -> Self {
        Mount {
            dest: dest.to_string(),
            source: source.clone(),
            selector: String::new(),
            kind: MountKind::Bind { readonly, output },
        }
    }

    pub fn cache(dest: &str, id: &str, sharing: pb::CacheSharingOpt, seed: &State) -> Self {
        Mount {
            dest: dest.to_string(),
            source: seed.clone(),
            selector: String::new(),
            kind: MountKind::Cache { id: id.to_string(), sharing },
        }
    }

    /// A secret from the client's session as a file at `dest` (0400, root); absent when the
    /// client has none and `optional`.
    pub fn secret(dest: &str, id: &str, optional: bool) -> Self {
        Mount {
            dest: dest.to_string(),
            source: State::scratch(),
            selector: String::new(),
            kind: MountKind::Secret { id: id.to_string(), optional },
        }
    }

    /// The client's SSH agent `id` as a socket at `dest`.
    pub fn ssh(dest: &str, id: &str, optional: bool) -> Self {
        Mount {
            dest: dest.to_string(),
            source: State::scratch(),
            selector: String::new(),
            kind: MountKind::Ssh { id: id.to_string(), optional },
        }
    }

    pub fn with_selector(mut self, selector: &str) -> Self {
        self.selector = selector.to_string();
        self
    }
}

/// A process and its mounts.
#[derive(Debug, Clone)]
pub struct Exec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub mounts: Vec<Mount>,
    pub platform: Option<pb::Platform>,
    pub network: pb::NetMode,
}

/// The outputs of a built exec, found by their mount destination.
pub struct ExecOutputs {
    outputs: Vec<(String, State)>,
}

impl ExecOutputs {
    /// The state of the output mount at `dest`, if there is one.
    pub fn get(&self, dest: &str) -> Option<State> {
        self.outputs.iter().find(|(d, _)| d == dest).map(|(_, s)| s.clone())
    }
}

impl Exec {
    /// Runs `args` with `root` mounted at `/`.
    pub fn new(root: &State, args: Vec<String>) -> Self {
        Exec {
            args,
            env: Vec::new(),
            cwd: "/".to_string(),
            user: String::new(),
            mounts: vec![Mount::output("/", root)],
            platform: None,
            network: pb::NetMode::Unset,
        }
    }

    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Marshals the exec; `name` is what progress output shows.
    pub fn build(mut self, name: &str) -> ExecOutputs {
        self.mounts.sort_by(|a, b| a.dest.cmp(&b.dest));
        let mut inputs: Vec<Output> = Vec::new();
        let mut pb_mounts = Vec::new();
        let mut out_dests = Vec::new();
        for mount in &self.mounts {
            let input = match &mount.source.0 {
                None => -1,
                Some(out) => {
                    let same =
                        |o: &Output| std::sync::Arc::ptr_eq(&o.node, &out.node) && o.index == out.index;
                    match inputs.iter().position(same) {
                        Some(i) => i as i64,
                        None => {
                            inputs.push(out.clone());
                            (inputs.len() - 1) as i64
                        }
                    }
                }
            };
            let mut pm = pb::Mount {
                input,
                dest: mount.dest.clone(),
                selector: mount.selector.clone(),
                output: -1,
                ..Default::default()
            };
            match &mount.kind {
                MountKind::Bind { readonly, output } => {
                    pm.readonly = *readonly;
                    if *output && !*readonly {
                        pm.output = out_dests.len() as i64;
                        out_dests.push(mount.dest.clone());
                    }
                }
                MountKind::Cache { id, sharing } => {
                    pm.mount_type = pb::MountType::Cache as i32;
                    pm.cache_opt = Some(pb::CacheOpt { id: id.clone(), sharing: *sharing as i32 });
                }
                MountKind::Secret { id, optional } => {
                    pm.input = -1;
                    pm.mount_type = pb::MountType::Secret as i32;
                    pm.secret_opt = Some(pb::SecretOpt {
                        id: id.clone(),
                        uid: 0,
                        gid: 0,
                        mode: 0o400,
                        optional: *optional,
                    });
                }
                MountKind::Ssh { id, optional } => {
                    pm.input = -1;
                    pm.mount_type = pb::MountType::Ssh as i32;
                    pm.ssh_opt =
                        Some(pb::SshOpt { id: id.clone(), uid: 0, gid: 0, mode: 0o600, optional: *optional });
                }
            }
            pb_mounts.push(pm);
        }
        let exec = pb::ExecOp {
            meta: Some(pb::Meta {
                args: self.args,
                env: self.env,
                cwd: self.cwd,
                user: self.user,
                ..Default::default()
            }),
            mounts: pb_mounts,
            network: self.network as i32,
            ..Default::default()
        };
        let op = pb::Op { op: Some(pb::op::Op::Exec(exec)), platform: self.platform, ..Default::default() };
        let node = std::sync::Arc::new(Node { op, inputs, meta: Meta::named(name) });
        let outputs = out_dests
            .into_iter()
            .enumerate()
            .map(|(i, dest)| (dest, State(Some(Output { node: node.clone(), index: i as i64 }))))
            .collect();
        ExecOutputs { outputs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::definition::decode;
    use crate::llb::source;

    #[test]
    fn mounts_are_sorted_and_outputs_numbered_in_that_order() {
        let image = source::image("docker.io/library/busybox:latest", None);
        let outs = Exec::new(&image, vec!["true".into()])
            .mount(Mount::output("/z", &State::scratch()))
            .mount(Mount::readonly("/src", &image))
            .mount(Mount::output("/a", &State::scratch()))
            .build("run");
        let z = outs.get("/z").unwrap();
        let ops = decode(&z.to_definition());
        let (_, op) = &ops[ops.len() - 2];
        let Some(pb::op::Op::Exec(exec)) = &op.op else { panic!("not an exec") };
        let dests: Vec<_> = exec.mounts.iter().map(|m| m.dest.as_str()).collect();
        assert_eq!(dests, ["/", "/a", "/src", "/z"]);
        let outputs: Vec<_> = exec.mounts.iter().map(|m| m.output).collect();
        assert_eq!(outputs, [0, 1, -1, 2]);
        // The image is one input, shared by / and /src; scratch mounts have none.
        assert_eq!(op.inputs.len(), 1);
        let inputs: Vec<_> = exec.mounts.iter().map(|m| m.input).collect();
        assert_eq!(inputs, [0, -1, 0, -1]);
        // The terminal op points at output 2 (/z).
        assert_eq!(ops.last().unwrap().1.inputs[0].index, 2);
    }
}
