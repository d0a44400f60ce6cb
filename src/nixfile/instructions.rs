//! Instruction nodes to a typed [`Nixfile`], one small parse function per keyword.

use serde_json::Value;

use super::syntax::Node;
use super::{FileError, words};

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

/// Everything the user's file asks for, typed and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nixfile {
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
pub const KEYWORDS: &[&str] =
    &["FLAKE", "ENTRYPOINT", "CMD", "ENV", "LABEL", "EXPOSE", "USER", "WORKDIR", "STOPSIGNAL", "VOLUME"];

/// Dockerfile instructions that make no sense here, with the reason.
const DOCKERFILE_ONLY: &[(&str, &str)] = &[
    ("FROM", "the image is always built from scratch; name the package with FLAKE"),
    ("RUN", "the build happens in the flake; put build steps in a derivation"),
    ("COPY", "the image holds exactly the flake's runtime closure; add files in a derivation"),
    ("ADD", "the image holds exactly the flake's runtime closure; add files in a derivation"),
    ("SHELL", "the image has no shell; use exec-form ENTRYPOINT and CMD"),
    ("ONBUILD", "images built by nixfront are not used as bases for Dockerfiles"),
    ("HEALTHCHECK", "it is not supported yet"),
    ("ARG", "build arguments are not supported yet"),
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

pub fn from_nodes(file: &str, nodes: &[Node]) -> Result<Nixfile, FileError> {
    let mut out = Nixfile::default();
    for node in nodes {
        let cx = Ctx { file, node };
        let line = node.lines.0;
        match node.keyword.as_str() {
            "FLAKE" => {
                if let Some(previous) = &out.flake {
                    return Err(cx.err(format!(
                        "FLAKE is already given on line {}; a file builds one flake reference",
                        previous.line
                    )));
                }
                out.flake = Some(Spanned { value: parse_flake(&cx)?, line });
            }
            "ENTRYPOINT" => out.entrypoint = Some(Spanned { value: parse_exec_form(&cx)?, line }),
            "CMD" => out.cmd = Some(Spanned { value: parse_exec_form(&cx)?, line }),
            "ENV" => out.env.extend(parse_pairs(&cx, "ENV NAME=value")?),
            "LABEL" => out.labels.extend(parse_pairs(&cx, "LABEL key=value")?),
            "EXPOSE" => out.expose.extend(parse_expose(&cx)?),
            "USER" => out.user = Some(parse_user(&cx)?),
            "WORKDIR" => out.workdir = Some(parse_workdir(&cx, out.workdir.as_deref())?),
            "STOPSIGNAL" => out.stop_signal = Some(parse_stop_signal(&cx)?),
            "VOLUME" => out.volumes.extend(parse_volumes(&cx)?),
            other => return Err(unknown(&cx, other)),
        }
    }
    Ok(out)
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
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
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

    #[test]
    fn nearest_keyword_only_when_close() {
        assert_eq!(nearest_keyword("EXPOS"), Some("EXPOSE"));
        assert_eq!(nearest_keyword("LABLE"), Some("LABEL"));
        assert_eq!(nearest_keyword("XYZZYQ"), None);
    }
}
