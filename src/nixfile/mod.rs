//! The user's file (the Nixfile): parsing it into a typed [`Nixfile`], with errors that name
//! the file, the lines and the instruction, and lint warnings beside the result.
//!
//! Phases, each testable alone: [`syntax`] cuts bytes into keyword nodes with line ranges;
//! [`lex`] reads words, quotes and `$NAME` as Dockerfiles do; [`keywords`] is the one table of
//! instructions; [`instructions`] turns nodes into typed values; [`lint`] owns the rules. A
//! `flake.nix` given as the Dockerfile (its first code is a Nix expression) is recognised here
//! and means "build `.#default` of the context". This module knows nothing of LLB or Nix.

pub mod check;
mod error;
pub mod healthcheck;
pub mod instructions;
pub mod keywords;
pub mod lex;
pub mod lint;
mod pattern;
pub mod syntax;

use std::collections::BTreeMap;

pub use error::{FileError, show};
pub use instructions::{ArgDecl, CopyInstr, Nixfile, Port, Spanned};
pub use lint::{RULES, Rule, Warning};

use crate::limits;

pub use crate::llb::Lines;

/// What parsing the user's file gave: the typed file or the first error, and every lint
/// warning found before the error (BuildKit reports both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub result: Result<Nixfile, FileError>,
    pub warnings: Vec<Warning>,
}

/// Whether `text` is a flake.nix used as the Dockerfile rather than a Nixfile: its first code
/// is a Nix expression (`{`, `(`, `let`, `rec`, `with`, `import`), never an instruction.
/// Only a file named `flake.nix` with no code at all counts as one by its name.
pub fn is_flake_file(filename: &str, text: &str) -> bool {
    match syntax::first_code_line(text) {
        Some(line) => {
            let word = line.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
            line.starts_with(['{', '(']) || ["let", "rec", "with", "import"].contains(&word)
        }
        None => filename.rsplit('/').next() == Some("flake.nix"),
    }
}

/// Parses the user's file. `filename` is used in errors and to recognise `flake.nix`;
/// `build_args` give declared ARGs their values.
pub fn parse(filename: &str, bytes: &[u8], build_args: &BTreeMap<String, String>) -> Parsed {
    match text_of(filename, bytes) {
        Ok(text) if is_flake_file(filename, text) => Parsed {
            // A flake.nix: no instructions, so `.#default` of the context.
            result: Ok(Nixfile::default()),
            warnings: Vec::new(),
        },
        Ok(text) => match syntax::parse_nodes(filename, text) {
            Ok(syntax) => {
                let mut parsed = instructions::from_syntax(filename, &syntax, build_args);
                apply_check(filename, &syntax, build_args, &mut parsed);
                parsed
            }
            Err(e) => Parsed { result: Err(e), warnings: Vec::new() },
        },
        Err(e) => Parsed { result: Err(e), warnings: Vec::new() },
    }
}

/// The checks the file (`# check=`) or the build (`BUILDKIT_DOCKERFILE_CHECK`, which wins) asks
/// for: skipped rules leave the warnings, and with `error=true` a warning left is the error.
fn apply_check(
    filename: &str,
    syntax: &syntax::Syntax,
    build_args: &BTreeMap<String, String>,
    parsed: &mut Parsed,
) {
    let (text, line) = match (build_args.get(check::BUILD_ARG), &syntax.check) {
        (Some(value), _) => (value.clone(), None),
        (None, Some((value, line))) => (value.clone(), Some(*line)),
        (None, None) => return,
    };
    let config = match check::CheckConfig::parse(&text) {
        Ok(config) => config,
        Err(e) => {
            let message = match line {
                Some(_) => format!("`# check={text}`: {e}"),
                None => format!("--build-arg {}={text}: {e}", check::BUILD_ARG),
            };
            parsed.result = Err(FileError::at(filename, Lines::one(line.unwrap_or(1)), None, message));
            return;
        }
    };
    parsed.warnings = config.filter(std::mem::take(&mut parsed.warnings));
    if parsed.result.is_ok() {
        if let Some((first, message)) = config.failure(&parsed.warnings) {
            parsed.result = Err(FileError::at(filename, first.lines, None, message));
        } else if let Ok(nf) = &mut parsed.result {
            nf.check = config;
        }
    }
}

