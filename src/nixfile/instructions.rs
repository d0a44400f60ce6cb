//! Instruction nodes to a typed [`Nixfile`], one small parse function per keyword.

use std::collections::BTreeMap;

use serde_json::Value;

use super::syntax::Node;
use super::{FileError, expand, words};

/// A value with the line it was written on, so later checks can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub line: usize,
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
    pub default: Option<String>,
    pub line: usize,
}

/// A lint rule: data, with a doc page section each (docs/lint.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub description: &'static str,
}

pub const RULE_REPEATED_INSTRUCTION: Rule = Rule {
    name: "RepeatedInstruction",
    description: "An instruction that sets one value is given more than once; only the last counts",
};
pub const RULE_LEGACY_KEY_VALUE: Rule =
    Rule { name: "LegacyKeyValueFormat", description: "`ENV key value` is ambiguous; write `ENV key=value`" };
pub const RULE_INCONSISTENT_CASING: Rule = Rule {
    name: "ConsistentInstructionCasing",
    description: "Instructions should be all upper case or all lower case",
};
pub const RULE_UNDEFINED_VAR: Rule = Rule {
    name: "UndefinedVar",
    description: "A variable is used that no ARG or ENV defines before it; it expands to nothing",
};
pub const RULE_UNPINNED_FLAKE: Rule = Rule {
    name: "UnpinnedFlakeReference",
    description: "A remote flake reference names no revision, so the image can change without the file changing",
};

/// Every lint rule, for documentation and the lint subrequest.
pub const RULES: &[Rule] = &[
    RULE_REPEATED_INSTRUCTION,
    RULE_LEGACY_KEY_VALUE,
    RULE_INCONSISTENT_CASING,
    RULE_UNDEFINED_VAR,
    RULE_UNPINNED_FLAKE,
];

/// Something legal but likely wrong, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: Rule,
    pub line: usize,
    pub detail: String,
}

/// Everything the user's file asks for, typed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nixfile {
    /// Lint findings: the file builds, but probably not as meant.
    pub warnings: Vec<Warning>,
    /// Build arguments the file declares, in order.
    pub args: Vec<ArgDecl>,
    /// The file is a flake.nix: build `.#default` of the context, no instructions.
    pub from_flake_file: bool,
    pub flake: Option<Spanned<String>>,
    pub entrypoint: Option<Spanned<Vec<String>>>,
    pub cmd: Option<Spanned<Vec<String>>>,
    /// In file order; a later value for the same name wins.
    pub env: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub expose: Vec<Port>,
    pub user: Option<String>,
    /// Absolute, after resolving relative WORKDIRs against the previous one.
    pub workdir: Option<String>,
    pub stop_signal: Option<String>,
    pub volumes: Vec<String>,
}

/// The keywords this file format knows, for "did you mean" hints.
pub const KEYWORDS: &[&str] = &[
    "ARG",
    "FLAKE",
    "ENTRYPOINT",
    "CMD",
    "ENV",
    "LABEL",
    "EXPOSE",
    "USER",
    "WORKDIR",
    "STOPSIGNAL",
    "VOLUME",
];

/// Instructions whose arguments expand `$NAME` (as in Dockerfiles: not the exec forms).
const EXPANDED: &[&str] = &["FLAKE", "ENV", "LABEL", "EXPOSE", "USER", "WORKDIR", "STOPSIGNAL", "VOLUME"];

/// Dockerfile instructions that make no sense here, with the reason.
const DOCKERFILE_ONLY: &[(&str, &str)] = &[
    ("FROM", "the image is always built from scratch; name the package with FLAKE"),
    ("RUN", "the build happens in the flake; put build steps in a derivation"),
    ("COPY", "the image holds exactly the flake's runtime closure; add files in a derivation"),
    ("ADD", "the image holds exactly the flake's runtime closure; add files in a derivation"),
    ("SHELL", "the image has no shell; use exec-form ENTRYPOINT and CMD"),
    ("ONBUILD", "images built by nixfront are not used as bases for Dockerfiles"),
    ("HEALTHCHECK", "it is not supported yet"),
    ("MAINTAINER", "use LABEL org.opencontainers.image.authors=\"...\" instead"),
];

