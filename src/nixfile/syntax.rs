//! Bytes to instruction nodes, as BuildKit's Dockerfile parser cuts them: parser directives
//! (`# syntax=`, `# escape=`), comments, `\` continuations, keywords and line ranges.
//!
//! This phase knows no keyword; it only cuts the file into `KEYWORD rest` nodes, each with the
//! lines it spans, so every later error can point at them. It enforces the size limits of
//! [`crate::limits`], so nothing later ever works on unbounded text.

use super::error::{FileError, show};
use crate::limits;
use crate::llb::Lines;

/// One instruction as written: its keyword (upper-cased), its raw arguments, its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Upper-cased, for matching.
    pub keyword: String,
    /// As written, for the casing lint and messages.
    pub original_keyword: String,
    /// Everything after the keyword, continuations joined, outer blanks trimmed.
    pub args: String,
    pub lines: Lines,
}

/// The file cut into nodes, with what its directives set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax {
    pub nodes: Vec<Node>,
    /// The escape character (`# escape=`): `\` unless the file says `` ` ``.
    pub escape: char,
    /// The `# check=` directive's value and its line, if the file has one.
    pub check: Option<(String, usize)>,
}

/// Cuts `text` into nodes. `file` names the file in errors.
pub fn parse_nodes(file: &str, text: &str) -> Result<Syntax, FileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    // A file ending in a newline has no line after it.
    let count = if text.ends_with('\n') { lines.len() - 1 } else { lines.len() };
    let lines = &lines[..count];
    for (i, line) in lines.iter().enumerate() {
        if line.len() > limits::MAX_LINE_BYTES {
            return Err(FileError::at(
                file,
                Lines::one(i + 1),
                None,
                format!(
                    "the line is {} bytes long; nixfront reads lines of up to {} (limit MAX_LINE_BYTES)",
                    line.len(),
                    limits::MAX_LINE_BYTES
                ),
            ));
        }
    }
    let (escape, check) = directives(file, lines)?;
    let mut nodes = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].trim_start();
        i += 1;
        if first.starts_with('#') {
            continue;
        }
        let (content, mut continues) = continuation(first, escape);
        if !continues && content.trim().is_empty() {
            continue;
        }
        let mut joined = content.to_string();
        let mut end = start;
        while continues && i < lines.len() {
            let line = lines[i];
            i += 1;
            end = i;
            let trimmed = line.trim_start();
            // Comment lines and empty lines inside an instruction are skipped, as BuildKit does.
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (content, more) = continuation(line, escape);
            joined.push_str(content);
            continues = more;
            if joined.len() > limits::MAX_INSTRUCTION_BYTES {
                return Err(FileError::at(
                    file,
                    Lines { start, end },
                    None,
                    format!(
                        "the instruction is longer than {} bytes (limit MAX_INSTRUCTION_BYTES)",
                        limits::MAX_INSTRUCTION_BYTES
                    ),
                ));
            }
        }
        if continues && joined.trim().is_empty() {
            return Err(FileError::at(
                file,
                Lines { start, end },
                None,
                "the file ends with a `\\` continuation",
            ));
        }
        if nodes.len() == limits::MAX_INSTRUCTIONS {
            return Err(FileError::at(
                file,
                Lines::one(start),
                None,
                format!(
                    "the file has more than {} instructions (limit MAX_INSTRUCTIONS)",
                    limits::MAX_INSTRUCTIONS
                ),
            ));
        }
        nodes.push(split_keyword(&joined, Lines { start, end }));
    }
    Ok(Syntax { nodes, escape, check })
}

/// The escape character and the `# check=` value (with its line) from the parser directives
/// at the top of the file (`# key=value` lines before anything else).
fn directives(file: &str, lines: &[&str]) -> Result<(char, Option<(String, usize)>), FileError> {
    let mut escape = None;
    let mut check = None;
    for (i, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line) else { break };
        if key.eq_ignore_ascii_case("check") {
            if check.is_some() {
                return Err(FileError::at(
                    file,
                    Lines::one(i + 1),
                    None,
                    "only one `# check=` directive can be used",
                ));
            }
            check = Some((value.to_string(), i + 1));
        }
        if key.eq_ignore_ascii_case("escape") {
            if escape.is_some() {
                return Err(FileError::at(
                    file,
                    Lines::one(i + 1),
                    None,
                    "only one `# escape=` directive can be used",
                ));
            }
            escape = Some(match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(FileError::at(
                        file,
                        Lines::one(i + 1),
                        None,
                        format!("invalid escape character {}: use `\\` or a backtick", show(other)),
                    ));
                }
            });
        }
    }
    Ok((escape.unwrap_or('\\'), check))
}

/// `# key=value` (a parser directive), trimmed.
fn directive(line: &str) -> Option<(&str, &str)> {
    let body = line.trim_start().strip_prefix('#')?.trim_start();
    let (key, value) = body.split_once('=')?;
    let key = key.trim_end();
    let valid =
        key.starts_with(|c: char| c.is_ascii_alphabetic()) && key.chars().all(|c| c.is_ascii_alphanumeric());
    let value = value.trim();
    (valid && !value.is_empty()).then_some((key, value))
}

