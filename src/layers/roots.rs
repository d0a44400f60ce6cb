//! The image root beside `/nix/store`: the root packages' top-level directories linked into
//! `/` and merged across packages as nixpkgs' `buildEnv` merges them, the well-known files
//! programs look for (a CA bundle, time zones, `/etc/services`), and the directories and files
//! nixfront itself writes there (WORKDIR, a home, `/etc/passwd`, where COPY writes).
//!
//! A directory only one package has is one symlink into the store; one that several have, or
//! that nixfront writes into, is a real directory whose entries are links (a link to a
//! directory "unfolds" when a second package brings the same directory). Two packages with a
//! file at the same path are a conflict, an error naming both. A package's top-level
//! directories (`/bin`, `/etc`, `/share`) are always real directories, and a base image's
//! top-level symlinks (`/bin -> usr/bin`) are followed rather than replaced. The packages'
//! trees come from the package step's listing ([`parse_listing`]), [`LISTING_DEPTH`] deep.

use std::collections::BTreeMap;

pub use crate::plan::output::LISTING_DEPTH;

/// Top-level entries of a package that are Nix's, not the image's (and `/nix` is the store's).
const NOT_LINKED: &[&str] = &["nix-support", "nix"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A file or a symlink.
    Leaf,
}

/// A root package (an output the image is about: the program's, FLAKE's other packages) and
/// its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    pub path: String,
    /// Relative paths (`bin/app`), to [`LISTING_DEPTH`].
    pub entries: BTreeMap<String, Kind>,
}

/// The package step's listing: `INDEX d|f ./REL` lines, `INDEX` counting `roots` from 0.
pub fn parse_listing(text: &str, roots: &[String]) -> Vec<Root> {
    let mut out: Vec<Root> =
        roots.iter().map(|p| Root { path: p.clone(), entries: BTreeMap::new() }).collect();
    for line in text.lines() {
        let mut fields = line.splitn(3, ' ');
        let (Some(index), Some(kind), Some(rel)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let Some(root) = index.parse::<usize>().ok().and_then(|i| out.get_mut(i)) else { continue };
        let Some(rel) = rel.strip_prefix("./").filter(|r| !r.is_empty()) else { continue };
        let kind = if kind == "d" { Kind::Dir } else { Kind::Leaf };
        root.entries.insert(rel.to_string(), kind);
    }
    out
}

/// Who owns a directory nixfront makes, and its mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

pub const ROOT_DIR: Owner = Owner { uid: 0, gid: 0, mode: 0o755 };

/// One entry of the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(Owner),
    /// A symlink to this (absolute) target.
    Link(String),
    /// A file nixfront writes, with its text.
    File {
        owner: Owner,
        text: String,
    },
}

/// What the image root must hold besides the packages' links.
#[derive(Debug, Clone, Default)]
pub struct Wants {
    /// Link the packages' top-level directories (`NIX_ROOT_LINKS`).
    pub links: bool,
    /// Directories nixfront makes (WORKDIR, a home), with what asks for them.
    pub dirs: Vec<(String, Owner, String)>,
    /// Files nixfront writes (`/etc/passwd`), with what asks for them.
    pub files: Vec<(String, String, String)>,
    /// Paths something else writes (COPY's destinations), with what: their parents must be
    /// real directories, and no package may have a file there.
    pub written: Vec<(String, String)>,
    /// The base image's top-level symlinks: name to absolute target (`bin` to `/usr/bin`).
    pub base_links: BTreeMap<String, String>,
}

/// The image root, and what the packages found there set in the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootPlan {
    /// By absolute path; parents sort before their entries.
    pub entries: BTreeMap<String, Entry>,
    /// `SSL_CERT_FILE`, `TZDIR`.
    pub env: Vec<(String, String)>,
    /// A CA bundle is at /etc/ssl/certs.
    pub ca_bundle: bool,
}

pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-bundle.crt";
pub const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The well-known files: where in a package (nixpkgs' layout) and where in the image.
const WELL_KNOWN: &[(&str, Kind, &str)] = &[
    ("etc/ssl/certs/ca-bundle.crt", Kind::Leaf, CA_BUNDLE),
    ("etc/ssl/certs/ca-bundle.crt", Kind::Leaf, CA_CERTIFICATES),
    ("share/zoneinfo", Kind::Dir, ZONEINFO),
    ("etc/services", Kind::Leaf, "/etc/services"),
    ("etc/protocols", Kind::Leaf, "/etc/protocols"),
];

#[derive(Debug, Clone)]
enum Node {
    Dir,
    Link { root: usize, rel: String, kind: Kind },
}

struct Merge<'a> {
    roots: &'a [Root],
    wants: &'a Wants,
    nodes: BTreeMap<String, Node>,
}

fn parent(path: &str) -> Option<&str> {
    path.rfind('/').map(|i| if i == 0 { "/" } else { &path[..i] }).filter(|_| path != "/")
}

fn depth(rel: &str) -> usize {
    rel.split('/').count()
}

/// `path` as the image has it: through a base image's top-level symlink (`base_links`).
pub fn place(base_links: &BTreeMap<String, String>, path: &str) -> String {
    let rest = path.trim_start_matches('/');
    let (first, tail) = rest.split_once('/').map_or((rest, ""), |(f, t)| (f, t));
    match base_links.get(first) {
        Some(target) if tail.is_empty() => target.clone(),
        Some(target) => format!("{}/{tail}", target.trim_end_matches('/')),
        None => path.to_string(),
    }
}

