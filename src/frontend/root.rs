//! What the image holds beside the closure, and how it gets there: the users (USER, with a
//! base image's own), what the image root must hold (WORKDIR and a home owned by the user,
//! `/etc/passwd`, where COPY writes), the spec of the image-root step that makes it, and the
//! COPY layers. Every bad input is an error at its line.

use anyhow::Result;

use super::base::Base;
use crate::layers::roots::{self, Entry, Owner, ROOT_DIR, RootPlan, Wants};
use crate::llb::State;
use crate::llb::file::FileOp;
use crate::nixfile::{CopyInstr, FileError, Lines, Nixfile, Warning, lint};
use crate::options::NixArgs;
use crate::plan::output::FIXED_TIME_NS;
use crate::plan::spec::RootEntry;
use crate::users::Users;

/// A COPY, its owner resolved.
pub struct Copy {
    pub instr: CopyInstr,
    pub owner: Option<(u32, u32)>,
}

/// The users, what the image root must hold and the COPYs, for one platform.
pub struct ImageSetup {
    pub users: Users,
    pub wants: Wants,
    pub copies: Vec<Copy>,
    /// The image has a base image (FROM), which may bring what the packages do not.
    pub on_base: bool,
}

/// Reads USER, WORKDIR and COPY against the base image's users; errors point at their lines.
pub fn setup(nixfile: &Nixfile, filename: &str, nix: &NixArgs, base: Option<&Base>) -> Result<ImageSetup> {
    let at =
        |lines: Lines, keyword: &str, message: String| FileError::at(filename, lines, Some(keyword), message);
    let files = base.map(|b| b.files.clone()).unwrap_or_default();
    let user = nixfile.user.as_ref();
    let users = Users::plan(user.map(|u| u.value.as_str()), nix.user_ids, &files)
        .map_err(|e| at(user.map_or(Lines::one(1), |u| u.lines), "USER", e))?;
    let mut copies = Vec::new();
    for copy in &nixfile.copies {
        let owner = match &copy.chown {
            Some(spec) => {
                Some(users.owner(spec).map_err(|e| at(copy.lines, "COPY", format!("--chown={spec}: {e}")))?)
            }
            None => None,
        };
        copies.push(Copy { instr: copy.clone(), owner });
    }
    let owned = |mode| users.run_as.map_or(ROOT_DIR, |(uid, gid)| Owner { uid, gid, mode });
    let mut wants = Wants { links: nix.root_links, ..Default::default() };
    if let Some(dir) = nixfile.workdir.as_deref().filter(|d| *d != "/") {
        wants.dirs.push((dir.to_string(), owned(0o755), "the WORKDIR".to_string()));
    }
    if let Some(home) = &users.home {
        wants.dirs.push((home.clone(), owned(0o755), "the USER's home".to_string()));
    }
    for file in &users.files {
        wants.files.push((file.path.to_string(), file.text.clone(), format!("the USER's {}", file.path)));
    }
    for copy in &copies {
        let why = format!("COPY on line {}", copy.instr.lines.start);
        wants.written.push((copy.instr.dest.clone(), why));
    }
    if let Some(base) = base {
        wants.base_links = base.links.clone();
    }
    Ok(ImageSetup { users, wants, copies, on_base: base.is_some() })
}

/// The image root for the root packages, a conflict an error at the FLAKE line.
pub fn plan(roots: &[roots::Root], wants: &Wants, filename: &str, flake_lines: Lines) -> Result<RootPlan> {
    roots::plan(roots, wants).map_err(|e| FileError::at(filename, flake_lines, Some("FLAKE"), e).into())
}

/// What the image lacks that services need: a CA bundle (unless a base image may have one).
pub fn warnings(plan: &RootPlan, setup: &ImageSetup, flake_lines: Lines) -> Vec<Warning> {
    if plan.ca_bundle || setup.on_base {
        return Vec::new();
    }
    let detail = "the image has no CA certificates, so HTTPS fails with \"certificate signed by unknown \
                  authority\"; add a package with etc/ssl/certs/ca-bundle.crt to FLAKE (nixpkgs' cacert)";
    vec![Warning::new(lint::NO_CA_CERTIFICATES, flake_lines, detail)]
}

/// The warnings as the image-root step prints them (BuildKit 0.8 shows no others).
pub fn notices(warnings: &[Warning]) -> Vec<String> {
    warnings.iter().map(|w| format!("{}: {}", w.rule.name, w.detail)).collect()
}

/// The image-root step's entries, parents first (the plan's order).
pub fn spec(plan: &RootPlan) -> Vec<RootEntry> {
    plan.entries
        .iter()
        .map(|(path, entry)| match entry {
            Entry::Dir(o) => RootEntry::Dir { path: path.clone(), mode: o.mode, uid: o.uid, gid: o.gid },
            Entry::Link(target) => RootEntry::Link { path: path.clone(), target: target.clone() },
            Entry::File { owner: o, text } => RootEntry::File {
                path: path.clone(),
                mode: o.mode,
                uid: o.uid,
                gid: o.gid,
                text: text.clone(),
            },
        })
        .collect()
}

/// What progress output and the history call the image root.
pub fn describe(plan: &RootPlan) -> String {
    let links = plan.entries.values().filter(|e| matches!(e, Entry::Link(_))).count();
    let files: Vec<&str> = plan
        .entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::File { .. }))
        .map(|(p, _)| p.as_str())
        .collect();
    let mut parts = vec![format!("{links} links")];
    parts.extend(files.iter().map(|f| f.to_string()));
    format!("the image root ({})", parts.join(", "))
}

