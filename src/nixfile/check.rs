//! Which lint rules a build checks, as BuildKit's Dockerfile frontend reads it: the
//! `# check=skip=<rules>|all;error=true|false` parser directive, or the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg in the same format, which wins over the directive.
//! Skipped rules are not reported; with `error=true` a reported warning fails the build.

use super::lint::{RULES, Warning};

/// The build arg that overrides the `# check=` directive.
pub const BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// What to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Every rule is skipped (`skip=all`).
    pub skip_all: bool,
    /// The rules skipped by name.
    pub skip: Vec<String>,
    /// A reported warning fails the build.
    pub error: bool,
}

impl CheckConfig {
    /// `skip=A,B;error=true`; unknown keys, rules and values are errors.
    pub fn parse(text: &str) -> Result<CheckConfig, String> {
        let mut config = CheckConfig::default();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').map(|(k, v)| (k.trim(), v.trim())).ok_or_else(|| {
                format!("`{part}` is not key=value; write for example skip=UndefinedVar;error=true")
            })?;
            match key.to_ascii_lowercase().as_str() {
                "skip" => {
                    for rule in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                        if rule.eq_ignore_ascii_case("all") {
                            config.skip_all = true;
                        } else if let Some(known) = RULES.iter().find(|r| r.name.eq_ignore_ascii_case(rule)) {
                            config.skip.push(known.name.to_string());
                        } else {
                            let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
                            return Err(format!("unknown rule `{rule}`; the rules are {}", names.join(", ")));
                        }
                    }
                }
                "error" => {
                    config.error = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("error={value} is neither true nor false")),
                    }
                }
                _ => return Err(format!("unknown key `{key}`; the keys are skip and error")),
            }
        }
        Ok(config)
    }

    /// Whether a warning of this rule is reported.
    pub fn reports(&self, warning: &Warning) -> bool {
        !self.skip_all && !self.skip.iter().any(|s| s == warning.rule.name)
    }

    /// `warnings` without the skipped ones.
    pub fn filter(&self, warnings: Vec<Warning>) -> Vec<Warning> {
        warnings.into_iter().filter(|w| self.reports(w)).collect()
    }

    /// With `error=true`, the message a build fails with for the first of `warnings`.
    pub fn failure(&self, warnings: &[Warning]) -> Option<(Warning, String)> {
        let first = warnings.first().filter(|_| self.error)?;
        let more = match warnings.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let message = format!(
            "lint rule {} failed: {}{more}; the file's `# check=` (or BUILDKIT_DOCKERFILE_CHECK) has \
             error=true. {}",
            first.rule.name,
            first.detail,
            first.rule.explanation()
        );
        Some((first.clone(), message))
    }
}

#[cfg(test)]
mod tests {
    use super::super::Lines;
    use super::super::lint::{NO_CA_CERTIFICATES, UNDEFINED_VAR};
    use super::*;

    #[test]
    fn skip_and_error_read_as_the_dockerfile_frontend_reads_them() {
        let c = CheckConfig::parse("skip=UndefinedVar, nocacertificates;error=true").unwrap();
        assert_eq!(c.skip, ["UndefinedVar", "NoCaCertificates"]);
        assert!(c.error && !c.skip_all);
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        assert_eq!(CheckConfig::parse("").unwrap(), CheckConfig::default());
        for (bad, why) in [
            ("skip=NoSuchRule", "unknown rule `NoSuchRule`"),
            ("error=yes", "neither true nor false"),
            ("warn=true", "unknown key `warn`"),
            ("skip", "not key=value"),
        ] {
            let e = CheckConfig::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn skipped_rules_are_not_reported_and_error_fails_on_the_rest() {
        let warnings = vec![
            Warning::new(UNDEFINED_VAR, Lines::one(2), "x"),
            Warning::new(NO_CA_CERTIFICATES, Lines::one(3), "y"),
        ];
        let c = CheckConfig::parse("skip=UndefinedVar;error=true").unwrap();
        let kept = c.filter(warnings.clone());
        assert_eq!(kept.len(), 1);
        let (first, message) = c.failure(&kept).unwrap();
        assert_eq!(first.lines, Lines::one(3));
        assert!(
            message.contains("NoCaCertificates failed: y") && message.contains("error=true"),
            "{message}"
        );
        assert!(CheckConfig::default().failure(&warnings).is_none());
        assert!(CheckConfig::parse("skip=all").unwrap().filter(warnings).is_empty());
    }
}
