//! The typed Nixfile the instructions read into, and its parts.

use crate::nixfile::Lines;

/// A value with the lines it was written on, so later checks can point at them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub lines: Lines,
}

/// A port as EXPOSE gives it: number and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub number: u16,
    pub protocol: &'static str,
}

/// An `ARG NAME[=default]` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// The default as written in the file, expanded.
    pub default: Option<String>,
    /// The value the build uses: the `--build-arg`, else the default.
    pub value: Option<String>,
    pub lines: Lines,
}

/// A `COPY [--chown=user[:group]] [--chmod=mode] source... dest` from the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstr {
    /// Paths in the context, clean and relative (wildcards kept).
    pub sources: Vec<String>,
    /// Absolute; ends with `/` when it names a directory to copy into.
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<u32>,
    pub lines: Lines,
}

/// Everything the user's file asks for, typed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nixfile {
    /// Build arguments the file declares, in order.
    pub args: Vec<ArgDecl>,
    /// The base image (`FROM`), unless the image starts from scratch.
    pub from: Option<Spanned<String>>,
    /// The program's flake reference: the first of FLAKE's.
    pub flake: Option<Spanned<String>>,
    /// FLAKE's further references: packages whose closures the image holds too.
    pub extra_flakes: Vec<String>,
    pub entrypoint: Option<Spanned<Vec<String>>>,
    pub cmd: Option<Spanned<Vec<String>>>,
    /// In file order; a later value for the same name wins.
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub expose: Vec<Port>,
    /// `uid[:gid]` or `name[:group]` as written.
    pub user: Option<Spanned<String>>,
    /// Absolute, after resolving relative WORKDIRs against the previous one.
    pub workdir: Option<String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Spanned<crate::nixfile::healthcheck::Healthcheck>>,
    /// Which lint rules the build reports, and whether they fail it (`# check=`).
    pub check: crate::nixfile::check::CheckConfig,
    pub volumes: Vec<String>,
    pub copies: Vec<CopyInstr>,
}
