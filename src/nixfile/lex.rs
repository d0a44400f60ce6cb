//! Words, quotes, escapes and `$NAME` expansion, as BuildKit's Dockerfile frontend reads them
//! (`frontend/dockerfile/parser.parseWords` and `shell.Lex`).
//!
//! Two stages, as there: [`raw_words`] cuts an instruction's arguments at unquoted blanks and
//! keeps quotes and escapes in the words; [`process`] then removes quotes, applies escapes and
//! expands variables in one pass, either keeping the text whole ([`Processed::text`]) or
//! splitting it into words ([`Processed::words`]). Single quotes keep everything literal,
//! double quotes keep everything but `$` and the escapes of `"`, `$` and the escape character.
//! Supported forms: `$NAME`, `${NAME}`, `${NAME:-w}`, `${NAME-w}`, `${NAME:+w}`, `${NAME+w}`,
//! `${NAME:?msg}`, `${NAME?msg}`, `${NAME#p}`, `${NAME##p}`, `${NAME%p}`, `${NAME%%p}`,
//! `${NAME/p/r}` and `${NAME//p/r}` with shell patterns. Nothing is ever run: this is text.

use std::collections::BTreeMap;

use super::pattern::{Pattern, replace, trim_prefix, trim_suffix};

/// What [`process`] made of a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    /// The whole text, quotes removed and variables expanded, blanks kept.
    pub text: String,
    /// The same cut at unquoted blanks (blanks from an unquoted expansion cut too).
    pub words: Vec<String>,
    /// Names used without a value and without a default, in order of use.
    pub undefined: Vec<String>,
}

/// Splits `rest` at unquoted blanks, keeping quotes and escapes inside the words.
pub fn raw_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false; // a quoted empty string is still a word
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    // An escape at the very end is dropped.
                    if let Some(next) = chars.next() {
                        word.push(c);
                        word.push(next);
                    }
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    match chars.next() {
                        Some(next) => {
                            word.push(c);
                            word.push(next);
                        }
                        None => quote = None,
                    }
                    continue;
                }
                word.push(c);
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Removes quotes, applies escapes and expands `vars` in `text`. An error says what is
/// malformed (an unclosed quote or `${`, a bad modifier, a `${NAME?msg}` whose NAME is unset).
pub fn process(text: &str, vars: &BTreeMap<String, String>, escape: char) -> Result<Processed, String> {
    let mut lexer = Lexer { chars: text.chars().collect(), pos: 0, vars, escape, undefined: Vec::new() };
    let (text, words) = lexer.until(None, false)?;
    Ok(Processed { text, words, undefined: lexer.undefined })
}

/// `$1`, `$@`, `$#` and the like: shell parameters, which expand to nothing here.
const SHELL_PARAMETERS: &str = "@*#?-$!0";

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    vars: &'a BTreeMap<String, String>,
    escape: char,
    undefined: Vec<String>,
}

