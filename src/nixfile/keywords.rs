//! The one table of instructions: every keyword nixfront reads, what kind of value it sets,
//! whether it sets one value, and the Dockerfile instructions it refuses with a reason.
//! Parsing, did-you-mean hints, lints and docs/reference.md all read this table.

/// What an instruction is, for the parser's dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instr {
    Arg,
    From,
    Flake,
    Entrypoint,
    Cmd,
    Env,
    Label,
    Expose,
    User,
    Workdir,
    StopSignal,
    Healthcheck,
    Volume,
    Copy,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    pub name: &'static str,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An instruction of nixfront's files.
    Nixfront {
        instr: Instr,
        /// It sets one value: given twice, only the last counts (a lint warning). FROM and
        /// FLAKE are not: given twice they are errors, which their parsers raise.
        single: bool,
        /// A correct use, for "missing argument" errors.
        example: &'static str,
    },
    /// A Dockerfile instruction that makes no sense here, and why.
    DockerfileOnly(&'static str),
}

const fn ours(name: &'static str, instr: Instr, single: bool, example: &'static str) -> Keyword {
    Keyword { name, role: Role::Nixfront { instr, single, example } }
}

const fn refused(name: &'static str, why: &'static str) -> Keyword {
    Keyword { name, role: Role::DockerfileOnly(why) }
}

/// Every keyword, nixfront's first in the order docs/reference.md lists them.
pub const KEYWORDS: &[Keyword] = &[
    ours("ARG", Instr::Arg, false, "ARG VERSION=1.0"),
    ours("FROM", Instr::From, false, "FROM gcr.io/distroless/base"),
    ours("FLAKE", Instr::Flake, false, "FLAKE .#hello .#cacert"),
    ours("ENTRYPOINT", Instr::Entrypoint, true, "ENTRYPOINT [\"hello\", \"--flag\"]"),
    ours("CMD", Instr::Cmd, true, "CMD [\"--port\", \"8080\"]"),
    ours("ENV", Instr::Env, false, "ENV NAME=value"),
    ours("LABEL", Instr::Label, false, "LABEL key=value"),
    ours("EXPOSE", Instr::Expose, false, "EXPOSE 8080/tcp"),
    ours("USER", Instr::User, true, "USER app"),
    ours("WORKDIR", Instr::Workdir, false, "WORKDIR /data"),
    ours("STOPSIGNAL", Instr::StopSignal, true, "STOPSIGNAL SIGTERM"),
    ours("HEALTHCHECK", Instr::Healthcheck, true, "HEALTHCHECK --interval=30s CMD [\"app\", \"--check\"]"),
    ours("VOLUME", Instr::Volume, false, "VOLUME /data"),
    ours("COPY", Instr::Copy, false, "COPY --chown=app config.toml /etc/app/"),
    refused("RUN", "the build happens in the flake; put build steps in a derivation"),
    refused("ADD", "it fetches and unpacks; use COPY for files of the context, a derivation for the rest"),
    refused("SHELL", "the image has no shell; use exec-form ENTRYPOINT and CMD"),
    refused("ONBUILD", "images built by nixfront are not used as bases for Dockerfiles"),
    refused("MAINTAINER", "use LABEL org.opencontainers.image.authors=\"...\" instead"),
];

/// The row for an upper-cased keyword.
pub fn find(keyword: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == keyword)
}

/// nixfront's own keywords.
pub fn nixfront() -> impl Iterator<Item = &'static str> {
    KEYWORDS.iter().filter(|k| matches!(k.role, Role::Nixfront { .. })).map(|k| k.name)
}

/// The known keyword closest to a misspelt one, if one is close enough to be meant.
pub fn nearest(word: &str) -> Option<&'static str> {
    nixfront()
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_keyword_only_when_close() {
        assert_eq!(nearest("EXPOS"), Some("EXPOSE"));
        assert_eq!(nearest("LABLE"), Some("LABEL"));
        assert_eq!(nearest("XYZZYQ"), None);
        assert_eq!(nearest("ONBUIL"), None, "refused Dockerfile keywords are never suggested");
    }

    #[test]
    fn every_keyword_is_listed_once_and_upper_case() {
        for (i, k) in KEYWORDS.iter().enumerate() {
            assert_eq!(k.name, k.name.to_ascii_uppercase());
            assert!(KEYWORDS[i + 1..].iter().all(|o| o.name != k.name), "{} twice", k.name);
        }
    }

    #[test]
    fn the_lint_docs_name_the_instructions_that_warn_when_repeated() {
        let docs = include_str!("../../docs/lint.md");
        let section = docs.split("## RepeatedInstruction").nth(1).unwrap().split("\n## ").next().unwrap();
        for k in KEYWORDS {
            let Role::Nixfront { single, .. } = k.role else { continue };
            assert_eq!(section.contains(&format!("`{}`", k.name)), single, "docs/lint.md and {}", k.name);
        }
    }

    #[test]
    fn the_reference_lists_every_instruction() {
        let readme = include_str!("../../docs/reference.md");
        for name in nixfront() {
            assert!(readme.contains(&format!("`{name}")), "docs/reference.md does not mention {name}");
        }
    }
}