/// `line` without a continuation escape at its end, and whether it had one. An escape right
/// after another escape is literal.
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    let Some(head) = trimmed.strip_suffix(escape) else { return (line, false) };
    if head.ends_with(escape) {
        return (line, false);
    }
    (head, true)
}

fn split_keyword(joined: &str, lines: Lines) -> Node {
    let trimmed = joined.trim();
    let (keyword, args) = match trimmed.split_once(|c: char| c.is_whitespace()) {
        Some((k, rest)) => (k, rest.trim()),
        None => (trimmed, ""),
    };
    Node {
        keyword: keyword.to_ascii_uppercase(),
        original_keyword: keyword.to_string(),
        args: args.to_string(),
        lines,
    }
}

/// The first line of code (not blank, not a comment), for telling a flake.nix from a Nixfile.
pub fn first_code_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(text: &str) -> Vec<(String, String, (usize, usize))> {
        parse_nodes("Dockerfile", text)
            .unwrap()
            .nodes
            .into_iter()
            .map(|n| (n.keyword, n.args, (n.lines.start, n.lines.end)))
            .collect()
    }

    #[test]
    fn keywords_are_case_insensitive_and_comments_dropped() {
        let got = keywords("# syntax=org/nixfront\n\nflake .#hello\n# note\nCmd [\"x\"]\n");
        assert_eq!(
            got,
            vec![("FLAKE".into(), ".#hello".into(), (3, 3)), ("CMD".into(), "[\"x\"]".into(), (5, 5)),]
        );
    }

    #[test]
    fn continuations_join_lines_as_buildkit_does() {
        // The escape and the blanks after it go; everything else stays, without a separator.
        let got = keywords("ENV A=1 \\\n  # inner comment\n  B=2 \\\n\n  C=3\nEXPOSE 80\n");
        assert_eq!(got[0], ("ENV".into(), "A=1   B=2   C=3".into(), (1, 5)));
        assert_eq!(got[1].2, (6, 6));
        let got = keywords("LABEL a=\"x\\\ny\"\n");
        assert_eq!(got[0].1, "a=\"xy\"");
        // An escaped escape is no continuation.
        let got = keywords("LABEL a=b\\\\\nLABEL c=d\n");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_trailing_continuation_is_kept_to_the_end() {
        let got = keywords("LABEL a=b \\\n");
        assert_eq!(got, vec![("LABEL".into(), "a=b ".trim().into(), (1, 1))]);
    }

    #[test]
    fn a_lone_trailing_backslash_is_an_error_with_its_line() {
        let err = parse_nodes("Nixfile", "FLAKE .\n\\\n").unwrap_err();
        assert_eq!(err.lines.start, 2);
    }

    #[test]
    fn the_escape_directive_changes_the_continuation_character() {
        let s =
            parse_nodes("Dockerfile", "# syntax=org/nixfront\n# escape=`\nENV A=c:\\ `\n  B=1\n").unwrap();
        assert_eq!(s.escape, '`');
        assert_eq!(s.nodes[0].args, "A=c:\\   B=1");
        // Only at the top: later it is a comment.
        let s = parse_nodes("Dockerfile", "FLAKE .\n# escape=`\n").unwrap();
        assert_eq!(s.escape, '\\');
        let e = parse_nodes("Dockerfile", "# escape=x\n").unwrap_err();
        assert!(e.message.contains("invalid escape character"), "{e}");
    }

    #[test]
    fn crlf_and_a_byte_order_mark_are_read_as_plain_lines() {
        let got = keywords("\u{feff}FLAKE .\r\nCMD [\"a\"]\r\n");
        assert_eq!(got[0], ("FLAKE".into(), ".".into(), (1, 1)));
        assert_eq!(got[1].1, "[\"a\"]");
    }

    #[test]
    fn limits_name_themselves() {
        let long = format!("LABEL a={}\n", "x".repeat(limits::MAX_LINE_BYTES));
        let e = parse_nodes("Dockerfile", &long).unwrap_err();
        assert!(e.message.contains("MAX_LINE_BYTES"), "{e}");
        let many = "EXPOSE 80\n".repeat(limits::MAX_INSTRUCTIONS + 1);
        let e = parse_nodes("Dockerfile", &many).unwrap_err();
        assert!(e.message.contains("MAX_INSTRUCTIONS") && e.lines.start == limits::MAX_INSTRUCTIONS + 1);
        let part = format!("{} \\\n", "x".repeat(limits::MAX_LINE_BYTES - 3));
        let joined = format!(
            "LABEL a=b \\\n{}c=d\n",
            part.repeat(limits::MAX_INSTRUCTION_BYTES / limits::MAX_LINE_BYTES + 1)
        );
        let e = parse_nodes("Dockerfile", &joined).unwrap_err();
        assert!(e.message.contains("MAX_INSTRUCTION_BYTES"), "{e}");
    }
}
