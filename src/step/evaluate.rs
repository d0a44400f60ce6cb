//! The evaluation step: the package evaluated once (its derivation, outputs, name and
//! mainProgram; its `.drv` and those of its inputs land in the store), with the locked inputs
//! the fetch step fetched and FLAKE's further packages, into the [`Plan`]. Builds nothing.
//! Beside the plan: the derivation's closure as a tree with its registrations (what the
//! package step needs besides the dependencies), and a `file://` binary cache of the input
//! derivations' closure (content-addressed), from which the other steps take what their
//! store lacks. Also the package listing of the `frontend.targets` subrequest.

use std::path::Path;

use serde_json::{Value, json};

use super::fetch::{FETCHED_CACHE, FETCHED_PATHS};
use super::nix::{Nix, json_or_null, lines_of};
use super::outcome::{Outcome, Stop, say, write_json};
use super::{store, tree};
use crate::plan::output::{
    DRVS_DIR, FETCHED_DIR, META_DIR, PACKAGES_FILE, PKG_DIR, PLAN_FILE, PLAN_VERSION, TMP_DIR,
};
use crate::plan::spec::{Evaluate, Plan};

/// What nixfront reads of the package.
const PACKAGE: &str = "p: {
    drvPath = p.drvPath;
    name = p.name or null;
    mainProgram = (p.meta or {}).mainProgram or null;
    outputs = map (o: { name = o; path = p.${o}.outPath; }) (p.outputs or [ \"out\" ]);
  }";

/// What nixfront reads of a further package: its derivation and the outputs it installs (as
/// buildEnv takes them).
const INSTALLS: &str = "p: { drvPath = p.drvPath; outputs = map (o: { name = o; path = p.${o}.outPath; })
    ((p.meta or {}).outputsToInstall or [ (p.outputName or \"out\") ]); }";

/// The further packages, found in their (locked) flakes by the attribute paths Nix would try.
const PICK: &str = "w: let
    flakes = map builtins.getFlake w.flakes;
    find = set: path: builtins.foldl' (v: name:
      if v != null && builtins.isAttrs v && v ? ${name} then v.${name} else null) set path;
    pick = want: let
        found = builtins.filter (v: v != null) (map (find (builtins.elemAt flakes want.flake)) want.paths);
      in if found == [ ] then throw \"nixfront: ${want.ref} is not an attribute of its flake\"
         else (INSTALLS) (builtins.head found);
  in map pick w.wanted";

/// The flake of the further packages' wishes, beside its `wanted.json`.
const PICK_FLAKE: &str =
    "{ outputs = { self }: { wanted = builtins.fromJSON (builtins.readFile ./wanted.json); }; }";

/// The package listing: `{"name": "meta.description or empty", ...}`.
const DESCRIPTIONS: &str = "ps: builtins.mapAttrs (n: p: (p.meta or {}).description or \"\") ps";

pub fn run(nix: &Nix, work: &Evaluate) -> Outcome<()> {
    for notice in &work.notices {
        say(&format!("warning: {notice}"));
    }
    store::prepare(nix)?;
    take_fetched(nix)?;
    let overrides: Vec<String> = work
        .overrides
        .iter()
        .flat_map(|(name, reference)| ["--override-input".to_string(), name.clone(), reference.clone()])
        .collect();
    let mut eval = nix.nix_for(&work.system);
    eval.args(["eval", "--json", "--no-write-lock-file"]).args(&overrides);
    eval.args(["--apply", PACKAGE, "--", &work.reference]);
    let package = match nix.run(&mut eval) {
        Ok(json) => parse(&json, "the package")?,
        Err(stop) => return Err(with_names(nix, stop, work, &overrides)),
    };
    let drv = package["drvPath"].as_str().filter(|d| d.starts_with("/nix/store/") && d.ends_with(".drv"));
    let Some(drv) = drv.map(String::from) else {
        return Err(Stop::new(format!("the evaluation gave no derivation for {}", work.reference)));
    };
    let refs = lines_of(&nix.run(nix.nix_store().args(["--query", "--references", &drv]))?);
    let (mut inputs, srcs): (Vec<String>, Vec<String>) = refs.into_iter().partition(|r| r.ends_with(".drv"));
    let extras = extras(nix, work, &overrides)?;
    for extra in extras.as_array().into_iter().flatten() {
        inputs.extend(extra["drvPath"].as_str().map(String::from));
    }
    inputs.sort();
    inputs.dedup();
    let mut show = nix.nix();
    show.args(nix.facts.derivation_show()).arg("--").arg(&drv).args(&inputs);
    let derivations = parse(&nix.run(&mut show)?, "the derivations")?;
    let source_closure = store::requisites(nix, &srcs)?;
    let mut flake = Value::Null;
    if work.metadata {
        let mut metadata = nix.nix();
        metadata.args(["flake", "metadata", "--json", "--no-write-lock-file"]).args(&overrides);
        flake = json_or_null(nix.quiet(metadata.args(["--", &work.flake])));
    }
    // What the package step takes, and the binary cache of the inputs' closure.
    let package_closure = store::requisites(nix, std::slice::from_ref(&drv))?;
    tree::place(&package_closure, Path::new(PKG_DIR))?;
    std::fs::write(Path::new(PKG_DIR).join("db"), store::dump_db(nix, &package_closure)?)?;
    std::fs::create_dir_all(DRVS_DIR)?;
    if !inputs.is_empty() {
        let to = format!("file://{DRVS_DIR}?compression=none");
        store::copy_paths(nix, &store::requisites(nix, &inputs)?, &["--to", &to])?;
    }
    let plan = Plan { plan_version: PLAN_VERSION, drv, derivations, source_closure, package, extras, flake };
    write_json(&Path::new(META_DIR).join(PLAN_FILE), &plan)
}

/// Takes the locked inputs the fetch step fetched into this instance of the store.
fn take_fetched(nix: &Nix) -> Outcome<()> {
    let listed = Path::new(FETCHED_DIR).join(FETCHED_PATHS);
    let Ok(bytes) = std::fs::read(&listed) else { return Ok(()) };
    let paths: Vec<String> =
        serde_json::from_slice(&bytes).map_err(|e| Stop::new(format!("the fetched inputs: {e}")))?;
    store::copy_content_addressed(nix, &format!("{FETCHED_DIR}/{FETCHED_CACHE}"), &paths)
}

/// FLAKE's further packages (`[{drvPath, outputs}]`), in one more Nix process, their flakes
/// taken by their locked references; with flake inputs replaced each is evaluated with the
/// same overrides instead.
fn extras(nix: &Nix, work: &Evaluate, overrides: &[String]) -> Outcome<Value> {
    if work.extras.is_empty() {
        return Ok(json!([]));
    }
    if !overrides.is_empty() {
        let mut found = Vec::new();
        for extra in &work.extras {
            let mut eval = nix.nix_for(&work.system);
            eval.args(["eval", "--json", "--no-write-lock-file"]).args(overrides);
            found.push(parse(
                &nix.run(eval.args(["--apply", INSTALLS, "--", &extra.reference]))?,
                &extra.written,
            )?);
        }
        return Ok(Value::Array(found));
    }
    let mut flakes: Vec<&str> = Vec::new();
    let mut wanted = Vec::new();
    for extra in &work.extras {
        let index = flakes.iter().position(|f| *f == extra.flake).unwrap_or_else(|| {
            flakes.push(&extra.flake);
            flakes.len() - 1
        });
        wanted.push(json!({"ref": extra.written, "flake": index, "paths": extra.paths}));
    }
    let mut locked = Vec::new();
    for flake in flakes {
        let metadata =
            nix.run(nix.nix().args(["flake", "metadata", "--json", "--no-write-lock-file", "--", flake]))?;
        let metadata = parse(&metadata, flake)?;
        locked.push(metadata["url"].as_str().unwrap_or(flake).to_string());
    }
    let pick = tempfile::Builder::new().prefix("pick.").tempdir_in(TMP_DIR)?;
    write_json(&pick.path().join("wanted.json"), &json!({"flakes": locked, "wanted": wanted}))?;
    std::fs::write(pick.path().join("flake.nix"), PICK_FLAKE)?;
    let reference = format!("path:{}#wanted", pick.path().display());
    let apply = PICK.replace("INSTALLS", INSTALLS);
    let mut eval = nix.nix_for(&work.system);
    eval.args(["eval", "--json", "--no-write-lock-file", "--apply", &apply, "--", &reference]);
    parse(&nix.run(&mut eval)?, "FLAKE's further packages")
}

/// An evaluation that failed on a missing attribute says which names the flake has.
fn with_names(nix: &Nix, mut stop: Stop, work: &Evaluate, overrides: &[String]) -> Stop {
    stop.failure.summary = "Nix could not evaluate the package".to_string();
    if stop.failure.missing_attribute.is_some() {
        let attribute = format!("{}#packages.{}", work.flake, work.system);
        let mut names = nix.nix_for(&work.system);
        names.args(["eval", "--json", "--no-write-lock-file"]).args(overrides);
        names.args(["--apply", "builtins.attrNames", "--", &attribute]);
        let listed = nix.quiet(&mut names).ok().and_then(|j| serde_json::from_slice::<Vec<String>>(&j).ok());
        stop.failure.names = listed.unwrap_or_default();
    }
    stop
}

fn parse(json: &[u8], what: &str) -> Outcome<Value> {
    serde_json::from_slice(json).map_err(|e| Stop::new(format!("Nix's JSON for {what} is not readable: {e}")))
}

/// The flake's `packages.<system>` with their descriptions (`frontend.targets`).
pub fn packages(nix: &Nix, attribute: &str) -> Outcome<()> {
    store::prepare(nix)?;
    let mut eval = nix.nix();
    eval.args(["eval", "--json", "--no-write-lock-file", "--apply", DESCRIPTIONS, "--", attribute]);
    let listing = parse(&nix.run(&mut eval)?, "the packages")?;
    write_json(&Path::new(META_DIR).join(PACKAGES_FILE), &listing)
}