struct Ctx<'a> {
    file: &'a str,
    node: &'a Node,
}

impl Ctx<'_> {
    fn err(&self, message: impl Into<String>) -> FileError {
        FileError::at(self.file, self.node.lines.0, Some(&self.node.keyword), message)
    }

    fn words(&self) -> Result<Vec<String>, FileError> {
        words::split(&self.node.args).map_err(|e| self.err(e))
    }

    fn required_args(&self, example: &str) -> Result<&str, FileError> {
        let args = self.node.args.as_str();
        if args.is_empty() {
            return Err(self.err(format!("missing argument; write for example `{example}`")));
        }
        Ok(args)
    }
}

/// Typed instructions from `nodes`; `build_args` are the `--build-arg` values.
pub fn from_nodes(
    file: &str,
    nodes: &[Node],
    build_args: &BTreeMap<String, String>,
) -> Result<Nixfile, FileError> {
    let mut out = Nixfile::default();
    // Names visible to `$NAME`: declared ARGs, then ENVs, as they come.
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut declared: Vec<String> = Vec::new();
    let mut seen_single: BTreeMap<&str, usize> = BTreeMap::new();
    for raw in nodes {
        let expanded;
        let node = if EXPANDED.contains(&raw.keyword.as_str()) {
            let mut undefined = Vec::new();
            let args = expand::expand_noting_undefined(&raw.args, &vars, &mut undefined)
                .map_err(|e| FileError::at(file, raw.lines.0, Some(&raw.keyword), e))?;
            for name in undefined.into_iter().filter(|n| !declared.contains(n)) {
                let detail = format!("{} uses ${name}, which no ARG or ENV before it defines", raw.keyword);
                out.warnings.push(Warning { rule: RULE_UNDEFINED_VAR, line: raw.lines.0, detail });
            }
            expanded = Node { args, ..raw.clone() };
            &expanded
        } else {
            raw
        };
        const SINGLE: &[&str] = &["ENTRYPOINT", "CMD", "USER", "STOPSIGNAL"];
        if let Some(keyword) = SINGLE.iter().find(|k| **k == node.keyword)
            && let Some(first) = seen_single.insert(keyword, node.lines.0)
        {
            let detail = format!("{keyword} is also given on line {first}; only this one counts");
            out.warnings.push(Warning { rule: RULE_REPEATED_INSTRUCTION, line: node.lines.0, detail });
        }
        let cx = Ctx { file, node };
        let line = node.lines.0;
        match node.keyword.as_str() {
            "ARG" => {
                let decl = parse_arg(&cx)?;
                if let Some(value) = build_args.get(&decl.name).or(decl.default.as_ref()) {
                    vars.insert(decl.name.clone(), value.clone());
                }
                declared.push(decl.name.clone());
                out.args.push(decl);
            }
            "FLAKE" => {
                if let Some(previous) = &out.flake {
                    return Err(cx.err(format!(
                        "FLAKE is already given on line {}; a file builds one flake reference",
                        previous.line
                    )));
                }
                let value = parse_flake(&cx)?;
                if is_unpinned(&value) {
                    let detail = format!("`{value}` names no revision; add ?rev=<commit> or a locked input");
                    out.warnings.push(Warning { rule: RULE_UNPINNED_FLAKE, line, detail });
                }
                out.flake = Some(Spanned { value, line });
            }
            "ENTRYPOINT" => out.entrypoint = Some(Spanned { value: parse_exec_form(&cx)?, line }),
            "CMD" => out.cmd = Some(Spanned { value: parse_exec_form(&cx)?, line }),
            "ENV" => {
                let pairs = parse_pairs(&cx, "ENV NAME=value")?;
                if !node.args.split_whitespace().next().unwrap_or("").contains('=') {
                    let detail = format!("write `ENV {}={}`", pairs[0].0, pairs[0].1);
                    out.warnings.push(Warning { rule: RULE_LEGACY_KEY_VALUE, line, detail });
                }
                vars.extend(pairs.iter().cloned());
                out.env.extend(pairs);
            }
            "LABEL" => out.labels.extend(parse_pairs(&cx, "LABEL key=value")?),
            "EXPOSE" => out.expose.extend(parse_expose(&cx)?),
            "USER" => out.user = Some(parse_user(&cx)?),
            "WORKDIR" => out.workdir = Some(parse_workdir(&cx, out.workdir.as_deref())?),
            "STOPSIGNAL" => out.stop_signal = Some(parse_stop_signal(&cx)?),
            "VOLUME" => out.volumes.extend(parse_volumes(&cx)?),
            other => return Err(unknown(&cx, other)),
        }
    }
    out.warnings.extend(casing_warning(nodes));
    Ok(out)
}