/// Words being cut: blanks from unquoted text split, quoted text never does.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    current: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.current.is_empty() {
                self.words.push(std::mem::take(&mut self.current));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.current.push(c);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.current.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.current.is_empty() {
            self.words.push(self.current);
        }
        self.words
    }
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes up to `stop` (consumed) or the end. `raw_escapes` keeps escape characters
    /// (for patterns, where they still mean something).
    fn until(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match c {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_str(&value);
                }
                '\'' => {
                    let value = self.single_quoted()?;
                    result.push_str(&value);
                    words.add_raw_str(&value);
                }
                '"' => {
                    let value = self.double_quoted()?;
                    result.push_str(&value);
                    words.add_raw_str(&value);
                }
                c if c == self.escape => {
                    self.pos += 1;
                    if raw_escapes {
                        result.push(c);
                        words.add_raw_char(c);
                    }
                    let Some(next) = self.next() else { break };
                    result.push(next);
                    words.add_raw_char(next);
                }
                c => {
                    self.pos += 1;
                    result.push(c);
                    words.add_char(c);
                }
            }
        }
        match stop {
            Some(s) => Err(format!("no matching `{s}` before the end")),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err("a single quote is not closed".to_string()),
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("a double quote is not closed".to_string()),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                out.push(n);
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// A variable name: letters, digits and `_`, or a shell parameter (`1`, `@`, `#`, ...).
    fn name(&mut self) -> String {
        let mut name = String::new();
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                name.push(d);
                self.pos += 1;
            }
            return name;
        }
        if let Some(c) = self.peek().filter(|c| SHELL_PARAMETERS.contains(*c)) {
            self.pos += 1;
            return c.to_string();
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn note_undefined(&mut self, name: &str) {
        // Shell parameters ($1, $@) are never set in a Dockerfile; only names can be typos.
        let a_name = name.starts_with(|c: char| c.is_alphabetic() || c == '_');
        if a_name && !self.undefined.iter().any(|n| n == name) {
            self.undefined.push(name.to_string());
        }
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.lookup(&name).unwrap_or_else(|| {
                self.note_undefined(&name);
                String::new()
            }));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("`${` is not closed with `}`".to_string()),
            Some('{' | '}' | ':') => return Err("bad substitution: `${` needs a variable name".to_string()),
            _ => {}
        }
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: `${` needs a variable name".to_string());
        }
        let Some(modifier) = self.next() else {
            return Err(format!("`${{{name}` is not closed with `}}`"));
        };
        let value = self.lookup(&name);
        match modifier {
            '}' => Ok(value.unwrap_or_else(|| {
                self.note_undefined(&name);
                String::new()
            })),
            ':' | '-' | '+' | '?' | '#' | '%' => {
                let null_is_unset = modifier == ':';
                let op = if null_is_unset {
                    self.next().ok_or_else(|| format!("`${{{name}:` is not closed with `}}`"))?
                } else {
                    modifier
                };
                let raw = op == '#' || op == '%';
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier `:{op}` in `${{{name}...}}`"));
                }
                if !matches!(op, '-' | '+' | '?' | '#' | '%') {
                    return Err(format!("unsupported modifier `:{op}` in `${{{name}...}}`"));
                }
                let (word, _) =
                    self.until(Some('}'), raw).map_err(|_| format!("`${{{name}` is not closed with `}}`"))?;
                let unset = value.is_none() || (null_is_unset && value.as_deref() == Some(""));
                match op {
                    '-' => Ok(if unset { word } else { value.unwrap_or_default() }),
                    '+' => Ok(if unset { String::new() } else { word }),
                    '?' => {
                        if value.is_none() || unset {
                            let why = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_string()
                            } else {
                                "is not allowed to be empty".to_string()
                            };
                            return Err(format!("{name}: {why}"));
                        }
                        Ok(value.unwrap_or_default())
                    }
                    _ => {
                        let value = value.unwrap_or_default();
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(p) => (true, p.to_string()),
                            None => (false, word),
                        };
                        let pattern = Pattern::parse(&pattern, self.escape);
                        Ok(if op == '#' {
                            trim_prefix(&pattern, &value, greedy)
                        } else {
                            trim_suffix(&pattern, &value, greedy)
                        })
                    }
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pattern, _) =
                    self.until(Some('/'), true).map_err(|_| format!("`${{{name}/` needs a second `/`"))?;
                let (replacement, _) = self
                    .until(Some('}'), true)
                    .map_err(|_| format!("`${{{name}/` is not closed with `}}`"))?;
                let value = value.unwrap_or_default();
                Ok(replace(&Pattern::parse(&pattern, self.escape), &value, &replacement, all))
            }
            other => Err(format!("unsupported modifier `{other}` in `${{{name}...}}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("APP", "hello"), ("EMPTY", ""), ("V", "1.2"), ("PATH_", "/usr/local/bin"), ("SPACED", "a b")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn text(input: &str) -> String {
        process(input, &vars(), '\\').unwrap().text
    }

    fn words(input: &str) -> Vec<String> {
        process(input, &vars(), '\\').unwrap().words
    }

    #[test]
    fn raw_words_keep_quotes_and_escapes() {
        assert_eq!(raw_words(r#"a="b c" d='e f' g\ h"#, '\\'), [r#"a="b c""#, "d='e f'", r"g\ h"]);
        assert_eq!(raw_words(r#"x="" y"#, '\\'), [r#"x="""#, "y"]);
        assert_eq!(raw_words("  ", '\\'), Vec::<String>::new());
        assert_eq!(raw_words("a\\", '\\'), ["a"]);
        assert_eq!(raw_words("a `\"b c`\" d", '`'), ["a", "`\"b", "c`\"", "d"]);
    }

    #[test]
    fn forms_expand_like_dockerfiles() {
        let cases = [
            ("$APP", "hello"),
            (".#${APP}", ".#hello"),
            ("${APP}-$V.x", "hello-1.2.x"),
            ("${MISSING:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY-fallback}", ""),
            ("${MISSING-fallback}", "fallback"),
            ("${APP:-fallback}", "hello"),
            ("${APP:+set}", "set"),
            ("${EMPTY+set}", "set"),
            ("${EMPTY:+set}", ""),
            ("${MISSING:+set}", ""),
            ("$MISSING|", "|"),
            ("cost: $5", "cost: "),
            ("cost: $", "cost: $"),
            ("a$-b", "ab"),
            ("\\$APP", "$APP"),
            ("'$APP' $APP", "$APP hello"),
            (r#""it's $APP""#, "it's hello"),
            (r#""say \"$APP\"""#, r#"say "hello""#),
            (r#""a\b""#, r"a\b"),
            ("${V%.*}", "1"),
            ("${PATH_#*/}", "usr/local/bin"),
            ("${PATH_##*/}", "bin"),
            ("${PATH_%/*}", "/usr/local"),
            ("${PATH_%%/l*}", "/usr"),
            ("${APP/l/L}", "heLlo"),
            ("${APP//l/L}", "heLLo"),
            ("${APP//[a-h]/_}", "__llo"),
            ("${APP/#/x}", "hello"),
            ("${MISSING:-$APP}", "hello"),
            ("${MISSING:-\"q u\"}", "q u"),
        ];
        for (input, want) in cases {
            assert_eq!(text(input), want, "{input}");
        }
    }

    #[test]
    fn words_split_at_unquoted_blanks_only() {
        assert_eq!(words(r#"a "b c" 'd e'"#), ["a", "b c", "d e"]);
        assert_eq!(words("$SPACED"), ["a", "b"]);
        assert_eq!(words("\"$SPACED\""), ["a b"]);
        assert_eq!(words("$EMPTY"), Vec::<String>::new());
        assert_eq!(words("x\\ y"), ["x y"]);
    }

    #[test]
    fn undefined_names_are_noted_unless_defaulted() {
        let p = process("$NOPE ${ALSO} ${DEF:-x} $APP $NOPE", &vars(), '\\').unwrap();
        assert_eq!(p.undefined, ["NOPE", "ALSO"]);
    }

    #[test]
    fn malformed_text_is_an_error() {
        let e = |s: &str| process(s, &vars(), '\\').unwrap_err();
        assert!(e("${APP").contains("not closed"), "{}", e("${APP"));
        assert!(e("${}").contains("variable name"));
        assert!(e("${:x}").contains("variable name"));
        assert!(e("${APP:x}").contains("unsupported modifier"));
        assert!(e("${APP:#x}").contains("unsupported modifier"));
        assert!(e("\"open").contains("double quote"));
        assert!(e("'open").contains("single quote"));
        assert_eq!(e("${MISSING?}"), "MISSING: is not allowed to be unset");
        assert_eq!(e("${EMPTY:?set it}"), "EMPTY: set it");
        assert!(process("${APP?x}", &vars(), '\\').is_ok());
    }

    #[test]
    fn the_escape_character_can_be_a_backtick() {
        let p = process("a`$APP \"q`\"\" c:\\d", &vars(), '`').unwrap();
        assert_eq!(p.text, "a$APP q\" c:\\d");
    }
}
