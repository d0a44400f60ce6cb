//! The user's file (the Nixfile): parsing it into a typed [`Nixfile`], with errors that name
//! the file, the line and the instruction.
//!
//! Two phases, each testable alone: [`syntax`] cuts bytes into keyword nodes with line
//! ranges; [`instructions`] turns nodes into typed values. A `flake.nix` given as the
//! Dockerfile (its first line `# syntax=...` is a Nix comment) is recognised here and means
//! "build `.#default` of the context". This module knows nothing of LLB or Nix evaluation.

mod expand;
pub mod instructions;
pub mod syntax;
mod words;

use std::collections::BTreeMap;

use std::fmt;

pub use instructions::{ArgDecl, Nixfile, Port, RULES, Rule, Spanned, Warning};

/// A problem in the user's file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    /// 1-based line of the instruction (its first line when it spans several).
    pub line: usize,
    pub instruction: Option<String>,
    pub message: String,
}

impl FileError {
    pub fn at(file: &str, line: usize, instruction: Option<&str>, message: impl Into<String>) -> Self {
        FileError {
            file: file.to_string(),
            line,
            instruction: instruction.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(instruction) = &self.instruction {
            write!(f, "{instruction}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

/// Whether `filename`/`text` is a flake.nix used as the Dockerfile rather than a Nixfile.
pub fn is_flake_file(filename: &str, text: &str) -> bool {
    if filename.ends_with(".nix") {
        return true;
    }
    // A Nix expression's first code character is `{` (or `let`/`rec` before it), never a keyword.
    let first_code = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    matches!(first_code, Some(l) if l.starts_with('{'))
}

/// Parses the user's file with no build args.
pub fn parse(filename: &str, bytes: &[u8]) -> Result<Nixfile, FileError> {
    parse_with_args(filename, bytes, &BTreeMap::new())
}

/// Parses the user's file. `filename` is used in errors and to recognise `flake.nix`;
/// `build_args` give declared ARGs their values.
pub fn parse_with_args(
    filename: &str,
    bytes: &[u8],
    build_args: &BTreeMap<String, String>,
) -> Result<Nixfile, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        FileError::at(filename, line, None, "the file is not valid UTF-8 text")
    })?;
    if is_flake_file(filename, text) {
        return Ok(Nixfile { from_flake_file: true, ..Nixfile::default() });
    }
    let nodes = syntax::parse_nodes(filename, text)?;
    instructions::from_nodes(filename, &nodes, build_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flake_nix_is_recognised_by_name_and_by_content() {
        let flake = b"# syntax=org/nixfront\n{\n  outputs = { self }: { };\n}\n";
        assert!(parse("flake.nix", flake).unwrap().from_flake_file);
        assert!(parse("Dockerfile", flake).unwrap().from_flake_file);
        assert!(!parse("Dockerfile", b"# syntax=org/nixfront\nFLAKE .\n").unwrap().from_flake_file);
    }

    #[test]
    fn invalid_utf8_names_its_line() {
        let err = parse("Dockerfile", b"FLAKE .\nLABEL a=\xff\n").unwrap_err();
        assert_eq!((err.line, err.message.as_str()), (2, "the file is not valid UTF-8 text"));
    }

    #[test]
    fn errors_print_file_line_and_instruction() {
        let err = FileError::at("Dockerfile", 3, Some("CMD"), "bad");
        assert_eq!(err.to_string(), "Dockerfile:3: CMD: bad");
    }
}
