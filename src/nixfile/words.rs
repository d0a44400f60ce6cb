//! Splitting instruction arguments into words as Dockerfiles do: whitespace separates,
//! double and single quotes group, a backslash escapes the next character. No variable
//! expansion and nothing is ever run: this is data, not shell.

/// Splits `input` into words, or says what is wrong (an unterminated quote).
pub fn split(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(next) => current.push(next),
                    None => current.push('\\'),
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("a double quote is not closed".to_string()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\' | '$')) => current.push(e),
                            Some(other) => {
                                current.push('\\');
                                current.push(other);
                            }
                            None => return Err("a double quote is not closed".to_string()),
                        },
                        Some(other) => current.push(other),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err("a single quote is not closed".to_string()),
                        Some('\'') => break,
                        Some(other) => current.push(other),
                    }
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn quotes_group_and_backslashes_escape() {
        assert_eq!(split(r#"a="b c" d='e f' g\ h"#).unwrap(), ["a=b c", "d=e f", "g h"]);
        assert_eq!(split(r#"x="say \"hi\"""#).unwrap(), [r#"x=say "hi""#]);
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split(r#"e="""#).unwrap(), ["e="]);
    }

    #[test]
    fn unclosed_quotes_are_errors() {
        assert!(split(r#"a="b"#).is_err());
        assert!(split("a='b").is_err());
    }
}
