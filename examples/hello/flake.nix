{
  description = "nixfront example: a small app with a runtime dependency, built offline";
  # No nixpkgs: the builder is a static busybox shipped in ./tools (scripts/demo.sh puts it
  # there), so this flake builds without any network.
  outputs = { self }:
    let
      system = "x86_64-linux";
      bb = "${./tools}/busybox";
      mk = name: script: derivation {
        inherit name system;
        builder = bb;
        args = [ "sh" "-c" script ];
      };
      greeting = mk "greeting-1.0" ''
        ${bb} mkdir -p $out/share
        echo "hello from a Nix-built image" > $out/share/greeting
      '';
      hello = (mk "hello-0.1" ''
        ${bb} mkdir -p $out/bin
        printf '#!${bb} sh\n${bb} cat ${greeting}/share/greeting\necho "args: $*"\n' > $out/bin/hello
        ${bb} chmod +x $out/bin/hello
      '') // { meta.mainProgram = "hello"; };
    in {
      packages.${system} = {
        default = hello;
        inherit hello greeting;
      };
    };
}
