//! The values of instructions: COPY's flags and sources, `key=value` pairs, ports, volumes,
//! exec forms, users, signals; each checked, with the error at the instruction's lines.

use serde_json::Value;

use super::reader::{Ctx, Reader};
use super::types::{CopyInstr, Port};
use crate::nixfile::keywords;
use crate::nixfile::lex;
use crate::nixfile::lint::{self, Warning};
use crate::nixfile::syntax::Node;
use crate::nixfile::{FileError, show};

impl Reader<'_> {
    /// `COPY [--chown=..] [--chmod=..] source... dest`, or its JSON form.
    pub(super) fn copy(&mut self, cx: &Ctx) -> Result<CopyInstr, FileError> {
        let args = cx.required_args()?;
        let mut words = lex::raw_words(args, self.escape);
        let (mut chown, mut chmod) = (None, None);
        while words.first().is_some_and(|w| w.starts_with("--")) {
            let flag = words.remove(0);
            let (name, value) = flag.split_once('=').unwrap_or((flag.as_str(), ""));
            match name {
                "--chown" => chown = Some(user(cx, &self.text(cx, value)?)?),
                "--chmod" => {
                    let mode =
                        u32::from_str_radix(value, 8).ok().filter(|m| *m <= 0o7777 && !value.is_empty());
                    chmod = Some(mode.ok_or_else(|| {
                        cx.err(format!("--chmod={value}: expected an octal mode such as 0644"))
                    })?);
                }
                "--link" => {}
                "--from" => {
                    return Err(cx.err(
                        "COPY --from is for other stages and images; nixfront copies from the build context",
                    ));
                }
                other => {
                    return Err(cx.err(format!(
                        "unknown flag {}; COPY takes --chown, --chmod and --link",
                        show(other)
                    )));
                }
            }
        }
        let rest = words.join(" ");
        let raw: Vec<String> = if rest.starts_with('[') { json_strings(cx, &rest)? } else { words };
        let mut items = Vec::with_capacity(raw.len());
        for item in &raw {
            items.push(self.text(cx, item)?);
        }
        if items.len() < 2 {
            return Err(
                cx.err(format!("expected a source and a destination; write for example `{}`", cx.example))
            );
        }
        let dest_written = items.pop().expect("two items");
        if items.len() > 1 && !dest_written.ends_with('/') {
            return Err(cx.err(format!(
                "several sources go into a directory: end the destination with `/` ({}/)",
                dest_written
            )));
        }
        let mut sources = Vec::with_capacity(items.len());
        for source in items {
            if source.split('/').any(|part| part == "..") {
                return Err(cx.err(format!("{} points outside the build context", show(&source))));
            }
            let clean = crate::paths::clean_relative(source.trim_start_matches('/'));
            sources.push(if clean.is_empty() { ".".to_string() } else { clean });
        }
        let mut dest = workdir(&dest_written, self.out.workdir.as_deref());
        if dest_written.ends_with('/') && !dest.ends_with('/') {
            dest.push('/');
        }
        Ok(CopyInstr { sources, dest, chown, chmod, lines: cx.node.lines })
    }

    /// `NAME=value ...`, or the legacy `NAME value with blanks` (one pair, a lint warning).
    pub(super) fn pairs(&mut self, cx: &Ctx) -> Result<Vec<(String, String)>, FileError> {
        let args = cx.required_args()?;
        let words = lex::raw_words(args, self.escape);
        let raw_pairs: Vec<(String, String)> = if words.first().is_some_and(|w| w.contains('=')) {
            words
                .iter()
                .map(|word| match word.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => Err(cx.err(format!(
                        "expected NAME=value, got {}; write for example `{}`",
                        show(word),
                        cx.example
                    ))),
                })
                .collect::<Result<_, _>>()?
        } else {
            let Some((name, value)) = args.split_once(char::is_whitespace) else {
                return Err(cx.err(format!(
                    "expected NAME=value, got {}; write for example `{}`",
                    show(args),
                    cx.example
                )));
            };
            let (name, value) = (name.to_string(), value.trim().to_string());
            let detail = format!("write `{} {name}={value}`", cx.node.keyword);
            self.warnings.push(Warning::new(lint::LEGACY_KEY_VALUE, cx.node.lines, detail));
            vec![(name, value)]
        };
        let mut pairs = Vec::with_capacity(raw_pairs.len());
        for (raw_name, raw_value) in raw_pairs {
            let name = self.process(cx, &raw_name)?.text;
            if name.is_empty() {
                return Err(cx.err(format!(
                    "a name is empty (`{raw_name}={raw_value}`); write for example `{}`",
                    cx.example
                )));
            }
            let value = self.process(cx, &raw_value)?.text;
            pairs.push((name, value));
        }
        Ok(pairs)
    }

    pub(super) fn expose(&mut self, cx: &Ctx) -> Result<Vec<Port>, FileError> {
        let args = cx.required_args()?;
        let mut ports = Vec::new();
        for part in args.split_whitespace() {
            for word in self.process(cx, part)?.words {
                ports.extend(port_range(cx, &word)?);
            }
        }
        if ports.is_empty() {
            return Err(cx.err(format!(
                "{} expands to no port; write for example `{}`",
                show(args),
                cx.example
            )));
        }
        Ok(ports)
    }

    pub(super) fn volumes(&mut self, cx: &Ctx) -> Result<Vec<String>, FileError> {
        let args = cx.required_args()?;
        let raw: Vec<String> = if args.starts_with('[') {
            json_strings(cx, args)?
        } else {
            args.split_whitespace().map(str::to_string).collect()
        };
        let mut paths = Vec::with_capacity(raw.len());
        for item in raw {
            let path = self.text(cx, &item)?;
            if !path.starts_with('/') {
                return Err(cx.err(format!("{} is not an absolute path", show(&path))));
            }
            paths.push(path);
        }
        Ok(paths)
    }
}

