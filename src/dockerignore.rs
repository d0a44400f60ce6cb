//! `.dockerignore` files to the exclude patterns of the context transfer, as Docker reads
//! them: one pattern a line, `#` comments, `!` re-includes, paths cleaned and made relative.
//! The matching itself is BuildKit's (`local.excludepatterns`).

/// The patterns of a `.dockerignore` file, in order.
pub fn patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let (negated, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = crate::paths::clean_relative(pattern); // a leading `/` is the context's root
            if cleaned.is_empty() {
                return None;
            }
            Some(if negated { format!("!{cleaned}") } else { cleaned })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::patterns;

    #[test]
    fn patterns_are_cleaned_like_docker_reads_them() {
        let text = "# comment\n\n/secret.txt\n./build//out/\n*.log\n!keep.log\n  target  \n../up\n/\n";
        assert_eq!(patterns(text), ["secret.txt", "build/out", "*.log", "!keep.log", "target", "up"]);
    }
}
