//! nixfront: a BuildKit frontend that builds a Nix flake into an OCI image.
//!
//! A build flows through the modules in this order: [`options`] and [`nixfile`] read what the
//! user asked for; [`plan`] turns it into the `nix build` exec, expressed with [`llb`];
//! [`gateway`] solves it; [`closure`] reads the manifest the build wrote; [`layers`] lays the
//! closure out as the root filesystem and [`image`] writes the config; [`frontend`] drives
//! all of it and returns the image. Inside BuildKit's steps the same binary runs [`step`].

#[cfg(test)]
mod architecture;
pub mod closure;
pub mod context;
pub mod dockerignore;
pub mod flakelock;
pub mod flakenix;
pub mod frontend;
pub mod fuzzing;
pub mod gateway;
pub mod image;
pub mod layers;
pub mod limits;
pub mod llb;
pub mod memo;
pub mod names;
pub mod nixfile;
pub mod options;
pub mod paths;
pub mod plan;
pub mod platform;
pub mod previous;
pub mod probe;
pub mod sbom;
pub mod step;
pub mod subrequests;
pub mod summary;
pub mod users;
