{
  description = "nixfront benchmark: an app on 24 dependencies of 48 MiB each (about 1.1 GB), offline";
  # Like bench/flake, with a big closure: each dependency writes deterministic, incompressible
  # data (a seeded 64 KiB block, repeated), so its size counts in compressed layers too and a
  # rebuild on a fresh builder gives the same bytes.
  outputs = { self }:
    let
      system = "x86_64-linux";
      bb = "${./tools}/busybox";
      mk = name: script: derivation {
        inherit name system;
        builder = bb;
        args = [ "sh" "-c" script ];
      };
      blob = i: mk "bigdep${toString i}-1.0" ''
        ${bb} mkdir -p $out/lib
        ${bb} awk 'BEGIN { srand(${toString (100 + i)}); for (i = 0; i < 65536; i++) printf "%c", 33 + int(rand() * 94) }' > block
        n=768
        j=0; while [ $j -lt $n ]; do ${bb} cat block; j=$((j + 1)); done > $out/lib/bigdep${toString i}.so
      '';
      deps = builtins.genList blob 24;
      app = (mk "app-1.0" ''
        ${bb} mkdir -p $out/bin
        version=$(${bb} cat ${./src}/version)
        printf '#!${bb} sh\necho "app %s on %s dependencies"\n' "$version" "${toString (builtins.length deps)}" > $out/bin/app
        echo ${builtins.concatStringsSep " " (map toString deps)} > $out/deps
        ${bb} chmod +x $out/bin/app
      '') // { meta.mainProgram = "app"; };
    in {
      packages.${system}.default = app;
    };
}