/// A remote reference (`github:`, `git+https:`, ...) without `rev=` or a commit in its path.
fn is_unpinned(reference: &str) -> bool {
    let base = reference.split('#').next().unwrap_or(reference);
    let remote = ["github:", "gitlab:", "sourcehut:", "git+", "http:", "https:", "tarball+", "flake:"];
    if !remote.iter().any(|p| base.starts_with(p)) {
        return false;
    }
    let has_rev = base.contains("rev=");
    // github:owner/repo/<40-hex commit>
    let commit_in_path = base.rsplit('/').next().is_some_and(|last| {
        let last = last.split('?').next().unwrap_or(last);
        last.len() == 40 && last.bytes().all(|b| b.is_ascii_hexdigit())
    });
    !has_rev && !commit_in_path
}

/// One warning when keywords mix upper and lower case, at the first that differs from the
/// majority.
fn casing_warning(nodes: &[Node]) -> Option<Warning> {
    let cases: Vec<(bool, usize)> =
        nodes.iter().filter_map(|n| original_case_is_upper(n).map(|upper| (upper, n.lines.0))).collect();
    let uppers = cases.iter().filter(|(u, _)| *u).count();
    let majority_upper = uppers * 2 >= cases.len();
    let (_, line) = cases.iter().find(|(u, _)| *u != majority_upper)?;
    let want = if majority_upper { "upper" } else { "lower" };
    let detail = format!("most instructions are {want} case; write this one the same way");
    Some(Warning { rule: RULE_INCONSISTENT_CASING, line: *line, detail })
}

fn original_case_is_upper(node: &Node) -> Option<bool> {
    let word = node.original_keyword.as_str();
    if word.chars().all(|c| !c.is_ascii_lowercase()) {
        Some(true)
    } else if word.chars().all(|c| !c.is_ascii_uppercase()) {
        Some(false)
    } else {
        None // mixed within one word: counts as neither
    }
}

fn unknown(cx: &Ctx, keyword: &str) -> FileError {
    if let Some((_, why)) = DOCKERFILE_ONLY.iter().find(|(k, _)| *k == keyword) {
        return cx.err(format!("this Dockerfile instruction is not part of a nixfront file: {why}"));
    }
    let known = KEYWORDS.join(", ");
    match nearest_keyword(keyword) {
        Some(hint) => cx.err(format!("unknown instruction; did you mean {hint}? (known: {known})")),
        None => cx.err(format!("unknown instruction (known: {known})")),
    }
}

/// The known keyword closest to a misspelt one, if one is close enough to be meant.
pub fn nearest_keyword(word: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn parse_arg(cx: &Ctx) -> Result<ArgDecl, FileError> {
    cx.required_args("ARG VERSION=1.0")?;
    let words = cx.words()?;
    let [word] = words.as_slice() else {
        return Err(cx.err("declare one argument per ARG, e.g. `ARG VERSION=1.0`"));
    };
    let (name, default) = match word.split_once('=') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (word.as_str(), None),
    };
    let valid = name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
        && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !valid {
        return Err(cx.err(format!("`{name}` is not a valid argument name (letters, digits, _)")));
    }
    Ok(ArgDecl { name: name.to_string(), default, line: cx.node.lines.0 })
}

fn parse_flake(cx: &Ctx) -> Result<String, FileError> {
    let args = cx.required_args("FLAKE .#hello")?;
    let words = cx.words()?;
    match words.as_slice() {
        [one] if !one.is_empty() => Ok(one.clone()),
        _ => Err(
            cx.err(format!("expected one flake reference, got `{args}`; write for example `FLAKE .#hello`"))
        ),
    }
}

