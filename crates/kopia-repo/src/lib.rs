//! Native access to Kopia repositories, byte-compatible with Kopia itself.
//!
//! Modules follow the layers of the format, bottom up: `storage` (blobs), `format`
//! (`kopia.repository`), `crypto` and `compression` (what wraps every payload), `index` and
//! `pack` (where contents live), `epoch` (which index blobs are live), `content` (reading a
//! content through the merged index), `manifest` (the manifest store), `client` (Kopia's
//! connection config and password sources), `repository` (the public face), `maintenance`
//! (Kopia's maintenance schedule blob and parameters, read through it) and `verify` (contents
//! checked as `kopia content verify` does); `go_json`
//! holds the JSON forms of Go's encoder that Kopia's output carries.

#[cfg(test)]
mod arbitrary;
pub mod client;
pub mod compression;
pub mod content;
pub mod crypto;
mod early_key;
pub mod epoch;
pub mod error;
pub mod format;
pub mod go_json;
pub mod index;
pub mod maintenance;
pub mod manifest;
pub mod pack;
pub mod repository;
pub mod storage;
pub mod verify;

pub use error::{DecodeError, Error, Result};
