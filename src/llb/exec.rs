//! ExecOp: a process run in a container made of mounts.
//!
//! Mounts are sorted by destination (as BuildKit's own client does, so nested mounts land in
//! order) and every writable bind mount that asks for it becomes an output, numbered in that
//! order. The root mount is always an output (index 0): BuildKit mounts a root whose output
//! is skipped read-only. An output is asked for with [`Exec::output`], which returns a handle
//! that [`Built::state`] turns into its state: an output cannot be missing.

use bollard_buildkit_proto::pb;

use super::{Lines, Meta, Node, Output, State};

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
    fn output(dest: &str, source: &State) -> Self {
        Self::bind(dest, source, false, true)
    }

    /// A writable mount of `source` whose result is an output nothing asks for: BuildKit keys
    /// the exec by `source`'s cache key, never by hashing its content.
    pub fn writable(dest: &str, source: &State) -> Self {
        Self::output(dest, source)
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

    /// A writable empty directory whose changes are discarded (BuildKit's
    /// `exec.mount.bind.readwrite-nooutput`).
    pub fn scratch(dest: &str) -> Self {
        Self::bind(dest, &State::scratch(), false, false)
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
    pub mounts: Vec<Mount>,
    pub platform: Option<pb::Platform>,
    /// The lines of the user's file this step comes from.
    pub location: Option<Lines>,
    /// BuildKit's insecure mode (all capabilities): needs the `security.insecure` entitlement.
    pub insecure: bool,
    /// NO_PROXY for the process: BuildKit sets it from the op's proxy settings, which it keeps
    /// out of the cache key, so it may differ from build to build without a cache miss.
    pub no_proxy: Option<String>,
    /// Whether `--no-cache` leaves it be (one keyed by something new in every build).
    pub cache: super::CachePolicy,
}

/// An output of an exec, asked for before it is built: the mount at `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputHandle(String);

/// A built exec: the state of each output it was asked for.
pub struct Built {
    outputs: Vec<(String, State)>,
}

impl Built {
    /// The state of an output of this exec. Handles come from [`Exec::output`] of the exec
    /// that was built, so the output exists.
    pub fn state(&self, handle: &OutputHandle) -> State {
        match self.outputs.iter().find(|(dest, _)| *dest == handle.0) {
            Some((_, state)) => state.clone(),
            None => unreachable!("output handle {} of another exec", handle.0),
        }
    }
}

impl Exec {
    /// Runs `args` with `root` mounted at `/`.
    pub fn new(root: &State, args: Vec<String>) -> Self {
        Exec {
            args,
            env: Vec::new(),
            cwd: "/".to_string(),
            mounts: vec![Mount::output("/", root)],
            platform: None,
            location: None,
            insecure: false,
            no_proxy: None,
            cache: super::CachePolicy::default(),
        }
    }

    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// A writable mount of `source` at `dest` whose result is an output, and its handle.
    pub fn output(&mut self, dest: &str, source: &State) -> OutputHandle {
        self.mounts.push(Mount::output(dest, source));
        OutputHandle(dest.to_string())
    }

    /// Marshals the exec; `name` is what progress output shows.
    pub fn build(mut self, name: &str) -> Built {
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
                proxy_env: self.no_proxy.map(|no_proxy| pb::ProxyEnv { no_proxy, ..Default::default() }),
                ..Default::default()
            }),
            mounts: pb_mounts,
            security: if self.insecure {
                pb::SecurityMode::Insecure as i32
            } else {
                pb::SecurityMode::Sandbox as i32
            },
            ..Default::default()
        };
        let op = pb::Op { op: Some(pb::op::Op::Exec(exec)), platform: self.platform, ..Default::default() };
        let meta = Meta { name: Some(name.to_string()), location: self.location, cache: self.cache };
        let node = std::sync::Arc::new(Node { op, inputs, meta });
        let outputs = out_dests
            .into_iter()
            .enumerate()
            .map(|(i, dest)| (dest, State(Some(Output { node: node.clone(), index: i as i64 }))))
            .collect();
        Built { outputs }
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
        let mut exec = Exec::new(&image, vec!["true".into()]);
        let z = exec.output("/z", &State::scratch());
        exec = exec.mount(Mount::readonly("/src", &image));
        let a = exec.output("/a", &State::scratch());
        let built = exec.build("run");
        assert_eq!(built.state(&a).0.unwrap().index, 1);
        let z = built.state(&z);
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