impl Merge<'_> {
    fn place(&self, path: &str) -> String {
        place(&self.wants.base_links, path)
    }

    /// Something nixfront or COPY writes at or below `path`: it must be a real directory.
    fn forced(&self, path: &str) -> bool {
        let below = |p: &str| p == path || p.starts_with(&format!("{path}/"));
        self.wants.dirs.iter().any(|(d, _, _)| below(&self.place(d)))
            || self.wants.files.iter().any(|(f, _, _)| self.place(f).starts_with(&format!("{path}/")))
            || self.wants.written.iter().any(|(w, _)| self.place(w).starts_with(&format!("{path}/")))
            || WELL_KNOWN.iter().any(|(_, _, image)| image.starts_with(&format!("{path}/")))
    }

    fn target(&self, root: usize, rel: &str) -> String {
        format!("{}/{rel}", self.roots[root].path)
    }

    fn children(&self, root: usize, rel: &str) -> Result<Vec<String>, String> {
        if depth(rel) >= LISTING_DEPTH {
            return Err(format!(
                "{} is a directory deeper than nixfront merges ({LISTING_DEPTH} levels) that another \
                 package has too",
                self.target(root, rel)
            ));
        }
        let prefix = format!("{rel}/");
        Ok(self.roots[root]
            .entries
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn conflict(&self, path: &str, one: &str, other: &str) -> String {
        format!(
            "{path} would be both {one} and {other}; leave one package out of FLAKE, or set \
             --build-arg NIX_ROOT_LINKS=false to link nothing but the well-known files"
        )
    }

    fn describe(&self, node: &Node) -> String {
        match node {
            Node::Dir => "a directory".to_string(),
            Node::Link { root, rel, .. } => self.target(*root, rel),
        }
    }

    /// Links `rel` of package `root` at `path`, merging with what is there.
    fn add(&mut self, path: &str, root: usize, rel: &str) -> Result<(), String> {
        let kind = self.roots[root].entries[rel];
        let path = self.place(path);
        let real_dir = kind == Kind::Dir && (depth(rel) <= 1 || self.forced(&path));
        match self.nodes.get(&path).cloned() {
            None if real_dir => {
                self.nodes.insert(path.clone(), Node::Dir);
                self.add_children(&path, root, rel)
            }
            None => {
                self.nodes.insert(path, Node::Link { root, rel: rel.to_string(), kind });
                Ok(())
            }
            Some(Node::Dir) if kind == Kind::Dir => self.add_children(&path, root, rel),
            Some(Node::Link { root: other, rel: other_rel, kind: Kind::Dir }) if kind == Kind::Dir => {
                self.nodes.insert(path.clone(), Node::Dir);
                self.add_children(&path, other, &other_rel)?;
                self.add_children(&path, root, rel)
            }
            Some(node) => Err(self.conflict(&path, &self.describe(&node), &self.target(root, rel))),
        }
    }

    fn add_children(&mut self, path: &str, root: usize, rel: &str) -> Result<(), String> {
        for child in self.children(root, rel)? {
            let name = &child[rel.len() + 1..];
            self.add(&format!("{}/{name}", path.trim_end_matches('/')), root, &child)?;
        }
        Ok(())
    }

    /// Makes `path` and its parents real directories, unfolding links to directories.
    fn ensure_dir(&mut self, path: &str, why: &str) -> Result<(), String> {
        let path = self.place(path);
        if path == "/" {
            return Ok(());
        }
        if let Some(up) = parent(&path) {
            self.ensure_dir(up, why)?;
        }
        match self.nodes.get(&path).cloned() {
            None => {
                self.nodes.insert(path, Node::Dir);
                Ok(())
            }
            Some(Node::Dir) => Ok(()),
            Some(Node::Link { root, rel, kind: Kind::Dir }) => {
                self.nodes.insert(path.clone(), Node::Dir);
                self.add_children(&path, root, &rel)
            }
            Some(node) => Err(self.conflict(&path, &self.describe(&node), why)),
        }
    }
}

/// The image root for `roots` (the program's outputs first) and `wants`. The error says what
/// conflicts with what.
pub fn plan(roots: &[Root], wants: &Wants) -> Result<RootPlan, String> {
    let mut merge = Merge { roots, wants, nodes: BTreeMap::new() };
    if wants.links {
        for (i, root) in roots.iter().enumerate() {
            let tops: Vec<String> = root
                .entries
                .keys()
                .filter(|k| !k.contains('/') && !NOT_LINKED.contains(&k.as_str()))
                .cloned()
                .collect();
            for top in tops {
                merge.add(&format!("/{top}"), i, &top)?;
            }
        }
    }
    let mut env = Vec::new();
    let mut ca_bundle = false;
    for (rel, kind, image) in WELL_KNOWN {
        let Some(i) = roots.iter().position(|r| r.entries.get(*rel) == Some(kind)) else { continue };
        if let Some(up) = parent(image) {
            merge.ensure_dir(up, &format!("the directory of {image}"))?;
        }
        let placed = merge.place(image);
        merge.nodes.entry(placed).or_insert_with(|| Node::Link {
            root: i,
            rel: rel.to_string(),
            kind: *kind,
        });
        match *image {
            CA_BUNDLE => {
                ca_bundle = true;
                env.push(("SSL_CERT_FILE".to_string(), CA_BUNDLE.to_string()));
            }
            ZONEINFO => env.push(("TZDIR".to_string(), ZONEINFO.to_string())),
            _ => {}
        }
    }
    for (dir, _, why) in &wants.dirs {
        merge.ensure_dir(dir, why)?;
    }
    for (path, _, why) in &wants.files {
        if let Some(up) = parent(path) {
            merge.ensure_dir(up, why)?;
        }
        if let Some(node) = merge.nodes.get(&merge.place(path)) {
            return Err(merge.conflict(&merge.place(path), &merge.describe(node), why));
        }
    }
    for (path, why) in &wants.written {
        // A directory (`dest/`, or a directory copied over one) merges; a package's file is
        // never written over, nor a package's directory written through its link.
        let trimmed = path.trim_end_matches('/');
        match merge.nodes.get(&merge.place(trimmed)) {
            _ if path.ends_with('/') => merge.ensure_dir(trimmed, why)?,
            Some(Node::Link { kind: Kind::Dir, .. }) => merge.ensure_dir(trimmed, why)?,
            Some(node @ Node::Link { .. }) => {
                return Err(merge.conflict(&merge.place(trimmed), &merge.describe(node), why));
            }
            _ => {
                if let Some(up) = parent(trimmed) {
                    merge.ensure_dir(up, why)?;
                }
            }
        }
    }
    let mut entries: BTreeMap<String, Entry> = merge
        .nodes
        .iter()
        .map(|(path, node)| {
            let entry = match node {
                Node::Dir => Entry::Dir(ROOT_DIR),
                Node::Link { root, rel, .. } => Entry::Link(merge.target(*root, rel)),
            };
            (path.clone(), entry)
        })
        .collect();
    for (dir, owner, _) in &wants.dirs {
        entries.insert(merge.place(dir), Entry::Dir(*owner));
    }
    for (path, text, _) in &wants.files {
        entries.insert(
            merge.place(path),
            Entry::File { owner: Owner { mode: 0o644, ..ROOT_DIR }, text: text.clone() },
        );
    }
    Ok(RootPlan { entries, env, ca_bundle })
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "/nix/store/bgjhyafybaakj6cd3h9a14m1c8dj05cp-app-1.0";
    const CACERT: &str = "/nix/store/5cm7mjwzb4sn2g0p820008k22m69xsrv-cacert-3.95";
    const TZDATA: &str = "/nix/store/8digwrcy1qxcqaiqg16dsf0z16ns0s8n-tzdata-2024a";
    const TOOLS: &str = "/nix/store/0s3q0y4j7vbp8nq6w1c3h0rl3r5y8d1a-tools";

    fn root(path: &str, dirs: &[&str], leaves: &[&str]) -> Root {
        let mut entries = BTreeMap::new();
        entries.extend(dirs.iter().map(|d| (d.to_string(), Kind::Dir)));
        entries.extend(leaves.iter().map(|l| (l.to_string(), Kind::Leaf)));
        Root { path: path.to_string(), entries }
    }

    fn service() -> Vec<Root> {
        vec![
            root(
                APP,
                &["bin", "share", "share/app", "nix-support"],
                &["bin/app", "share/app/x", "nix-support/y"],
            ),
            root(CACERT, &["etc", "etc/ssl", "etc/ssl/certs"], &["etc/ssl/certs/ca-bundle.crt"]),
            root(
                TZDATA,
                &["share", "share/zoneinfo", "share/zoneinfo/Europe"],
                &["share/zoneinfo/Europe/Paris"],
            ),
        ]
    }

    fn links(plan: &RootPlan) -> Vec<(String, String)> {
        plan.entries
            .iter()
            .filter_map(|(p, e)| match e {
                Entry::Link(t) => Some((p.clone(), t.clone())),
                _ => None,
            })
            .collect()
    }

    fn pair(p: &str, t: String) -> (String, String) {
        (p.to_string(), t)
    }

    #[test]
    fn packages_merge_as_build_env_merges_them_and_the_well_known_files_are_found() {
        let wants = Wants { links: true, ..Default::default() };
        let plan = plan(&service(), &wants).unwrap();
        assert_eq!(
            links(&plan),
            [
                pair("/bin/app", format!("{APP}/bin/app")),
                pair("/etc/ssl/certs/ca-bundle.crt", format!("{CACERT}/etc/ssl/certs/ca-bundle.crt")),
                pair("/etc/ssl/certs/ca-certificates.crt", format!("{CACERT}/etc/ssl/certs/ca-bundle.crt")),
                pair("/share/app", format!("{APP}/share/app")),
                pair("/share/zoneinfo", format!("{TZDATA}/share/zoneinfo")),
                pair("/usr/share/zoneinfo", format!("{TZDATA}/share/zoneinfo")),
            ]
        );
        assert_eq!(plan.entries["/share"], Entry::Dir(ROOT_DIR), "both app and tzdata have share/");
        assert!(!plan.entries.contains_key("/nix-support"));
        assert!(plan.ca_bundle);
        assert_eq!(plan.env, [("SSL_CERT_FILE".into(), CA_BUNDLE.into()), ("TZDIR".into(), ZONEINFO.into())]);
    }

    #[test]
    fn without_root_links_only_the_well_known_files_are_linked() {
        let plan = plan(&service(), &Wants::default()).unwrap();
        let paths: Vec<String> = links(&plan).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, [CA_BUNDLE, CA_CERTIFICATES, ZONEINFO]);
        assert_eq!(plan.entries["/usr/share"], Entry::Dir(ROOT_DIR));
    }

    #[test]
    fn a_directory_a_second_package_brings_unfolds_and_two_files_conflict() {
        let roots = [
            root(APP, &["lib", "lib/app", "lib/app/plugins"], &["lib/app/plugins/a.so"]),
            root(TOOLS, &["lib", "lib/app", "lib/app/plugins"], &["lib/app/plugins/b.so"]),
        ];
        let plan = plan(&roots, &Wants { links: true, ..Default::default() }).unwrap();
        assert_eq!(
            links(&plan),
            [
                pair("/lib/app/plugins/a.so", format!("{APP}/lib/app/plugins/a.so")),
                pair("/lib/app/plugins/b.so", format!("{TOOLS}/lib/app/plugins/b.so")),
            ]
        );
        let clash = [root(APP, &["bin"], &["bin/x"]), root(TOOLS, &["bin"], &["bin/x"])];
        let e = super::plan(&clash, &Wants { links: true, ..Default::default() }).unwrap_err();
        assert!(e.contains(&format!("{APP}/bin/x")) && e.contains(&format!("{TOOLS}/bin/x")), "{e}");
        assert!(e.contains("NIX_ROOT_LINKS=false"), "{e}");
    }

    #[test]
    fn directories_too_deep_to_merge_are_an_error_not_a_guess() {
        let deep = ["a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e"];
        let roots = [root(APP, &deep, &[]), root(TOOLS, &deep, &[])];
        let e = plan(&roots, &Wants { links: true, ..Default::default() }).unwrap_err();
        assert!(e.contains("deeper than nixfront merges"), "{e}");
    }

    #[test]
    fn what_nixfront_and_copy_write_is_real_directories_and_never_a_packages_file() {
        let app = Owner { uid: 1000, gid: 1000, mode: 0o755 };
        let roots = [root(APP, &["etc", "etc/app"], &["etc/app/default.toml", "bin"])];
        let wants = Wants {
            links: true,
            dirs: vec![("/data".into(), app, "WORKDIR".into())],
            files: vec![("/etc/passwd".into(), "root:x:0:0::/:/bin/sh\n".into(), "USER".into())],
            written: vec![("/etc/app/config.toml".into(), "COPY".into())],
            ..Default::default()
        };
        let plan = plan(&roots, &wants).unwrap();
        assert_eq!(plan.entries["/etc/app"], Entry::Dir(ROOT_DIR), "COPY writes into it: unfolded");
        assert_eq!(plan.entries["/etc/app/default.toml"], Entry::Link(format!("{APP}/etc/app/default.toml")));
        assert_eq!(plan.entries["/data"], Entry::Dir(app));
        assert!(matches!(&plan.entries["/etc/passwd"], Entry::File { text, .. } if text.starts_with("root")));
        let over = Wants {
            links: true,
            written: vec![("/etc/app/default.toml".into(), "COPY on line 4".into())],
            ..Default::default()
        };
        let e = super::plan(&roots, &over).unwrap_err();
        assert!(e.contains("COPY on line 4") && e.contains("default.toml"), "{e}");
        let under =
            Wants { links: true, written: vec![("/bin/x".into(), "COPY".into())], ..Default::default() };
        assert!(super::plan(&roots, &under).is_err(), "a package's file is no directory");
    }

    #[test]
    fn a_base_images_top_level_symlinks_are_followed() {
        let roots = [root(APP, &["bin"], &["bin/app"])];
        let wants = Wants {
            links: true,
            base_links: BTreeMap::from([("bin".to_string(), "/usr/bin".to_string())]),
            ..Default::default()
        };
        let plan = plan(&roots, &wants).unwrap();
        assert_eq!(links(&plan), [pair("/usr/bin/app", format!("{APP}/bin/app"))]);
        assert!(!plan.entries.contains_key("/bin"), "the base's /bin stays its symlink");
    }

    #[test]
    fn the_listing_reads_back() {
        let text = "0 d ./bin\n0 f ./bin/app\n1 d ./etc\nbogus\n7 d ./x\n1 f ./etc/a b\n";
        let roots = parse_listing(text, &[APP.to_string(), CACERT.to_string()]);
        assert_eq!(roots[0].entries.len(), 2);
        assert_eq!(roots[1].entries.get("etc/a b"), Some(&Kind::Leaf));
    }
}
