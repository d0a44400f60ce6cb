//! The flake's own files in a build: the inputs the client replaces (`--build-context`), the
//! fetch step's locked inputs (keyed by flake.lock alone) and the flake's nixConfig, read from
//! flake.nix as written (FlakeSetup).

use anyhow::{Result, anyhow};

use super::shared::Shared;
use super::target::PlatformPlan;
use crate::context;
use crate::flakelock;
use crate::flakenix;
use crate::frontend::at_lines;
use crate::gateway::Gateway;
use crate::llb::State;
use crate::nixfile;
use crate::options::nixconf;
use crate::options::{NamedContext, NixArgs};
use crate::plan::steps;

/// What the flake's own files bring to a build ([`Shared::flake_setup`]).
pub struct FlakeSetup {
    /// The locked inputs, fetched (the fetch step's output), when the lock names any.
    pub fetched: Option<State>,
    /// The build's Nix settings with the flake's accepted nixConfig.
    pub settings: NixArgs,
    pub warnings: Vec<nixfile::Warning>,
    pub overrides: Vec<steps::Override>,
}

/// The flake inputs the client replaces (`--build-context NAME=DIR`).
pub fn overrides(shared: &Shared<'_>, plan: &PlatformPlan) -> Result<Vec<steps::Override>> {
    let mut overrides = Vec::new();
    let from = plan.nixfile.from.as_ref().map(|f| f.value.as_str());
    for (name, context) in &shared.options.named_contexts {
        let is_base = from.is_some_and(|f| {
            crate::frontend::base::named_context(shared.options, f).is_some_and(|c| std::ptr::eq(c, context))
        });
        if is_base {
            continue;
        }
        let NamedContext::Local(local) = context else {
            return at_lines(
                Err(anyhow!(
                    "--build-context {name}: nixfront takes a directory here (`--build-context \
                     {name}=./dir`), which replaces the flake input {name}"
                )),
                plan.flake_lines,
            );
        };
        let spec = crate::llb::source::Local {
            name: local.clone(),
            session_id: shared.options.session_id.clone(),
            shared_key_hint: local.clone(),
            ..Default::default()
        };
        let dir = crate::llb::source::local(&spec, &format!("load build context {name}"));
        let checked = steps::Override::new(name, dir).map_err(|why| anyhow!("--build-context {name}: {why}"));
        overrides.push(at_lines(checked, plan.flake_lines)?);
    }
    Ok(overrides)
}

/// What the flake's own files bring to the build: its locked inputs, fetched by the fetch
/// step (keyed by flake.lock); its nixConfig, applied as NIX_CONFIG is; and warnings about
/// both. A flake outside the context is left to Nix.
pub async fn flake_setup(shared: &Shared<'_>, gw: &mut Gateway, plan: &PlatformPlan) -> Result<FlakeSetup> {
    let mut setup = FlakeSetup {
        fetched: None,
        settings: shared.options.nix.clone(),
        warnings: Vec::new(),
        overrides: overrides(shared, plan)?,
    };
    let Some(dir) = plan.flake.context_dir.as_deref() else {
        setup.settings.store_owner = store_owner(&plan.flake.written, None);
        return Ok(setup);
    };
    let lines = plan.flake_lines;
    let warn = |rule, detail: String| nixfile::Warning::new(rule, lines, detail);
    let (flake_nix, flake_lock) = context::flake_files(gw, shared.options, shared.file, dir).await?;
    let replaced: Vec<String> = setup.overrides.iter().map(|o| o.name().to_string()).collect();
    let lock = match &flake_lock {
        None => {
            setup.warnings.push(warn(
                nixfile::lint::UNLOCKED_FLAKE,
                "the flake has no flake.lock: Nix locks and fetches its inputs anew in every build".into(),
            ));
            None
        }
        Some(bytes) => Some(at_lines(flakelock::parse(bytes, &replaced), lines)?),
    };
    for input in lock.iter().flat_map(|l| &l.unlocked) {
        let detail = format!("flake.lock has no content hash for input {input}: Nix fetches it anew");
        setup.warnings.push(warn(nixfile::lint::UNLOCKED_FLAKE, detail));
    }
    let locked = lock.as_ref().map_or(Vec::new(), |l| l.fetch_list());
    setup.settings.store_owner = store_owner(&plan.flake.written, flake_lock.as_deref());
    // nixConfig, read from flake.nix as written (nothing runs): settings before any step.
    let config = flake_nix.as_deref().map(|text| flakenix::nix_config(&String::from_utf8_lossy(text)));
    let config = config.unwrap_or_default();
    for (name, why) in &config.unread {
        let name = if name == "*" { String::new() } else { format!(".{name}") };
        setup.warnings.push(warn(
            nixfile::lint::FLAKE_CONFIG_REFUSED,
            format!("nixConfig{name} is not applied: {why}"),
        ));
    }
    let (accepted, refused) = nixconf::from_flake(&serde_json::Value::Object(config.settings));
    for (name, why) in refused {
        setup.warnings.push(warn(
            nixfile::lint::FLAKE_CONFIG_REFUSED,
            format!("nixConfig.{name} is not applied: {why}"),
        ));
    }
    setup.settings.nix_config = nixconf::NixConfig::after(&accepted, shared.options.nix.nix_config.as_ref());
    if !locked.is_empty() {
        setup.fetched = Some(steps::fetch(&locked, &shared.step_with(plan, &setup.settings)));
    }
    Ok(setup)
}

/// Whose bounded store (NIX_STORE_MAX) a build uses: its FLAKE reference and lock file, so
/// that another project's builds, whatever bound they set, never collect it.
fn store_owner(flake: &str, lock: Option<&[u8]>) -> String {
    let mut text = flake.as_bytes().to_vec();
    text.push(0);
    text.extend_from_slice(lock.unwrap_or_default());
    crate::llb::definition::digest_of(&text)
}
