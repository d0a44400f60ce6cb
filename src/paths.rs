//! Lexical path cleaning, shared by WORKDIR and `.dockerignore` patterns.

/// `./a//b/../c/` to `a/c`: no empty, `.` or `..` parts, never above the start.
pub fn clean_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::clean_relative;

    #[test]
    fn cleaning() {
        assert_eq!(clean_relative("./a//b/../c/"), "a/c");
        assert_eq!(clean_relative("/../x"), "x");
        assert_eq!(clean_relative("/"), "");
    }
}
