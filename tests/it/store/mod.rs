//! The publishing side: `tako store` (files and container images), `tako index` and
//! rotating signing keys.

mod container;
mod index;
mod key_rotation;
mod publish;
