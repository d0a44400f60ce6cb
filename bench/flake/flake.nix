{
  description = "nixfront benchmark: an app on five dependencies of different sizes, offline";
  # Stand-ins for a real toolchain: each dependency sleeps like a compile and writes
  # deterministic, incompressible data (a seeded 64 KiB block, repeated), so its size counts
  # in compressed layers too and a rebuild on a fresh builder gives the same bytes.
  outputs = { self }:
    let
      system = "x86_64-linux";
      bb = "${./tools}/busybox";
      mk = name: script: derivation {
        inherit name system;
        builder = bb;
        args = [ "sh" "-c" script ];
      };
      blob = { name, seed, mib, seconds, deps ? [ ] }: mk name ''
        ${bb} sleep ${toString seconds}
        ${bb} mkdir -p $out/lib
        ${bb} awk 'BEGIN { srand(${toString seed}); for (i = 0; i < 65536; i++) printf "%c", 33 + int(rand() * 94) }' > block
        n=$(( ${toString mib} * 16 ))
        i=0; while [ $i -lt $n ]; do ${bb} cat block; i=$((i + 1)); done > $out/lib/${name}.so
        ${builtins.concatStringsSep "\n" (map (d: "echo ${d} >> $out/lib/deps") deps)}
      '';
      libbase = blob { name = "libbase-2.38"; seed = 1; mib = 30; seconds = 3; };
      libz = blob { name = "libz-1.3"; seed = 2; mib = 1; seconds = 1; deps = [ libbase ]; };
      libssl = blob { name = "libssl-3.0"; seed = 3; mib = 8; seconds = 2; deps = [ libbase ]; };
      runtime = blob { name = "runtime-3.12"; seed = 4; mib = 40; seconds = 4; deps = [ libbase libz libssl ]; };
      assets = blob { name = "assets-1.0"; seed = 5; mib = 5; seconds = 1; };
      # The app: small, built from ./src (the benchmark edits src/version).
      app = (mk "app-1.0" ''
        ${bb} mkdir -p $out/bin
        version=$(${bb} cat ${./src}/version)
        printf '#!${bb} sh\necho "app %s on ${runtime} with ${libssl} and ${assets}"\n' "$version" > $out/bin/app
        ${bb} chmod +x $out/bin/app
      '') // { meta.mainProgram = "app"; };
    in {
      packages.${system}.default = app;
    };
}
