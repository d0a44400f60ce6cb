# A second input, served as a git repository over HTTP, with an input of its own (pkgs) that
# an app makes follow its own.
{
  inputs.pkgs.url = "http://172.17.0.1:18080/pkgs.tar.gz";
  outputs = { self, pkgs }: {
    lib.greeting = name: "greetings from utils to ${name}";
    lib.mkApp = pkgs.lib.mkApp;
  };
}