/// The file as text: within [`limits::MAX_FILE_BYTES`], UTF-8, and without NUL bytes (which
/// no image config can hold).
fn text_of<'a>(filename: &str, bytes: &'a [u8]) -> Result<&'a str, FileError> {
    let line_of = |offset: usize| bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    if bytes.len() > limits::MAX_FILE_BYTES {
        return Err(FileError::at(
            filename,
            Lines::one(1),
            None,
            format!(
                "the file is larger than {} bytes (limit MAX_FILE_BYTES); a Nixfile names a flake and a few settings",
                limits::MAX_FILE_BYTES
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        FileError::at(
            filename,
            Lines::one(line_of(e.valid_up_to())),
            None,
            "the file is not valid UTF-8 text",
        )
    })?;
    if let Some(offset) = text.find('\0') {
        let line = line_of(offset);
        let column = text[..offset].rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        return Err(FileError::at(
            filename,
            Lines::one(line),
            None,
            format!("the file contains a NUL byte (line {line}, column {column}); remove it"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_plain(filename: &str, text: &[u8]) -> Result<Nixfile, FileError> {
        parse(filename, text, &BTreeMap::new()).result
    }

    #[test]
    fn the_check_directive_and_build_arg_skip_rules_and_make_warnings_errors() {
        let file = b"# syntax=org/nixfront\n# check=skip=UndefinedVar\nFLAKE .#${NOPE}x\nUSER 1\nUSER 2\n";
        let plain = parse("Dockerfile", file, &BTreeMap::new());
        let rules: Vec<&str> = plain.warnings.iter().map(|w| w.rule.name).collect();
        assert_eq!(rules, ["RepeatedInstruction"], "UndefinedVar is skipped");
        assert_eq!(plain.result.unwrap().check.skip, ["UndefinedVar"]);

        // The build arg wins over the directive: now every rule counts, and fails the build.
        let args = BTreeMap::from([(check::BUILD_ARG.to_string(), "error=true".to_string())]);
        let failed = parse("Dockerfile", file, &args);
        let e = failed.result.unwrap_err();
        assert_eq!(e.lines, Lines::one(3), "the first warning's line: {}", e.message);
        assert!(e.message.contains("lint rule UndefinedVar failed"), "{}", e.message);

        let bad = parse("Dockerfile", b"# check=skip=Nope\nFLAKE .\n", &BTreeMap::new()).result.unwrap_err();
        assert_eq!(bad.lines, Lines::one(1));
        assert!(bad.message.contains("unknown rule `Nope`"), "{}", bad.message);
    }

    #[test]
    fn a_flake_nix_is_recognised_by_content_not_by_name() {
        let flake = b"# syntax=org/nixfront\n{\n  outputs = { self }: { };\n}\n";
        let text = std::str::from_utf8(flake).unwrap();
        assert!(is_flake_file("flake.nix", text) && is_flake_file("Dockerfile", text));
        assert_eq!(parse_plain("Dockerfile", flake).unwrap(), Nixfile::default());
        let nixfile = b"# syntax=org/nixfront\nFLAKE .#hello\n";
        assert!(!is_flake_file("Dockerfile", std::str::from_utf8(nixfile).unwrap()));
        let named_nix = parse_plain("deploy/Dockerfile.nix", nixfile).unwrap();
        assert!(
            !is_flake_file("deploy/Dockerfile.nix", std::str::from_utf8(nixfile).unwrap()),
            "a .nix name does not make a Nixfile a flake"
        );
        assert_eq!(named_nix.flake.unwrap().value, ".#hello");
        assert!(is_flake_file("x", "let a = 1; in {}\n"));
        assert!(is_flake_file("sub/flake.nix", "# only comments\n"));
        assert!(!is_flake_file("Dockerfile", "# only comments\n"));
    }

    #[test]
    fn invalid_utf8_and_nul_bytes_name_their_line() {
        let err = parse_plain("Dockerfile", b"FLAKE .\nLABEL a=\xff\n").unwrap_err();
        assert_eq!((err.lines.start, err.message.as_str()), (2, "the file is not valid UTF-8 text"));
        let err = parse_plain("Dockerfile", b"FLAKE .\nLABEL a=b\0c\n").unwrap_err();
        assert_eq!(err.lines.start, 2);
        assert!(err.message.contains("NUL byte (line 2, column 10)"), "{err}");
        let err = parse_plain("Dockerfile", b"\0FLAKE .\n").unwrap_err();
        assert!(err.message.contains("line 1, column 1"), "{err}");
    }

    #[test]
    fn an_oversized_file_names_the_limit() {
        let big = vec![b'#'; limits::MAX_FILE_BYTES + 1];
        let err = parse_plain("Dockerfile", &big).unwrap_err();
        assert!(err.message.contains("MAX_FILE_BYTES"), "{err}");
    }

    #[test]
    fn errors_print_file_line_and_instruction() {
        let err = FileError::at("Dockerfile", Lines::one(3), Some("CMD"), "bad");
        assert_eq!(err.to_string(), "Dockerfile:3: CMD: bad");
    }

    #[test]
    fn shown_text_escapes_control_characters_and_is_cut() {
        assert_eq!(show("\0FLAKE"), "`\\0FLAKE`");
        assert_eq!(show("a\tb"), "`a\\tb`");
        let long = show(&"x".repeat(500));
        assert_eq!(long.chars().count(), limits::MAX_QUOTED_CHARS + 3);
    }
}

#[cfg(test)]
mod properties {
    //! Property: whatever lines a file is made of, parsing gives a file or an error that
    //! names the file and lines inside it, and never panics.
    use super::*;
    use proptest::prelude::*;

    /// Lines of a Nixfile, plausible and not: instructions, comments, continuations,
    /// quotes, expansions, control characters.
    fn line() -> impl Strategy<Value = String> {
        let keyword = prop_oneof![
            Just("FLAKE"),
            Just("ARG"),
            Just("ENV"),
            Just("LABEL"),
            Just("CMD"),
            Just("ENTRYPOINT"),
            Just("EXPOSE"),
            Just("USER"),
            Just("WORKDIR"),
            Just("STOPSIGNAL"),
            Just("VOLUME"),
            Just("RUN"),
            Just("flake"),
            Just("FLAK"),
            Just("#"),
            Just("# escape=`"),
            Just(""),
        ];
        let word = prop_oneof![
            Just(".#hello".to_string()),
            Just("$A".to_string()),
            Just("${A:-x}".to_string()),
            Just("${A".to_string()),
            Just("\"q w\"".to_string()),
            Just("'s'".to_string()),
            Just("A=1".to_string()),
            Just("=".to_string()),
            Just("[\"a\"]".to_string()),
            Just("[".to_string()),
            Just("\\".to_string()),
            Just("`".to_string()),
            Just("80/udp".to_string()),
            "[ -~]{0,12}".prop_map(|s| s),
            "\\PC{0,4}".prop_map(|s| s),
        ];
        (keyword, prop::collection::vec(word, 0..4)).prop_map(|(k, words)| format!("{k} {}", words.join(" ")))
    }

    proptest! {
        #[test]
        fn every_error_names_the_file_and_a_line_inside_it(
            lines in prop::collection::vec(line(), 0..12),
            args in prop::collection::btree_map("[A-Z]{1,3}", "[ -~]{0,6}", 0..3),
        ) {
            let text = lines.join("\n");
            let parsed = parse("Nixfile", text.as_bytes(), &args);
            let count = text.split('\n').count();
            if let Err(e) = &parsed.result {
                prop_assert_eq!(&e.file, "Nixfile");
                prop_assert!(e.lines.start >= 1 && e.lines.start <= e.lines.end && e.lines.end <= count, "{:?} of {}", e, count);
                let prefix = format!("Nixfile:{}: ", e.lines.start);
                prop_assert!(e.to_string().starts_with(&prefix), "{} lacks {}", e, prefix);
            }
            for w in &parsed.warnings {
                prop_assert!(w.lines.start >= 1 && w.lines.end <= count);
            }
        }
    }
}
