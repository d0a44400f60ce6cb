//! OCI platforms (`linux/amd64`) and the Nix systems (`x86_64-linux`) they map to.

use anyhow::{Result, bail};
use bollard_buildkit_proto::pb;

use crate::llb;

/// `linux/amd64` and friends to `pb::Platform`.
pub fn parse(spec: &str) -> Result<pb::Platform> {
    let parts: Vec<&str> = spec.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(normalize(llb::platform(os, arch, ""))),
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() => {
            Ok(normalize(llb::platform(os, arch, variant)))
        }
        _ => bail!("--platform {spec:?} is not of the form os/arch[/variant], e.g. linux/amd64"),
    }
}

/// Docker's spellings: `arm64` is `arm64/v8`'s short form, `arm` means `arm/v7`.
fn normalize(mut p: pb::Platform) -> pb::Platform {
    match (p.architecture.as_str(), p.variant.as_str()) {
        ("arm64", "v8") => p.variant.clear(),
        ("arm", "") => p.variant = "v7".to_string(),
        _ => {}
    }
    p
}

/// `linux/amd64`, `linux/arm/v7`: the key BuildKit uses in `refs.platforms`.
pub fn format(p: &pb::Platform) -> String {
    if p.variant.is_empty() {
        format!("{}/{}", p.os, p.architecture)
    } else {
        format!("{}/{}/{}", p.os, p.architecture, p.variant)
    }
}

/// The Nix system that builds for `p`.
pub fn nix_system(p: &pb::Platform) -> Result<String> {
    let cpu = match (p.architecture.as_str(), p.variant.as_str()) {
        ("amd64", _) => "x86_64",
        ("386", _) => "i686",
        ("arm64", _) => "aarch64",
        ("arm", "v7" | "") => "armv7l",
        ("arm", "v6") => "armv6l",
        ("riscv64", _) => "riscv64",
        ("ppc64le", _) => "powerpc64le",
        ("s390x", _) => "s390x",
        ("mips64le", _) => "mips64el",
        ("loong64", _) => "loongarch64",
        _ => bail!("no Nix system is known for platform {}", format(p)),
    };
    let kernel = match p.os.as_str() {
        "linux" => "linux",
        "darwin" => "darwin",
        other => bail!("no Nix system is known for the OS {other:?} of platform {}", format(p)),
    };
    Ok(format!("{cpu}-{kernel}"))
}

/// The automatic platform build args of Dockerfiles (`TARGETPLATFORM`, `TARGETOS`,
/// `TARGETARCH`, `TARGETVARIANT` and the same for `BUILD*`), for a file that declares them
/// with ARG. They cannot be overridden with --build-arg.
pub fn automatic_args(build: &pb::Platform, target: &pb::Platform) -> Vec<(String, String)> {
    let mut args = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        args.push((format!("{prefix}PLATFORM"), format(p)));
        args.push((format!("{prefix}OS"), p.os.clone()));
        args.push((format!("{prefix}ARCH"), p.architecture.clone()));
        args.push((format!("{prefix}VARIANT"), p.variant.clone()));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_args_describe_both_platforms() {
        let args = automatic_args(&parse("linux/amd64").unwrap(), &parse("linux/arm/v7").unwrap());
        let get = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("TARGETPLATFORM"), Some("linux/arm/v7"));
        assert_eq!(get("TARGETARCH"), Some("arm"));
        assert_eq!(get("TARGETVARIANT"), Some("v7"));
        assert_eq!(get("BUILDPLATFORM"), Some("linux/amd64"));
        assert_eq!(get("BUILDOS"), Some("linux"));
    }

    #[test]
    fn platforms_map_to_nix_systems() {
        let cases = [
            ("linux/amd64", "x86_64-linux"),
            ("linux/386", "i686-linux"),
            ("linux/arm64", "aarch64-linux"),
            ("linux/arm64/v8", "aarch64-linux"),
            ("linux/arm/v7", "armv7l-linux"),
            ("linux/arm", "armv7l-linux"),
            ("linux/arm/v6", "armv6l-linux"),
            ("linux/riscv64", "riscv64-linux"),
            ("linux/ppc64le", "powerpc64le-linux"),
            ("linux/s390x", "s390x-linux"),
        ];
        for (spec, system) in cases {
            assert_eq!(nix_system(&parse(spec).unwrap()).unwrap(), system, "{spec}");
        }
    }

    #[test]
    fn keys_and_errors() {
        assert_eq!(format(&parse("linux/arm64/v8").unwrap()), "linux/arm64");
        assert_eq!(format(&parse("linux/arm").unwrap()), "linux/arm/v7");
        assert!(parse("amd64").unwrap_err().to_string().contains("os/arch"));
        assert!(nix_system(&parse("windows/amd64").unwrap()).is_err());
        assert!(nix_system(&parse("linux/sparc").unwrap()).unwrap_err().to_string().contains("linux/sparc"));
    }
}
