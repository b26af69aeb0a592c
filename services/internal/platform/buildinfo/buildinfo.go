package buildinfo

// Version is the release or git description of the build; "dev" when built
// without the Makefile.
var Version = "dev"
