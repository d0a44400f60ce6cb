//! Bytes to instruction nodes: comments, `\` continuations, keywords, line ranges.
//!
//! This phase knows no keyword; it only cuts the file into `KEYWORD rest` nodes, each with the
//! lines it spans, so every later error can point at them.

use super::FileError;

/// One instruction as written: its keyword (upper-cased), its raw arguments, its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Upper-cased, for matching.
    pub keyword: String,
    /// As written, for the casing lint.
    pub original_keyword: String,
    pub args: String,
    /// First and last line (1-based, inclusive).
    pub lines: (usize, usize),
}

/// Cuts `text` into nodes. `file` names the file in errors.
pub fn parse_nodes(file: &str, text: &str) -> Result<Vec<Node>, FileError> {
    let mut nodes = Vec::new();
    let mut pending: Option<(usize, String)> = None; // (first line, text so far)
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim_start();
        if pending.is_none() && line.is_empty() {
            continue;
        }
        // Comment lines are dropped, also in the middle of a continued instruction.
        if line.starts_with('#') {
            continue;
        }
        let trimmed_end = line.trim_end();
        let (content, continues) = match trimmed_end.strip_suffix('\\') {
            Some(head) => (head, true),
            None => (trimmed_end, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((number, String::new()));
        if !joined.is_empty() && !content.is_empty() {
            joined.push(' ');
        }
        joined.push_str(content.trim());
        if continues {
            pending = Some((start, joined));
        } else if !joined.is_empty() {
            nodes.push(split_keyword(joined, (start, number)));
        }
    }
    if let Some((start, joined)) = pending {
        if joined.is_empty() {
            return Err(FileError::at(file, start, None, "the file ends with a `\\` continuation"));
        }
        let end = text.lines().count();
        nodes.push(split_keyword(joined, (start, end)));
    }
    Ok(nodes)
}

fn split_keyword(joined: String, lines: (usize, usize)) -> Node {
    let (keyword, args) = match joined.split_once(char::is_whitespace) {
        Some((k, rest)) => (k, rest.trim()),
        None => (joined.as_str(), ""),
    };
    Node {
        keyword: keyword.to_ascii_uppercase(),
        original_keyword: keyword.to_string(),
        args: args.to_string(),
        lines,
    }
}

/// The value of the `# syntax=` directive, if line 1 carries one.
pub fn syntax_directive(text: &str) -> Option<&str> {
    let first = text.lines().next()?.trim();
    let body = first.strip_prefix('#')?.trim_start();
    let (key, value) = body.split_once('=')?;
    key.trim().eq_ignore_ascii_case("syntax").then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(text: &str) -> Vec<(String, String, (usize, usize))> {
        parse_nodes("Dockerfile", text).unwrap().into_iter().map(|n| (n.keyword, n.args, n.lines)).collect()
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
    fn continuations_join_lines_and_skip_comments_inside() {
        let got = keywords("ENV A=1 \\\n  # inner comment\n  B=2 \\\n  C=3\nEXPOSE 80\n");
        assert_eq!(got[0], ("ENV".into(), "A=1 B=2 C=3".into(), (1, 4)));
        assert_eq!(got[1].2, (5, 5));
    }

    #[test]
    fn a_trailing_continuation_is_kept_to_the_end() {
        let got = keywords("LABEL a=b \\\n");
        assert_eq!(got, vec![("LABEL".into(), "a=b".into(), (1, 1))]);
    }

    #[test]
    fn a_lone_trailing_backslash_is_an_error_with_its_line() {
        let err = parse_nodes("Nixfile", "FLAKE .\n\\\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn the_syntax_directive_is_read_from_line_one() {
        assert_eq!(syntax_directive("# syntax=org/nixfront\nFLAKE ."), Some("org/nixfront"));
        assert_eq!(syntax_directive("#syntax = org/nixfront:1"), Some("org/nixfront:1"));
        assert_eq!(syntax_directive("FLAKE .\n# syntax=x"), None);
    }
}
