//! Every name a client or a file chooses that becomes a path, or part of one: one table of the
//! kinds of names, each with the grammar BuildKit's own clients (or the tools the name is
//! meant for) enforce, and [`check`], the one function every such name goes through where it
//! is parsed. Whatever the kind, a name that passes is a relative path of plain components
//! (never empty, `.` or `..`, no NUL or control character), so that joined to a directory it
//! stays inside it.
//!
//! Paths inside the image (WORKDIR, a COPY destination) are not names: they are cleaned
//! lexically ([`crate::paths::clean_relative`]) and BuildKit resolves them inside the image's
//! own root, never in a step's file system.

/// A kind of name, and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--build-context NAME=...` (the frontend option `context:NAME`): an image reference,
    /// as buildx parses it (`reference.ParseNormalizedNamed`).
    Context,
    /// A build context that replaces a flake input: mounted in a step under its name.
    FlakeInput,
    /// `USER` and `COPY --chown`: a number, or a name `useradd` takes.
    User,
    /// A program of the package's `bin/` (the entrypoint's file name).
    Program,
}

/// What each kind is called in an error, and an example of a good one.
struct Grammar {
    kind: Kind,
    what: &'static str,
    rule: &'static str,
    example: &'static str,
    accepts: fn(&str) -> bool,
}

/// The one table of names.
const GRAMMARS: &[Grammar] = &[
    Grammar {
        kind: Kind::Context,
        what: "a build context name",
        rule: "an image reference as buildx takes it: lower-case parts of letters and digits joined by \
               `.`, `_`, `__` or `-`, separated by `/`, after an optional registry host, with an optional \
               `:tag` or `@digest`",
        example: "--build-context mylib=./lib",
        accepts: reference,
    },
    Grammar {
        kind: Kind::FlakeInput,
        what: "a build context that replaces a flake input",
        rule: "one lower-case name of letters and digits joined by `.`, `_`, `__` or `-` (the flake input's \
               name, which buildx also takes as a build context name)",
        example: "--build-context mylib=./lib",
        accepts: component,
    },
    Grammar {
        kind: Kind::User,
        what: "a user or group",
        rule: "a number (`1000`) or a name of lower-case letters, digits, `_` and `-`, starting with a letter \
               or `_`, at most 32 characters, as useradd takes it",
        example: "USER app:staff",
        accepts: user,
    },
    Grammar {
        kind: Kind::Program,
        what: "a program name",
        rule: "a file name: no `/`, not `.` or `..`, no control characters, at most 255 bytes",
        example: "bin/hello",
        accepts: file_name,
    },
];

/// Checks `name` as a name of `kind`: `Err` says what is wrong, in the user's terms (the
/// caller adds where the name was written).
pub fn check(kind: Kind, name: &str) -> Result<(), String> {
    let grammar = GRAMMARS.iter().find(|g| g.kind == kind).expect("every kind has its grammar");
    if (grammar.accepts)(name) && plain_components(name) {
        return Ok(());
    }
    Err(format!(
        "{:?} is not {}: write {} (for example `{}`)",
        name, grammar.what, grammar.rule, grammar.example
    ))
}

/// What every kind guarantees besides its grammar: plain, relative path components.
fn plain_components(name: &str) -> bool {
    !name.starts_with('/')
        && name.split('/').all(|part| {
            !matches!(part, "" | "." | "..") && part.len() <= 255 && !part.chars().any(char::is_control)
        })
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or `-`+: a path component of an image reference.
fn component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &part[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host: DNS labels (letters, digits, inner `-`) joined by `.`, with an optional
/// `:port`; or `localhost`.
fn host(part: &str) -> bool {
    let (name, port_ok) = match part.split_once(':') {
        Some((name, port)) => (name, !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())),
        None => (part, true),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    port_ok && name.split('.').all(label)
}

/// An image reference: `[host/]component[/component...][:tag][@algorithm:hex]`.
fn reference(name: &str) -> bool {
    let (name, digest) = match name.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (name, None),
    };
    if let Some(digest) = digest {
        let Some((algorithm, hex)) = digest.split_once(':') else { return false };
        let algorithm_ok = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        if !algorithm_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return false;
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(tag) = tag {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && word(tag.as_bytes()[0])
            && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
        if !ok {
            return false;
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    let is_host = parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost");
    if is_host {
        if !host(first) {
            return false;
        }
        parts.remove(0);
    }
    name.len() <= 255 && !parts.is_empty() && parts.iter().all(|p| component(p))
}

/// A uid or gid written as a number.
pub fn is_id_number(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 10
        && part.bytes().all(|b| b.is_ascii_digit())
        && part.parse::<u32>().is_ok()
}

/// A number, or a name useradd takes.
fn user(part: &str) -> bool {
    is_id_number(part)
        || (!part.is_empty()
            && part.len() <= 32
            && part.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'))
}

/// One file name.
fn file_name(part: &str) -> bool {
    !part.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name that any kind accepts stays under the directory it is joined to.
    fn stays_inside(name: &str) {
        let base = std::path::Path::new("/nixfront/override");
        let joined = base.join(name);
        let mut depth = 0i32;
        for c in joined.strip_prefix(base).expect("relative").components() {
            match c {
                std::path::Component::Normal(_) => depth += 1,
                other => panic!("{name:?} has a {other:?} component"),
            }
        }
        assert!(depth >= 1, "{name:?}");
    }

    #[test]
    fn context_names_are_references_as_buildx_takes_them() {
        for good in [
            "mylib",
            "flake-utils",
            "a.b_c__d---e",
            "docker.io/library/debian:12",
            "registry.local:5000/team/base:v1.2",
            "localhost/x",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check(Kind::Context, good), Ok(()), "{good}");
            stays_inside(good);
        }
        for bad in [
            "../self",
            "..",
            ".",
            "",
            "/abs",
            "a//b",
            "a/../b",
            "My-Lib",
            "-x",
            "x-",
            "a..b",
            "a/.hidden",
            "a b",
            "a\nb",
            "x:",
            "x:-tag",
            "a@sha256:12",
        ] {
            let e = check(Kind::Context, bad).unwrap_err();
            assert!(e.contains("build context name") && e.contains("for example"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_flake_input_is_one_component() {
        assert_eq!(check(Kind::FlakeInput, "nixpkgs"), Ok(()));
        assert_eq!(check(Kind::FlakeInput, "flake-utils"), Ok(()));
        for bad in ["../self", "a/b", "self/..", "x:1", "..", "UPPER", "a\u{0}b"] {
            assert!(check(Kind::FlakeInput, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users_are_numbers_or_useradd_names() {
        for good in ["0", "1000", "app", "_svc", "a-b_c1"] {
            assert_eq!(check(Kind::User, good), Ok(()), "{good}");
        }
        for bad in ["", "App", "1a2", "99999999999", "../x", "a:b", &"x".repeat(33)] {
            assert!(check(Kind::User, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn programs_are_file_names() {
        for good in ["hello", "[", "g++", "python3.12", ".hidden-ok"] {
            assert_eq!(check(Kind::Program, good), Ok(()), "{good}");
            stays_inside(good);
        }
        for bad in ["", ".", "..", "a/b", "/bin/sh", "x\ny", &"x".repeat(256)] {
            assert!(check(Kind::Program, bad).is_err(), "{bad:?}");
        }
    }
}
