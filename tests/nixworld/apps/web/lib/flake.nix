# A relative path input of the app.
{ outputs = { self }: { lib.name = "web"; }; }
