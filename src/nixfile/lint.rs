//! Lint rules: data, with a section each in docs/lint.md. A warning marks something legal
//! but likely wrong, with the line it is on; warnings stop a build only when the file asks
//! for it (`# check=error=true`, check.rs).

use super::syntax::Node;
use crate::llb::Lines;

/// A lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub description: &'static str,
}

pub const REPEATED_INSTRUCTION: Rule = Rule {
    name: "RepeatedInstruction",
    description: "An instruction that sets one value is given more than once; only the last counts",
};
pub const LEGACY_KEY_VALUE: Rule =
    Rule { name: "LegacyKeyValueFormat", description: "`ENV key value` is ambiguous; write `ENV key=value`" };
pub const INCONSISTENT_CASING: Rule = Rule {
    name: "ConsistentInstructionCasing",
    description: "Instructions should be all upper case or all lower case",
};
pub const UNDEFINED_VAR: Rule = Rule {
    name: "UndefinedVar",
    description: "A variable is used that no ARG or ENV defines before it; it expands to nothing",
};
pub const UNPINNED_FLAKE: Rule = Rule {
    name: "UnpinnedFlakeReference",
    description: "A remote flake reference names no revision, so the image can change without the file changing",
};

/// Found while building, at the FLAKE line: about the flake rather than the file.
pub const UNLOCKED_FLAKE: Rule = Rule {
    name: "FlakeNotLocked",
    description: "The flake has no flake.lock, or an input in it has no content hash: Nix fetches it anew in every build",
};
pub const FLAKE_CONFIG_REFUSED: Rule = Rule {
    name: "FlakeConfigRefused",
    description: "A setting of the flake's nixConfig is not applied: it could reach other builds",
};

/// Found while building, at the FLAKE line: the image has no CA bundle and no base image.
pub const NO_CA_CERTIFICATES: Rule = Rule {
    name: "NoCaCertificates",
    description: "The image has no CA certificates, so HTTPS calls fail; add nixpkgs' cacert to FLAKE",
};

/// docs/lint.md, whose sections explain the rules (a test checks there is one per rule).
const DOCS: &str = include_str!("../../docs/lint.md");

impl Rule {
    /// The rule's section of docs/lint.md as one paragraph (what is wrong, what to do), for
    /// the warning's detail; the short description when the docs lack one.
    pub fn explanation(&self) -> String {
        let heading = format!("## {}\n", self.name);
        let Some(start) = DOCS.find(&heading) else { return self.description.to_string() };
        let body = &DOCS[start + heading.len()..];
        let body = body.split("\n## ").next().unwrap_or(body);
        body.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Every lint rule, for documentation and the lint subrequest.
pub const RULES: &[Rule] = &[
    REPEATED_INSTRUCTION,
    LEGACY_KEY_VALUE,
    INCONSISTENT_CASING,
    UNDEFINED_VAR,
    UNPINNED_FLAKE,
    UNLOCKED_FLAKE,
    FLAKE_CONFIG_REFUSED,
    NO_CA_CERTIFICATES,
];

/// A finding: the rule, where, and what exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub rule: Rule,
    pub lines: Lines,
    pub detail: String,
}

impl Warning {
    pub fn new(rule: Rule, lines: Lines, detail: impl Into<String>) -> Self {
        Warning { rule, lines, detail: detail.into() }
    }
}

/// A remote reference (`github:`, `git+https:`, ...) without `rev=` or a commit in its path.
pub fn is_unpinned(reference: &str) -> bool {
    let base = reference.split('#').next().unwrap_or(reference);
    let remote = ["github:", "gitlab:", "sourcehut:", "git+", "http:", "https:", "tarball+", "flake:"];
    if !remote.iter().any(|p| base.starts_with(p)) {
        return false;
    }
    let has_rev = base.contains("rev=");
    // github:owner/repo/<40-hex commit>
    let commit_in_path = base.rsplit('/').next().is_some_and(|last| {
        let last = last.split('?').next().unwrap_or(last);
        last.len() == 40 && last.bytes().all(|b| b.is_ascii_hexdigit())
    });
    !has_rev && !commit_in_path
}

/// One warning when keywords mix upper and lower case, at the first that differs from the
/// majority.
pub fn casing(nodes: &[Node]) -> Option<Warning> {
    let cases: Vec<(bool, Lines)> =
        nodes.iter().filter_map(|n| original_case_is_upper(n).map(|upper| (upper, n.lines))).collect();
    let uppers = cases.iter().filter(|(u, _)| *u).count();
    let majority_upper = uppers * 2 >= cases.len();
    let (_, lines) = cases.iter().find(|(u, _)| *u != majority_upper)?;
    let want = if majority_upper { "upper" } else { "lower" };
    Some(Warning::new(
        INCONSISTENT_CASING,
        *lines,
        format!("most instructions are {want} case; write this one the same way"),
    ))
}

fn original_case_is_upper(node: &Node) -> Option<bool> {
    let word = node.original_keyword.as_str();
    if word.chars().all(|c| !c.is_ascii_lowercase()) {
        Some(true)
    } else if word.chars().all(|c| !c.is_ascii_uppercase()) {
        Some(false)
    } else {
        None // mixed within one word: counts as neither
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lint_rule_has_a_doc_section() {
        let doc = include_str!("../../docs/lint.md");
        for rule in RULES {
            assert!(doc.contains(&format!("## {}\n", rule.name)), "docs/lint.md lacks ## {}", rule.name);
        }
    }

    #[test]
    fn pinned_references_are_recognised() {
        assert!(is_unpinned("github:o/r#x"));
        assert!(!is_unpinned("github:o/r/0123456789abcdef0123456789abcdef01234567#x"));
        assert!(!is_unpinned("github:o/r?rev=abc#x"));
        assert!(!is_unpinned(".#x"));
    }
}
