//! The parser's state while it reads the file top to bottom ([`Reader`]), one instruction being
//! read ([`Ctx`]), and how a value's quotes, escapes and variables are read.

use std::collections::BTreeMap;

use super::types::Nixfile;
use crate::nixfile::lex::{self, Processed};
use crate::nixfile::lint::{self, Warning};
use crate::nixfile::syntax::Node;
use crate::nixfile::{FileError, show};

/// The parser's state while it reads the file top to bottom.
pub struct Reader<'a> {
    pub file: &'a str,
    pub escape: char,
    pub build_args: &'a BTreeMap<String, String>,
    /// Names visible to `$NAME`: declared ARGs with a value, then ENVs, as they come.
    pub vars: BTreeMap<String, String>,
    pub declared: Vec<String>,
    pub seen_single: BTreeMap<&'static str, usize>,
    /// An instruction other than ARG (or FROM) was read: FROM may not come any more.
    pub past_from: bool,
    pub out: Nixfile,
    pub warnings: Vec<Warning>,
}

/// One instruction being read.
pub struct Ctx<'a> {
    pub file: &'a str,
    pub node: &'a Node,
    pub example: &'static str,
}

impl Ctx<'_> {
    pub fn err(&self, message: impl Into<String>) -> FileError {
        FileError::at(self.file, self.node.lines, Some(&self.node.keyword), message)
    }

    pub fn required_args(&self) -> Result<&str, FileError> {
        match self.node.args.as_str() {
            "" => Err(self.missing()),
            args => Ok(args),
        }
    }

    /// The instruction has no argument (or only blanks).
    pub fn missing(&self) -> FileError {
        self.err(format!("missing argument; write for example `{}`", self.example))
    }
}

impl Reader<'_> {
    /// Processes `text` (quotes, escapes, variables), noting undefined names.
    pub fn process(&mut self, cx: &Ctx, text: &str) -> Result<Processed, FileError> {
        let processed = lex::process(text, &self.vars, self.escape).map_err(|e| cx.err(e))?;
        for name in processed.undefined.iter().filter(|n| !self.declared.contains(n)) {
            let detail = format!("{} uses ${name}, which no ARG or ENV before it defines", cx.node.keyword);
            self.warnings.push(Warning::new(lint::UNDEFINED_VAR, cx.node.lines, detail));
        }
        Ok(processed)
    }

    /// One value from `text`, blanks kept.
    pub fn text(&mut self, cx: &Ctx, text: &str) -> Result<String, FileError> {
        let value = self.process(cx, text)?.text;
        if value.is_empty() {
            return Err(cx.err(format!(
                "{} expands to nothing; write for example `{}`",
                show(text),
                cx.example
            )));
        }
        Ok(value)
    }
}
