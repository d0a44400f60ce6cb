//! The offline Nix world (scripts/nixworld.sh): apps with locked inputs served over HTTP, a
//! signed binary cache, and each engine's request log, from which a test tells what a build
//! downloaded.

use std::path::PathBuf;

use serde_json::Value;

use super::engine::Engine;
use super::fixture::Fixture;

/// What scripts/nixworld.sh wrote in world.env, for a test that builds from the world on one
/// engine. The engine's request log is one for all its builds, so the tests that use the world
/// on an engine take turns (the `_turn` this holds), and what a test reads in the log since its
/// mark is its own builds' alone, whichever builders the suite runs it with.
pub struct World {
    pub url: String,
    /// The binary cache's public key.
    pub key: String,
    pub netrc_login: String,
    pub netrc_password: String,
    root: PathBuf,
    _turn: std::sync::MutexGuard<'static, ()>,
}

/// Per engine: the turn of the tests that build from the world on it.
static TURNS: [std::sync::Mutex<()>; 2] = [std::sync::Mutex::new(()), std::sync::Mutex::new(())];

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub status: u64,
    /// Bytes the server sent (the benchmark counts them).
    #[allow(dead_code)]
    pub bytes: u64,
}

impl World {
    /// The world, for builds on `engine`: waits for the turn (take the engine's
    /// shared/exclusive use first, as every test does).
    pub fn on(engine: Engine) -> World {
        let turn = TURNS[engine as usize].lock().unwrap_or_else(|e| e.into_inner());
        let root = super::engine::ci_root().join("nixworld");
        let var = super::env_file(&root.join("world.env"));
        World {
            url: var("NIXWORLD_URL"),
            key: var("NIXWORLD_KEY"),
            netrc_login: var("NIXWORLD_NETRC_LOGIN"),
            netrc_password: var("NIXWORLD_NETRC_PASSWORD"),
            root,
            _turn: turn,
        }
    }

    /// App `name` of the world (with its flake.lock) as a fixture building `.`.
    pub fn app(&self, name: &str) -> Fixture {
        Fixture::from_path(name, &self.root.join("apps").join(name), "# syntax=org/nixfront\nFLAKE .\n")
    }

    /// The NIX_CONFIG that names the world's binary cache (`/private/cache` behind auth).
    pub fn cache_config(&self, private: bool) -> String {
        let path = if private { "private/cache" } else { "cache" };
        format!("extra-substituters = {}/{path}\nextra-trusted-public-keys = {}", self.url, self.key)
    }

    /// The same, with a key no other test trusts: the build's store is its own, so what it
    /// substitutes no other test has put there.
    pub fn cache_config_of(&self, test: &str) -> String {
        format!("{} {}", self.cache_config(false), unused_key(test))
    }

    /// A netrc for the private cache.
    pub fn netrc(&self) -> String {
        format!("machine 172.17.0.1 login {} password {}\n", self.netrc_login, self.netrc_password)
    }

    /// How many requests `engine`'s server has logged so far: a mark for [`World::since`].
    pub fn mark(&self, engine: Engine) -> usize {
        self.log(engine).len()
    }

    /// The requests `engine`'s server answered after `mark`.
    pub fn since(&self, engine: Engine, mark: usize) -> Vec<Request> {
        self.log(engine).into_iter().skip(mark).collect()
    }

    fn log(&self, engine: Engine) -> Vec<Request> {
        let text = std::fs::read_to_string(self.root.join("log").join(format!("{}.jsonl", engine.name())))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| Request {
                path: v["path"].as_str().unwrap_or_default().to_string(),
                status: v["status"].as_u64().unwrap_or(0),
                bytes: v["bytes"].as_u64().unwrap_or(0),
            })
            .collect()
    }
}

/// A well-formed public key nobody signs with, named after `test`.
pub fn unused_key(test: &str) -> String {
    format!("nixfront-test-{test}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
}

/// What of `requests` is a download: NARs, input tarballs and git objects (a narinfo lookup,
/// found or not, is a question, not a download).
pub fn downloads(requests: &[Request]) -> Vec<&Request> {
    requests
        .iter()
        .filter(|r| r.status == 200 && !r.path.ends_with(".narinfo") && !r.path.ends_with("nix-cache-info"))
        .collect()
}
