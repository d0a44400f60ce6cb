//! A problem in the user's file, with where it is, and how a piece of it is shown in a message.

use std::fmt;

use crate::limits;
use crate::llb::Lines;

/// A problem in the user's file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub lines: Lines,
    pub instruction: Option<String>,
    pub message: String,
}

impl FileError {
    pub fn at(file: &str, lines: Lines, instruction: Option<&str>, message: impl Into<String>) -> Self {
        FileError {
            file: file.to_string(),
            lines,
            instruction: instruction.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.lines.start)?;
        if let Some(instruction) = &self.instruction {
            write!(f, "{instruction}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

/// User text as a message quotes it: in backticks, control characters escaped (so an
/// invisible character shows), cut to [`limits::MAX_QUOTED_CHARS`] characters.
pub fn show(text: &str) -> String {
    let escaped: String = text.chars().flat_map(|c| c.escape_debug()).collect();
    let mut chars = escaped.chars();
    let head: String = chars.by_ref().take(limits::MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() { format!("`{head}…`") } else { format!("`{head}`") }
}
