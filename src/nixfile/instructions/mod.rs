//! Instruction nodes to a typed [`Nixfile`], one small parse function per keyword of
//! [`super::keywords`], reading words and variables as BuildKit's Dockerfile frontend does:
//! [`types`] is what they read into, [`reader`] the parser's state, [`values`] the values of
//! instructions; this file goes through the nodes.

mod reader;
mod types;
mod values;

use std::collections::BTreeMap;

use super::keywords::{self, Instr, Role};
use super::lex;
use super::lint::{self, Warning};
use super::syntax::{Node, Syntax};
use super::{FileError, Parsed, show};
use reader::{Ctx, Reader};
pub use types::{ArgDecl, CopyInstr, Nixfile, Port, Spanned};
use values::{after_cmd, exec_form, json_strings, stop_signal, unknown, user, workdir};

/// Typed instructions from the file's nodes; `build_args` are the `--build-arg` values.
pub fn from_syntax(file: &str, syntax: &Syntax, build_args: &BTreeMap<String, String>) -> Parsed {
    let mut reader = Reader {
        file,
        escape: syntax.escape,
        build_args,
        vars: BTreeMap::new(),
        declared: Vec::new(),
        seen_single: BTreeMap::new(),
        past_from: false,
        out: Nixfile::default(),
        warnings: Vec::new(),
    };
    let result = syntax.nodes.iter().try_for_each(|node| reader.instruction(node));
    let mut warnings = reader.warnings;
    warnings.extend(lint::casing(&syntax.nodes));
    Parsed { result: result.map(|()| reader.out), warnings }
}