/// The COPY layers on `below`, one each, from `context`, with nixfront's fixed times. Each is
/// made on scratch first, its destination's directories made with the owner and mode the image
/// gives them (`wants`), and then copied on as a whole tree: BuildKit then gives every
/// directory it writes into a fixed time (0.8) or keeps its time (later), so the same files give
/// the same layer.
pub fn copy_layers(
    below: State,
    copies: &[Copy],
    context: &State,
    wants: &Wants,
    location: impl Fn(Lines) -> Option<Lines>,
) -> (State, Vec<String>) {
    let owner_of = |dir: &str| {
        let owner =
            wants.dirs.iter().find(|(d, _, _)| roots::place(&wants.base_links, d) == dir).map(|(_, o, _)| *o);
        owner.unwrap_or(ROOT_DIR)
    };
    let mut names = Vec::new();
    let state = copies.iter().fold(below, |below, copy| {
        let c = &copy.instr;
        let dest = roots::place(&wants.base_links, &c.dest);
        let into =
            if c.dest.ends_with('/') { format!("{}/", dest.trim_end_matches('/')) } else { dest.clone() };
        let mut dirs: Vec<String> = Vec::new();
        let mut at =
            if into.ends_with('/') { into.trim_end_matches('/').to_string() } else { parent_of(&dest) };
        while at != "/" && !at.is_empty() {
            dirs.push(at.clone());
            at = parent_of(&at);
        }
        let staged = dirs.iter().rev().fold(FileOp::on(&State::scratch()), |op, dir| {
            let o = owner_of(dir);
            op.mkdir_owned(dir, o.mode as i32, Some((o.uid, o.gid)), FIXED_TIME_NS)
        });
        let staged = c.sources.iter().fold(staged, |op, source| {
            op.copy_as_dockerfile(context, &format!("/{source}"), &into, copy.owner, c.chmod, FIXED_TIME_NS)
        });
        let name = format!("COPY {} {}", c.sources.join(" "), c.dest);
        let staged = staged.at(location(c.lines)).build(&format!("[internal] {name}"));
        names.push(name.clone());
        FileOp::on(&below).copy_contents(&staged, "/", "/", FIXED_TIME_NS).at(location(c.lines)).build(&name)
    });
    (state, names)
}

fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn nixfile(text: &str) -> Nixfile {
        crate::nixfile::parse("Dockerfile", text.as_bytes(), &BTreeMap::new()).result.unwrap()
    }

    fn nix() -> NixArgs {
        NixArgs::from_build_args(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn a_named_user_owns_its_home_and_the_workdir_and_copy_resolves_names() {
        let nf = nixfile("USER app\nWORKDIR /data\nCOPY --chown=app:nobody a.toml /etc/app/\nCOPY b /b\n");
        let s = setup(&nf, "Dockerfile", &nix(), None).unwrap();
        let app = Owner { uid: 1000, gid: 1000, mode: 0o755 };
        assert_eq!(
            s.wants.dirs,
            [
                ("/data".into(), app, "the WORKDIR".into()),
                ("/home/app".into(), app, "the USER's home".into())
            ]
        );
        assert_eq!(s.copies[0].owner, Some((1000, 65534)));
        assert_eq!(s.copies[1].owner, None);
        assert_eq!(s.wants.written[0], ("/etc/app/".into(), "COPY on line 3".into()));
        let plan = roots::plan(&[], &s.wants).unwrap();
        let entries = spec(&plan);
        assert!(entries.contains(&RootEntry::Dir {
            path: "/data".into(),
            mode: 0o755,
            uid: 1000,
            gid: 1000
        }));
        let passwd = entries.iter().find_map(|e| match e {
            RootEntry::File { path, mode: 0o644, uid: 0, text, .. } if path == "/etc/passwd" => Some(text),
            _ => None,
        });
        assert!(passwd.is_some_and(|text| text.contains("app:x:1000:1000:")), "{entries:?}");
        assert_eq!(describe(&plan), "the image root (0 links, /etc/group, /etc/passwd)");
    }

    #[test]
    fn names_the_image_lacks_are_errors_at_their_lines() {
        let nf = nixfile("FLAKE .\nCOPY --chown=www a /a\n");
        let e = setup(&nf, "Dockerfile", &nix(), None).err().unwrap().to_string();
        assert!(e.starts_with("Dockerfile:2: COPY: --chown=www: the image has no user www"), "{e}");
    }

    #[test]
    fn copies_are_layers_of_their_own_with_fixed_times() {
        let nf = nixfile("COPY --chmod=600 a b /etc/\n");
        let s = setup(&nf, "Dockerfile", &nix(), None).unwrap();
        let context = crate::llb::source::image("docker.io/library/busybox:latest", None);
        let (state, names) = copy_layers(State::scratch(), &s.copies, &context, &s.wants, |_| None);
        assert_eq!(names, ["COPY a b /etc/"]);
        let ops = crate::llb::definition::decode(&state.to_definition());
        let copies: Vec<(String, String, i32, i64)> = ops
            .iter()
            .filter_map(|(_, op)| match &op.op {
                Some(bollard_buildkit_proto::pb::op::Op::File(f)) => Some(f.actions.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|a| match a.action {
                Some(bollard_buildkit_proto::pb::file_action::Action::Copy(c)) => {
                    Some((c.src, c.dest, c.mode, c.timestamp))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            copies,
            [
                ("/a".into(), "/etc/".into(), 0o600, FIXED_TIME_NS),
                ("/b".into(), "/etc/".into(), 0o600, FIXED_TIME_NS),
                ("/".into(), "/".into(), -1, FIXED_TIME_NS),
            ],
            "staged, then copied on whole"
        );
    }
}
