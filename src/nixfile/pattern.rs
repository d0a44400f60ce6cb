//! Shell patterns in `${NAME#p}`, `${NAME%p}` and `${NAME/p/r}` (lex.rs): `*`, `?`, `[...]`
//! and escapes, matched as POSIX shells match them; nothing is ever run.

/// A shell pattern: `*`, `?`, `[...]` (with `!` or `^` to negate and `a-z` ranges), and
/// escaped characters that match themselves.
#[derive(Debug, Clone)]
pub(super) struct Pattern(Vec<Token>);

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    Any,
    Star,
    Class { negated: bool, items: Vec<(char, char)> },
}

impl Pattern {
    pub(super) fn parse(text: &str, escape: char) -> Self {
        let chars: Vec<char> = text.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                c if c == escape => {
                    if let Some(&n) = chars.get(i) {
                        tokens.push(Token::Literal(n));
                        i += 1;
                    } else {
                        tokens.push(Token::Literal(c));
                    }
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Any),
                '[' => match class(&chars[i..]) {
                    Some((token, used)) => {
                        tokens.push(token);
                        i += used;
                    }
                    None => tokens.push(Token::Literal('[')),
                },
                c => tokens.push(Token::Literal(c)),
            }
        }
        Pattern(tokens)
    }

    /// Whether the pattern matches all of `text`. Every token but `*` matches one character, so
    /// only the last `*` seen ever needs to take one more character when the rest fails: at
    /// most `tokens x text` steps, whatever the pattern (trying every split at every `*` took
    /// time exponential in their number, which a Nixfile's `${A#*a*a*...}` could ask for).
    pub(super) fn matches(&self, text: &[char]) -> bool {
        let tokens = &self.0;
        let (mut t, mut s) = (0, 0);
        // The token after the last `*` seen, and how much of the text that `*` has taken.
        let mut last_star: Option<(usize, usize)> = None;
        while s < text.len() {
            match tokens.get(t) {
                Some(Token::Star) => {
                    t += 1;
                    last_star = Some((t, s));
                }
                Some(token) if token_matches(token, text[s]) => {
                    t += 1;
                    s += 1;
                }
                _ => match last_star {
                    Some((after, taken)) => {
                        t = after;
                        s = taken + 1;
                        last_star = Some((after, taken + 1));
                    }
                    None => return false,
                },
            }
        }
        tokens[t..].iter().all(|token| matches!(token, Token::Star))
    }
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::Any => true,
        Token::Star => true,
        Token::Class { negated, items } => items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
    }
}

/// `[...]` after its `[`: the token and how many characters it used, or `None` when it is
/// not closed (then `[` is literal).
fn class(chars: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(chars.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Token::Class { negated, items }, i + 1));
        }
        first = false;
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&h| h != ']') {
            items.push((c, chars[i + 2]));
            i += 3;
        } else {
            items.push((c, c));
            i += 1;
        }
    }
    None
}

pub(super) fn trim_prefix(pattern: &Pattern, value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut lengths: Vec<usize> = (0..=chars.len()).collect();
    if greedy {
        lengths.reverse();
    }
    match lengths.into_iter().find(|&n| pattern.matches(&chars[..n])) {
        Some(n) => chars[n..].iter().collect(),
        None => value.to_string(),
    }
}

pub(super) fn trim_suffix(pattern: &Pattern, value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut starts: Vec<usize> = (0..=chars.len()).rev().collect();
    if greedy {
        starts.reverse();
    }
    match starts.into_iter().find(|&s| pattern.matches(&chars[s..])) {
        Some(s) => chars[..s].iter().collect(),
        None => value.to_string(),
    }
}

/// `${NAME/p/r}` (first match) and `${NAME//p/r}` (every match): leftmost, longest matches,
/// as a greedy regular expression finds them. An empty pattern replaces nothing.
pub(super) fn replace(pattern: &Pattern, value: &str, replacement: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i <= chars.len() {
        let found = if pattern.0.is_empty() || (replaced && !all) {
            None
        } else {
            (i..=chars.len()).rev().find(|&end| end > i && pattern.matches(&chars[i..end]))
        };
        match found {
            Some(end) => {
                out.push_str(replacement);
                i = end;
                replaced = true;
            }
            None => {
                if let Some(c) = chars.get(i) {
                    out.push(*c);
                }
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many `*`s against a long text: one pass per `*` taken back, never a try of every split
    /// (which never finished on this pattern, a case the fuzzer found).
    #[test]
    fn many_stars_take_polynomial_time() {
        let pattern = Pattern::parse(&"*a".repeat(40), '\\');
        let text: Vec<char> = "a".repeat(39).chars().chain("b".repeat(2000).chars()).collect();
        assert!(!pattern.matches(&text));
        let text: Vec<char> = "ab".repeat(1000).chars().chain("a".chars()).collect();
        assert!(pattern.matches(&text));
    }

    #[test]
    fn patterns_match_like_shell_globs() {
        let m = |p: &str, t: &str| Pattern::parse(p, '\\').matches(&t.chars().collect::<Vec<_>>());
        assert!(m("*", ""));
        assert!(m("a?c", "abc"));
        assert!(m("[!x]b", "ab"));
        assert!(!m("[!a]b", "ab"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("[", "["));
        assert!(m("[]]", "]"));
    }
}