fn parse_exec_form(cx: &Ctx) -> Result<Vec<String>, FileError> {
    let keyword = &cx.node.keyword;
    let args = cx.required_args(&format!("{keyword} [\"hello\", \"--flag\"]"))?;
    if !args.starts_with('[') {
        return Err(cx.err(format!(
            "shell form is not possible: the image has no shell to run `{args}`; \
             write the exec form, a JSON array such as {keyword} [\"hello\"]"
        )));
    }
    let value: Value =
        serde_json::from_str(args).map_err(|e| cx.err(format!("invalid JSON array `{args}`: {e}")))?;
    let Value::Array(items) = value else { unreachable!("starts with [") };
    let strings: Option<Vec<String>> = items.into_iter().map(|v| v.as_str().map(str::to_string)).collect();
    match strings {
        Some(list) if !list.is_empty() => Ok(list),
        Some(_) => Err(cx.err("the array is empty; name the program to run")),
        None => Err(cx.err(format!("every element must be a string: `{args}`"))),
    }
}

fn parse_pairs(cx: &Ctx, example: &str) -> Result<Vec<(String, String)>, FileError> {
    cx.required_args(example)?;
    let words = cx.words()?;
    let check_name = |name: &str| {
        if name.is_empty() {
            Err(cx.err(format!("a name is empty; write for example `{example}`")))
        } else {
            Ok(())
        }
    };
    // Legacy form `ENV NAME value with spaces`: exactly one pair, no `=` in the first word.
    if !words[0].contains('=') {
        if cx.node.keyword == "ENV" && words.len() >= 2 {
            let (name, value) = cx.node.args.split_once(char::is_whitespace).unwrap_or_default();
            let value = words::split(value.trim()).map_err(|e| cx.err(e))?.join(" ");
            return Ok(vec![(name.to_string(), value)]);
        }
        return Err(cx.err(format!("expected NAME=value, got `{}`; write for example `{example}`", words[0])));
    }
    words
        .iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) => check_name(name).map(|_| (name.to_string(), value.to_string())),
            None => Err(cx.err(format!("expected NAME=value, got `{word}`; write for example `{example}`"))),
        })
        .collect()
}

fn parse_expose(cx: &Ctx) -> Result<Vec<Port>, FileError> {
    cx.required_args("EXPOSE 8080/tcp")?;
    let mut ports = Vec::new();
    for word in cx.words()? {
        let (range, protocol) = match word.split_once('/') {
            Some((r, p)) => (r, p.to_ascii_lowercase()),
            None => (word.as_str(), "tcp".to_string()),
        };
        let protocol: &'static str = match protocol.as_str() {
            "tcp" => "tcp",
            "udp" => "udp",
            "sctp" => "sctp",
            _ => {
                return Err(cx.err(format!("unknown protocol in `{word}`; use tcp, udp or sctp")));
            }
        };
        let bad = || cx.err(format!("invalid port `{word}`; ports are numbers from 1 to 65535"));
        let number = |s: &str| s.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(bad);
        let (low, high) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(range)?, number(range)?),
        };
        if low > high {
            return Err(bad());
        }
        ports.extend((low..=high).map(|n| Port { number: n, protocol }));
    }
    Ok(ports)
}

fn parse_user(cx: &Ctx) -> Result<String, FileError> {
    let args = cx.required_args("USER 1000:1000")?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (user, group) = args.split_once(':').unwrap_or((args, "0"));
    if numeric(user) && numeric(group) {
        return Ok(args.to_string());
    }
    Err(cx.err(format!(
        "`{args}` is a name, but the image has no /etc/passwd or /etc/group to look it up; \
         give a numeric uid[:gid], e.g. `USER 1000:1000`"
    )))
}

fn parse_workdir(cx: &Ctx, previous: Option<&str>) -> Result<String, FileError> {
    let words = cx.words()?;
    let [dir] = words.as_slice() else {
        return Err(cx.err("expected one directory, e.g. `WORKDIR /data`"));
    };
    let joined = if dir.starts_with('/') { dir.clone() } else { format!("{}/{dir}", previous.unwrap_or("")) };
    Ok(clean_path(&joined))
}

