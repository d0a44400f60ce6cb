//! A flake's `flake.nix` read without evaluating it: its `nixConfig`, as Nix would give it to
//! `builtins.toJSON` when each setting is written as a literal (a string without
//! interpolation, a number, `true`/`false`, a list of those), which is how flakes write it.
//! Nothing of the flake runs to read it, and no step runs for it: the fetch step is keyed by
//! the lock file alone, so an edit of flake.nix never fetches the locked inputs again.
//!
//! Parsed with rnix (the Nix parser nix-community's tools use); a file rnix cannot parse has
//! no nixConfig here, and the evaluation step says what Nix makes of it.

use rnix::ast::{self, HasEntry};
use serde_json::{Map, Value};

/// What `flake.nix` says of nixConfig: the settings written as literals, and the names of the
/// ones that are not (with why), which nixfront leaves out.
#[derive(Debug, Default, PartialEq)]
pub struct FlakeConfig {
    pub settings: Map<String, Value>,
    pub unread: Vec<(String, String)>,
}

/// Why a setting is not applied when it is not a literal.
const NOT_LITERAL: &str = "it is not a literal (a string without ${...}, a number, true or false, or a list \
    of those); nixfront reads nixConfig without evaluating flake.nix";

/// Reads `flake.nix`'s top-level `nixConfig` (`nixConfig = { ... };` or
/// `nixConfig.name = ...;`).
pub fn nix_config(text: &str) -> FlakeConfig {
    let mut config = FlakeConfig::default();
    let parsed = rnix::Root::parse(text);
    if !parsed.errors().is_empty() {
        return config;
    }
    let Some(ast::Expr::AttrSet(top)) = parsed.tree().expr() else {
        if text.contains("nixConfig") {
            config.unread.push(("*".into(), "flake.nix is not an attribute set at its top level".into()));
        }
        return config;
    };
    for entry in top.attrpath_values() {
        let path = names(entry.attrpath());
        match path.as_deref() {
            Some([first]) if first == "nixConfig" => match entry.value() {
                Some(ast::Expr::AttrSet(set)) => {
                    for setting in set.attrpath_values() {
                        let name = names(setting.attrpath()).filter(|p| p.len() == 1).map(|p| p.join("."));
                        match (name, setting.value().as_ref().and_then(literal)) {
                            (Some(name), Some(value)) => _ = config.settings.insert(name, value),
                            (name, _) => config.unread.push((name.unwrap_or("?".into()), NOT_LITERAL.into())),
                        }
                    }
                    if set.inherits().next().is_some() {
                        config.unread.push(("inherit".into(), NOT_LITERAL.into()));
                    }
                }
                _ => config.unread.push(("*".into(), "nixConfig is not an attribute set written out".into())),
            },
            Some([first, name]) if first == "nixConfig" => match entry.value().as_ref().and_then(literal) {
                Some(value) => _ = config.settings.insert(name.clone(), value),
                None => config.unread.push((name.clone(), NOT_LITERAL.into())),
            },
            Some([first, ..]) if first == "nixConfig" => {
                config.unread.push((path.unwrap_or_default()[1..].join("."), NOT_LITERAL.into()));
            }
            None if entry.attrpath().is_some_and(|p| p.to_string().contains("nixConfig")) => {
                config.unread.push(("*".into(), "nixConfig's name is computed".into()));
            }
            _ => {}
        }
    }
    config
}

/// An attribute path's names, when each is written out (`a.b`, `"a".b`).
fn names(path: Option<ast::Attrpath>) -> Option<Vec<String>> {
    path?
        .attrs()
        .map(|attr| match attr {
            ast::Attr::Ident(ident) => ident.ident_token().map(|t| t.text().to_string()),
            ast::Attr::Str(s) => plain_string(&s),
            ast::Attr::Dynamic(_) => None,
        })
        .collect()
}

/// A string without interpolation.
fn plain_string(s: &ast::Str) -> Option<String> {
    let mut text = String::new();
    for part in s.normalized_parts() {
        match part {
            ast::InterpolPart::Literal(literal) => text.push_str(&literal),
            ast::InterpolPart::Interpolation(_) => return None,
        }
    }
    Some(text)
}

/// A literal value as JSON, or `None` for anything Nix would have to evaluate.
fn literal(expr: &ast::Expr) -> Option<Value> {
    match expr {
        ast::Expr::Str(s) => plain_string(s).map(Value::String),
        ast::Expr::Literal(l) => match l.kind() {
            ast::LiteralKind::Integer(i) => i.value().ok().map(Value::from),
            ast::LiteralKind::Float(f) => {
                f.value().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
            }
            ast::LiteralKind::Uri(_) => None,
        },
        ast::Expr::Ident(ident) => match ident.ident_token()?.text() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        ast::Expr::List(list) => {
            list.items().map(|item| literal(&item)).collect::<Option<Vec<_>>>().map(Value::Array)
        }
        ast::Expr::Paren(p) => literal(&p.expr()?),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_settings_are_read_as_nix_would_give_them() {
        let text = r#"{
          description = "x";
          nixConfig = {
            extra-substituters = [ "http://cache.example" ];
            "extra-trusted-public-keys" = "k:abc=";
            max-jobs = 4;
            sandbox = false;
            ssl-cert-file = ''
              /etc/ssl/x.pem
            '';
          };
          nixConfig.connect-timeout = 5;
          outputs = { self }: { };
        }"#;
        let config = nix_config(text);
        assert_eq!(
            Value::Object(config.settings),
            json!({"extra-substituters": ["http://cache.example"], "extra-trusted-public-keys": "k:abc=",
                   "max-jobs": 4, "sandbox": false, "ssl-cert-file": "/etc/ssl/x.pem\n", "connect-timeout": 5})
        );
        assert!(config.unread.is_empty(), "{:?}", config.unread);
    }

    #[test]
    fn what_needs_evaluating_is_left_out_and_named() {
        let text = r#"let cache = "http://c"; in {
          nixConfig.substituters = [ cache ];
          outputs = _: { };
        }"#;
        let config = nix_config(text);
        assert!(config.settings.is_empty());
        assert_eq!(config.unread.len(), 1, "{:?}", config.unread);
        let text = r#"{ nixConfig = {
            substituters = [ "http://${host}" ];
            max-jobs = builtins.div 8 2;
            keep = import ./x.nix;
            fine = true;
          }; outputs = _: { }; }"#;
        let config = nix_config(text);
        assert_eq!(Value::Object(config.settings), json!({"fine": true}));
        let names: Vec<&str> = config.unread.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["substituters", "max-jobs", "keep"]);
        assert!(config.unread[0].1.contains("without evaluating"));
    }

    #[test]
    fn no_nix_config_and_unparsable_files_give_nothing() {
        assert_eq!(nix_config("{ outputs = _: { }; }"), FlakeConfig::default());
        assert_eq!(nix_config("{ nixConfig = "), FlakeConfig::default());
        assert_eq!(nix_config(""), FlakeConfig::default());
    }
}