pub(super) fn unknown(file: &str, node: &Node) -> FileError {
    let known: Vec<&str> = keywords::nixfront().collect();
    let known = known.join(", ");
    let written = show(&node.original_keyword);
    let message = match keywords::nearest(&node.keyword) {
        Some(hint) => format!("unknown instruction {written}; did you mean {hint}? (known: {known})"),
        None => format!("unknown instruction {written} (known: {known})"),
    };
    let shown = node.keyword.chars().flat_map(char::escape_debug).collect::<String>();
    FileError::at(file, node.lines, Some(&shown), message)
}

/// A JSON array of strings (ENTRYPOINT, CMD, VOLUME), none holding a NUL character.
pub(super) fn json_strings(cx: &Ctx, args: &str) -> Result<Vec<String>, FileError> {
    let value: Value =
        serde_json::from_str(args).map_err(|e| cx.err(format!("invalid JSON array {}: {e}", show(args))))?;
    let Value::Array(items) = value else {
        return Err(cx.err(format!("expected a JSON array, got {}", show(args))));
    };
    let strings: Option<Vec<String>> = items.into_iter().map(|v| v.as_str().map(str::to_string)).collect();
    let strings = strings.ok_or_else(|| cx.err(format!("every element must be a string: {}", show(args))))?;
    if let Some(bad) = strings.iter().find(|s| s.contains('\0')) {
        return Err(cx.err(format!("{} contains a NUL character, which no image config can hold", show(bad))));
    }
    Ok(strings)
}

/// What follows the word `CMD` (any case) in `args`, if it is there.
pub(super) fn after_cmd(args: &str) -> Option<&str> {
    let mut from = 0;
    for word in args.split_whitespace() {
        let at = from + args[from..].find(word)?;
        if word.eq_ignore_ascii_case("CMD") {
            return Some(&args[at + word.len()..]);
        }
        from = at + word.len();
    }
    None
}

pub(super) fn exec_form(cx: &Ctx) -> Result<Vec<String>, FileError> {
    let keyword = &cx.node.keyword;
    let args = cx.required_args()?;
    if !args.starts_with('[') {
        return Err(cx.err(format!(
            "shell form is not possible: the image has no shell to run {}; \
             write the exec form, a JSON array such as {keyword} [\"hello\"]",
            show(args)
        )));
    }
    let list = json_strings(cx, args)?;
    if list.is_empty() {
        return Err(cx.err("the array is empty; name the program to run"));
    }
    Ok(list)
}

/// `80`, `53/udp`, `9000-9001/tcp`.
pub(super) fn port_range(cx: &Ctx, word: &str) -> Result<Vec<Port>, FileError> {
    let (range, protocol) = match word.split_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    let protocol: &'static str = match protocol.as_str() {
        "tcp" => "tcp",
        "udp" => "udp",
        "sctp" => "sctp",
        _ => return Err(cx.err(format!("unknown protocol in {}; use tcp, udp or sctp", show(word)))),
    };
    let bad = || cx.err(format!("invalid port {}; ports are numbers from 1 to 65535", show(word)));
    let number = |s: &str| s.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(bad);
    let (low, high) = match range.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => (number(range)?, number(range)?),
    };
    if low > high {
        return Err(bad());
    }
    Ok((low..=high).map(|n| Port { number: n, protocol }).collect())
}

/// `uid[:gid]` or `name[:group]` (each part a number or a name useradd takes).
pub(super) fn user(cx: &Ctx, value: &str) -> Result<String, FileError> {
    let (user, group) = value.split_once(':').unwrap_or((value, "0"));
    if let Some(bad) = [user, group].into_iter().find(|part| !crate::users::valid_id(part)) {
        return Err(cx.err(format!(
            "{} is not a user or group: give a number (`1000`) or a name of lower-case letters, digits, `_` \
             and `-`, starting with a letter or `_`, at most 32 characters (`app`, `app:staff`)",
            show(bad)
        )));
    }
    Ok(value.to_string())
}

/// An absolute, clean WORKDIR: relative ones build on the previous one, as in Dockerfiles.
pub(super) fn workdir(dir: &str, previous: Option<&str>) -> String {
    let joined =
        if dir.starts_with('/') { dir.to_string() } else { format!("{}/{dir}", previous.unwrap_or("")) };
    format!("/{}", crate::paths::clean_relative(&joined))
}

pub(super) fn stop_signal(cx: &Ctx, value: &str) -> Result<String, FileError> {
    let upper = value.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
        "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
        "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    let number_ok = value.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n));
    let realtime = name.strip_prefix("RTMIN").or_else(|| name.strip_prefix("RTMAX")).is_some_and(|rest| {
        rest.is_empty() || rest.strip_prefix(['+', '-']).is_some_and(|n| n.parse::<u8>().is_ok())
    });
    if number_ok {
        Ok(value.to_string())
    } else if known.contains(&name) || realtime {
        Ok(format!("SIG{name}"))
    } else {
        Err(cx.err(format!("unknown signal {}; use a name like SIGTERM or a number", show(value))))
    }
}