/// `/a/./b/../c/` to `/a/c`, never above `/`.
fn clean_path(path: &str) -> String {
    format!("/{}", crate::paths::clean_relative(path))
}

fn parse_stop_signal(cx: &Ctx) -> Result<String, FileError> {
    let args = cx.required_args("STOPSIGNAL SIGTERM")?;
    let upper = args.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
        "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
        "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    let number_ok = args.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n));
    let realtime = name.strip_prefix("RTMIN").or_else(|| name.strip_prefix("RTMAX")).is_some();
    if number_ok {
        Ok(args.to_string())
    } else if known.contains(&name) || realtime {
        Ok(format!("SIG{name}"))
    } else {
        Err(cx.err(format!("unknown signal `{args}`; use a name like SIGTERM or a number")))
    }
}

fn parse_volumes(cx: &Ctx) -> Result<Vec<String>, FileError> {
    let args = cx.required_args("VOLUME /data")?;
    let paths = if args.starts_with('[') { parse_exec_form(cx)? } else { cx.words()? };
    for p in &paths {
        if !p.starts_with('/') {
            return Err(cx.err(format!("`{p}` is not an absolute path")));
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nixfile::parse;

    fn ok(text: &str) -> Nixfile {
        parse("Dockerfile", text.as_bytes()).unwrap()
    }

    fn err(text: &str) -> FileError {
        parse("Dockerfile", text.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_full_file_parses() {
        let f = ok(r#"# syntax=org/nixfront
FLAKE .#hello
ENTRYPOINT ["hello", "--greeting"]
CMD ["world"]
ENV A=1 B="two words"
ENV LEGACY some value
LABEL org.opencontainers.image.title="Hello"
EXPOSE 80 53/udp 9000-9001
USER 1000:100
WORKDIR /srv
WORKDIR data/../app
STOPSIGNAL int
VOLUME ["/var/lib/x"]
VOLUME /cache /logs
"#);
        assert_eq!(f.flake, Some(Spanned { value: ".#hello".into(), line: 2 }));
        assert_eq!(f.entrypoint.unwrap().value, ["hello", "--greeting"]);
        assert_eq!(f.cmd.unwrap().value, ["world"]);
        let env: Vec<_> = f.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(env, ["A=1", "B=two words", "LEGACY=some value"]);
        assert_eq!(f.labels, [("org.opencontainers.image.title".into(), "Hello".into())]);
        let ports: Vec<_> = f.expose.iter().map(|p| format!("{}/{}", p.number, p.protocol)).collect();
        assert_eq!(ports, ["80/tcp", "53/udp", "9000/tcp", "9001/tcp"]);
        assert_eq!(f.user.as_deref(), Some("1000:100"));
        assert_eq!(f.workdir.as_deref(), Some("/srv/app"));
        assert_eq!(f.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(f.volumes, ["/var/lib/x", "/cache", "/logs"]);
    }

    #[test]
    fn an_empty_file_builds_the_default_package() {
        let f = ok("# syntax=org/nixfront\n");
        assert_eq!(f, Nixfile::default());
    }

    /// Every error names its line and instruction and says what to write instead.
    #[test]
    fn every_error_has_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("# syntax=org/nixfront\nFLAK .#hello\n", 2, "did you mean FLAKE?"),
            ("FLAKE .\nENTRYPOIN [\"x\"]\n", 2, "did you mean ENTRYPOINT?"),
            ("FLAKE .\n\nFROBNICATE x\n", 3, "unknown instruction (known:"),
            ("FLAKE\n", 1, "missing argument"),
            ("FLAKE a b\n", 1, "expected one flake reference"),
            ("FLAKE .\nFLAKE .#x\n", 2, "already given on line 1"),
            ("CMD hello --x\n", 1, "shell form is not possible"),
            ("ENTRYPOINT [\"hello\"\n", 1, "invalid JSON array"),
            ("ENTRYPOINT [1]\n", 1, "every element must be a string"),
            ("ENTRYPOINT []\n", 1, "the array is empty"),
            ("\n\nENV =x\n", 3, "a name is empty"),
            ("LABEL novalue\n", 1, "expected NAME=value"),
            ("ENV A=\"unclosed\n", 1, "double quote is not closed"),
            ("EXPOSE 70000\n", 1, "invalid port"),
            ("EXPOSE 80/xyz\n", 1, "unknown protocol"),
            ("USER nobody\n", 1, "numeric uid"),
            ("STOPSIGNAL SIGNOPE\n", 1, "unknown signal"),
            ("VOLUME data\n", 1, "not an absolute path"),
            ("WORKDIR a b\n", 1, "expected one directory"),
            ("RUN make\n", 1, "put build steps in a derivation"),
            ("ARG 1X\n", 1, "not a valid argument name"),
            ("ARG A B\n", 1, "one argument per ARG"),
            ("ARG A\nFLAKE .#${A\n", 2, "not closed"),
            ("FROM alpine\n", 1, "always built from scratch"),
            ("ENV A=1 \\\n  B=2\nCMD x\n", 3, "shell form"),
        ];
        for (text, line, needle) in cases {
            let e = err(text);
            assert_eq!(e.line, *line, "line for {text:?}: {e}");
            assert!(e.instruction.is_some(), "instruction for {text:?}");
            assert!(e.to_string().contains(needle), "{text:?} gave `{e}`, wanted `{needle}`");
            assert!(e.to_string().starts_with(&format!("Dockerfile:{line}: ")));
        }
    }

    fn with_args(text: &str, args: &[(&str, &str)]) -> Nixfile {
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        crate::nixfile::parse_with_args("Dockerfile", text.as_bytes(), &args).unwrap()
    }

    #[test]
    fn args_expand_in_later_instructions_with_build_args_winning() {
        let text = "ARG APP=hello\nARG TAG\nFLAKE .#${APP}\nENV V=${TAG:-dev}\nLABEL app=$APP v=$V\n\
                    CMD [\"$APP\"]\n";
        let f = with_args(text, &[]);
        assert_eq!(f.flake.as_ref().unwrap().value, ".#hello");
        assert_eq!(f.env, [("V".to_string(), "dev".to_string())]);
        assert_eq!(f.labels[1], ("v".to_string(), "dev".to_string()), "ENV values expand later");
        assert_eq!(f.cmd.unwrap().value, ["$APP"], "exec forms are not expanded");
        let f = with_args(text, &[("APP", "bye"), ("TAG", "1.0")]);
        assert_eq!(f.flake.unwrap().value, ".#bye");
        assert_eq!(f.env[0].1, "1.0");
        assert_eq!(f.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["APP", "TAG"]);
        // An undeclared build arg is not visible.
        let f = with_args("FLAKE .#x$APP\n", &[("APP", "bye")]);
        assert_eq!(f.flake.unwrap().value, ".#x");
    }

    #[test]
    fn warnings_name_their_rule_and_line() {
        let text = "ARG A\nFLAKE github:o/r#x\nflake_ignored\n";
        assert!(parse("Dockerfile", text.as_bytes()).is_err(), "unknown instruction is still an error");
        let f = ok("FLAKE github:o/r#$NOPE\nCMD [\"a\"]\nenv LEGACY value\nCMD [\"b\"]\n");
        let found: Vec<(&str, usize)> = f.warnings.iter().map(|w| (w.rule.name, w.line)).collect();
        assert_eq!(
            found,
            [
                ("UndefinedVar", 1),
                ("UnpinnedFlakeReference", 1),
                ("LegacyKeyValueFormat", 3),
                ("RepeatedInstruction", 4),
                ("ConsistentInstructionCasing", 3),
            ]
        );
        let pinned = ok("FLAKE github:o/r/0123456789abcdef0123456789abcdef01234567#x\n");
        assert!(pinned.warnings.is_empty());
        assert!(ok("FLAKE github:o/r?rev=abc#x\n").warnings.is_empty());
        assert!(ok("FLAKE .#x\n").warnings.is_empty());
    }

    #[test]
    fn nearest_keyword_only_when_close() {
        assert_eq!(nearest_keyword("EXPOS"), Some("EXPOSE"));
        assert_eq!(nearest_keyword("LABLE"), Some("LABEL"));
        assert_eq!(nearest_keyword("XYZZYQ"), None);
    }
}
