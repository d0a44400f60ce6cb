//! The frontend's own time for a closure of N store paths: what it does between reading the
//! package step's manifest and handing BuildKit the image (parse, group, lay out, SBOM,
//! summary, marshal), and reading an evaluation plan of N derivations. No BuildKit, no Nix:
//! synthetic closures shaped like nixpkgs' (each path refers to a few earlier ones, so the
//! closures reached from each path are deep).
//!
//! Beside the times, what the image config carries for the next build: the memo (the
//! dependency step's path-info and registrations, the package step's manifest) and the
//! closure record, in KiB ("over" past their limits, when the config goes without).
//!
//! `cargo bench --bench frontend [N...]` (default 1000 3000 10000) prints one row per N.

use std::time::Instant;

use nixfront::closure::{self, Closure};
use nixfront::layers::grouping;
use nixfront::layers::{self, Extras, Layout, TopSource};
use nixfront::llb::State;
use nixfront::llb::definition::Marshal;
use nixfront::memo::{DependenciesAnswer, Memo, PackageAnswer};
use nixfront::plan::derivation;
use nixfront::plan::output::{PLAN_VERSION, STEP_MANIFEST_VERSION};
use nixfront::plan::steps::DependencyLayer;
use nixfront::summary::Summary;

/// A store path of the synthetic closure: a valid hash part and a name.
fn path(i: usize, name: &str) -> String {
    let alphabet = closure::NIX_BASE32.as_bytes();
    let mut hash = String::new();
    let mut n = i as u64 * 2_654_435_761 + 12345;
    for _ in 0..closure::HASH_CHARS {
        hash.push(alphabet[(n % 32) as usize] as char);
        n = n / 32 + (i as u64 + 7) * 31;
    }
    format!("/nix/store/{hash}-{name}-{i}")
}

/// A tiny deterministic generator, so every run measures the same closure.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below.max(1)
    }
}