impl Reader<'_> {
    fn instruction(&mut self, node: &Node) -> Result<(), FileError> {
        let Some(keyword) = keywords::find(&node.keyword) else {
            return Err(unknown(self.file, node));
        };
        let (instr, single, example) = match keyword.role {
            Role::Nixfront { instr, single, example, .. } => (instr, single, example),
            Role::DockerfileOnly(why) => {
                return Err(FileError::at(
                    self.file,
                    node.lines,
                    Some(&node.keyword),
                    format!("this Dockerfile instruction is not part of a nixfront file: {why}"),
                ));
            }
        };
        if single && let Some(first) = self.seen_single.insert(keyword.name, node.lines.start) {
            let detail = format!("{} is also given on line {first}; only this one counts", keyword.name);
            self.warnings.push(Warning::new(lint::REPEATED_INSTRUCTION, node.lines, detail));
        }
        let cx = Ctx { file: self.file, node, example };
        let lines = node.lines;
        if instr != Instr::Arg && instr != Instr::From {
            self.past_from = true;
        }
        match instr {
            Instr::Arg => self.arg(&cx)?,
            Instr::From => {
                if self.past_from {
                    return Err(
                        cx.err("FROM must come first (only ARGs may come before it): the image has one base")
                    );
                }
                self.past_from = true;
                self.out.from = self.from(&cx)?.map(|value| Spanned { value, lines });
            }
            Instr::Copy => {
                let copy = self.copy(&cx)?;
                self.out.copies.push(copy);
            }
            Instr::Flake => {
                if let Some(previous) = &self.out.flake {
                    return Err(cx.err(format!(
                        "FLAKE is already given on line {}; a file builds one flake reference",
                        previous.lines.start
                    )));
                }
                let mut values = self.flake(&cx)?;
                for value in &values {
                    if lint::is_unpinned(value) {
                        let detail =
                            format!("{} names no revision; add ?rev=<commit> or a locked input", show(value));
                        self.warnings.push(Warning::new(lint::UNPINNED_FLAKE, lines, detail));
                    }
                }
                let value = values.remove(0);
                self.out.extra_flakes = values;
                self.out.flake = Some(Spanned { value, lines });
            }
            Instr::Entrypoint => self.out.entrypoint = Some(Spanned { value: exec_form(&cx)?, lines }),
            Instr::Cmd => self.out.cmd = Some(Spanned { value: exec_form(&cx)?, lines }),
            Instr::Env => {
                let pairs = self.pairs(&cx)?;
                self.vars.extend(pairs.iter().cloned());
                self.out.env.extend(pairs);
            }
            Instr::Label => {
                let pairs = self.pairs(&cx)?;
                self.out.labels.extend(pairs);
            }
            Instr::Expose => {
                let ports = self.expose(&cx)?;
                self.out.expose.extend(ports);
            }
            Instr::User => {
                let value = user(&cx, &self.text(&cx, cx.required_args()?)?)?;
                self.out.user = Some(Spanned { value, lines });
            }
            Instr::Workdir => {
                let dir = self.text(&cx, cx.required_args()?)?;
                self.out.workdir = Some(workdir(&dir, self.out.workdir.as_deref()));
            }
            Instr::StopSignal => {
                self.out.stop_signal = Some(stop_signal(&cx, &self.text(&cx, cx.required_args()?)?)?)
            }
            Instr::Healthcheck => {
                let args = cx.required_args()?;
                let words = lex::raw_words(args, self.escape);
                let check = super::healthcheck::parse(&words, after_cmd(args), |json| {
                    json_strings(&cx, json).map_err(|e| e.message)
                })
                .map_err(|e| cx.err(e))?;
                self.out.healthcheck = Some(Spanned { value: check, lines });
            }
            Instr::Volume => {
                let volumes = self.volumes(&cx)?;
                self.out.volumes.extend(volumes);
            }
        }
        Ok(())
    }

    fn arg(&mut self, cx: &Ctx) -> Result<(), FileError> {
        let args = cx.required_args()?;
        for word in lex::raw_words(args, self.escape) {
            let (name, default) = match word.split_once('=') {
                Some((n, d)) => (n.to_string(), Some(self.process(cx, d)?.text)),
                None => (word.clone(), None),
            };
            let valid = name.starts_with(|c: char| c == '_' || c.is_ascii_alphabetic())
                && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
            if !valid {
                return Err(
                    cx.err(format!("{} is not a valid argument name (letters, digits, _)", show(&name)))
                );
            }
            let value = self.build_args.get(&name).cloned().or_else(|| default.clone());
            match &value {
                Some(v) => self.vars.insert(name.clone(), v.clone()),
                None => self.vars.remove(&name),
            };
            self.declared.push(name.clone());
            self.out.args.push(ArgDecl { name, default, value, lines: cx.node.lines });
        }
        Ok(())
    }

    /// One or more references, the program's first.
    fn flake(&mut self, cx: &Ctx) -> Result<Vec<String>, FileError> {
        let args = cx.required_args()?;
        let words = lex::raw_words(args, self.escape);
        if words.is_empty() {
            // Blanks only (a form feed is whitespace to the words, not to the line).
            return Err(cx.missing());
        }
        let mut refs = Vec::with_capacity(words.len());
        for word in &words {
            let value = self.text(cx, word)?;
            if refs.contains(&value) {
                return Err(cx.err(format!("{} is named twice", show(&value))));
            }
            refs.push(value);
        }
        Ok(refs)
    }

    /// `FROM image`: `None` for `scratch`.
    fn from(&mut self, cx: &Ctx) -> Result<Option<String>, FileError> {
        let args = cx.required_args()?;
        let words = lex::raw_words(args, self.escape);
        if let Some(flag) = words.iter().find(|w| w.starts_with("--")) {
            return Err(cx.err(format!(
                "{} is not possible: the base image's platform is the build's (--platform)",
                show(flag)
            )));
        }
        match words.as_slice() {
            [image] => {
                let image = self.text(cx, image)?;
                Ok((image != "scratch").then_some(image))
            }
            [_, r#as, _] if r#as.eq_ignore_ascii_case("as") => {
                Err(cx.err("`FROM ... AS name`: a nixfront file has one stage, which needs no name"))
            }
            _ => Err(cx.err(format!(
                "expected one image, got {}; write for example `{}`",
                show(args),
                cx.example
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nixfile::Lines;
    use crate::nixfile::parse;

    fn parsed(text: &str, args: &[(&str, &str)]) -> Parsed {
        let args = args.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse("Dockerfile", text.as_bytes(), &args)
    }

    fn ok(text: &str) -> Nixfile {
        parsed(text, &[]).result.unwrap()
    }

    fn err(text: &str) -> FileError {
        parsed(text, &[]).result.unwrap_err()
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
        assert_eq!(f.flake, Some(Spanned { value: ".#hello".into(), lines: Lines::one(2) }));
        assert_eq!(f.entrypoint.unwrap().value, ["hello", "--greeting"]);
        assert_eq!(f.cmd.unwrap().value, ["world"]);
        let env: Vec<_> = f.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(env, ["A=1", "B=two words", "LEGACY=some value"]);
        assert_eq!(f.labels, [("org.opencontainers.image.title".into(), "Hello".into())]);
        let ports: Vec<_> = f.expose.iter().map(|p| format!("{}/{}", p.number, p.protocol)).collect();
        assert_eq!(ports, ["80/tcp", "53/udp", "9000/tcp", "9001/tcp"]);
        assert_eq!(f.user.as_ref().map(|u| u.value.as_str()), Some("1000:100"));
        assert_eq!(f.workdir.as_deref(), Some("/srv/app"));
        assert_eq!(f.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(f.volumes, ["/var/lib/x", "/cache", "/logs"]);
    }

    #[test]
    fn several_packages_a_named_user_copies_and_a_base_image() {
        let f = ok(
            "ARG BASE=gcr.io/distroless/base\nFROM $BASE\nFLAKE .#app .#cacert .#tzdata\nUSER app:staff\n\
                    WORKDIR /data\nCOPY --chown=app --chmod=640 config.toml /etc/app/config.toml\n\
                    COPY [\"a b\", \"c/\", \"sub/\"]\nCOPY --link /etc/motd ./\n",
        );
        assert_eq!(f.from.unwrap().value, "gcr.io/distroless/base");
        assert_eq!(f.flake.unwrap().value, ".#app");
        assert_eq!(f.extra_flakes, [".#cacert", ".#tzdata"]);
        assert_eq!(f.user.unwrap().value, "app:staff");
        type Seen<'a> = (Vec<&'a str>, &'a str, Option<&'a str>, Option<u32>);
        let copies: Vec<Seen> = f
            .copies
            .iter()
            .map(|c| {
                (c.sources.iter().map(String::as_str).collect(), c.dest.as_str(), c.chown.as_deref(), c.chmod)
            })
            .collect();
        assert_eq!(
            copies,
            [
                (vec!["config.toml"], "/etc/app/config.toml", Some("app"), Some(0o640)),
                (vec!["a b", "c"], "/data/sub/", None, None),
                (vec!["etc/motd"], "/data/", None, None),
            ]
        );
        assert_eq!(ok("FROM scratch\n").from, None);
        assert_eq!(ok("USER 1000\n").user.unwrap().value, "1000");
    }

    #[test]
    fn an_empty_file_builds_the_default_package() {
        assert_eq!(ok("# syntax=org/nixfront\n"), Nixfile::default());
    }

    /// Every error names its lines and instruction and says what to write instead.
    #[test]
    fn every_error_has_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("# syntax=org/nixfront\nFLAK .#hello\n", 2, "did you mean FLAKE?"),
            ("FLAKE .\nENTRYPOIN [\"x\"]\n", 2, "did you mean ENTRYPOINT?"),
            ("FLAKE .\n\nFROBNICATE x\n", 3, "unknown instruction `FROBNICATE` (known:"),
            ("FLAKE\n", 1, "missing argument"),
            ("FLAKE a a\n", 1, "named twice"),
            ("FLAKE .\nFLAKE .#x\n", 2, "already given on line 1"),
            ("CMD hello --x\n", 1, "shell form is not possible"),
            ("ENTRYPOINT [\"hello\"\n", 1, "invalid JSON array"),
            ("ENTRYPOINT [1]\n", 1, "every element must be a string"),
            ("ENTRYPOINT []\n", 1, "the array is empty"),
            ("ENTRYPOINT [\"a\\u0000b\"]\n", 1, "NUL character"),
            ("\n\nENV =x\n", 3, "a name is empty"),
            ("LABEL novalue\n", 1, "expected NAME=value"),
            ("ENV A=\"unclosed\n", 1, "double quote is not closed"),
            ("EXPOSE 70000\n", 1, "invalid port"),
            ("EXPOSE 80/xyz\n", 1, "unknown protocol"),
            ("USER No-Body\n", 1, "is not a user or group"),
            ("COPY a\n", 1, "a source and a destination"),
            ("COPY ../secret /etc/\n", 1, "outside the build context"),
            ("COPY a b /etc\n", 1, "end the destination with `/`"),
            ("COPY --from=x a /b\n", 1, "other stages"),
            ("COPY --chmod=9 a /b\n", 1, "octal mode"),
            ("COPY --chown=Bad a /b\n", 1, "is not a user or group"),
            ("FLAKE .\nFROM alpine\n", 2, "FROM must come first"),
            ("FROM alpine AS build\n", 1, "one stage"),
            ("FROM --platform=linux/arm64 alpine\n", 1, "the build's (--platform)"),
            ("STOPSIGNAL SIGNOPE\n", 1, "unknown signal"),
            ("HEALTHCHECK CMD curl -f localhost\n", 1, "shell form is not possible"),
            ("HEALTHCHECK --interval=soon CMD [\"app\"]\n", 1, "not a duration"),
            ("VOLUME data\n", 1, "not an absolute path"),
            ("WORKDIR\n", 1, "missing argument"),
            ("RUN make\n", 1, "put build steps in a derivation"),
            ("ARG 1X\n", 1, "not a valid argument name"),
            ("ARG A\nFLAKE .#${A\n", 2, "not closed"),
            ("ENV A=1 \\\n  B=2\nCMD x\n", 3, "shell form"),
            ("ENV $A $B\n", 1, "a name is empty"),
            ("LABEL ${X:- }\n", 1, "not closed"),
            ("ARG X\nFLAKE $X\n", 2, "expands to nothing"),
            ("EXPOSE $NOPE\n", 1, "expands to no port"),
            ("ARG V\nLABEL v=\"${V:?set V with --build-arg}\"\n", 2, "V: set V with --build-arg"),
            ("\0FLAKE .\n", 1, "NUL byte"),
        ];
        for (text, line, needle) in cases {
            let e = err(text);
            assert_eq!(e.lines.start, *line, "line for {text:?}: {e}");
            assert!(e.to_string().contains(needle), "{text:?} gave `{e}`, wanted `{needle}`");
            assert!(e.to_string().starts_with(&format!("Dockerfile:{line}: ")));
        }
    }

    #[test]
    fn an_error_spans_every_line_of_its_instruction() {
        let e = err("FLAKE .\nCMD \\\n  [\"a\", \\\n  2]\n");
        assert_eq!(e.lines, Lines { start: 2, end: 4 });
    }

    #[test]
    fn invisible_characters_in_keywords_are_shown() {
        let e = err("F\u{200b}LAKE .\n");
        assert!(e.message.contains("`F\\u{200b}LAKE`"), "{e}");
    }

    #[test]
    fn args_expand_in_later_instructions_with_build_args_winning() {
        let text = "ARG APP=hello\nARG TAG\nFLAKE .#${APP}\nENV V=${TAG:-dev}\nLABEL app=$APP v=$V\n\
                    CMD [\"$APP\"]\n";
        let f = parsed(text, &[]).result.unwrap();
        assert_eq!(f.flake.as_ref().unwrap().value, ".#hello");
        assert_eq!(f.env, [("V".to_string(), "dev".to_string())]);
        assert_eq!(f.labels[1], ("v".to_string(), "dev".to_string()), "ENV values expand later");
        assert_eq!(f.cmd.unwrap().value, ["$APP"], "exec forms are not expanded");
        let f = parsed(text, &[("APP", "bye"), ("TAG", "1.0")]).result.unwrap();
        assert_eq!(f.flake.unwrap().value, ".#bye");
        assert_eq!(f.env[0].1, "1.0");
        assert_eq!(f.args.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["APP", "TAG"]);
        assert_eq!(f.args[0].value.as_deref(), Some("bye"), "the value the build uses");
        assert_eq!(f.args[0].default.as_deref(), Some("hello"));
        // An undeclared build arg is not visible.
        let f = parsed("FLAKE .#x$APP\n", &[("APP", "bye")]).result.unwrap();
        assert_eq!(f.flake.unwrap().value, ".#x");
    }

    #[test]
    fn quotes_escapes_and_continuations_read_as_in_dockerfiles() {
        let f = parsed("ARG APP=hi\nLABEL msg=\"it's $APP\" raw='$APP' esc=\\$APP\n", &[]).result.unwrap();
        let labels: Vec<_> = f.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["msg=it's hi", "raw=$APP", "esc=$APP"]);
        let f = ok("LABEL a=\"x\\\ny\"\n");
        assert_eq!(f.labels[0].1, "xy");
        let f = ok("ARG A=1 B=2\nWORKDIR /my app\nENV \"SP ACE\"=v\n");
        assert_eq!(f.args.len(), 2, "several ARGs on one line");
        assert_eq!(f.workdir.as_deref(), Some("/my app"));
        assert_eq!(f.env[0].0, "SP ACE");
        let f = ok("# escape=`\nLABEL path=c:\\dir q=\"a`\"b\"\n");
        assert_eq!(f.labels, [("path".into(), "c:\\dir".into()), ("q".into(), "a\"b".into())]);
    }

    #[test]
    fn warnings_come_beside_the_result_and_the_error() {
        let p = parsed("FLAKE github:o/r#$NOPE\nCMD [\"a\"]\nenv LEGACY value\nCMD [\"b\"]\n", &[]);
        assert!(p.result.is_ok());
        let found: Vec<(&str, usize)> = p.warnings.iter().map(|w| (w.rule.name, w.lines.start)).collect();
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
        let p = parsed("CMD [\"a\"]\nCMD [\"b\"]\nFLAK .\n", &[]);
        assert!(p.result.is_err());
        assert_eq!(p.warnings[0].rule.name, "RepeatedInstruction", "warnings before the error are kept");
        assert!(ok("FLAKE github:o/r?rev=abc#x\n").flake.is_some());
    }

    #[test]
    fn a_flake_line_of_blanks_is_a_missing_argument() {
        let e = err("# syntax=org/nixfront\nFLAKE \u{c}\u{c}\n");
        assert!(e.message.starts_with("missing argument"), "{e:?}");
        assert_eq!(e.lines, Lines::one(2));
    }

    #[test]
    fn signals_and_ports() {
        assert_eq!(ok("STOPSIGNAL SIGRTMIN+3\n").stop_signal.as_deref(), Some("SIGRTMIN+3"));
        assert!(parsed("STOPSIGNAL RTMINX\n", &[]).result.is_err());
        let f = parsed("ARG P=\"80 81\"\nEXPOSE $P\n", &[]).result.unwrap();
        assert_eq!(f.expose.len(), 2, "an unquoted expansion splits into ports");
    }
}
