//! `tako fetch`: installing and updating a destination from an origin.

mod basics;
mod conditional;
mod container;
mod container_fleet;
mod container_hostile;
mod container_killed;
mod container_mirrors;
mod delta;
mod mirrors;
mod output;
mod resume;
mod retries;
