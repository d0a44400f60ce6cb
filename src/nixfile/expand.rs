//! `$NAME`, `${NAME}`, `${NAME:-word}` and `${NAME:+word}` in instruction arguments, as
//! Dockerfiles expand build args. `\$` is a literal dollar; single quotes do not expand.
//! Undefined names expand to nothing. Nothing is ever run: this is text substitution.

use std::collections::BTreeMap;

/// Expands `input` with `vars`; an error names what is malformed.
#[cfg(test)]
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    expand_noting_undefined(input, vars, &mut Vec::new())
}

/// Expands `input` with `vars`, adding to `undefined` every name used without a default
/// that `vars` lacks.
pub fn expand_noting_undefined(
    input: &str,
    vars: &BTreeMap<String, String>,
    undefined: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    let mut in_single = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_single = !in_single;
                out.push(c);
            }
            '\\' if !in_single => match chars.peek() {
                Some('$') => {
                    chars.next();
                    out.push_str("\\$");
                }
                _ => out.push('\\'),
            },
            '$' if !in_single => match chars.peek() {
                Some('{') => {
                    chars.next();
                    let mut body = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(ch) => body.push(ch),
                            None => return Err(format!("`${{{body}` is not closed with `}}`")),
                        }
                    }
                    out.push_str(&braced(&body, vars, undefined)?);
                }
                Some(&ch) if ch == '_' || ch.is_ascii_alphabetic() => {
                    let mut name = String::new();
                    while let Some(&ch) = chars.peek() {
                        if ch == '_' || ch.is_ascii_alphanumeric() {
                            name.push(ch);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    match vars.get(&name) {
                        Some(value) => out.push_str(value),
                        None => undefined.push(name),
                    }
                }
                _ => out.push('$'),
            },
            other => out.push(other),
        }
    }
    Ok(out)
}

fn braced(
    body: &str,
    vars: &BTreeMap<String, String>,
    undefined: &mut Vec<String>,
) -> Result<String, String> {
    let name_end = body.find(|c: char| !(c == '_' || c.is_ascii_alphanumeric())).unwrap_or(body.len());
    let (name, rest) = body.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("`${{{body}}}` does not start with a variable name"));
    }
    let value = vars.get(name).filter(|v| !v.is_empty());
    match rest {
        "" => Ok(vars.get(name).cloned().unwrap_or_else(|| {
            undefined.push(name.to_string());
            String::new()
        })),
        _ if rest.starts_with(":-") => Ok(value.cloned().unwrap_or_else(|| rest[2..].to_string())),
        _ if rest.starts_with(":+") => Ok(value.map(|_| rest[2..].to_string()).unwrap_or_default()),
        _ => {
            Err(format!("`${{{body}}}`: only ${{NAME}}, ${{NAME:-default}} and ${{NAME:+alt}} are supported"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("APP", "hello"), ("EMPTY", ""), ("V", "1.2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn forms_expand_like_dockerfiles() {
        let cases = [
            ("$APP", "hello"),
            (".#${APP}", ".#hello"),
            ("${APP}-$V.x", "hello-1.2.x"),
            ("${MISSING:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${APP:-fallback}", "hello"),
            ("${APP:+set}", "set"),
            ("${MISSING:+set}", ""),
            ("$MISSING|", "|"),
            ("cost: $5", "cost: $5"),
            ("\\$APP", "\\$APP"),
            ("'$APP' $APP", "'$APP' hello"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &vars()).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn undefined_names_are_noted_unless_defaulted() {
        let mut undefined = Vec::new();
        expand_noting_undefined("$NOPE ${ALSO} ${DEF:-x} $APP", &vars(), &mut undefined).unwrap();
        assert_eq!(undefined, ["NOPE", "ALSO"]);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(expand("${APP", &vars()).unwrap_err().contains("not closed"));
        assert!(expand("${1X}", &vars()).unwrap_err().contains("variable name"));
        assert!(expand("${APP/a/b}", &vars()).unwrap_err().contains("only ${NAME}"));
    }
}
