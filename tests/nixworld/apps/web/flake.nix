# syntax=org/nixfront
# An app as users have them: nixpkgs-shaped inputs pinned in flake.lock (a tarball, a git
# repository whose own input follows the first, a relative path), substituted from a binary
# cache but for the app itself.
{
  inputs = {
    pkgs.url = "http://172.17.0.1:18080/pkgs.tar.gz";
    utils.url = "git+http://172.17.0.1:18080/utils.git?ref=main";
    utils.inputs.pkgs.follows = "pkgs";
    local.url = "path:./lib";
  };
  outputs = { self, pkgs, utils, local }: {
    packages.x86_64-linux = {
      default = utils.lib.mkApp { name = "web-1.0"; src = ./src; };
      inherit (pkgs.packages.x86_64-linux) cacert tzdata iana-etc;
    };
    greeting = utils.lib.greeting local.lib.name;
  };
}
