//! The publishing side: `tako store`, `tako index` and rotating signing keys.

mod index;
mod key_rotation;
mod publish;
