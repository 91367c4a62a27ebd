//! One module per verb: each reads its arguments, calls the floors below and prints.

pub mod check;
pub mod fetch;
pub mod gc;
pub mod generate;
pub mod index;
pub mod status;
pub mod store;
