# A nixpkgs-shaped flake input, offline: a library (mkApp) and packages, a build-time
# toolchain that is not in any runtime closure, runtime libraries, and a package set that every
# evaluation forces (about a second and a half, as evaluating nixpkgs costs). Served as a
# tarball by the Nix world's server; every package is in its signed binary cache.
#
# Data is deterministic and incompressible (a seeded 64 KiB block, repeated), so that sizes
# count in compressed caches too. `scale` is how many MiB the toolchain has (92, or 1024 for the
# 1 GB row); ./scale holds it.
{
  outputs = { self }:
    let
      system = "x86_64-linux";
      bb = "${./tools}/busybox";
      scale = builtins.fromJSON (builtins.readFile ./scale);
      mk = name: script: derivation { inherit name system; builder = bb; args = [ "sh" "-c" script ]; };
      blob = { name, seed, mib, out ? "lib/${name}.so", deps ? [ ] }: mk name ''
        ${bb} mkdir -p $out/$(${bb} dirname ${out})
        ${bb} awk 'BEGIN { srand(${toString seed}); for (i = 0; i < 65536; i++) printf "%c", 33 + int(rand() * 94) }' > block
        n=$(( ${toString mib} * 16 ))
        i=0; while [ $i -lt $n ]; do ${bb} cat block; i=$((i + 1)); done > $out/${out}
        ${builtins.concatStringsSep "\n" (map (d: "echo ${d} >> $out/deps") deps)}
      '';
      # The evaluation's cost: a package set of 300 000 attributes, forced by every package.
      set = builtins.listToAttrs (builtins.genList (i: { name = "p${toString i}"; value = i * 7; }) 300000);
      fingerprint = builtins.hashString "sha256"
        (builtins.concatStringsSep "," (map toString (builtins.attrValues (builtins.mapAttrs (n: v: v + 1) set))));
      toolchain = blob { name = "toolchain-1.0"; seed = 11; mib = scale; out = "share/toolchain.data"; };
      libcore = blob { name = "libcore-2.1"; seed = 12; mib = 30; };
      libnet = blob { name = "libnet-1.4"; seed = 13; mib = 24; deps = [ libcore ]; };
      libdata = blob { name = "libdata-0.9"; seed = 14; mib = 20; deps = [ libcore ]; };
      # The packages an image needs besides the program, with nixpkgs' layouts.
      cacert = mk "nss-cacert-3.98" ''
        ${bb} mkdir -p $out/etc/ssl/certs
        echo "-----BEGIN CERTIFICATE----- (the Nix world's test CA) -----END CERTIFICATE-----" > $out/etc/ssl/certs/ca-bundle.crt
      '';
      tzdata = mk "tzdata-2024a" ''
        ${bb} mkdir -p $out/share/zoneinfo/Europe
        echo "TZif test zone Europe/Paris" > $out/share/zoneinfo/Europe/Paris
        echo "TZif test zone UTC" > $out/share/zoneinfo/UTC
      '';
      iana-etc = mk "iana-etc-20240318" ''
        ${bb} mkdir -p $out/etc
        echo "http 80/tcp" > $out/etc/services
        echo "tcp 6 TCP" > $out/etc/protocols
      '';
      # An app: built with the toolchain (read at build time, not referenced), linking the
      # runtime libraries (referenced), its program printing its source's message.
      mkApp = { name, src, message ? "hello" }: (mk name ''
        ${bb} test -s ${toolchain}/share/toolchain.data
        ${bb} mkdir -p $out/bin
        msg=$(${bb} cat ${src}/message)
        printf '#!${bb} sh\necho "%s"\necho "libs: ${libnet} ${libdata}"\n' "$msg" > $out/bin/${builtins.head (builtins.split "-" name)}
        ${bb} chmod +x $out/bin/*
        echo ${builtins.substring 0 8 fingerprint} > $out/fingerprint
      '') // { meta.mainProgram = builtins.head (builtins.split "-" name); };
    in {
      lib = { inherit mkApp; };
      packages.${system} = { inherit toolchain libcore libnet libdata cacert tzdata iana-etc; };
    };
}
