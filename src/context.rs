//! What the client sends: the user's file and the build context.
//!
//! The file comes from the `dockerfile` local (only it, and its `<file>.dockerignore`, are
//! transferred), or from the checkout when the context is a git URL. The context is the
//! `context` local with `.dockerignore` applied (BuildKit's clients leave that to the
//! frontend), or the git checkout; nothing of it is transferred unless the flake uses it.

use anyhow::{Context, Result, anyhow};
use bollard_buildkit_proto::pb;

use crate::dockerignore;
use crate::gateway::{Gateway, RefId};
use crate::limits::MAX_FILE_BYTES;
use crate::llb::definition::SourceFile;
use crate::llb::{State, source};
use crate::options::Options;

/// The user's file and what to exclude from the context, when the file says so.
pub struct UserFile {
    /// Its name and bytes, as errors and warnings show it.
    pub source: SourceFile,
    /// `<file>.dockerignore` next to the file, which wins over the context's `.dockerignore`.
    file_ignore: Option<Vec<u8>>,
    /// The git checkout the file came from, when the context is remote.
    remote: Option<State>,
    /// The digest of the vertex that loaded the file, for warnings about it.
    pub vertex: String,
}

impl UserFile {
    /// The file as errors carry it: whole, or only its first line when it is over
    /// [`MAX_FILE_BYTES`] (an error carrying many MiB breaks the client's connection).
    pub fn source_for_errors(&self) -> SourceFile {
        if self.source.data.len() <= MAX_FILE_BYTES {
            return self.source.clone();
        }
        let first_line = self.source.data.split(|&b| b == b'\n').next().unwrap_or_default();
        let head = first_line[..first_line.len().min(4096)].to_vec();
        SourceFile { filename: self.source.filename.clone(), data: head }
    }
}

/// The digest of the op a definition produces (its last op before the terminal one).
fn vertex_of(def: &pb::Definition) -> String {
    def.def.iter().rev().nth(1).map(|op| crate::llb::definition::digest_of(op)).unwrap_or_default()
}

/// Reads the user's file: at most [`MAX_FILE_BYTES`] and one byte more, so that parsing can
/// tell an oversized file.
pub async fn read_user_file(gw: &mut Gateway, options: &Options) -> Result<UserFile> {
    let filename = &options.filename;
    let session_id = &options.session_id;
    let source_file = |data: Vec<u8>| SourceFile { filename: filename.clone(), data };
    if let Some(repo) = &options.remote_context {
        let checkout = source::git(repo, &format!("load remote context {}", repo.remote));
        let def = checkout.to_definition();
        let vertex = vertex_of(&def);
        let r = gw.solve(def).await.with_context(|| format!("fetching {}", repo.remote))?;
        let text = gw.read_file_head(&r, filename, MAX_FILE_BYTES + 1).await.map_err(|e| {
            anyhow!("cannot read {filename} from {}: {e:#}; pass the file with -f", repo.remote)
        })?;
        return Ok(UserFile { source: source_file(text), file_ignore: None, remote: Some(checkout), vertex });
    }
    let file_ignore_name = format!("{filename}.dockerignore");
    let local = source::local(
        &source::Local {
            name: options.dockerfile_local.clone(),
            session_id: session_id.to_string(),
            follow_paths: vec![filename.clone(), file_ignore_name.clone()],
            shared_key_hint: options.dockerfile_local.clone(),
            ..Default::default()
        },
        &format!("load build definition from {filename}"),
    );
    let def = local.to_definition();
    let vertex = vertex_of(&def);
    let r = gw.solve(def).await.context("loading the build definition")?;
    let text = gw
        .read_file_head(&r, filename, MAX_FILE_BYTES + 1)
        .await
        .map_err(|e| anyhow!("cannot read {filename}: {e:#}; pass the file with -f"))?;
    let file_ignore = read_optional(gw, &r, &file_ignore_name).await;
    Ok(UserFile { source: source_file(text), file_ignore, remote: None, vertex })
}

/// The build context: the git checkout, or the local directory with `.dockerignore`
/// applied. `used` says whether the build needs it at all (a `github:` flake does not).
pub async fn build_context(
    gw: &mut Gateway,
    options: &Options,
    file: &UserFile,
    used: bool,
) -> Result<State> {
    let session_id = &options.session_id;
    if let Some(checkout) = &file.remote {
        return Ok(checkout.clone());
    }
    let local = |exclude_patterns: Vec<String>, follow_paths: Vec<String>, hint: &str, name: &str| {
        source::local(
            &source::Local {
                name: options.context_local.clone(),
                session_id: session_id.to_string(),
                follow_paths,
                exclude_patterns,
                shared_key_hint: hint.to_string(),
            },
            name,
        )
    };
    let ignore = match (&file.file_ignore, used) {
        (Some(text), _) => Some(text.clone()),
        (None, true) => {
            let only_ignore = local(
                Vec::new(),
                vec![".dockerignore".into()],
                "context-dockerignore",
                "load the context's .dockerignore",
            );
            let r = gw.solve(only_ignore.to_definition()).await.context("loading .dockerignore")?;
            read_optional(gw, &r, ".dockerignore").await
        }
        (None, false) => None,
    };
    let excludes =
        ignore.map(|text| dockerignore::patterns(&String::from_utf8_lossy(&text))).unwrap_or_default();
    Ok(local(excludes, Vec::new(), &options.context_local, "load build context"))
}

/// The flake's `flake.nix` and `flake.lock` in directory `dir` of the build context, each
/// `None` when absent: only those two files are transferred (or read from the git checkout).
pub async fn flake_files(
    gw: &mut Gateway,
    options: &Options,
    file: &UserFile,
    dir: &str,
) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    let path = |name: &str| if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
    let (flake_nix, flake_lock) = (path("flake.nix"), path("flake.lock"));
    let state = match &file.remote {
        Some(checkout) => checkout.clone(),
        None => source::local(
            &source::Local {
                name: options.context_local.clone(),
                session_id: options.session_id.clone(),
                follow_paths: vec![flake_nix.clone(), flake_lock.clone()],
                shared_key_hint: "context-flake".to_string(),
                ..Default::default()
            },
            "[internal] load the flake's flake.nix and flake.lock",
        ),
    };
    let r = gw.solve(state.to_definition()).await.context("loading flake.lock")?;
    Ok((read_optional(gw, &r, &flake_nix).await, read_optional(gw, &r, &flake_lock).await))
}

/// A file of a result, or `None` when it cannot be read (it does not exist).
async fn read_optional(gw: &mut Gateway, r: &RefId, path: &str) -> Option<Vec<u8>> {
    gw.read_file(r, path, MAX_FILE_BYTES, "MAX_FILE_BYTES").await.ok()
}