/// The package step's manifest for a closure of `n` paths, the app (`version`) on top.
fn manifest(n: usize, version: usize) -> String {
    let mut rng = Lcg(42);
    let mut info = Vec::new();
    for i in 0..n - 1 {
        let refs: Vec<String> = (0..(if i == 0 { 0 } else { 1 + rng.next(4) }))
            .map(|_| format!("\"{}\"", path(rng.next(i), "lib")))
            .collect();
        let size = 1000 + rng.next(5_000_000);
        info.push(format!(
            r#"{{"path":"{}","narHash":"sha256:1ri1d3vln3lkn7aqjpb23crmppm7k5lh6b41vnxi3vwnjkanvcrr","narSize":{size},"references":[{}],"deriver":"{}.drv"}}"#,
            path(i, "lib"),
            refs.join(","),
            path(i, "lib")
        ));
    }
    let app = path(n + version, "app");
    let app_refs: Vec<String> =
        (0..20).map(|k| format!("\"{}\"", path(n - 2 - k * (n / 25), "lib"))).collect();
    info.push(format!(r#"{{"path":"{app}","narSize":4096,"references":[{}]}}"#, app_refs.join(",")));
    format!(
        r#"{{"manifestVersion":{STEP_MANIFEST_VERSION},"results":["{app}"],"laidOut":{{"sources":[],"results":["{app}"]}},"pathInfo":[{}]}}"#,
        info.join(",")
    )
}

/// An evaluation plan of `n` derivations, the package's depending on the last few.
fn plan(n: usize) -> String {
    let mut rng = Lcg(7);
    let drv = |i: usize| format!("{}.drv", path(i, "pkg"));
    let mut derivations = Vec::new();
    for i in 0..n {
        let inputs: Vec<String> = (0..(if i == 0 { 0 } else { 1 + rng.next(6) }))
            .map(|_| format!("\"{}\":[\"out\"]", drv(rng.next(i))))
            .collect();
        derivations.push(format!(
            r#""{}":{{"outputs":{{"out":{{"path":"{}"}}}},"inputDrvs":{{{}}}}}"#,
            drv(i),
            path(i, "pkg"),
            inputs.join(",")
        ));
    }
    let top = n - 1;
    format!(
        r#"{{"planVersion":{PLAN_VERSION},"drv":"{}","derivations":{{{}}},"sourceClosure":[],"package":{{"outputs":[{{"name":"out","path":"{}"}}]}}}}"#,
        drv(top),
        derivations.join(","),
        path(top, "pkg")
    )
}

/// The sizes of the memo and the closure record an image config carries for closure `c`
/// (the package step's manifest `manifest`), in KiB, or "over" past their limits.
fn config_fields(c: &Closure, manifest: &str) -> (String, String) {
    let deps: Vec<&closure::StorePath> = c.paths.iter().filter(|p| !c.results.contains(&p.path)).collect();
    // The registrations as `nix-store --dump-db` writes them: path, hash, size, deriver, references.
    let db: String = deps
        .iter()
        .map(|p| {
            let deriver = p.deriver.as_deref().unwrap_or_default();
            let hash = p.nar_hash.as_deref().unwrap_or_default();
            format!(
                "{}\n{hash}\n{}\n{deriver}\n{}\n{}\n",
                p.path,
                p.nar_size,
                p.references.len(),
                p.references.join("\n")
            )
        })
        .collect();
    let info: Vec<serde_json::Value> = deps
        .iter()
        .map(|p| {
            serde_json::json!({"path": p.path, "narHash": p.nar_hash, "narSize": p.nar_size,
                "references": p.references, "deriver": p.deriver})
        })
        .collect();
    let mut memo = Memo::default();
    let path_info = serde_json::to_string(&info).unwrap();
    memo.record("sha256:dependencies".into(), &DependenciesAnswer { path_info, db });
    let answer = PackageAnswer { manifest: manifest.to_string(), roots: String::new(), bin: Vec::new() };
    memo.record("sha256:package".into(), &answer);
    let kib = |v: Option<serde_json::Value>| match v {
        Some(v) => format!("{:.0}", v.to_string().len() as f64 / 1024.0),
        None => "over".to_string(),
    };
    (kib(memo.to_config_value()), kib(nixfront::previous::record(c)))
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![1000, 3000, 10000] } else { sizes };
    println!(
        "{:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "paths",
        "manifest",
        "group",
        "layers",
        "sbom",
        "summary",
        "marshal",
        "plan",
        "total ms",
        "memo KiB",
        "rec. KiB"
    );
    for n in sizes {
        let (before, now) = (manifest(n, 0), manifest(n, 1));
        let plan_json = plan(n);
        let start = Instant::now();

        let t = Instant::now();
        let read = closure::read_manifest(now.as_bytes(), STEP_MANIFEST_VERSION).expect("the manifest");
        let previous: Closure =
            closure::read_manifest(before.as_bytes(), STEP_MANIFEST_VERSION).unwrap().closure;
        let c = read.closure;
        let t_manifest = ms(t);

        let t = Instant::now();
        let deps = Closure {
            results: Vec::new(),
            paths: c.paths.iter().filter(|p| !c.results.contains(&p.path)).cloned().collect(),
        };
        let groups = grouping::group(&deps, 97);
        let t_group = ms(t);

        let t = Instant::now();
        let laid: Vec<(grouping::Group, DependencyLayer)> = groups
            .into_iter()
            .enumerate()
            .map(|(i, g)| (g, DependencyLayer { state: State::scratch(), dir: format!("/{i:03}") }))
            .collect();
        let laid_out = read.split.expect("laidOut");
        let (sources, results) = (State::scratch(), State::scratch());
        let plans = layers::split_build_layers(
            &laid,
            &[],
            &c,
            (&laid_out.sources, &sources),
            (&laid_out.results, &results),
            100,
        );
        let t_layers = ms(t);

        let t = Instant::now();
        let sbom =
            serde_json::to_vec(&nixfront::sbom::document(&c, ".#app", "1970-01-01T00:00:00Z", None)).unwrap();
        let t_sbom = ms(t);

        let t = Instant::now();
        let previous = nixfront::previous::Previous { image: "app:1".into(), closure: previous.clone() };
        let summary = Summary::new("linux/amd64", plans.len() + 1, &c, Some(&previous));
        let _ = (summary.line(), serde_json::to_vec(&summary).unwrap());
        let t_summary = ms(t);

        let t = Instant::now();
        let layout =
            Layout { max_layers: 100, merge: true, location: Some(nixfront::llb::Lines::one(2)), base: None };
        let extras = Extras { sbom: Some(&sbom) };
        let fs = layers::assemble(&plans, TopSource::Tree(State::scratch()), &[], &extras, layout);
        let def = fs.state.marshal(Marshal { ignore_cache: false, source: None });
        let t_marshal = ms(t);

        let t = Instant::now();
        let parsed = derivation::parse_plan(plan_json.as_bytes()).expect("the plan").expect("plannable");
        let t_plan = ms(t);

        assert!(def.def.len() > 2 && !parsed.inputs.is_empty() && summary.change.is_some());
        let total = ms(start);
        let (memo, record) = config_fields(&c, &now);
        println!(
            "{n:>7} {t_manifest:>9.1} {t_group:>9.1} {t_layers:>9.1} {t_sbom:>9.1} {t_summary:>9.1} {t_marshal:>9.1} {t_plan:>9.1} {total:>9.1} {memo:>9} {record:>9}"
        );
    }
}
