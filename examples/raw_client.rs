//! The tests' hostile client: a frontend that asks BuildKit for nixfront with frontend
//! options no buildx command line sends. Tests build a Dockerfile whose first line is
//! `# syntax=org/raw-client`; this program passes the client's options on to nixfront
//! (`source=org/nixfront`), the file and context included, and adds each `RAW_OPT_<i>` build
//! arg as an option of its own (`RAW_OPT_0=context:../self=local:context`, a build context
//! name buildx refuses but `buildctl --opt` and bake send as they are). nixfront's answer,
//! image or error, is returned as it is.
//!
//! Built by `scripts/frontend-image.sh` into the image `org/raw-client:latest` of the test
//! engines; never part of nixfront's image.

use std::collections::HashMap;

use nixfront::gateway::{FrontendResult, Gateway, Refs};

const PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";
const RAW: &str = "build-arg:RAW_OPT_";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut gw = match Gateway::connect_stdio().await {
        Ok(gw) => gw,
        Err(e) => {
            eprintln!("raw-client: {e:#}");
            std::process::exit(1);
        }
    };
    let mut returner = gw.returner();
    let mut opts: HashMap<String, String> = HashMap::new();
    for (_, pair) in std::env::vars().filter(|(k, _)| k.starts_with(PREFIX)) {
        let (key, value) = pair.split_once('=').unwrap_or((pair.as_str(), ""));
        if key.starts_with(RAW) {
            let (name, raw) = value.split_once('=').unwrap_or((value, ""));
            opts.insert(name.to_string(), raw.to_string());
        } else if key != "source" && key != "cmdline" {
            opts.entry(key.to_string()).or_insert_with(|| value.to_string());
        }
    }
    opts.insert("source".to_string(), "docker.io/org/nixfront:latest".to_string());
    let outcome = gw.solve_frontend("gateway.v0", opts).await;
    let sent = match outcome {
        Ok((id, metadata)) => {
            let result = FrontendResult { refs: Refs::Single(id), metadata, attestations: Vec::new() };
            returner.return_result(result, gw.caps.supports("proto.refarray")).await
        }
        Err(e) => returner.return_error(&format!("{e:#}"), Vec::new()).await,
    };
    if let Err(e) = sent {
        eprintln!("raw-client: {e:#}");
    }
    // stdin is read on a thread that never returns: leave without waiting for it.
    std::process::exit(0);
}
