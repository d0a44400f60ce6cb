//! `HEALTHCHECK`: as a Dockerfile has it, in exec form only (the image has no shell), or
//! `HEALTHCHECK NONE`; its flags (`--interval`, `--timeout`, `--start-period`,
//! `--start-interval`: Go durations such as `30s` or `1m30s`; `--retries`) become the image
//! config's `Healthcheck`, whose durations are nanoseconds.

use std::time::Duration;

/// A parsed HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: turns off a base image's check.
    None,
    Check {
        /// The command, as written (its program is resolved in the package's `bin/` when
        /// the config is made, as ENTRYPOINT's is).
        command: Vec<String>,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// The flags, in the order a Dockerfile documents them.
const FLAGS: &[&str] = &["interval", "timeout", "start-period", "start-interval", "retries"];

/// `args` (after the keyword) as a health check; `exec_form` reads the JSON array after `CMD`.
pub fn parse(
    words: &[String],
    rest_after_cmd: Option<&str>,
    exec_form: impl FnOnce(&str) -> Result<Vec<String>, String>,
) -> Result<Healthcheck, String> {
    let mut flags: Vec<(&str, &str)> = Vec::new();
    let mut i = 0;
    while let Some(word) = words.get(i).filter(|w| w.starts_with("--")) {
        let (name, value) = word[2..]
            .split_once('=')
            .ok_or_else(|| format!("`{word}` has no value; write for example --interval=30s"))?;
        let Some(flag) = FLAGS.iter().find(|f| **f == name) else {
            return Err(format!("unknown flag --{name}; HEALTHCHECK takes --{}", FLAGS.join(", --")));
        };
        if flags.iter().any(|(f, _)| f == flag) {
            return Err(format!("--{name} is given twice"));
        }
        flags.push((flag, value));
        i += 1;
    }
    match words.get(i).map(|w| w.to_ascii_uppercase()).as_deref() {
        Some("NONE") if words.len() == i + 1 => {
            if let Some((flag, _)) = flags.first() {
                return Err(format!("HEALTHCHECK NONE takes no flags (--{flag})"));
            }
            Ok(Healthcheck::None)
        }
        Some("CMD") => {
            let rest = rest_after_cmd.unwrap_or("").trim();
            if rest.is_empty() {
                return Err(
                    "CMD names no command; write for example HEALTHCHECK CMD [\"app\", \"--check\"]".into()
                );
            }
            if !rest.starts_with('[') {
                return Err(format!(
                    "shell form is not possible: the image has no shell to run `{rest}`; write the exec \
                     form, HEALTHCHECK CMD [\"app\", \"--check\"]"
                ));
            }
            let command = exec_form(rest)?;
            let duration =
                |name: &str| flags.iter().find(|(f, _)| *f == name).map(|(_, v)| go_duration(name, v));
            let retries = match flags.iter().find(|(f, _)| *f == "retries") {
                Some((_, v)) => Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--retries={v} is not a whole number above 0"))?,
                ),
                None => None,
            };
            Ok(Healthcheck::Check {
                command,
                interval: duration("interval").transpose()?,
                timeout: duration("timeout").transpose()?,
                start_period: duration("start-period").transpose()?,
                start_interval: duration("start-interval").transpose()?,
                retries,
            })
        }
        _ => {
            Err("write HEALTHCHECK [--interval=30s ...] CMD [\"app\", \"--check\"], or HEALTHCHECK NONE"
                .into())
        }
    }
}

/// A Go duration (`300ms`, `30s`, `1m30s`, `1h`, `1.5s`): a sequence of decimal numbers
/// with units ns, us (or µs), ms, s, m, h; above 0.
fn go_duration(flag: &str, text: &str) -> Result<Duration, String> {
    let bad = || format!("--{flag}={text} is not a duration such as 30s, 1m30s or 500ms");
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        let value: f64 = number.parse().map_err(|_| bad())?;
        let nanos = value * nanos_per;
        if !nanos.is_finite() || nanos > 1e18 {
            return Err(bad());
        }
        total += Duration::from_nanos(nanos.round() as u64);
        rest = after;
    }
    if total.is_zero() {
        return Err(format!("--{flag}={text} must be above 0"));
    }
    Ok(total)
}

impl Healthcheck {
    /// The image config's `Healthcheck`, with `command` (the resolved one) for a check.
    pub fn to_config(&self, command: &[String]) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        match self {
            Healthcheck::None => json!({ "Test": ["NONE"] }),
            Healthcheck::Check { interval, timeout, start_period, start_interval, retries, .. } => {
                let mut test = vec!["CMD".to_string()];
                test.extend(command.iter().cloned());
                let mut config = Map::new();
                config.insert("Test".into(), json!(test));
                for (name, value) in [
                    ("Interval", interval),
                    ("Timeout", timeout),
                    ("StartPeriod", start_period),
                    ("StartInterval", start_interval),
                ] {
                    if let Some(d) = value {
                        config.insert(name.into(), json!(d.as_nanos() as u64));
                    }
                }
                if let Some(r) = retries {
                    config.insert("Retries".into(), json!(r));
                }
                Value::Object(config)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn parse_line(text: &str) -> Result<Healthcheck, String> {
        let rest = text.find("CMD").map(|i| &text[i + 3..]);
        parse(&words(text), rest, |json| serde_json::from_str(json).map_err(|e| e.to_string()))
    }

    #[test]
    fn exec_form_with_flags_becomes_the_config() {
        let check =
            parse_line("--interval=1m30s --timeout=500ms --retries=3 CMD [\"app\", \"--check\"]").unwrap();
        let config = check.to_config(&["/nix/store/x-app/bin/app".into(), "--check".into()]);
        assert_eq!(
            config,
            serde_json::json!({
                "Test": ["CMD", "/nix/store/x-app/bin/app", "--check"],
                "Interval": 90_000_000_000u64,
                "Timeout": 500_000_000u64,
                "Retries": 3,
            })
        );
        assert_eq!(parse_line("none").unwrap(), Healthcheck::None);
        assert_eq!(Healthcheck::None.to_config(&[]), serde_json::json!({ "Test": ["NONE"] }));
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        for (text, nanos) in
            [("30s", 30e9), ("1m30s", 90e9), ("1.5s", 1.5e9), ("1h", 3600e9), ("250us", 250e3)]
        {
            assert_eq!(go_duration("interval", text).unwrap().as_nanos(), nanos as u128, "{text}");
        }
        for bad in ["", "30", "s", "1x", "0s", "1.2.3s", "-1s"] {
            assert!(go_duration("interval", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (text, why) in [
            ("CMD app --check", "shell form is not possible"),
            ("CMD", "names no command"),
            ("--interval CMD [\"a\"]", "has no value"),
            ("--every=1s CMD [\"a\"]", "unknown flag --every"),
            ("--retries=0 CMD [\"a\"]", "above 0"),
            ("--timeout=1s --timeout=2s CMD [\"a\"]", "twice"),
            ("--timeout=1s NONE", "takes no flags"),
            ("app", "write HEALTHCHECK"),
        ] {
            let e = parse_line(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
